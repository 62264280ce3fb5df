"""Checkpoints by URL: one cache entry per URL, downloaded once per machine, atomically, optionally checked.

- The cache folder is ``$MLLA_MM_CHECKPOINT_DIR`` if set, else torch hub's ``<torch.hub.get_dir()>/checkpoints``
  (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``); ``cache_dir=`` overrides both.
- An entry is named after the URL's last path part plus the first 8 hex digits of the URL's sha256, so two URLs
  never share an entry: ``.../MLLA_T.pth`` -> ``MLLA_T-1a2b3c4d.pth``; a link ending in ``/`` such as
  ``https://cloud.tsinghua.edu.cn/f/<id>/?dl=1`` -> ``<id>-<hash>.pth``.
- The file is written to a temporary name in the same folder and renamed when complete, so a partial download is
  never used. A lock file (``<entry>.lock``) makes concurrent processes (ranks, jobs) wait for one download.
- The expected sha256 is given as ``sha256=`` or appended to the URL as ``#sha256=<hex>`` (usable in a config's
  ``init_cfg.checkpoint``); a mismatch removes the file and raises, naming the URL and both hashes.
"""
import contextlib
import glob
import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Optional, Tuple
from urllib.parse import urlsplit

import torch

CACHE_DIR_ENV = 'MLLA_MM_CHECKPOINT_DIR'
URL_HASH_DIGITS = 8
CHUNK_BYTES = 1 << 20

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock, the atomic rename still keeps partial files out
    fcntl = None


class ChecksumError(ValueError):
    """A downloaded checkpoint does not have the expected sha256."""


def is_url(path: str) -> bool:
    return isinstance(path, str) and path.startswith(('http://', 'https://'))


def default_cache_dir() -> str:
    """``$MLLA_MM_CHECKPOINT_DIR``, else torch hub's checkpoints folder."""
    return os.environ.get(CACHE_DIR_ENV) or os.path.join(torch.hub.get_dir(), 'checkpoints')


def split_expected_sha256(url: str, sha256: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """The URL without a ``#sha256=<hex>`` suffix, and the expected hash (from the suffix or ``sha256``)."""
    base, _, fragment = url.partition('#')
    from_url = fragment[len('sha256='):] if fragment.startswith('sha256=') else None
    for value in (from_url, sha256):
        if value is not None and not re.fullmatch(r'[0-9a-fA-F]{64}', value):
            raise ValueError(f'{url}: the expected sha256 must be 64 hex digits, got {value!r}')
    if from_url and sha256 and from_url.lower() != sha256.lower():
        raise ValueError(f'{url}: two different expected sha256 given ({from_url} in the URL, {sha256})')
    expected = from_url or sha256
    return (base if from_url or not fragment else url), (expected.lower() if expected else None)


def cache_name(url: str) -> str:
    """A readable, unique file name for ``url``: its last path part and a short hash of the whole URL."""
    path = urlsplit(url).path.rstrip('/')
    stem, ext = os.path.splitext(os.path.basename(path))
    stem = re.sub(r'[^A-Za-z0-9._-]', '_', stem).strip('._') or 'checkpoint'
    ext = ext if re.fullmatch(r'\.[A-Za-z0-9]{1,8}', ext or '') else '.pth'
    digest = hashlib.sha256(url.encode()).hexdigest()[:URL_HASH_DIGITS]
    return f'{stem}-{digest}{ext}'


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive_lock(path: str):
    with open(path, 'a') as lock_file:
        if fcntl is not None:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


def _download_to(url: str, folder: str, name: str, timeout: float) -> Tuple[str, str]:
    """Download ``url`` to a temporary file in ``folder``; return its path and sha256. Nothing is left behind
    on failure."""
    handle, partial = tempfile.mkstemp(prefix=name + '.', suffix='.part', dir=folder)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, 'wb') as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                expected_size = response.headers.get('Content-Length')
                size = 0
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b''):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            if expected_size is not None and size != int(expected_size):
                raise OSError(f'the connection ended after {size} of {expected_size} bytes')
            out.flush()
            os.fsync(out.fileno())
    except BaseException as err:
        os.remove(partial)
        if isinstance(err, urllib.error.HTTPError):
            raise RuntimeError(f'could not download {url}: HTTP {err.code} {err.reason}') from err
        if isinstance(err, Exception):
            reason = getattr(err, 'reason', None) or err
            raise RuntimeError(f'could not download {url}: {type(err).__name__}: {reason}') from err
        raise
    return partial, digest.hexdigest()


def download_checkpoint(url: str, cache_dir: Optional[str] = None, sha256: Optional[str] = None,
                        timeout: float = 60.0, quiet: bool = False) -> str:
    """The local path of ``url``'s checkpoint, downloaded into the cache (see the module's docstring) if needed.

    Raises:
        RuntimeError: the download failed (HTTP error, refused, timeout, incomplete); the message names the URL.
        ChecksumError: the file's sha256 is not the expected one (the file is removed).
    """
    url, expected = split_expected_sha256(url, sha256)
    folder = os.path.expanduser(cache_dir or default_cache_dir())
    os.makedirs(folder, exist_ok=True)
    name = cache_name(url)
    target = os.path.join(folder, name)
    with _exclusive_lock(target + '.lock'):
        for leftover in glob.glob(glob.escape(target) + '.*.part'):  # from a killed download; we hold the lock
            os.remove(leftover)
        if os.path.isfile(target):
            if expected is None or file_sha256(target) == expected:
                return target
            os.remove(target)  # cached before a hash was given, and not the expected file: fetch it again
        if not quiet:
            print(f'Downloading {url} to {target}', file=sys.stderr)
        partial, actual = _download_to(url, folder, name, timeout)
        if expected is not None and actual != expected:
            os.remove(partial)
            raise ChecksumError(f'{url}: the downloaded file has sha256 {actual}, expected {expected}; '
                                f'it was removed')
        os.replace(partial, target)
    return target
