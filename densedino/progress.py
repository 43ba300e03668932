"""Progress reporting for long loops: a tqdm bar when tqdm is installed, else log lines."""
from __future__ import annotations

import logging
from typing import Iterable, Iterator

logger = logging.getLogger(__name__)


def progress_iter(items: Iterable, total: int, enabled: bool, desc: str) -> Iterator:
    """Iterate with a tqdm bar if asked and available, else with a log line every 10%."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        step = max(1, total // 10)
        for i, item in enumerate(items):
            if i % step == 0:
                logger.info('%s: %d/%d', desc, i, total)
            yield item
        logger.info('%s: %d/%d', desc, total, total)
        return
    yield from tqdm(items, total=total, desc=desc)


__all__ = ['progress_iter']
