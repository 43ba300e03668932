"""Released weights on disk: one download path, a verified cache, mirrors and offline use.

Every released checkpoint densedino uses comes through :func:`fetch` (or :func:`fetch_hf` for
Hugging Face repositories), so there is one place that decides where files live, which server
they come from and whether a file on disk can be trusted.

The transfer itself is ``torch.hub.download_url_to_file``. It writes to a temporary file and
renames it into place, but it only checks a hash when given one, and ``http.client`` does not
complain when a server closes the connection before ``Content-Length`` bytes arrived: a cut
download without a hash would be renamed into place as if it were whole. So the download goes to
a staging name of ours, is checked (full sha256 when known, the ``<name>-<hash8>.pth`` prefix,
and that a torch zip archive is complete), and only then renamed to the cached name.

After a download the file's sha256, size and mtime are recorded in ``<file>.sha256`` (the first
line reads like ``sha256sum`` output, so ``sha256sum -c`` works in the cache folder). Each later
use compares size and mtime with the record, which is free, and hashes the whole file only when
they changed (hashing a multi-gigabyte checkpoint on every start would cost tens of seconds); a
changed size, or a changed hash, is an error naming the file to delete. :func:`verify` with
``full=True`` hashes regardless. Details: docs/zoo.md#downloads-and-the-cache.
"""
import hashlib
import http.client
import os
import os.path as osp
import re
import sys
import urllib.error
import uuid
import zipfile
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple
from urllib.parse import unquote, urlsplit

import torch.hub

__all__ = [
    'DownloadError', 'Gate', 'DINOV3_GATE', 'OFFICIAL_BASE', 'HOME_ENV', 'MIRROR_ENV',
    'OFFLINE_ENV', 'home_dir', 'checkpoint_dir', 'cache_path', 'name_hash_prefix', 'resolve_url',
    'fetch', 'fetch_hf', 'verify',
]

OFFICIAL_BASE = 'https://dl.fbaipublicfiles.com'
HOME_ENV = 'DENSEDINO_HOME'
MIRROR_ENV = 'DENSEDINO_WEIGHTS_MIRROR'
OFFLINE_ENV = 'DENSEDINO_OFFLINE'
_CHUNK = 1 << 20
_CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt')


class DownloadError(RuntimeError):
    """A file could not be fetched or failed its checks; the message is one line that says what,
    from where, why, and what to do (where to save the file by hand, which variable to set)."""

    def __init__(self, message: str, *, url: Optional[str] = None, path: Optional[str] = None):
        super().__init__(' '.join(part.strip() for part in message.splitlines()))  # one line
        self.url = url
        self.path = path


@dataclass(frozen=True)
class Gate:
    """A family of files that need a personal download URL: where access is requested, which
    variable holds the URL that access gives, and which part of the official URL it replaces."""
    env: str
    official_prefix: str
    request_url: str
    family: str

    def advice(self) -> str:
        """What to do when the server refuses such a file (depends on whether the URL is set)."""
        if os.environ.get(self.env):
            return (f'the {self.family} weights are gated and the URL in {self.env} was refused: '
                    f'download links expire, request a new one at {self.request_url}')
        return (f'the {self.family} weights are gated: request access at {self.request_url} and '
                f'set {self.env} to the download URL you receive (it replaces '
                f'{self.official_prefix}), or accept the terms of its Hugging Face repository '
                'and log in (HF_TOKEN or huggingface-cli login)')


DINOV3_GATE = Gate('DINOV3_WEIGHTS_URL', OFFICIAL_BASE + '/dinov3',
                   'https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/', 'DINOv3')
_GATES: Tuple[Gate, ...] = (DINOV3_GATE,)


class _Record(NamedTuple):
    """What ``<file>.sha256`` remembers about a verified file."""
    sha256: str
    size: int
    mtime_ns: int


def home_dir() -> str:
    """``$DENSEDINO_HOME``, else ``$XDG_CACHE_HOME/densedino``, else ``~/.cache/densedino``."""
    home = os.environ.get(HOME_ENV)
    if home:
        return osp.expanduser(home)
    xdg = os.environ.get('XDG_CACHE_HOME') or osp.join('~', '.cache')
    return osp.join(osp.expanduser(xdg), 'densedino')


def checkpoint_dir() -> str:
    """The folder holding downloaded checkpoints (one flat folder, like torch.hub's)."""
    return osp.join(home_dir(), 'checkpoints')


def cache_path(file_name: str) -> str:
    """Where ``file_name`` lives in the cache: the path to save a file to by hand."""
    if not file_name or osp.basename(file_name) != file_name or file_name in ('.', '..'):
        raise ValueError(f'a cache file name must be a bare file name, got {file_name!r}')
    return osp.join(checkpoint_dir(), file_name)


def name_hash_prefix(file_name: str) -> Optional[str]:
    """The sha256 prefix a released file name carries (``<name>-<hex>.pth``), found with
    torch.hub's ``HASH_REGEX`` as its ``check_hash`` does; None when the name has none."""
    match = torch.hub.HASH_REGEX.search(file_name)
    return match.group(1) if match and match.group(1) else None


def _url_file_name(url: str) -> str:
    """The last path component of ``url``, without its query (signed URLs carry one)."""
    name = unquote(urlsplit(url).path.rsplit('/', 1)[-1])
    if not name:
        raise ValueError(f'cannot take a file name from the URL {url!r}; pass file_name=')
    return name


def _rebase(url: str, prefix: str, base: str) -> str:
    """Replace ``prefix`` of ``url`` by ``base``; a ``*`` in ``base`` marks where the rest of the
    path goes, and a query in ``base`` is kept (signed download links carry both)."""
    rest = url[len(prefix):]
    if '*' in base:
        return base.replace('*', rest.lstrip('/'), 1)
    head, sep, query = base.partition('?')
    return head.rstrip('/') + rest + sep + query


def _find_gate(url: str) -> Optional[Gate]:
    """The gate whose official prefix ``url`` starts with, if any."""
    return next((g for g in _GATES if url.startswith(g.official_prefix + '/')), None)


def resolve_url(url: str, gate: Optional[Gate] = None) -> str:
    """The URL to download ``url`` from: a gate's variable (e.g. ``DINOV3_WEIGHTS_URL``) wins
    for its files, then ``DENSEDINO_WEIGHTS_MIRROR`` for anything under the official server."""
    gate = gate or _find_gate(url)
    if gate is not None and os.environ.get(gate.env) and url.startswith(gate.official_prefix):
        return _rebase(url, gate.official_prefix, os.environ[gate.env])
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and url.startswith(OFFICIAL_BASE + '/'):
        return _rebase(url, OFFICIAL_BASE, mirror)
    return url


def _shown(url: str) -> str:
    """``url`` for messages: a query is elided, since signed links are personal credentials."""
    head, sep, _ = url.partition('?')
    return head + ('?...' if sep else '')


def _offline() -> bool:
    """Whether ``DENSEDINO_OFFLINE`` forbids the network."""
    return os.environ.get(OFFLINE_ENV, '').strip().lower() in ('1', 'true', 'yes', 'on')


def _sha256(path: str) -> str:
    """The hex sha256 of a file, read in chunks (checkpoints can be tens of gigabytes)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(digest: str, sha256: Optional[str], hash_prefix: Optional[str]) -> Optional[str]:
    """Why ``digest`` is not the expected file (None when it is, or when nothing is expected)."""
    for expected in (sha256, hash_prefix):
        if expected and not digest.startswith(expected.lower()):
            shown = expected.lower()[:8]
            return f'sha256 mismatch: expected {shown}..., got {digest[:len(shown)]}...'
    return None


def _incomplete(path: str, name: str) -> Optional[str]:
    """Why the file cannot be a whole checkpoint, checked without a hash: a torch zip archive
    must have its central directory (written last, so a cut file lacks it); a checkpoint must
    not be empty or an HTML page (what proxies and misconfigured mirrors return)."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'PK\x03\x04':
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            return f'incomplete zip archive of {osp.getsize(path)} bytes ({exc}): cut short?'
    elif name.endswith(_CHECKPOINT_SUFFIXES) and (not head or head.startswith(b'<')):
        return 'empty file' if not head else 'got an HTML/XML page, not a checkpoint'
    return None


def _record_path(path: str) -> str:
    return path + '.sha256'


def _read_record(path: str) -> Optional[_Record]:
    """The record next to ``path``; None when absent or unreadable (the file is then hashed)."""
    try:
        with open(_record_path(path), encoding='utf-8') as f:
            text = f.read()
        size, mtime = re.search(r'size=(\d+)\s+mtime_ns=(\d+)', text).groups()
        return _Record(text.split()[0].lower(), int(size), int(mtime))
    except (OSError, AttributeError, IndexError, ValueError):
        return None


def _write_record(path: str, digest: str) -> None:
    """Record ``digest`` with the file's current size and mtime; written to a temporary name and
    renamed, so a reader never sees half a record. A read-only cache keeps no record."""
    stat = os.stat(path)
    text = (f'{digest}  {osp.basename(path)}\n'
            f'# size={stat.st_size} mtime_ns={stat.st_mtime_ns} (written by densedino.hub)\n')
    tmp = f'{_record_path(path)}.{uuid.uuid4().hex[:8]}.tmp'
    try:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, _record_path(path))
    except OSError:
        if osp.exists(tmp):
            os.remove(tmp)


def verify(path: str, *, sha256: Optional[str] = None, hash_prefix: Optional[str] = None,
           full: bool = False) -> str:
    """Check a cached file and return its sha256; raise :class:`DownloadError` if it changed.

    With a record whose size and mtime still match, the recorded hash is trusted (``full=True``
    hashes anyway). A changed size is corruption outright; a changed mtime alone costs one full
    hash, after which the record is refreshed if the content is the same. A file without record
    (saved by hand) is hashed and checked once, then recorded. The expected ``sha256`` and
    ``hash_prefix``, when given, are compared every time.
    """
    record, stat = _read_record(path), os.stat(path)
    fresh = record is not None and (record.size, record.mtime_ns) == (stat.st_size,
                                                                      stat.st_mtime_ns)
    delete = (f'delete it to download it again (or delete {_record_path(path)} if you replaced '
              'the file on purpose)')
    if record is not None and record.size != stat.st_size:
        raise DownloadError(f'cached file {path} is corrupted: {stat.st_size} bytes, '
                            f'{record.size} when downloaded; {delete}', path=path)
    digest = record.sha256 if fresh and not full else _sha256(path)
    if record is not None and digest != record.sha256:
        raise DownloadError(f'cached file {path} is corrupted: sha256 {digest[:8]}..., '
                            f'{record.sha256[:8]}... when downloaded; {delete}', path=path)
    problem = _mismatch(digest, sha256, hash_prefix)
    if problem is None and record is None:
        problem = _incomplete(path, osp.basename(path))
    if problem:
        raise DownloadError(f'cached file {path} is not the expected file ({problem}); delete '
                            'it to download it again, or save the right file there', path=path)
    if not fresh:
        _write_record(path, digest)
    return digest


def _fix_hint(path: str, gate: Optional[Gate], refused: bool = False) -> str:
    """The end of every download error: how to get the file some other way."""
    hand = f'save the file by hand as {path}'
    if gate is not None and refused:
        return f'{gate.advice()}; or {hand}'
    also = f' ({gate.env} for the {gate.family} files)' if gate is not None else ''
    return (f'{hand}, or set {MIRROR_ENV} to a mirror of {OFFICIAL_BASE} '
            f'(a base URL, or file:///folder){also}')


def _transfer_reason(exc: BaseException) -> str:
    """A short reason for a failed transfer, from what urllib and http.client raise."""
    if isinstance(exc, urllib.error.HTTPError):
        return f'HTTP {exc.code} {exc.reason}'
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return f'cannot reach it ({reason.strerror if isinstance(reason, OSError) else reason})'
    if isinstance(exc, http.client.IncompleteRead):
        return f'connection closed early, after {len(exc.partial)} bytes'
    if isinstance(exc, ValueError):
        return f'invalid URL ({exc})'
    return f'{type(exc).__name__}: {exc}'


def _download(source: str, path: str, label: str, expected: Tuple[Optional[str], Optional[str]],
              gate: Optional[Gate], progress: bool) -> None:
    """Download ``source`` to a staging name beside ``path``, check it, then rename it into
    place; anything that fails leaves no file behind (torch.hub removes its own ``.partial``)."""
    staging = f'{path}.{uuid.uuid4().hex[:8]}.download'
    failed = f'cannot download {label} from {_shown(source)}'
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(source, staging, progress=progress)
        digest = _sha256(staging)
        problem = _mismatch(digest, *expected) or _incomplete(staging, osp.basename(path))
        if problem:
            raise DownloadError(f'{failed}: {problem} ({osp.getsize(staging)} bytes received); '
                                'nothing was cached; try again, or '
                                f'{_fix_hint(path, gate)}', url=source, path=path)
        os.replace(staging, path)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        refused = getattr(exc, 'code', None) in (401, 403, 404)
        raise DownloadError(f'{failed}: {_transfer_reason(exc)}; '
                            f'{_fix_hint(path, gate, refused)}', url=source, path=path) from exc
    finally:
        if osp.exists(staging):
            os.remove(staging)
    _write_record(path, digest)


def fetch(url: str, *, file_name: Optional[str] = None, sha256: Optional[str] = None,
          hash_prefix: Optional[str] = None, license: Optional[str] = None,
          name: Optional[str] = None, gate: Optional[Gate] = None,
          progress: bool = True) -> str:
    """The local path of the file at ``url``, downloaded into the cache on first use.

    Args:
        url: Official URL (``https://dl.fbaipublicfiles.com/...``); the mirror variables
            rewrite it (:func:`resolve_url`), so the zoo keeps one URL per file.
        file_name: Name in the cache; default the URL's last path component.
        sha256: Full expected sha256, checked on download and against the record on each use.
        hash_prefix: Expected sha256 prefix; default the one in the URL's file name
            (``<name>-<hex>.pth``, torch.hub's convention), if any.
        license: Printed (one line, stderr) when the file is downloaded, not on later uses.
        name: What messages call the file (a zoo name); default ``file_name``.
        gate: Access rules for gated files; default found from the URL (DINOv3).
        progress: torch.hub's progress bar on stderr while downloading.

    Raises:
        DownloadError: one line naming the file, the URL tried, why, the cache path to save
            the file to by hand, and the variable that points at a mirror.
    """
    file_name = file_name or _url_file_name(url)
    label, path = name or file_name, cache_path(file_name)
    gate = gate or _find_gate(url)
    if hash_prefix is None:
        hash_prefix = name_hash_prefix(_url_file_name(url))
    if osp.isfile(path):
        verify(path, sha256=sha256, hash_prefix=hash_prefix)
        return path
    source = resolve_url(url, gate)
    if _offline() and urlsplit(source).scheme != 'file':
        raise DownloadError(f'cannot get {label}: it is not in the cache and {OFFLINE_ENV}='
                            f'{os.environ[OFFLINE_ENV]} forbids downloading {_shown(source)}; '
                            f'{_fix_hint(path, gate)}', url=source, path=path)
    if license:
        print(f'{label}: license: {license}', file=sys.stderr)
    if progress:
        print(f'Downloading {_shown(source)} to {path}', file=sys.stderr)
    _download(source, path, label, (sha256, hash_prefix), gate, progress)
    return path


def fetch_hf(repo_id: str, filename: str, *, revision: Optional[str] = None,
             license: Optional[str] = None) -> str:
    """The local path of ``filename`` from the Hugging Face repository ``repo_id``.

    Goes through ``huggingface_hub.hf_hub_download``, so the files share Hugging Face's own
    cache (``HF_HOME``) with transformers, and ``HF_ENDPOINT`` (mirror), ``HF_HUB_OFFLINE`` and
    ``HF_TOKEN`` apply; ``DENSEDINO_OFFLINE`` also keeps it to the cache. huggingface_hub is
    imported here, not at module import: it is optional.
    """
    where = f'{filename} from the Hugging Face repository {repo_id}'
    try:
        import huggingface_hub
        from huggingface_hub import utils as hf_utils
    except ImportError:
        raise DownloadError(f'cannot download {where}: the huggingface_hub package is not '
                            'installed; pip install huggingface_hub') from None
    offline = _offline()
    if license and not offline and not isinstance(huggingface_hub.try_to_load_from_cache(
            repo_id, filename, revision=revision), str):
        print(f'{repo_id}/{filename}: license: {license}', file=sys.stderr)
    try:
        return huggingface_hub.hf_hub_download(repo_id, filename, revision=revision,
                                               local_files_only=offline)
    except hf_utils.GatedRepoError as exc:
        cause, reason = exc, (f'the repository is gated: accept its terms at '
                              f'https://huggingface.co/{repo_id} and log in (hf auth login, or '
                              'set HF_TOKEN)')
    except hf_utils.RepositoryNotFoundError as exc:
        cause, reason = exc, 'no such repository (or it is private and you are not logged in)'
    except hf_utils.RevisionNotFoundError as exc:
        cause, reason = exc, f'the repository has no revision {revision}'
    except hf_utils.LocalEntryNotFoundError as exc:
        cache = huggingface_hub.constants.HF_HUB_CACHE
        cause, reason = exc, (f'not in the Hugging Face cache ({cache}), and the hub was '
                              f'unreachable or offline mode is on (HF_HUB_OFFLINE, '
                              f'{OFFLINE_ENV}); set HF_ENDPOINT to use a mirror')
    except hf_utils.EntryNotFoundError as exc:
        cause, reason = exc, 'the repository has no such file'
    except (OSError, ValueError) as exc:
        text = str(exc).strip()
        cause, reason = exc, text.splitlines()[0] if text else type(exc).__name__
    raise DownloadError(f'cannot download {where}: {reason}', url=repo_id) from cause
