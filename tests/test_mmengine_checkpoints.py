"""mmengine's resume and load_from on torch >= 2.6, through mlla-mm's safe loader."""
import pickle
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import DataLoader, TensorDataset

import mlla_mm  # noqa: F401  (installs the loader)


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


def make_runner(work_dir, max_epochs, **kwargs):
    kwargs.setdefault('experiment_name', f'{work_dir.name}-{max_epochs}-{sorted(kwargs)}')
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
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
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
