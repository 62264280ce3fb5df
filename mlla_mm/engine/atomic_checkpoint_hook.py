"""A ``CheckpointHook`` whose checkpoints are never half written and never lost to a newer one that failed.

mmengine's ``CheckpointHook`` removes the oldest kept checkpoint *before* it writes the new one, and writes the new
one in place: with ``max_keep_ckpts=1``, a process killed while ``epoch_2.pth`` is written leaves ``epoch_1.pth``
deleted and ``epoch_2.pth`` truncated, nothing to resume from. :class:`AtomicCheckpointHook` writes each checkpoint
to a temporary name in the same folder and renames it into place (an atomic step on one file system), then updates
``last_checkpoint`` the same way, and only then removes the checkpoints it no longer keeps.
"""
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

PARTIAL_SUFFIX = '.partial'


def _replace_atomically(partial: str, final: str) -> None:
    with open(partial, 'rb+') as f:  # the bytes reach the disk before the name points to them
        os.fsync(f.fileno())
    os.replace(partial, final)


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the old or the new text."""
    partial = path + PARTIAL_SUFFIX
    with open(partial, 'w') as f:
        f.write(text)
    _replace_atomically(partial, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that writes through a temporary file and removes outdated checkpoints
    after the new one is complete. Checkpoints on other storage than the local file system are saved as
    ``CheckpointHook`` saves them."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename + PARTIAL_SUFFIX,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        _replace_atomically(self.last_ckpt + PARTIAL_SUFFIX, self.last_ckpt)
        write_text_atomically(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)

        if outdated is not None and outdated != step:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
