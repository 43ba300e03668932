"""Faults for the reliability tests: a process killed while it writes a checkpoint, a NaN
gradient, a NaN weight. Importable from a config (``custom_imports``) for subprocess runs."""
import os
import signal

import torch
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.hooks import Hook

from densedino.registry import HOOKS


class SimulatedCrash(Exception):
    """Raised where a real run would have died."""


def die_mid_write(fraction: float = 0.5, *, kill: bool = False):
    """A replacement for ``LocalBackend.put`` that writes the first ``fraction`` of the bytes,
    flushes them, then dies: ``SIGKILL`` to its own process (``kill``), else SimulatedCrash."""
    def put(self, obj: bytes, filepath) -> None:
        with open(filepath, 'wb') as f:
            f.write(obj[:int(len(obj) * fraction)])
            f.flush()
            os.fsync(f.fileno())
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise SimulatedCrash(f'died after writing {fraction:.0%} of {filepath}')
    return put


@HOOKS.register_module()
class KillDuringSaveHook(Hook):
    """``kill -9`` of the training process part-way through writing the checkpoint of
    iteration ``at`` (1-based, as the file is named)."""

    priority = 'VERY_LOW'

    def __init__(self, at: int, fraction: float = 0.5) -> None:
        self.at, self.fraction = at, fraction

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner.iter + 1 == self.at:
            LocalBackend.put = die_mid_write(self.fraction, kill=True)


@HOOKS.register_module()
class NaNGradientHook(Hook):
    """Makes the gradient of one parameter NaN at the given 0-based iterations."""

    def __init__(self, param: str, at=(1,)) -> None:
        self.param, self.at = param, tuple(at)
        self._handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if runner.iter in self.at:
            model = getattr(runner.model, 'module', runner.model)
            param = dict(model.named_parameters())[self.param]
            self._handle = param.register_hook(lambda g: torch.full_like(g, float('nan')))


@HOOKS.register_module()
class NaNBufferHook(Hook):
    """Writes a NaN into one buffer or parameter after the given 0-based iteration (damage that
    no gradient shows, which only the check before saving can catch)."""

    def __init__(self, name: str, at: int) -> None:
        self.name, self.at = name, at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter == self.at:
            model = getattr(runner.model, 'module', runner.model)
            tensor = model.state_dict(keep_vars=True)[self.name]
            with torch.no_grad():
                tensor.view(-1)[0] = float('nan')
