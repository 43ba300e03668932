"""Check that this machine can run densedino: versions, device, and the import/checkpoint/backbone paths.

Usage: ``python tools/doctor.py``. Prints one line per version and device, then ``OK``/``FAIL`` per check
(each FAIL followed by a one-line fix), then advice for this machine (which precision, whether to pass
``--amp`` to tools/train.py, how many threads), and exits non-zero if any check failed.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

if importlib.util.find_spec('densedino') is None:  # running from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

Check = Tuple[str, Callable[[], str], str]


def _dist_version(*names: str) -> Optional[str]:
    """Version of the first installed distribution among ``names``, as ``name version``."""
    for name in names:
        try:
            return f'{importlib.metadata.version(name)} ({name})' if len(names) > 1 else \
                importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _opencv_version() -> Optional[str]:
    """cv2's own version (opencv ships under several distribution names)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.__version__


def version_lines(status: Optional[dict]) -> List[str]:
    """``name version`` lines for python and the packages densedino depends on."""
    mmcv = _dist_version('mmcv', 'mmcv-lite', 'mmcv-full')
    if mmcv is not None and status is not None:
        mmcv += ', compiled ops: ' + ('yes' if status['mmcv_has_ops'] else
                                      'no (densedino.compat provides ' + ', '.join(status['pure_ops']) + ')')
    rows = [('python', platform.python_version()), ('torch', torch.__version__),
            ('mmengine', _dist_version('mmengine')), ('mmseg', _dist_version('mmsegmentation')),
            ('mmcv', mmcv), ('numpy', _dist_version('numpy')), ('opencv', _opencv_version()),
            ('transformers', _dist_version('transformers'))]
    return [f'{name:<13}{version or "not installed"}' for name, version in rows]


def _cpu_description() -> str:
    """CPU name, ISA level and whether bf16 matmuls are likely fast (AMX / AVX512-BF16)."""
    isa = torch.backends.cpu.get_cpu_capability()
    get_caps = getattr(torch.cpu, 'get_capabilities', None)
    if get_caps is None:
        return f'CPU, ISA {isa}, bf16 AMX: unknown'
    caps = get_caps()
    amx, avx512_bf16 = bool(caps.get('amx_bf16')), bool(caps.get('avx512_bf16'))
    verdict = 'likely fast (AMX)' if amx else 'AVX512-BF16 only' if avx512_bf16 else \
        'no AMX/AVX512-BF16: bf16 will be slow, prefer float32'
    name = caps.get('cpu_name') or platform.processor() or 'CPU'
    return f'CPU {name}, {caps.get("num_logical_cores", "?")} cores, ISA {isa}, bf16: {verdict}'


def device_lines() -> List[str]:
    """One line per CUDA device, or one line describing the CPU."""
    if torch.cuda.is_available():
        return [f'device       cuda:{i} {torch.cuda.get_device_name(i)}, bf16: '
                f'{"yes" if torch.cuda.is_bf16_supported() else "no"}'
                for i in range(torch.cuda.device_count())]
    return [f'device       {_cpu_description()}']


def check_mmseg_imports() -> str:
    """Import the mmseg modules that need ``mmcv.ops`` (fixed by densedino.compat on mmcv-lite)."""
    names = ['mmseg.datasets', 'mmseg.models', 'mmseg.apis', 'mmseg.visualization', 'mmseg.evaluation']
    for name in names:
        importlib.import_module(name)
    return ', '.join(names)


def check_checkpoint_allow_list() -> str:
    """Save an mmengine message hub (HistoryBuffers, numpy scalars) and load it with torch's default."""
    import numpy as np
    from mmengine.logging import MessageHub
    hub = MessageHub('densedino_doctor')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_scalar('train/lr', 0.01)
    hub.update_info('best_score', np.float32(42.0))
    hub.update_info('dataset_meta', dict(classes=('a', 'b')))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'ckpt.pth'
        torch.save(dict(message_hub=hub.state_dict(), state_dict={'w': torch.zeros(2)}), path)
        loaded = torch.load(path)  # weights_only=True by default from torch 2.6
    if loaded['message_hub']['log_scalars']['train/loss'].current() != 0.5:
        raise RuntimeError('message hub changed in a save/load round trip')
    return 'mmengine message hub loads with weights_only=True'


def check_backbone() -> str:
    """Build a 1-block DinoBackbone through densedino's registry and run it on a (1, 3, 28, 42) image."""
    from densedino.registry import MODELS
    model = MODELS.build(dict(type='DinoBackbone', arch='dinov2_vits14',
                              arch_overrides=dict(depth=1, embed_dim=32, num_heads=2)))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 28, 42))
    return f'DinoBackbone(dinov2_vits14, depth 1, dim 32) on (1, 3, 28, 42) -> {_describe(out)}'


def _describe(obj: Any) -> str:
    """Shapes of a (nested) tensor output, e.g. ``[(map (1, 32, 2, 3), cls_token (1, 32))]``."""
    if isinstance(obj, torch.Tensor):
        return str(tuple(obj.shape))
    if isinstance(obj, tuple) and hasattr(obj, '_fields'):
        return '(' + ', '.join(f'{k} {_describe(v)}' for k, v in zip(obj._fields, obj)) + ')'
    if isinstance(obj, (list, tuple)):
        return '[' + ', '.join(_describe(v) for v in obj) + ']'
    if isinstance(obj, dict):
        return '{' + ', '.join(f'{k}: {_describe(v)}' for k, v in obj.items()) + '}'
    return type(obj).__name__


CHECKS: List[Check] = [
    ('import mmseg', check_mmseg_imports,
     'import densedino before mmseg, with mmcv-lite 2.1 or a compiled mmcv < 2.2: pip install -e ".[lite]"'),
    ('checkpoint allow-list', check_checkpoint_allow_list,
     'import densedino before torch.load (it registers the allow-list); needs mmengine 0.10'),
    ('backbone', check_backbone,
     'densedino.models must import and register DinoBackbone: reinstall with pip install -e ".[lite]"'),
]


def run_check(name: str, func: Callable[[], str], fix: str) -> bool:
    """Run one check and print ``OK name: detail`` or ``FAIL name: error`` plus its fix."""
    try:
        detail = func()
    except Exception as exc:  # noqa: BLE001  (a doctor reports every failure)
        error = ''.join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
        print(f'FAIL {name}: {error}')
        print(f'     fix: {fix}')
        return False
    print(f'OK   {name}: {detail}')
    return True


def import_densedino() -> Tuple[Optional[dict], Optional[str]]:
    """Import densedino (which applies densedino.compat); return compat's status and any import error."""
    error = None
    try:
        importlib.import_module('densedino')
    except Exception as exc:  # noqa: BLE001
        error = f'{type(exc).__name__}: {exc}'
    compat = sys.modules.get('densedino.compat')  # stays imported even when a later import fails
    return (compat.status() if compat is not None else None), error


def machine_facts() -> Dict[str, Any]:
    """What the advice depends on: the GPU and its bf16 support, the CPU's bf16 units (and
    whether densedino computes bf16 natively on it), torch's threads and the usable cores."""
    caps = getattr(torch.cpu, 'get_capabilities', dict)()
    cuda = torch.cuda.is_available()
    try:
        from densedino.models.backbones import bf16_matmul_mode
        native = bf16_matmul_mode('cuda' if cuda else 'cpu') == 'native'
    except Exception:  # noqa: BLE001  (densedino does not import: reported above)
        native = bool(caps.get('amx_bf16') or caps.get('avx512_bf16'))
    return dict(cuda=cuda, gpu=torch.cuda.get_device_name(0) if cuda else None,
                bf16_native=native, amx=bool(caps.get('amx_bf16')),
                threads=torch.get_num_threads(), cores=usable_cores())


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota
    (containers), else ``os.cpu_count()``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    try:
        quota, period = Path('/sys/fs/cgroup/cpu.max').read_text().split()[:2]
        if quota != 'max':
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def advice_lines(facts: Dict[str, Any]) -> List[str]:
    """What to do on this machine: precision and ``--amp``, then threads (``facts`` as
    :func:`machine_facts` gives them)."""
    if facts['cuda']:
        precision = ('mixed precision: pass --amp to tools/train.py (fp16 with loss scaling); '
                     f'{facts["gpu"]} also computes bf16, which needs no loss scaling: add '
                     '--cfg-options optim_wrapper.type=AmpOptimWrapper optim_wrapper.dtype=bfloat16'
                     if facts['bf16_native'] else
                     'fp16 mixed precision: pass --amp to tools/train.py (bf16 is emulated on this GPU)')
    elif facts['bf16_native']:
        units = 'AMX' if facts['amx'] else 'AVX512-BF16 (no AMX: a smaller gain; compare iteration times)'
        precision = (f'bf16: this CPU has {units} bf16 units; pass --amp to tools/train.py (bf16 '
                     'autocast; weights and optimizer state stay fp32)')
    else:
        precision = ('fp32: this CPU has no bf16 units (AMX / AVX512-BF16), so bf16 would be '
                     'emulated and slower; do not pass --amp')
    threads, cores = facts['threads'], facts['cores']
    if threads == cores:
        thread_line = f'torch uses {threads} threads, one per usable core: nothing to set'
    elif threads > cores:
        thread_line = (f'torch uses {threads} threads on {cores} usable cores (affinity / quota): '
                       f'export OMP_NUM_THREADS={cores}, more threads than cores slow every step')
    else:
        thread_line = (f'torch uses {threads} of {cores} usable cores: export OMP_NUM_THREADS={cores} '
                       'unless other jobs share this machine')
    return ['advice for this machine:', f'  precision  {precision}', f'  threads    {thread_line}']


def main() -> int:
    """Print the report; return 1 if any check failed."""
    status, import_error = import_densedino()
    print('densedino doctor')
    for line in version_lines(status) + device_lines():
        print(line)
    ok = import_error is None
    if not ok:
        print(f'FAIL import densedino: {import_error}')
        print('     fix: pip install torch==2.13.0 -e ".[lite,tests]" from the repository root')
    results = [run_check(name, func, fix) for name, func, fix in CHECKS]
    for line in advice_lines(machine_facts()):
        print(line)
    return 0 if ok and all(results) else 1


if __name__ == '__main__':
    sys.exit(main())
