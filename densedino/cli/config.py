"""Reading a config from the command line: overrides, schedules that follow ``max_iters``, the
device, the work dir, and syntax errors that name their file."""
import argparse
import ast
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, DictAction

from .options import KEY_RULE, UnknownOptionError, check_options
from .paths import config_error
from .run import note

#: Written into a training work dir at start: which config and model its checkpoints belong to.
OWNER_FILE = 'densedino_run.json'


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: '
                        'work_dirs/<config path under configs/, without .py>, e.g. '
                        'work_dirs/seg/synthetic_linear; work_dirs/<config name> for a config '
                        'outside configs/)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        metavar='KEY=VALUE',
                        help='override config keys, e.g. model.backbone.checkpoint=PATH; '
                        f'unknown keys are refused: {KEY_RULE}')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')


def default_work_dir(config: str) -> str:
    """``configs/seg/synthetic_linear.py`` -> ``work_dirs/seg/synthetic_linear``: the config's
    path under the last ``configs`` folder of its path, else its bare name."""
    return osp.join('work_dirs', config_name(config) or
                    osp.splitext(osp.basename(config))[0])


def config_name(config: str) -> Optional[str]:
    """``seg/synthetic_linear`` for ``.../configs/seg/synthetic_linear.py``; ``None`` for a
    config outside a ``configs`` folder."""
    parts = osp.normpath(osp.abspath(config)).split(os.sep)
    if 'configs' not in parts[:-1]:
        return None
    start = len(parts) - 1 - parts[:-1][::-1].index('configs')
    return '/'.join(parts[start:-1] + [osp.splitext(parts[-1])[0]])


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply overrides and the work dir; one-line errors for a config that does
    not exist (with the nearest configs) and for override keys the config does not take."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    missing = config_error(args.config)
    if missing is not None:
        raise SystemExit(missing)
    import densedino  # noqa: F401  (compatibility fixes and registries)
    cfg = read_config(args.config)
    file_iters = (cfg.get('train_cfg') or {}).get('max_iters'), cfg.get('max_iters')
    try:
        check_options(cfg, args.cfg_options)
    except UnknownOptionError as e:
        raise SystemExit(f'error: {e}') from None
    cfg.merge_from_dict(args.cfg_options)
    follow_max_iters(cfg, *file_iters)
    cfg.launcher = args.launcher
    adapt_to_device(cfg)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    return cfg


def read_config(path: str) -> Config:
    """``Config.fromfile``; a syntax error in the file or one of its bases names file and line.

    mmengine re-parses the text without a file name, so its ``SyntaxError`` says ``<unknown>``.
    """
    try:
        return Config.fromfile(path)
    except SyntaxError as e:
        found = find_syntax_error(path) or e
        where = found.filename if found.filename not in (None, '<unknown>') else path
        text = (found.text or '').strip()
        shown = f': {text}' if text else ''
        raise SystemExit(f'error: config {where}, line {found.lineno}: {found.msg}{shown}') \
            from None


def find_syntax_error(path: str, seen: Optional[set] = None) -> Optional[SyntaxError]:
    """The first syntax error in the config ``path`` or in the ``_base_`` files it names."""
    seen = set() if seen is None else seen
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as e:
        return e
    for base in _base_files(tree):
        found = find_syntax_error(osp.join(osp.dirname(path), base), seen)
        if found is not None:
            return found
    return None


def _base_files(tree: ast.Module) -> List[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            bases = [value] if isinstance(value, str) else \
                list(value) if isinstance(value, (list, tuple)) else []
            return [b for b in bases if isinstance(b, str) and '::' not in b]
    return []


def follow_max_iters(cfg: Config, file_iters: Optional[int],
                     file_top_level: Optional[int]) -> List[str]:
    """Make the schedules follow an overridden ``train_cfg.max_iters`` (or top-level ``max_iters``).

    Configs compute ``param_scheduler`` ends from a ``max_iters`` variable when the file is read,
    so overriding the loop's length alone would leave them at the file's value. Every scheduler
    ``end`` / ``T_max`` / ``total_iters`` and ``train_cfg.val_interval`` that equalled the file's
    ``max_iters`` takes the new value, and a checkpoint interval longer than the new run is
    shortened to it. A scheduler that begins at or after the new end (it would never run) keeps
    its values, since mmengine refuses ``end <= begin``. Returns what changed (one line on stderr).
    """
    train_cfg = cfg.get('train_cfg') or {}
    new, top = train_cfg.get('max_iters'), cfg.get('max_iters')
    if top is not None and top != file_top_level and new == file_iters:
        new = train_cfg['max_iters'] = top  # only the variable was overridden
    if file_iters is None or new is None or new == file_iters:
        return []
    if top is not None:
        cfg.max_iters = new
    changed, kept = [], []
    schedulers = cfg.get('param_scheduler') or []
    for i, sched in enumerate([schedulers] if isinstance(schedulers, dict) else schedulers):
        for key in ('end', 'T_max', 'total_iters'):
            if sched.get(key) != file_iters:
                continue
            if sched.get('begin', 0) >= new:
                kept.append(f'param_scheduler[{i}] (begins at {sched.get("begin", 0)})')
                continue
            sched[key] = new
            changed.append(f'param_scheduler[{i}].{key}')
    if train_cfg.get('val_interval') == file_iters:
        train_cfg['val_interval'] = new
        changed.append('train_cfg.val_interval')
    ckpt = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    if isinstance(ckpt.get('interval'), int) and ckpt['interval'] > new:
        ckpt['interval'] = new
        changed.append('default_hooks.checkpoint.interval')
    parts = [f'set {", ".join(changed)} to {new}'] if changed else []
    parts += [f'left as is: {", ".join(kept)}'] if kept else []
    if parts:
        note(f'max_iters {file_iters} -> {new}: {"; ".join(parts)}')
    return changed


def adapt_to_device(cfg: Config) -> None:
    """CPU-only machines: gloo instead of NCCL, no device ids for DDP, BatchNorm kept as is.

    mmengine's launcher setup calls ``torch.cuda.set_device``, so on CPUs the process group is
    created here (gloo) and mmengine finds it ready. SyncBatchNorm needs CUDA.
    """
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available():
        return
    if cfg.get('sync_bn'):
        cfg.sync_bn = None
    if cfg.launcher == 'none':
        return
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False)
    if cfg.launcher == 'pytorch' and not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def enable_compile(cfg) -> None:
    """``--compile``: ``torch.compile`` the backbone (``model.backbone.compile=True``)."""
    backbone = cfg.model.get('backbone')
    if not isinstance(backbone, dict) or backbone.get('type') != 'DinoBackbone':
        raise ValueError(f'--compile compiles a model.backbone of type DinoBackbone; this config\'s '
                         f'model ({cfg.model.get("type")}) has none')
    backbone['compile'] = True
