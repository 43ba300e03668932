"""Tests for densedino.hub: downloads from a local HTTP server standing in for the official one.

The server serves files written under tmp_path at the official paths; DENSEDINO_WEIGHTS_MIRROR
points at it and DENSEDINO_HOME at tmp_path, so nothing here touches the internet.
"""
import ast
import hashlib
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Set

import pytest
import torch

from densedino import hub
from densedino.hub import DownloadError, fetch

OFFICIAL = 'https://dl.fbaipublicfiles.com'
V2_PATH = '/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth'
V2_URL = OFFICIAL + V2_PATH
REQUEST_PAGE = 'https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/'


def checkpoint_bytes(seed: int = 0) -> bytes:
    """A small torch.save'd state dict (a zip archive, as released checkpoints are)."""
    import io
    buffer = io.BytesIO()
    torch.save({'weight': torch.arange(4096.0) + seed}, buffer)
    return buffer.getvalue()


class Served:
    """What the test server serves and what it was asked for."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: List[str] = []
        self.truncated: Set[str] = set()
        self.status: Dict[str, int] = {}
        self.url = ''
        self.httpd = None

    def add(self, url_path: str, data: bytes) -> bytes:
        target = self.root / url_path.lstrip('/')
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return data

    def add_dinov3(self, data: bytes, hash8: str = '') -> str:
        """Serve ``data`` under a DINOv3-style name carrying ``hash8`` (default: the right one);
        returns the official URL."""
        hash8 = hash8 or hashlib.sha256(data).hexdigest()[:8]
        path = f'/dinov3/dinov3_vits16/dinov3_vits16_pretrain_lvd1689m-{hash8}.pth'
        self.add(path, data)
        return OFFICIAL + path

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@pytest.fixture
def server(tmp_path, monkeypatch):
    served = Served(tmp_path / 'served')

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            served.requests.append(self.path)
            path = self.path.split('?')[0]
            target = served.root / path.lstrip('/')
            if path in served.status or not target.is_file():
                self.send_error(served.status.get(path, 404))
                return
            data = target.read_bytes()
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()  # HTTP/1.0: the connection closes when this returns
            self.wfile.write(data[:len(data) // 2] if path in served.truncated else data)

        def log_message(self, *args):
            pass

    served.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=served.httpd.serve_forever, args=(0.05,), daemon=True).start()
    served.url = f'http://127.0.0.1:{served.httpd.server_address[1]}'
    monkeypatch.setenv('DENSEDINO_WEIGHTS_MIRROR', served.url)
    monkeypatch.setenv('DENSEDINO_HOME', str(tmp_path / 'home'))
    for name in ('DENSEDINO_OFFLINE', 'DINOV3_WEIGHTS_URL'):
        monkeypatch.delenv(name, raising=False)
    yield served
    served.stop()


def cache_listing() -> List[str]:
    folder = hub.checkpoint_dir()
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert '\n' not in message and message
    return message


# ------------------------------------------------------------------------------ downloads
def test_download_gives_the_served_bytes_and_records_the_hash(server, tmp_path):
    data = server.add(V2_PATH, checkpoint_bytes())
    path = fetch(V2_URL, progress=False)
    assert path == str(tmp_path / 'home' / 'checkpoints' / 'dinov2_vits14_pretrain.pth')
    assert Path(path).read_bytes() == data
    assert server.requests == [V2_PATH]
    record = Path(path + '.sha256').read_text().splitlines()
    assert record[0] == f'{hashlib.sha256(data).hexdigest()}  dinov2_vits14_pretrain.pth'
    assert cache_listing() == ['dinov2_vits14_pretrain.pth', 'dinov2_vits14_pretrain.pth.sha256']
    assert torch.equal(torch.load(path)['weight'], torch.arange(4096.0))


def test_second_call_uses_the_cache_with_the_server_stopped(server):
    data = server.add(V2_PATH, checkpoint_bytes())
    first = fetch(V2_URL, progress=False)
    server.stop()
    assert fetch(V2_URL, progress=False) == first
    assert Path(first).read_bytes() == data and server.requests == [V2_PATH]


def test_dinov3_hash_prefix_in_the_name_is_checked(server):
    url = server.add_dinov3(checkpoint_bytes())
    assert hub.name_hash_prefix(url.rsplit('/', 1)[1]) == url[-12:-4]
    assert Path(fetch(url, progress=False)).is_file()


def test_full_sha256_is_checked(server):
    data = server.add(V2_PATH, checkpoint_bytes())
    with pytest.raises(DownloadError) as err:
        fetch(V2_URL, sha256='ab' * 32, progress=False)
    assert 'expected abababab..., got ' + hashlib.sha256(data).hexdigest()[:8] in one_line(err)
    assert cache_listing() == []
    assert Path(fetch(V2_URL, sha256=hashlib.sha256(data).hexdigest().upper(),
                      progress=False)).read_bytes() == data


@pytest.mark.parametrize('family', ['dinov2 (no hash: zip check)', 'dinov3 (hash in the name)'])
def test_truncated_download_is_refused_and_not_cached(server, family):
    data = checkpoint_bytes()
    url = V2_URL if family.startswith('dinov2') else server.add_dinov3(data)
    server.add(url[len(OFFICIAL):], data)
    server.truncated.add(url[len(OFFICIAL):])
    with pytest.raises(DownloadError) as err:
        fetch(url, progress=False)
    message = one_line(err)
    assert ('cut short' if family.startswith('dinov2') else 'sha256 mismatch') in message
    assert f'{len(data) // 2} bytes received' in message and 'nothing was cached' in message
    assert cache_listing() == []  # no cached file, no record, no temporary file
    server.truncated.clear()
    assert Path(fetch(url, progress=False)).read_bytes() == data


def test_wrong_hash_prefix_in_the_name_is_refused(server):
    data = checkpoint_bytes()
    url = server.add_dinov3(data, hash8='deadbeef')
    with pytest.raises(DownloadError) as err:
        fetch(url, progress=False)
    got = hashlib.sha256(data).hexdigest()[:8]
    assert f'sha256 mismatch: expected deadbeef..., got {got}...' in one_line(err)
    assert cache_listing() == []


def test_html_page_instead_of_a_checkpoint_is_refused(server):
    server.add(V2_PATH, b'<!DOCTYPE html><html>proxy login</html>')
    with pytest.raises(DownloadError, match='HTML'):
        fetch(V2_URL, progress=False)
    assert cache_listing() == []


# ---------------------------------------------------------------------- later corruption
@pytest.mark.parametrize('change', ['same size', 'appended'])
def test_cached_file_modified_later_is_detected(server, change):
    server.add(V2_PATH, checkpoint_bytes())
    path = Path(fetch(V2_URL, progress=False))
    data = bytearray(path.read_bytes())
    if change == 'same size':
        data[100] ^= 0xFF
    else:
        data += b'junk'
    path.write_bytes(bytes(data))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DownloadError) as err:
        fetch(V2_URL, progress=False)
    message = one_line(err)
    assert f'cached file {path} is corrupted' in message and 'delete it' in message
    assert server.requests == [V2_PATH]  # no silent re-download


def test_touched_file_is_hashed_once_then_trusted(server, monkeypatch):
    server.add(V2_PATH, checkpoint_bytes())
    path = fetch(V2_URL, progress=False)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    hashed = []
    real = hub._sha256
    monkeypatch.setattr(hub, '_sha256', lambda p: hashed.append(p) or real(p))
    fetch(V2_URL, progress=False)
    fetch(V2_URL, progress=False)
    assert hashed == [path]  # the mtime changed: one full hash, then the refreshed record
    hub.verify(path, full=True)
    assert len(hashed) == 2


def test_file_saved_by_hand_is_checked_and_recorded(server):
    data = checkpoint_bytes(seed=1)
    url = server.add_dinov3(data)
    path = Path(hub.cache_path(url.rsplit('/', 1)[1]))
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert fetch(url, progress=False) == str(path) and server.requests == []
    assert Path(str(path) + '.sha256').is_file()
    path.unlink()
    Path(str(path) + '.sha256').unlink()
    path.write_bytes(checkpoint_bytes(seed=2))  # the wrong file under the right name
    with pytest.raises(DownloadError, match='not the expected file .sha256 mismatch'):
        fetch(url, progress=False)


# ----------------------------------------------------------------- offline and mirrors
def test_offline_with_an_empty_cache_never_connects(server, monkeypatch):
    server.add(V2_PATH, checkpoint_bytes())
    monkeypatch.setenv('DENSEDINO_OFFLINE', '1')
    with pytest.raises(DownloadError) as err:
        fetch(V2_URL, progress=False)
    message = one_line(err)
    assert hub.cache_path('dinov2_vits14_pretrain.pth') in message
    assert 'DENSEDINO_WEIGHTS_MIRROR' in message and 'DENSEDINO_OFFLINE=1' in message
    assert server.requests == []


def test_offline_uses_the_cache_and_a_folder_mirror(server, monkeypatch):
    data = server.add(V2_PATH, checkpoint_bytes())
    monkeypatch.setenv('DENSEDINO_OFFLINE', '1')
    monkeypatch.setenv('DENSEDINO_WEIGHTS_MIRROR', server.root.as_uri())
    assert Path(fetch(V2_URL, progress=False)).read_bytes() == data
    monkeypatch.setenv('DENSEDINO_WEIGHTS_MIRROR', server.url)
    assert Path(fetch(V2_URL, progress=False)).read_bytes() == data
    assert server.requests == []


def test_http_404_names_the_url_and_the_cache_path(server):
    with pytest.raises(DownloadError) as err:
        fetch(V2_URL, progress=False)
    message = one_line(err)
    assert f'from {server.url}{V2_PATH}: HTTP 404' in message
    assert hub.cache_path('dinov2_vits14_pretrain.pth') in message
    assert 'DENSEDINO_WEIGHTS_MIRROR' in message
    assert err.value.url == server.url + V2_PATH and cache_listing() == []


def test_connection_refused_is_one_line(server):
    server.stop()
    with pytest.raises(DownloadError) as err:
        fetch(V2_URL, progress=False)
    assert 'Connection refused' in one_line(err)


def test_gated_403_says_how_to_get_access(server, monkeypatch):
    url = server.add_dinov3(checkpoint_bytes())
    server.status[url[len(OFFICIAL):]] = 403
    with pytest.raises(DownloadError) as err:
        fetch(url, progress=False)
    message = one_line(err)
    assert 'HTTP 403' in message and REQUEST_PAGE in message and 'DINOV3_WEIGHTS_URL' in message
    monkeypatch.setenv('DINOV3_WEIGHTS_URL', server.url + '/dinov3?Signature=secret')
    with pytest.raises(DownloadError) as err:
        fetch(url, progress=False)
    message = one_line(err)
    assert 'DINOV3_WEIGHTS_URL was refused' in message and 'secret' not in message


def test_dinov3_weights_url_replaces_the_official_prefix(server, monkeypatch):
    data = checkpoint_bytes()
    official = server.add_dinov3(data)
    rest = official[len(OFFICIAL + '/dinov3/'):]
    server.add('/signed/' + rest, data)
    monkeypatch.setenv('DINOV3_WEIGHTS_URL', server.url + '/signed/*?Policy=abc')
    path = fetch(official, progress=False)
    assert server.requests == [f'/signed/{rest}?Policy=abc']
    assert Path(path).name == rest.split('/')[-1]


def test_resolve_url(monkeypatch):
    monkeypatch.setenv('DENSEDINO_WEIGHTS_MIRROR', 'http://m.example/base/')
    monkeypatch.delenv('DINOV3_WEIGHTS_URL', raising=False)
    assert hub.resolve_url(V2_URL) == 'http://m.example/base' + V2_PATH
    assert hub.resolve_url('https://example.org/x.pth') == 'https://example.org/x.pth'
    assert hub.resolve_url(OFFICIAL + '/dinov3/a/b.pth') == 'http://m.example/base/dinov3/a/b.pth'
    monkeypatch.setenv('DINOV3_WEIGHTS_URL', 'https://d.example/?P=1')
    assert hub.resolve_url(OFFICIAL + '/dinov3/a/b.pth') == 'https://d.example/a/b.pth?P=1'


def test_cache_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv('DENSEDINO_HOME', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert hub.checkpoint_dir() == str(tmp_path / 'densedino' / 'checkpoints')
    with pytest.raises(ValueError):
        hub.cache_path('../escape.pth')


# -------------------------------------------------------------------- license, progress
def test_license_is_printed_on_the_first_download_only(server, capsys):
    server.add(V2_PATH, checkpoint_bytes())
    fetch(V2_URL, license='Apache-2.0', progress=False)
    assert capsys.readouterr().err == 'dinov2_vits14_pretrain.pth: license: Apache-2.0\n'
    fetch(V2_URL, license='Apache-2.0', progress=False)
    assert capsys.readouterr().err == ''


def test_progress_goes_to_stderr(server, capsys):
    server.add(V2_PATH, checkpoint_bytes())
    fetch(V2_URL, name='dinov2_vits14')
    captured = capsys.readouterr()
    assert captured.out == '' and f'Downloading {server.url}{V2_PATH}' in captured.err


# ----------------------------------------------------------------------- Hugging Face
def test_fetch_hf_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, 'huggingface_hub', None)
    with pytest.raises(DownloadError) as err:
        hub.fetch_hf('facebook/dinov2-small', 'model.safetensors')
    assert 'pip install huggingface_hub' in one_line(err)


def test_fetch_hf_offline_miss_is_one_line(monkeypatch):
    pytest.importorskip('huggingface_hub')
    monkeypatch.setenv('DENSEDINO_OFFLINE', '1')
    with pytest.raises(DownloadError) as err:
        hub.fetch_hf('densedino-tests/no-such-repo', 'model.safetensors')
    message = one_line(err)
    assert 'densedino-tests/no-such-repo' in message and 'HF_ENDPOINT' in message


def test_hub_is_a_top_level_utility():
    tree = ast.parse(Path(hub.__file__).read_text(encoding='utf-8'))
    imported = [node.module or '' for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.level or (node.module or '').startswith('densedino'))]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names if alias.name.startswith('densedino')]
    assert imported == []
