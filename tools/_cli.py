"""Shared command-line plumbing for tools/ and demo/ scripts."""
import argparse
import ast
import logging
import os
import os.path as osp
import sys
from typing import Callable, List, Optional

from mmengine.config import Config, DictAction

#: Written into a training work dir at start: which config and model its checkpoints belong to.
OWNER_FILE = 'densedino_run.json'


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: '
                        'work_dirs/<config path under configs/, without .py>, e.g. '
                        'work_dirs/seg/synthetic_linear; work_dirs/<config name> for a config '
                        'outside configs/)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.backbone.checkpoint=PATH')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')


def rank() -> int:
    """This process's rank in a multi-process run (0 otherwise), from the launcher's variables."""
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):  # torchrun, slurm, mpi
        if name in os.environ:
            return int(os.environ[name])
    return 0


def note(message: str) -> None:
    """One line on stderr, from rank 0 only."""
    if rank() == 0:
        print(message, file=sys.stderr)


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
    """Read the config, apply overrides and the work dir; one-line errors for bad paths."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        raise SystemExit(f'error: config file {args.config} does not exist')
    import densedino  # noqa: F401  (compatibility fixes and registries)
    cfg = read_config(args.config)
    file_iters = (cfg.get('train_cfg') or {}).get('max_iters'), cfg.get('max_iters')
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


def parse_overrides(items, flag: str = '--overrides') -> dict:
    """``['depth=1', 'embed_dim=32']`` -> ``{'depth': 1, 'embed_dim': 32}`` (Python literals, else
    strings): backbone preset overrides given on a command line."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise SystemExit(f'error: {flag} expects KEY=VALUE, got {item!r}')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def add_backbone_args(parser: argparse.ArgumentParser, *, checkpoint_help: str) -> None:
    """``--backbone``, ``--checkpoint``, ``--overrides``, ``--device`` and ``--seed``: the
    backbone of the feature tools (:func:`build_backbone`)."""
    parser.add_argument('--backbone', required=True,
                        help='backbone preset, e.g. dinov2_vits14 (densedino.list_backbones())')
    parser.add_argument('--checkpoint', help=checkpoint_help)
    parser.add_argument('--overrides', nargs='*', default=[], metavar='KEY=VALUE',
                        help='backbone preset overrides, e.g. those of a pretraining run: '
                        'depth=4 embed_dim=192 num_heads=3 img_size=112')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random weights used without --checkpoint '
                        '(default: %(default)s)')


def build_backbone(args: argparse.Namespace, random_warning: str):
    """The backbone of :func:`add_backbone_args`'s options on its device; without a checkpoint,
    ``random_warning`` on stderr and seeded (reproducible) random weights."""
    import torch

    from densedino import create_backbone
    if args.checkpoint is None:
        print(random_warning, file=sys.stderr)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    torch.manual_seed(args.seed)
    return create_backbone(args.backbone, checkpoint=args.checkpoint,
                           **parse_overrides(args.overrides)).to(device)


def display_available() -> bool:
    """Whether a window can be opened (on Linux: an X11 or Wayland display is set)."""
    if sys.platform.startswith('linux'):
        return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))
    return True


def run_cli(main, args: argparse.Namespace, *,
            on_interrupt: Optional[Callable[[argparse.Namespace], str]] = None) -> None:
    """Run ``main(args)``; user errors become one line on stderr (``--debug`` for tracebacks).

    Ctrl-C stops with one line (``on_interrupt(args)``, e.g. how to resume; rank 0 only) and
    exit code 130 instead of a traceback.
    """
    finished = False
    try:
        if args.debug:
            main(args)
        else:
            _report_errors(main, args)
        finished = True
    except KeyboardInterrupt as e:
        if args.debug:
            raise
        note(on_interrupt(args) if on_interrupt and rank() == 0 else 'interrupted')
        _close_process_group()
        if interrupted_torch_io(e):
            # torch's zip writer, left in the traceback of an interrupted torch.save, writes to
            # its closed buffer when destroyed and aborts the process ("terminate called ...",
            # exit -6): leave without running destructors (checkpoints are written atomically)
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(130)
        raise SystemExit(130) from None
    finally:
        _close_process_group(wait_for_peers=finished)


def _close_process_group(wait_for_peers: bool = False) -> None:
    """Tear the process group down before exit (gloo aborts in its destructor otherwise).

    After a run that finished, every rank first waits for the others (rank 0 may still be
    writing a checkpoint): a rank that tears its group down while a peer still uses it can abort
    the peer. After an error no rank waits, since a peer may never arrive.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def _report_errors(main, args: argparse.Namespace) -> None:
    try:
        main(args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - report, don't dump a 60-line traceback
        if caused_by_interrupt(e):
            raise KeyboardInterrupt from None
        logging.getLogger('densedino').debug('failed', exc_info=True)
        log_to_run_file(e)
        name, msg = describe_error(e)
        print(f'error: {name}: {msg} (run with --debug for the traceback)', file=sys.stderr)
        raise SystemExit(1) from None


def caused_by_interrupt(e: BaseException) -> bool:
    """Whether ``e`` was raised while a Ctrl-C was being handled (mmengine turns a
    ``KeyboardInterrupt`` in its config formatter, run at every checkpoint, into a
    ``SyntaxError``)."""
    return any(isinstance(exc, KeyboardInterrupt) for exc in _chain(e))


def interrupted_torch_io(e: BaseException) -> bool:
    """Whether ``e`` or an exception it arose from went through ``torch.serialization``."""
    module = osp.join('torch', 'serialization.py')
    for exc in _chain(e):
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename.endswith(module):
                return True
            tb = tb.tb_next
    return False


def _chain(e: BaseException):
    """``e`` and the exceptions it was raised from or while handling."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def describe_error(e: BaseException):
    """``(type name, one-line message)``; for an error re-raised from a DataLoader worker (its
    message holds the worker's whole traceback), the original type and message."""
    text = str(e)
    if text.startswith('Caught ') and _WORKER_TRACEBACK in text:
        found = _last_exception(text.split(_WORKER_TRACEBACK, 1)[1])
        if found is not None:
            return found
    return type(e).__name__, ' '.join(text.split()) or type(e).__name__


_WORKER_TRACEBACK = 'Original Traceback (most recent call last):'


def _last_exception(traceback_text: str):
    """``(type name, message)`` of the exception a formatted traceback ends with: the lines at
    column 0 after its last frame (``  File ...`` and its indented source lines)."""
    lines = traceback_text.strip('\n').splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File ')]
    start = frames[-1] + 1 if frames else 0
    while start < len(lines) and lines[start][:1].isspace():
        start += 1
    if start >= len(lines):
        return None
    qualified, _, message = '\n'.join(lines[start:]).partition(': ')
    name = qualified.strip().rsplit('.', 1)[-1]
    return name, ' '.join(message.split()) or name


def log_to_run_file(e: BaseException) -> None:
    """Write ``e``'s full traceback into the run's log file (the file handlers of mmengine's
    current logger), not on the console."""
    try:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, 'failed: %s',
                                   (type(e).__name__,), (type(e), e, e.__traceback__))
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
    except Exception:  # noqa: BLE001 - never hide the error being reported
        logging.getLogger('densedino').debug('cannot write to the log file', exc_info=True)
