"""Progress of long loops (dataset checks, scene writing, feature extraction): a rich bar on a
terminal, plain lines in a log; and :func:`logger_level`, to quiet a logger for a while.

rich (installed with mmengine) draws the bar. Its live display redraws in place, so where
stderr is a file or a pipe (CI logs, ``nohup``, ``2> log``) it would show nothing until the end:
there the loop prints one line per tenth of the work instead, with the rate and time left.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import IO, Iterable, Iterator, Optional


def progress_iter(items: Iterable, total: int, enabled: bool, desc: str,
                  stream: Optional[IO[str]] = None) -> Iterator:
    """Yield ``items`` (``total`` of them) while showing progress on ``stream`` (stderr).

    Args:
        items: What to iterate.
        total: How many items there are (for the percentage and the time left).
        enabled: ``False`` yields the items silently.
        desc: What is being done, e.g. ``'NYU train'``.
        stream: Where progress goes (default ``sys.stderr``).
    """
    stream = sys.stderr if stream is None else stream
    if not enabled:
        yield from items
    elif stream.isatty():
        from rich.console import Console
        from rich.progress import track
        yield from track(items, total=total, description=desc, console=Console(file=stream))
    else:
        yield from _progress_lines(items, total, desc, stream)


def _progress_lines(items: Iterable, total: int, desc: str, stream: IO[str]) -> Iterator:
    """``desc: 30/100 (30%), 12.5/s, 6s left`` at every tenth of ``total``, and at the end."""
    step, done, start = max(1, total // 10), 0, time.perf_counter()
    for done, item in enumerate(items, 1):
        yield item
        if done % step == 0 or done == total:
            elapsed = time.perf_counter() - start
            rate = done / elapsed if elapsed > 0 else float('inf')
            left = f', {(total - done) / rate:.0f}s left' if done < total and rate > 0 else ''
            print(f'{desc}: {done}/{total} ({100 * done / max(total, 1):.0f}%), {rate:.1f}/s{left}',
                  file=stream, flush=True)


@contextlib.contextmanager
def logger_level(logger: logging.Logger, level: int) -> Iterator[None]:
    """Raise ``logger``'s level to ``level`` inside the block (messages below it are dropped),
    then restore it: for libraries whose advice or tables would drown what the user reads."""
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


__all__ = ['logger_level', 'progress_iter']
