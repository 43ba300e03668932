"""Checkpoints that survive a crash at any moment, and never hold non-finite weights.

mmengine's ``CheckpointHook`` deletes the oldest kept checkpoint *before* writing the new one and
writes the new file in place: a process killed during the write (``kill -9``, an out-of-memory
kill, a preempted node) leaves a half-written newest file, and with ``max_keep_ckpts=1`` nothing
else. ``last_checkpoint`` then names a deleted file and ``--resume`` fails.
:class:`SafeCheckpointHook` takes the same arguments and keeps this order instead:

1. check that every floating-point tensor to be saved (weights, buffers, optimiser state) is
   finite, and refuse to save otherwise (the run stops; the last good checkpoint stays);
2. write the checkpoint under a temporary name in the same folder, fsync it, ``os.replace`` it
   into place;
3. update ``last_checkpoint`` the same way, with the path relative to the work dir (a copied or
   moved work dir resumes from its own files; under mmengine's plain ``Runner``, which reads
   the pointer as a path, an absolute one);
4. only then delete the checkpoints beyond ``max_keep_ckpts``, never the one just written.

A Ctrl-C during these steps is held until they are done (a second one stops at once).

``max_keep_ckpts`` of 1 is raised to 2 (with a log line): the previous checkpoint is kept until
the next one is complete, so at any moment one whole checkpoint exists.
"""
from __future__ import annotations

import contextlib
import glob
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub
from torch import Tensor

from ..registry import HOOKS
from .files import LAST_CHECKPOINT, atomic_path, deferred_interrupt, write_text_atomic
from .nonfinite import NonFiniteError, last_good_checkpoint, nonfinite_tensors
from .runner import DensedinoRunner

MIN_KEEP = 2


def _named_tensors(obj, prefix: str = '') -> Iterator[Tuple[str, Tensor]]:
    """Every tensor inside nested dicts / lists, with a dotted name."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _named_tensors(v, f'{prefix}{k}.')
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _named_tensors(v, f'{prefix}{i}.')
    elif hasattr(obj, 'dtype') and hasattr(obj, 'is_floating_point'):
        yield prefix[:-1], obj


def check_finite_checkpoint(checkpoint: dict, name: str,
                            hub: Optional[MessageHub] = None) -> None:
    """Raise :class:`NonFiniteError` if the model or optimiser state in ``checkpoint`` holds
    ``nan``/``inf`` (one line: how many tensors, the first names, the last good checkpoint)."""
    bad: List[str] = []
    total = 0
    for part in ('state_dict', 'optimizer'):
        found, checked = nonfinite_tensors(_named_tensors(checkpoint.get(part) or {}, f'{part}.'))
        bad += found
        total += checked
    if bad:
        more = f' (+{len(bad) - 3} more)' if len(bad) > 3 else ''
        raise NonFiniteError(f'refusing to save {name}: {len(bad)} of {total} tensors are not '
                             f'finite ({", ".join(bad[:3])}{more}); {last_good_checkpoint(hub)}')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) made crash-safe; see the module docstring.

    Saving "best" checkpoints (``save_best``) goes through the same atomic write; mmengine
    deletes the previous best file first, which costs no training (the periodic checkpoints
    stay).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._saving = None
        self._raised_keep = 0 < self.max_keep_ckpts < MIN_KEEP
        if self._raised_keep:
            self.max_keep_ckpts = MIN_KEEP

    def before_train(self, runner) -> None:
        if self._raised_keep:
            runner.logger.info(f'checkpoint: max_keep_ckpts raised to {MIN_KEEP} so that the '
                               'previous checkpoint stays until the next one is complete')
        super().before_train(runner)
        self.keep_ckpt_ids = list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 else []
        if is_main_process() and _is_local(self.out_dir) and osp.isdir(self.out_dir):
            for stale in glob.glob(osp.join(self.out_dir, '.*.part')):
                runner.logger.info(f'checkpoint: removing {stale}, the unfinished write of a '
                                   'run that was killed')
                with contextlib.suppress(OSError):
                    os.remove(stale)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        name = osp.basename(self._saving) if getattr(self, '_saving', None) else 'the checkpoint'
        check_finite_checkpoint(checkpoint, name, runner.message_hub)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        filename = self.filename_tmpl.format(step)
        with deferred_interrupt(f'writing {filename}'):
            self._save_and_rotate(runner, step, meta, filename)

    def _save_and_rotate(self, runner, step, meta, filename: str) -> None:
        path = self.file_backend.join_path(self.out_dir, filename)
        keep = list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 else []
        if self.max_keep_ckpts > 0 and (not keep or keep[-1] != step):
            keep.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', keep)
        self._save_file(runner, filename, meta)
        self.last_ckpt = path
        runner.message_hub.update_info('last_ckpt', path)
        if not is_main_process():
            return
        pointer = osp.join(runner.work_dir, LAST_CHECKPOINT)
        # relative: a moved or copied work dir resumes from its own files; mmengine's own
        # Runner reads the pointer as a path, so it gets an absolute one
        relative = _is_local(path) and isinstance(runner, DensedinoRunner)
        target = osp.relpath(path, runner.work_dir) if relative else path
        write_text_atomic(pointer, target)
        while self.max_keep_ckpts > 0 and len(keep) > self.max_keep_ckpts:
            old = keep.pop(0)
            if old != step:
                self._remove(self.file_backend.join_path(self.out_dir,
                                                         self.filename_tmpl.format(old)))
        self.keep_ckpt_ids = keep

    def _save_file(self, runner, filename: str, meta: dict) -> None:
        """Write through ``runner.save_checkpoint``: densedino's runner writes atomically itself;
        under another runner the main process writes a temporary file that is then moved."""
        final = self.file_backend.join_path(self.out_dir, filename)
        kwargs = dict(save_optimizer=self.save_optimizer,
                      save_param_scheduler=self.save_param_scheduler, meta=meta,
                      by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        self._saving = final
        try:
            if _is_local(final) and is_main_process() and not isinstance(runner, DensedinoRunner):
                with atomic_path(final) as tmp:
                    runner.save_checkpoint(self.out_dir, osp.basename(tmp),
                                           self.file_client_args, **kwargs)
            else:
                runner.save_checkpoint(self.out_dir, filename, self.file_client_args, **kwargs)
        finally:
            self._saving = None

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by DeepSpeed are folders
            self.file_backend.rmtree(path)


def _is_local(path: str) -> bool:
    return '://' not in path
