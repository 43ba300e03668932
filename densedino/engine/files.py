"""Crash-safe file writes and the work dir's ``last_checkpoint`` pointer.

A file is written under a temporary name in its own folder, flushed and fsynced, then moved into
place with ``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced so that the
rename itself survives a power cut. A reader therefore sees the old file or the new one, never a
half-written one, whatever moment the writing process is killed at.
"""
from __future__ import annotations

import contextlib
import logging
import os
import os.path as osp
import signal
import threading
from typing import Callable, Iterator, Optional

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = 'last_checkpoint'


def temporary_name(path: str) -> str:
    """The name ``path`` is written under before it is moved into place (same folder, hidden)."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}.part')


def fsync_file(path: str) -> None:
    """Flush ``path``'s data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str) -> None:
    """Make renames and deletions in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit(tmp: str, path: str) -> None:
    """fsync ``tmp`` and move it onto ``path`` atomically."""
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(osp.dirname(path))


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    tmp = temporary_name(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_text_atomic(path: str, text: str) -> None:
    """Replace ``path``'s content with ``text`` atomically."""
    def _write(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write(text)
    write_atomic(path, _write)


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint that ``work_dir/last_checkpoint`` points at, if that file exists.

    densedino writes the pointer relative to the work dir, so a moved or copied work dir resumes
    from its own files. An absolute pointer (mmengine's format) is read as its file name in
    ``work_dir`` when that exists (a copied work dir must not resume from the original's files),
    else as written.
    Returns ``None`` when there is no pointer or the file it names is in neither place.
    """
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if not target:
        return None
    if not osp.isabs(target):
        path = osp.join(work_dir, target)
        return path if osp.exists(path) else None
    local = osp.join(work_dir, osp.basename(target))
    if osp.exists(local):
        return local
    return target if osp.exists(target) else None


@contextlib.contextmanager
def deferred_interrupt(what: str) -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives during the block until the block has finished.

    Used around a checkpoint save, so that a Ctrl-C leaves a finished checkpoint rather than a
    stopped write. A second Ctrl-C stops at once (the writes are atomic either way). Outside the
    main thread, where signal handlers cannot be set, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def hold(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        logger.warning('Ctrl-C: finishing %s first (Ctrl-C again to stop at once)', what)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt
