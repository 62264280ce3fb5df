"""The Runner's ``load_from`` / ``--resume`` / test checkpoint loading under the whole-model rule.

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False``: a checkpoint of another config (other shapes,
missing or extra keys, or no weights at all) leaves part of the model random, and ``tools/test.py`` then prints the
metrics of that model with exit status 0. :func:`install_checkpoint_rules` makes a built Runner load through
:func:`mlla_mm.checkpoint.model_checkpoint.fit_model_checkpoint` instead: such a file is refused before anything
runs, the official release's RoPE tables are skipped with one line, and resuming from a file that was not written by
training says so instead of raising a bare ``KeyError: 'meta'``.
"""
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner.checkpoint import _load_checkpoint

from ..checkpoint.model_checkpoint import load_model_checkpoint


class ResumeError(ValueError):
    """A checkpoint given to resume training from holds no training state; the message names the file."""


def check_resumable(checkpoint, source: str) -> None:
    """Raise a :class:`ResumeError` unless ``checkpoint`` holds the ``meta`` (epoch, iteration) of a training."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or 'epoch' not in meta or 'iter' not in meta:
        raise ResumeError(f'cannot resume from {source}: it holds no training state (no "meta" with the epoch and '
                          f'iteration), so it was not written by a training run. To start a training from its '
                          f'weights, use load_from (--cfg-options load_from={source}) instead of --resume')


def install_checkpoint_rules(runner) -> None:
    """Make ``runner.load_checkpoint`` (``load_from``, the checkpoint to test) and ``runner.resume`` check the file
    first (see the module's docstring). Call it once on a built Runner."""
    original_resume = runner.resume
    resuming = []

    def load_checkpoint(filename, map_location='cpu', strict=False, revise_keys=None):
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        if resuming:
            check_resumable(checkpoint, filename)
        runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = runner.model
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):  # the weights are the inner model's
            model = model.module
        report = load_model_checkpoint(model, checkpoint, filename)
        if report:
            runner.logger.info(report)
        runner._has_loaded = True
        runner.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(filename, *args, **kwargs):
        resuming.append(filename)
        try:
            return original_resume(filename, *args, **kwargs)
        finally:
            resuming.pop()

    runner.load_checkpoint = load_checkpoint
    runner.resume = resume
