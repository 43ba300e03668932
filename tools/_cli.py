"""Shared command-line plumbing for tools/ and demo/ scripts."""
import argparse
import logging
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys, e.g. model.backbone.checkpoint=PATH')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher (torchrun: pytorch)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply overrides and the work dir; one-line errors for bad paths."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        raise SystemExit(f'error: config file {args.config} does not exist')
    import densedino  # noqa: F401  (compatibility fixes and registries)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    adapt_to_device(cfg)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


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
    import ast
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


def run_cli(main, args: argparse.Namespace) -> None:
    """Run ``main(args)``; user errors become one line on stderr (``--debug`` for tracebacks)."""
    finished = False
    try:
        if args.debug:
            main(args)
        else:
            _report_errors(main, args)
        finished = True
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
        logging.getLogger('densedino').debug('failed', exc_info=True)
        msg = ' '.join(str(e).split()) or type(e).__name__
        print(f'error: {type(e).__name__}: {msg} (run with --debug for the traceback)',
              file=sys.stderr)
        raise SystemExit(1) from None
