"""Compatibility fixes for the OpenMMLab stack on modern PyTorch, applied once on ``import densedino``.

Two gaps are filled, each only where it exists:

1. **mmcv-lite has no compiled ops.** mmsegmentation 1.2.2 imports ``mmcv.ops`` at import time
   (``mmseg.utils`` -> ``mask_classification.py``, ``models/utils/point_sample.py``,
   ``models/losses/focal_loss.py``, ``decode_heads/san_head.py``), so ``import mmseg.models`` fails
   with ``No module named 'mmcv._ext'``. When ``mmcv._ext`` is absent, a meta-path finder serves
   ``mmcv.ops`` as a small replacement module: ``point_sample`` and ``sigmoid_focal_loss`` are pure
   PyTorch with mmcv 2.1's semantics; every other public name of mmcv's ``ops/__init__.py`` imports
   fine (so mmseg's guarded imports and ``isinstance`` checks keep working) and raises
   :class:`MmcvOpsUnavailableError` naming the op when called or instantiated. Submodules raise
   ``ModuleNotFoundError`` as before, except ``mmcv.ops.multi_scale_deform_attn`` (placeholders too,
   which keeps mmcv from warning on every import). With a compiled mmcv the finder steps aside and
   the real ``mmcv.ops`` loads.
2. **torch >= 2.6 loads checkpoints with** ``weights_only=True``. mmengine 0.10.7 checkpoints hold a
   message hub (``HistoryBuffer`` with numpy arrays and scalars), which that loader refuses on
   resume, ``load_from`` and ``tools/test.py``. An explicit, minimal allow-list is registered with
   ``torch.serialization.add_safe_globals`` (see :func:`checkpoint_globals`); pickled code outside it
   still refuses to load.

Both steps are idempotent and log at DEBUG level through ``logging.getLogger(__name__)``.
"""
from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import pickle
import sys
import types
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

_OPS_MODULE = 'mmcv.ops'
_REPLACEMENT_MARK = '__densedino_replacement__'
# Submodules served too: mmcv.cnn.bricks.transformer imports this one and warns on every import when it
# fails; served, its names are the same placeholders (mmcv then only emits a hidden ImportWarning).
_SUBMODULES = frozenset({f'{_OPS_MODULE}.multi_scale_deform_attn'})
_INSTALL_HINT = ('install mmcv built with ops instead of mmcv-lite (see README, Install): '
                 '`pip uninstall -y mmcv-lite && pip install --no-build-isolation mmcv==2.1.0`')
# C's FLT_MIN: mmcv's focal-loss kernel clamps p and 1 - p to it before taking the log.
_FLT_MIN = torch.finfo(torch.float32).tiny
_FOCAL_REDUCTIONS = ('none', 'mean', 'sum')


class MmcvOpsUnavailableError(RuntimeError):
    """Raised when an mmcv op that needs compiled kernels is used with mmcv-lite."""


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------
def mmcv_installed() -> bool:
    """Whether any mmcv distribution (full or lite) is importable."""
    return importlib.util.find_spec('mmcv') is not None


def mmcv_has_ops() -> bool:
    """Whether mmcv's compiled extension ``mmcv._ext`` is installed (imports ``mmcv`` itself)."""
    if not mmcv_installed():
        return False
    return importlib.util.find_spec('mmcv._ext') is not None


def ops_replacement_active() -> bool:
    """Whether ``mmcv.ops`` has been imported and is densedino's pure-PyTorch replacement."""
    return getattr(sys.modules.get(_OPS_MODULE), _REPLACEMENT_MARK, False)


# --------------------------------------------------------------------------------------------
# Pure-PyTorch ops
# --------------------------------------------------------------------------------------------
def point_sample(input: torch.Tensor, points: torch.Tensor, align_corners: bool = False,
                 **kwargs: Any) -> torch.Tensor:
    """Sample ``input`` at points given in ``[0, 1] x [0, 1]`` image coordinates (mmcv semantics).

    Args:
        input: Feature map, shape (N, C, H, W).
        points: (x, y) coordinates in [0, 1], shape (N, P, 2) or (N, Hg, Wg, 2).
        align_corners: Passed to :func:`torch.nn.functional.grid_sample`.
        **kwargs: Further ``grid_sample`` options (``mode``, ``padding_mode``).

    Returns:
        Sampled features, shape (N, C, P) or (N, C, Hg, Wg).
    """
    flat = points.dim() == 3
    grid = points.unsqueeze(2) if flat else points
    out = F.grid_sample(input, grid * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if flat else out


def _check_focal_args(input: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor],
                      reduction: str) -> None:
    """Validate :func:`sigmoid_focal_loss` arguments as mmcv's op asserts them."""
    if input.dim() != 2 or target.dim() != 1 or input.size(0) != target.size(0):
        raise ValueError(f'sigmoid_focal_loss expects input (N, C) and target (N,), got '
                         f'{tuple(input.shape)} and {tuple(target.shape)}')
    if target.dtype != torch.long:
        raise ValueError(f'sigmoid_focal_loss expects an int64 target, got {target.dtype}')
    if reduction not in _FOCAL_REDUCTIONS:
        raise ValueError(f'reduction must be one of {_FOCAL_REDUCTIONS}, got {reduction!r}')
    if weight is not None and (weight.dim() != 1 or weight.numel() != input.size(1)):
        raise ValueError(f'weight must have shape ({input.size(1)},), got {tuple(weight.shape)}')
    if weight is not None and bool(((target < 0) | (target >= input.size(1))).any()):
        raise ValueError('sigmoid_focal_loss with a class weight needs targets in '
                         f'[0, {input.size(1)}), got values in [{int(target.min())}, {int(target.max())}]')


def sigmoid_focal_loss(input: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                       alpha: float = 0.25, weight: Optional[torch.Tensor] = None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Sigmoid focal loss (Lin et al., 2017, https://arxiv.org/abs/1708.02002), as mmcv's op computes it.

    For class ``c`` of sample ``n`` with ``p = sigmoid(input[n, c])``, the loss is
    ``-alpha (1 - p)^gamma log p`` when ``target[n] == c`` and ``-(1 - alpha) p^gamma log(1 - p)``
    otherwise (a target outside ``[0, C)`` is background: negative for every class), both logs taken
    of values clamped to ``FLT_MIN``; each row is multiplied by ``weight[target[n]]`` if given.
    Positional arguments match mmcv's ``Function.apply`` signature.

    Args:
        input: Logits, shape (N, C).
        target: Class indices, shape (N,), int64.
        gamma: Focusing parameter.
        alpha: Weight of the positive term.
        weight: Optional per-class weight, shape (C,), indexed by each row's target.
        reduction: ``'none'`` (shape (N, C)), ``'sum'``, or ``'mean'`` (sum divided by N, as mmcv).

    Returns:
        The loss, shape (N, C) or a scalar.
    """
    _check_focal_args(input, target, weight, reduction)
    classes = torch.arange(input.size(1), device=input.device)
    positive = (target[:, None] == classes).to(input.dtype)
    p = input.sigmoid()
    term_p = (1 - p).pow(gamma) * p.clamp(min=_FLT_MIN).log()
    term_n = p.pow(gamma) * (1 - p).clamp(min=_FLT_MIN).log()
    loss = -positive * alpha * term_p - (1 - positive) * (1 - alpha) * term_n
    if weight is not None:
        loss = loss * weight.to(loss.dtype)[target][:, None]
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    return loss.sum() if reduction == 'sum' else loss


def _not_compiled_version() -> str:
    """Stand-in for ``get_compiler_version`` / ``get_compiling_cuda_version`` (used by env reports)."""
    return 'n/a (mmcv-lite: no compiled ops)'


# mmcv.ops names served with a pure-PyTorch implementation.
PURE_OPS: dict[str, Callable[..., Any]] = {
    'point_sample': point_sample,
    'sigmoid_focal_loss': sigmoid_focal_loss,
}
# Build-info helpers that mmcv's own env report calls; they answer instead of raising.
_BUILD_INFO = {
    'get_compiler_version': _not_compiled_version,
    'get_compiling_cuda_version': _not_compiled_version,
}


# --------------------------------------------------------------------------------------------
# The replacement mmcv.ops module
# --------------------------------------------------------------------------------------------
def _missing_op(name: str) -> type:
    """A class standing for a compiled op: importable, ``isinstance``-able, fails when used."""

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        raise MmcvOpsUnavailableError(f'mmcv.ops.{name} needs compiled mmcv ops; {_INSTALL_HINT}')

    doc = f'Placeholder for mmcv.ops.{name}, which needs mmcv built with ops.'
    return type(name, (), {'__new__': __new__, '__module__': _OPS_MODULE, '__doc__': doc})


def _public_op_names() -> Optional[frozenset[str]]:
    """Names in ``__all__`` of the installed ``mmcv/ops/__init__.py``, or None if unreadable."""
    spec = importlib.util.find_spec('mmcv')
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / 'ops' / '__init__.py'
        if path.is_file():
            tree = ast.parse(path.read_text(encoding='utf-8'))
            return frozenset(_all_strings(tree)) | frozenset(PURE_OPS) | frozenset(_BUILD_INFO)
    return None


def _all_strings(tree: ast.Module) -> list[str]:
    """String constants in ``__all__ = [...]``, ``__all__ += [...]`` and ``__all__.extend([...])``."""
    names = []
    for node in ast.walk(tree):
        if _updates_all(node):
            names += [c.value for c in ast.walk(node)
                      if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return names


def _updates_all(node: ast.AST) -> bool:
    """Whether ``node`` assigns, augments or extends the module's ``__all__``."""
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == '__all__' for t in node.targets)
    if isinstance(node, ast.AugAssign):
        return isinstance(node.target, ast.Name) and node.target.id == '__all__'
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == '__all__')


def _build_ops_module() -> types.ModuleType:
    """Create the replacement ``mmcv.ops``: pure ops bound now, other names resolved lazily."""
    module = types.ModuleType(_OPS_MODULE, 'Pure-PyTorch stand-in for mmcv.ops (densedino.compat).')
    known = _public_op_names()
    module.__dict__.update(PURE_OPS, **_BUILD_INFO)
    module.__dict__[_REPLACEMENT_MARK] = True
    module.__path__ = []  # a package, so that _SUBMODULES can be imported; nothing else is found
    module.__all__ = sorted(known if known is not None else {**PURE_OPS, **_BUILD_INFO})

    def __getattr__(name: str) -> type:
        if name.startswith('_') or (known is not None and name not in known):
            raise AttributeError(f"module '{_OPS_MODULE}' has no attribute '{name}'")
        stub = _missing_op(name)
        setattr(module, name, stub)  # cache, so identity (and isinstance) is stable
        return stub

    module.__getattr__ = __getattr__
    return module


def _build_submodule(name: str) -> types.ModuleType:
    """A replacement ``mmcv.ops.<name>`` whose public names resolve in the replacement ``mmcv.ops``."""
    module = types.ModuleType(name, 'Placeholder submodule of mmcv.ops (densedino.compat).')
    module.__dict__[_REPLACEMENT_MARK] = True

    def __getattr__(attr: str) -> Any:
        if attr.startswith('_'):
            raise AttributeError(f"module '{name}' has no attribute '{attr}'")
        return getattr(sys.modules[_OPS_MODULE], attr)

    module.__getattr__ = __getattr__
    return module


class _MmcvOpsFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the replacement ``mmcv.ops`` (and :data:`_SUBMODULES`) when ``mmcv._ext`` is missing."""

    densedino_mmcv_ops = True  # marker for idempotent installation

    def find_spec(self, fullname: str, path: Any, target: Any = None
                  ) -> Optional[importlib.machinery.ModuleSpec]:
        """Claim the module only when compiled ops are absent (the parents are imported by now)."""
        if fullname != _OPS_MODULE and fullname not in _SUBMODULES:
            return None
        if fullname in _SUBMODULES and not ops_replacement_active():
            return None
        if mmcv_has_ops():
            return None
        logger.debug('mmcv._ext not found: serving %s from densedino.compat', fullname)
        return importlib.machinery.ModuleSpec(fullname, self, origin=__name__)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        """Build the replacement module."""
        return _build_ops_module() if spec.name == _OPS_MODULE else _build_submodule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to execute: the module is complete when created."""


def install_mmcv_ops_finder() -> bool:
    """Put the ``mmcv.ops`` finder first on ``sys.meta_path`` unless already there.

    Returns:
        True if it was installed by this call.
    """
    if any(getattr(f, 'densedino_mmcv_ops', False) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, _MmcvOpsFinder())
    return True


# --------------------------------------------------------------------------------------------
# Checkpoint allow-list
# --------------------------------------------------------------------------------------------
# HistoryBuffer pickles its built-in statistics as ``getattr(HistoryBuffer, name)``.
_HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _checkpoint_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while unpickling: resolves only HistoryBuffer's statistics.

    A general ``getattr`` would let a file reach any attribute of anything it can build.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'densedino.compat allows getattr only for HistoryBuffer statistics, '
                                 f'not getattr({obj!r}, {name!r})')


def _numpy_multiarray() -> types.ModuleType:
    """numpy's ``multiarray`` module (``numpy._core`` since numpy 2, ``numpy.core`` before)."""
    import numpy
    try:
        return importlib.import_module('numpy._core.multiarray')
    except ImportError:  # numpy < 2
        return numpy.core.multiarray


# numpy dtypes whose instances may appear in logged values (loss, lr, metrics, timings).
_NUMPY_DTYPES = ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64',
                 'float16', 'float32', 'float64')


def checkpoint_globals() -> list[tuple[Any, str]]:
    """The allow-list: ``(object, name as written in the pickle)`` pairs.

    Found by saving checkpoints from 2-iteration mmengine Runners (with validation and a best
    checkpoint) and listing ``torch.serialization.get_unsafe_globals_in_checkpoint``, then
    loading them. numpy's ``multiarray`` functions are listed under both numpy 1 and numpy 2 paths,
    so checkpoints written with either load. The dtype classes (``numpy.dtypes.Float64DType``, ...)
    are not named in the pickle, but torch only restores state into instances of allow-listed types.
    """
    import numpy
    from mmengine.logging import HistoryBuffer
    multiarray = _numpy_multiarray()
    dtype_types = [(t, f'{t.__module__}.{t.__qualname__}')
                   for t in (type(numpy.dtype(name)) for name in _NUMPY_DTYPES)]
    return dtype_types + [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_checkpoint_getattr, 'builtins.getattr'),
        (numpy.ndarray, 'numpy.ndarray'),
        (numpy.dtype, 'numpy.dtype'),
        (multiarray._reconstruct, 'numpy._core.multiarray._reconstruct'),
        (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
        (multiarray.scalar, 'numpy._core.multiarray.scalar'),
        (multiarray.scalar, 'numpy.core.multiarray.scalar'),
    ]


def register_checkpoint_globals() -> bool:
    """Allow-list :func:`checkpoint_globals` for ``torch.load(weights_only=True)``.

    Needed from torch 2.6, whose ``torch.load`` defaults to ``weights_only=True``; earlier versions
    are left alone. Idempotent (torch keeps the allow-list as a set).

    Returns:
        True if the allow-list is registered.
    """
    if torch.torch_version.TorchVersion(torch.__version__) < (2, 6):
        return False
    if not importlib.util.find_spec('mmengine'):
        return False
    torch.serialization.add_safe_globals(checkpoint_globals())
    return True


def allowed_checkpoint_globals() -> list[str]:
    """Names of globals that ``torch.load(weights_only=True)`` currently accepts beyond torch's own."""
    from torch._weights_only_unpickler import _get_user_allowed_globals
    return sorted(_get_user_allowed_globals())


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def apply() -> None:
    """Apply both fixes (idempotent). Called on ``import densedino``."""
    if install_mmcv_ops_finder():
        logger.debug('installed the mmcv.ops finder')
    if register_checkpoint_globals():
        logger.debug('registered %d checkpoint globals', len(checkpoint_globals()))


def status() -> dict[str, Any]:
    """A summary for ``tools/doctor.py``.

    Returns:
        Dict with ``mmcv_installed``, ``mmcv_has_ops``, ``ops_finder_installed``,
        ``ops_replacement_active``, ``pure_ops`` and ``checkpoint_globals``.
    """
    return {
        'mmcv_installed': mmcv_installed(),
        'mmcv_has_ops': mmcv_has_ops(),
        'ops_finder_installed': any(getattr(f, 'densedino_mmcv_ops', False) for f in sys.meta_path),
        'ops_replacement_active': ops_replacement_active(),
        'pure_ops': sorted(PURE_OPS),
        'checkpoint_globals': sorted(name for _, name in checkpoint_globals()),
    }


apply()
