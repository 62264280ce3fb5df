"""mmengine's resume and load_from on torch >= 2.6, through mlla-mm's safe loader."""
import pickle
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader, TensorDataset

import mlla_mm  # noqa: F401  (installs the loader)
from mlla_mm.engine import find_resumable_checkpoint


class ToyRegressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        prediction = self.linear(inputs)
        if mode == 'loss':
            return {'loss': ((prediction - targets) ** 2).mean()}
        return prediction


def collate(batch):
    inputs, targets = zip(*batch)
    return {'inputs': torch.stack(inputs), 'targets': torch.stack(targets)}


class SimulatedKill(Exception):
    pass


class KillAfterEpoch(Hook):
    priority = 'LOWEST'  # after the CheckpointHook has written the epoch's checkpoint

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise SimulatedKill(f'killed after epoch {self.epoch}')


def make_runner(work_dir, max_epochs, checkpoint=None, **kwargs):
    kwargs.setdefault('experiment_name', f'{work_dir.name}-{max_epochs}-{sorted(kwargs)}-{checkpoint}')
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 4, generator=generator), torch.randn(16, 1, generator=generator))
    torch.manual_seed(0)
    return Runner(
        model=ToyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=DataLoader(data, batch_size=4, shuffle=False, collate_fn=collate),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=dict(type='MultiStepLR', milestones=[2], gamma=0.1),
        default_hooks=dict(checkpoint=checkpoint or dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        **kwargs)


def test_plain_torch_load_rejects_mmengine_checkpoints(tmp_path):
    """The failure this guards against: torch >= 2.6 cannot read mmengine's own checkpoints by default."""
    make_runner(tmp_path, max_epochs=1).train()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'epoch_1.pth')


def test_interrupted_training_resumes_to_the_same_end_state(tmp_path, recwarn):
    make_runner(tmp_path / 'full', max_epochs=3).train()
    expected = torch.load(tmp_path / 'full' / 'epoch_3.pth', weights_only=False)['state_dict']

    killed = make_runner(tmp_path / 'cut', max_epochs=3, custom_hooks=[KillAfterEpoch(2)])
    with pytest.raises(SimulatedKill):
        killed.train()
    assert sorted(p.name for p in (tmp_path / 'cut').glob('epoch_*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    resumed = make_runner(tmp_path / 'cut', max_epochs=3, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 2 and resumed.iter == 8
    history = resumed.message_hub.get_scalar('train/loss')  # the restored HistoryBuffer
    assert len(history.data[0]) == 8
    resumed.train()
    assert resumed.epoch == 3 and resumed.iter == 12
    assert not [w for w in recwarn if 'OpaqueObject' in str(w.message)]  # all of mmengine's state was rebuilt
    final = resumed.model.state_dict()
    for key, value in expected.items():
        assert torch.allclose(final[key], value, atol=1e-6), key


def test_load_from_a_checkpoint_with_foreign_objects(tmp_path, monkeypatch):
    make_runner(tmp_path / 'a', max_epochs=1).train()
    checkpoint = torch.load(tmp_path / 'a' / 'epoch_1.pth', weights_only=False)
    weights = checkpoint['state_dict']
    # a config object of a package that exists while the file is written, and not when it is read
    package = types.ModuleType('not_installed_package.config')
    package.Config = type('Config', (dict,), {'__module__': 'not_installed_package.config'})
    monkeypatch.setitem(sys.modules, 'not_installed_package', types.ModuleType('not_installed_package'))
    monkeypatch.setitem(sys.modules, 'not_installed_package.config', package)
    checkpoint['meta']['released_with'] = package.Config(lr=0.1)
    torch.save(checkpoint, tmp_path / 'release.pth')
    monkeypatch.delitem(sys.modules, 'not_installed_package.config')
    monkeypatch.delitem(sys.modules, 'not_installed_package')

    runner = make_runner(tmp_path / 'b', max_epochs=1, load_from=str(tmp_path / 'release.pth'))
    runner.load_or_resume()
    for key, value in weights.items():
        assert torch.equal(runner.model.state_dict()[key], value)
    assert 'not_installed_package.config' not in sys.modules


# ---------------------------------------------------------------------------- nothing lost: atomic checkpoints
ATOMIC_KEEP_ONE = dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=1)


def test_kill_while_a_checkpoint_is_written_keeps_the_previous_one(tmp_path, monkeypatch):
    write = LocalBackend.put

    def killed_halfway(self, obj, filepath):
        if 'epoch_2' in str(filepath):
            write(self, obj[:len(obj) // 2], filepath)  # the process dies with half the file written
            raise SimulatedKill(f'killed while writing {filepath}')
        return write(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', killed_halfway)
    with pytest.raises(SimulatedKill):
        make_runner(tmp_path, max_epochs=3, checkpoint=ATOMIC_KEEP_ONE).train()
    monkeypatch.setattr(LocalBackend, 'put', write)
    assert (tmp_path / 'epoch_1.pth').is_file() and not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_1.pth')

    resumed = make_runner(tmp_path, max_epochs=3, checkpoint=ATOMIC_KEEP_ONE, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 1
    resumed.train()
    assert sorted(p.name for p in tmp_path.glob('epoch_*.pth')) == ['epoch_3.pth']  # max_keep_ckpts=1 still holds
    assert not list(tmp_path.glob('*.partial'))


def test_empty_last_checkpoint_resumes_from_the_newest_complete_one(tmp_path, capsys):
    make_runner(tmp_path, max_epochs=2, checkpoint=dict(type='AtomicCheckpointHook', interval=1)).train()
    (tmp_path / 'last_checkpoint').write_text('')
    path, note = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'epoch_2.pth') and 'is empty' in note and 'epoch_2.pth' in note
    resumed = make_runner(tmp_path, max_epochs=3, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 2 and resumed.iter == 8


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    make_runner(tmp_path, max_epochs=2).train()  # mmengine's own CheckpointHook: epoch_1.pth, epoch_2.pth
    newest = tmp_path / 'epoch_2.pth'
    newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])
    path, note = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'epoch_1.pth')
    assert f'names {newest}, which is incomplete' in note and 'resuming from the newest complete' in note
    resumed = make_runner(tmp_path, max_epochs=3, resume=True)
    resumed.load_or_resume()
    assert resumed.epoch == 1


def test_a_missing_recorded_checkpoint_with_nothing_to_fall_back_on_is_named(tmp_path):
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_4.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == (str(tmp_path / 'epoch_4.pth'), None)
    (tmp_path / 'last_checkpoint').write_text('')
    path, note = find_resumable_checkpoint(str(tmp_path))
    assert path is None and 'holds no complete epoch_*.pth' in note
