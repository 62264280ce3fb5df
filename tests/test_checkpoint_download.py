"""Checkpoints by URL, against a small HTTP server on 127.0.0.1 (never the internet)."""
import hashlib
import io
import multiprocessing
import os
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from mlla_mm.checkpoint.download import (CACHE_DIR_ENV, ChecksumError, cache_name, default_cache_dir,
                                         download_checkpoint)
from mlla_mm.checkpoint.official import resolve_checkpoint


def checkpoint_bytes(value):
    buffer = io.BytesIO()
    torch.save({'state_dict': {'weight': torch.full((3,), float(value))}}, buffer)
    return buffer.getvalue()


# path (with query) -> body; each served file differs, so a mix-up shows
FILES = {
    '/a/MLLA_T.pth': checkpoint_bytes(1),
    '/b/MLLA_T.pth': checkpoint_bytes(2),
    '/f/0a1b2c3d4e/?dl=1': checkpoint_bytes(3),
    '/slow/MLLA_S.pth': checkpoint_bytes(4),
}
TRUNCATED = '/broken/MLLA_B.pth'  # announces more bytes than it sends, then closes


class Handler(BaseHTTPRequestHandler):
    requests = Counter()

    def log_message(self, *args):
        pass

    def do_GET(self):
        Handler.requests[self.path] += 1
        if self.path == TRUNCATED:
            body = checkpoint_bytes(5)
            self.send_response(200)
            self.send_header('Content-Length', str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path not in FILES:
            self.send_error(404, 'no such file')
            return
        body = FILES[self.path]
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.path.startswith('/slow/'):  # long enough for a second process to arrive mid-download
            for i in range(0, len(body), 256):
                self.wfile.write(body[i:i + 256])
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.wfile.write(body)


@pytest.fixture(scope='module')
def server():
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def fresh_counts():
    Handler.requests.clear()


def cache_files(folder):
    return sorted(name for name in os.listdir(folder) if not name.endswith('.lock'))


def test_a_link_ending_in_a_slash_with_a_query_gets_a_readable_entry(server, tmp_path):
    url = server + '/f/0a1b2c3d4e/?dl=1'
    path = download_checkpoint(url, cache_dir=str(tmp_path), quiet=True)
    assert re.fullmatch(r'0a1b2c3d4e-[0-9a-f]{8}\.pth', os.path.basename(path))
    assert open(path, 'rb').read() == FILES['/f/0a1b2c3d4e/?dl=1']
    assert cache_name('https://x/MLLA_T.pth') == 'MLLA_T-' + hashlib.sha256(b'https://x/MLLA_T.pth').hexdigest()[:8] \
        + '.pth'


def test_two_urls_with_the_same_file_name_get_two_entries(server, tmp_path):
    first = download_checkpoint(server + '/a/MLLA_T.pth', cache_dir=str(tmp_path), quiet=True)
    second = download_checkpoint(server + '/b/MLLA_T.pth', cache_dir=str(tmp_path), quiet=True)
    assert first != second and os.path.basename(first).startswith('MLLA_T-')
    assert open(first, 'rb').read() == FILES['/a/MLLA_T.pth']
    assert open(second, 'rb').read() == FILES['/b/MLLA_T.pth']


def test_a_cached_url_is_not_downloaded_again(server, tmp_path):
    url = server + '/a/MLLA_T.pth'
    first = download_checkpoint(url, cache_dir=str(tmp_path), quiet=True)
    second = download_checkpoint(url, cache_dir=str(tmp_path), quiet=True)
    assert first == second and Handler.requests['/a/MLLA_T.pth'] == 1


def test_an_incomplete_download_leaves_no_file_and_names_the_url(server, tmp_path):
    url = server + TRUNCATED
    with pytest.raises(RuntimeError, match=re.escape(url)):
        download_checkpoint(url, cache_dir=str(tmp_path), quiet=True)
    assert cache_files(tmp_path) == []


@pytest.mark.parametrize('where', ['argument', 'url'])
def test_a_wrong_sha256_raises_with_both_hashes_and_leaves_no_file(server, tmp_path, where):
    url = server + '/a/MLLA_T.pth'
    actual = hashlib.sha256(FILES['/a/MLLA_T.pth']).hexdigest()
    wrong = '0' * 64
    kwargs = dict(sha256=wrong) if where == 'argument' else {}
    with pytest.raises(ChecksumError, match=rf'{re.escape(url)}.*{actual}.*{wrong}'):
        download_checkpoint(url + ('' if kwargs else f'#sha256={wrong}'), cache_dir=str(tmp_path), quiet=True,
                            **kwargs)
    assert cache_files(tmp_path) == []
    path = download_checkpoint(url + f'#sha256={actual}', cache_dir=str(tmp_path), quiet=True)
    assert open(path, 'rb').read() == FILES['/a/MLLA_T.pth']


def test_a_cached_file_with_another_hash_is_fetched_again(server, tmp_path):
    url = server + '/a/MLLA_T.pth'
    path = download_checkpoint(url, cache_dir=str(tmp_path), quiet=True)
    with open(path, 'wb') as file:
        file.write(b'damaged')
    actual = hashlib.sha256(FILES['/a/MLLA_T.pth']).hexdigest()
    assert download_checkpoint(url, cache_dir=str(tmp_path), sha256=actual, quiet=True) == path
    assert open(path, 'rb').read() == FILES['/a/MLLA_T.pth'] and Handler.requests['/a/MLLA_T.pth'] == 2


def test_http_errors_and_refused_connections_name_the_url(server, tmp_path):
    missing = server + '/nothing/here.pth'
    with pytest.raises(RuntimeError, match=rf'{re.escape(missing)}: HTTP 404'):
        download_checkpoint(missing, cache_dir=str(tmp_path), quiet=True)
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(('127.0.0.1', 0))
        refused = f'http://127.0.0.1:{sock.getsockname()[1]}/MLLA_T.pth'
    with pytest.raises(RuntimeError, match=re.escape(refused)):
        download_checkpoint(refused, cache_dir=str(tmp_path), quiet=True, timeout=5)
    assert cache_files(tmp_path) == []


def _download_in_child(url, cache_dir):
    return download_checkpoint(url, cache_dir=cache_dir, quiet=True)


def test_concurrent_processes_download_once(server, tmp_path):
    url = server + '/slow/MLLA_S.pth'
    with multiprocessing.get_context('fork').Pool(2) as pool:
        paths = pool.starmap(_download_in_child, [(url, str(tmp_path))] * 2)
    assert paths[0] == paths[1] and Handler.requests['/slow/MLLA_S.pth'] == 1
    assert open(paths[0], 'rb').read() == FILES['/slow/MLLA_S.pth']
    assert cache_files(tmp_path) == [os.path.basename(paths[0])]


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / 'mine'))
    assert default_cache_dir() == str(tmp_path / 'mine')
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    assert default_cache_dir() == os.path.join(str(tmp_path / 'torch'), 'hub', 'checkpoints')


def test_official_links_through_resolve_checkpoint_and_mmengine(server, tmp_path, monkeypatch):
    """The backbone's Pretrained loader (resolve_checkpoint) and mmengine's URL loader use the same cache."""
    from mmengine.runner.checkpoint import CheckpointLoader

    import mlla_mm  # noqa: F401  (installs the safe loader into mmengine)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    url = server + '/f/0a1b2c3d4e/?dl=1'
    path = resolve_checkpoint(url)
    assert os.path.dirname(path) == str(tmp_path) and path.endswith('.pth')
    checkpoint = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert torch.equal(checkpoint['state_dict']['weight'], torch.full((3,), 3.0))
    assert Handler.requests['/f/0a1b2c3d4e/?dl=1'] == 1
    assert resolve_checkpoint(str(tmp_path / 'local.pth')) == str(tmp_path / 'local.pth')
