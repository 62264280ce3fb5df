"""Which checkpoint ``--resume`` (auto resume) continues from: the recorded one if it is complete, else the newest
complete ``epoch_*.pth`` / ``iter_*.pth`` of the work dir.

mmengine reads ``work_dir/last_checkpoint`` and trusts it. When that file is empty, training starts again from the
first epoch and overwrites the later checkpoints; when it names a missing or half-written file, resuming fails.
:func:`find_resumable_checkpoint` falls back to the newest checkpoint that is complete and says why;
:func:`install_resume_fallback` makes mmengine's ``Runner`` (``resume=True`` without a path) use it.
"""
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple

CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
ZIP_MAGIC = b'PK\x03\x04'


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole checkpoint file. A zip archive (``torch.save``'s format) must have its central
    directory (written last) and all its records must pass their CRC check; a file in another format (torch's
    legacy one) only needs to be non-empty, as it cannot be checked without loading it."""
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    with open(path, 'rb') as f:
        is_zip_archive = f.read(4) == ZIP_MAGIC
    if not is_zip_archive:
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def checkpoints_newest_first(work_dir: str) -> List[str]:
    """The ``epoch_N.pth`` / ``iter_N.pth`` files of ``work_dir``, highest N first (by time written when both
    kinds are there)."""
    if not osp.isdir(work_dir):
        return []
    found = []
    for name in os.listdir(work_dir):
        match = CHECKPOINT_NAME.match(name)
        if match:
            path = osp.join(work_dir, name)
            found.append((osp.getmtime(path), int(match.group(2)), match.group(1), path))
    if len({kind for _, _, kind, _ in found}) > 1:
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    else:
        found.sort(key=lambda item: item[1], reverse=True)
    return [path for *_, path in found]


def find_resumable_checkpoint(work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint to resume from and a note when it is not the one ``last_checkpoint`` names.

    (None, note): ``last_checkpoint`` is empty and no complete checkpoint is there, so training starts from the
    beginning. When it names a missing or broken file and no complete one is there, that file is returned, so that
    loading it fails with its name instead of a new training overwriting the work dir.
    """
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None, None
    with open(marker) as f:
        recorded = f.read().strip() or None
    if recorded is not None and is_complete_checkpoint(recorded):
        return recorded, None
    if recorded is None:
        why = f'{marker} is empty'
    elif not osp.exists(recorded):
        why = f'{marker} names {recorded}, which does not exist'
    else:
        why = f'{marker} names {recorded}, which is incomplete (its writing was cut off) or damaged'
    for path in checkpoints_newest_first(work_dir):
        if path != recorded and is_complete_checkpoint(path):
            return path, f'resume: {why}; resuming from the newest complete checkpoint, {path}'
    if recorded is None:
        return None, f'resume: {why} and {work_dir} holds no complete epoch_*.pth / iter_*.pth'
    return recorded, None


def find_latest_complete_checkpoint(path: str) -> Optional[str]:
    """Drop-in for mmengine's ``find_latest_checkpoint``, with the fallback of :func:`find_resumable_checkpoint`."""
    from mmengine.logging import print_log
    checkpoint, note = find_resumable_checkpoint(path)
    if note:
        print_log(note, logger='current', level=30)
    elif checkpoint is None:
        print_log('Did not find last_checkpoint to be resumed.', logger='current')
    return checkpoint


def install_resume_fallback() -> None:
    """Make mmengine's ``Runner`` (auto resume: ``resume=True``, no ``load_from``) resume through
    :func:`find_latest_complete_checkpoint`. Idempotent."""
    import mmengine.runner.runner as runner_module
    runner_module.find_latest_checkpoint = find_latest_complete_checkpoint
