"""Train a densedino model from a config.

    python tools/train.py configs/seg/ade20k_linear.py [--work-dir DIR] [--resume [CKPT]]
        [--resume-if-any] [--force-work-dir] [--check-data | --no-check-data] [--amp] [--compile]
        [--cfg-options key=value ...]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch

The console shows a short header, progress from the first iteration, and at the end where the
checkpoints and the log are; the environment and the full config go to the log file in the work
dir (docs/cli.md). A mistyped config path is answered before the slow imports.

The work dir defaults to ``work_dirs/`` + the config's path under ``configs/``
(``configs/seg/synthetic_linear.py`` -> ``work_dirs/seg/synthetic_linear``). A run records its
config and model type in the work dir (``densedino_run.json``) and refuses to write into a work
dir whose checkpoints belong to another config unless given ``--force-work-dir``. Ctrl-C stops
with one line naming the checkpoint to resume from and the command that does it.
"""
import argparse
import json
import os
import os.path as osp
import re
import runpy
import shlex
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The options that take a value, for finding the config before argparse runs.
VALUE_OPTIONS = ('--resume', '--work-dir', '--launcher', '--local_rank', '--local-rank')

sys.path.insert(0, ROOT)
if __name__ == '__main__':
    # A mistyped config is answered before densedino's imports (torch, mmseg: seconds). The
    # check needs only the standard library, so its file runs without importing the package.
    runpy.run_path(osp.join(ROOT, 'densedino', 'cli', 'paths.py'))['exit_if_config_missing'](
        sys.argv[1:], VALUE_OPTIONS)
from densedino.cli import (OWNER_FILE, add_common_args, config_name, enable_compile,  # noqa: E402
                           load_config, note, rank, run_cli)

_CFG_KEY = re.compile(r'[A-Za-z_][\w.]*$')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a densedino model')
    parser.add_argument('config', help='config file')
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CKPT',
                        help='resume from CKPT, or (without CKPT) from the last checkpoint in '
                        'the work dir; stops with an error when there is none. KEY=VALUE items '
                        'right after it are config overrides, as after --cfg-options')
    resume.add_argument('--resume-if-any', action='store_true',
                        help='resume from the last checkpoint in the work dir if there is one, '
                        'else start from scratch')
    parser.add_argument('--force-work-dir', action='store_true',
                        help='write into the work dir even if its checkpoints come from another '
                        'config or model')
    check = parser.add_mutually_exclusive_group()
    check.add_argument('--check-data', dest='check_data', action='store_const', const='full',
                       help='check every sample of the datasets before training')
    check.add_argument('--no-check-data', dest='check_data', action='store_const', const='off',
                       help='skip the quick dataset check done before training')
    parser.add_argument('--compile', action='store_true', help='torch.compile the backbone '
                        '(model.backbone.compile=True; the first iteration pays the compilation)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 with loss scaling on GPUs, bf16 on CPUs')
    add_common_args(parser)
    args, extra = parser.parse_known_args(argv)
    take_resume_value_as_option(parser, args, extra)
    return args


def take_resume_value_as_option(parser: argparse.ArgumentParser, args: argparse.Namespace,
                                extra) -> None:
    """``--resume KEY=VALUE ...``: the KEY=VALUE items are config overrides, not a checkpoint.

    ``--resume`` takes an optional value, so written before ``--cfg-options`` items (or after
    ``--cfg-options`` and before more items) it swallows the next one. A value that is not a file
    and reads as ``dotted.key=value`` is moved, with any items argparse could not place, to the
    config overrides, and ``--resume`` means the work dir's last checkpoint.
    """
    value = args.resume
    key = value.partition('=')[0] if value and '=' in value else None
    if key is not None and not osp.isfile(value) and _CFG_KEY.match(key):
        if any('=' not in item or item.startswith('-') for item in extra):
            parser.error(f'unrecognized arguments: {" ".join(extra)}')
        from mmengine.config import DictAction
        DictAction(['--cfg-options'], 'cfg_options')(parser, args, [value, *extra])
        args.resume = 'auto'
        note(f'--resume: taking {" ".join([value, *extra])} as --cfg-options (resuming from the '
             'work dir\'s last checkpoint)')
    elif extra:
        parser.error(f'unrecognized arguments: {" ".join(extra)}')


def enable_amp(cfg) -> None:
    """Switch the optimizer wrapper to mixed precision for the device training will use.

    bf16 autocast (``BF16OptimWrapper``: no loss scaling, bf16 keeps fp32's range) on CPUs and
    on GPUs that compute in bf16 (Ampere and later); fp16 autocast with dynamic loss scaling
    (mmengine's ``AmpOptimWrapper``) only on GPUs without bf16. Weights, gradients and optimizer
    state stay fp32 either way; docs/reliability.md lists what runs in which dtype.
    """
    import torch
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'BF16OptimWrapper'):
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp cannot convert optim_wrapper type {wrapper!r}')
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.type = 'BF16OptimWrapper'


def apply_resume(cfg, args: argparse.Namespace) -> None:
    """Point ``cfg.load_from`` at the checkpoint to resume from, or refuse in one line."""
    from densedino.engine import latest_checkpoint
    if args.resume == 'auto' or args.resume_if_any:
        ckpt = latest_checkpoint(cfg.work_dir)
        if ckpt is None and args.resume_if_any:
            note(f'--resume-if-any: no checkpoint in {cfg.work_dir}, starting from scratch')
            return
        if ckpt is None:
            raise SystemExit(f'error: --resume: no checkpoint in {cfg.work_dir} (no readable '
                             'last_checkpoint there); run without --resume to start fresh, use '
                             '--resume-if-any, or --resume CKPT to resume from a given file')
    elif args.resume:
        ckpt = args.resume
        if not osp.isfile(ckpt):
            raise SystemExit(f'error: --resume: checkpoint {ckpt} does not exist')
    else:
        return
    cfg.resume, cfg.load_from = True, ckpt


def owner_record(cfg, config: str) -> dict:
    """Who a work dir's checkpoints belong to: the config file and the model type."""
    return {'config': osp.realpath(config), 'config_name': config_name(config),
            'model': (cfg.get('model') or {}).get('type')}


def same_owner(old: dict, new: dict) -> bool:
    """Same model type and the same config file (or, in a moved checkout, the same path under
    ``configs/``)."""
    same_file = old.get('config') == new['config'] or (
        new['config_name'] is not None and old.get('config_name') == new['config_name'])
    return same_file and old.get('model') == new['model']


def claim_work_dir(cfg, config: str, *, force: bool = False) -> None:
    """Refuse a work dir whose checkpoints come from another config or model; then record this
    run as its owner (rank 0, written atomically)."""
    from densedino.engine import write_text_atomic
    work_dir, new = cfg.work_dir, owner_record(cfg, config)
    path = osp.join(work_dir, OWNER_FILE)
    old = _read_owner(path)
    held = has_checkpoints(work_dir)
    if old is not None and held and not force and not same_owner(old, new):
        owner = (f'{old["config"]} (model {old.get("model")})' if old.get('config') else
                 f'an unknown run (unreadable {OWNER_FILE})')
        raise SystemExit(
            f'error: work dir {work_dir} holds checkpoints of {owner}, not of {new["config"]} '
            f'(model {new["model"]}); pass another --work-dir, or --force-work-dir to write '
            'there anyway')
    if old is None and held:
        note(f'work dir {work_dir} holds checkpoints of an unrecorded run; recording '
             f'{config} as their config')
    if rank() == 0 and old != new:
        os.makedirs(work_dir, exist_ok=True)
        write_text_atomic(path, json.dumps(new, indent=1) + '\n')


def _read_owner(path: str):
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def has_checkpoints(work_dir: str) -> bool:
    """Whether ``work_dir`` holds a checkpoint pointer or ``.pth`` file."""
    if not osp.isdir(work_dir):
        return False
    return any(name.endswith('.pth') or name == 'last_checkpoint'
               for name in os.listdir(work_dir))


def resume_command(args: argparse.Namespace, argv=None) -> str:
    """The command that continues this run: its own arguments, ``--resume`` instead of a resume
    option or checkpoint path (``--resume`` before config overrides stays where it is)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept, skip_next, has_resume = [], False, False
    for i, item in enumerate(argv):
        if skip_next:
            skip_next = False
            continue
        if item in ('--resume-if-any', '--force-work-dir'):
            continue
        if item == '--resume' and i + 1 < len(argv) and argv[i + 1] == args.resume:
            skip_next = True  # a checkpoint path: the work dir's pointer is newer now
            continue
        if item == f'--resume={args.resume}':
            continue
        has_resume = has_resume or item == '--resume' or item.startswith('--resume=')
        kept.append(item)
    world = int(os.environ.get('WORLD_SIZE', 1))
    launcher = (f'torchrun --nproc_per_node {os.environ.get("LOCAL_WORLD_SIZE", world)} '
                if world > 1 else 'python ')
    return launcher + shlex.join(['tools/train.py', *kept, *([] if has_resume else ['--resume'])])


def interrupted(args: argparse.Namespace) -> str:
    """The one line printed on Ctrl-C: the checkpoint to resume from and the command, or that
    none was written yet."""
    from densedino.engine import latest_checkpoint
    work_dir = getattr(args, 'run_work_dir', None)
    if work_dir is None:
        return 'interrupted before training started'
    ckpt = latest_checkpoint(work_dir)
    if ckpt is None:
        return (f'interrupted before the first checkpoint: nothing to resume from in {work_dir}; '
                'run the same command again to start over')
    return f'interrupted; the last checkpoint is {ckpt}; continue with: {resume_command(args)}'


def main(args: argparse.Namespace) -> None:
    from densedino.engine import build_runner
    cfg = load_config(args)
    args.run_work_dir = cfg.work_dir  # for the Ctrl-C message
    if args.amp:
        enable_amp(cfg)
    if args.compile:
        enable_compile(cfg)
    if args.check_data:
        cfg.check_data = args.check_data
    apply_resume(cfg, args)
    claim_work_dir(cfg, args.config, force=args.force_work_dir)
    runner = build_runner(cfg)
    runner.train()
    # where the files are: DensedinoRunner knows the checkpoints; another runner_type may not
    summary = runner.summary() if hasattr(runner, 'summary') else [
        f'finished; work dir {cfg.work_dir}']
    for line in summary:
        note(line)


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a, on_interrupt=interrupted)
