"""What a training run shows on the console, and what goes to its log file only.

mmengine's runner prints about 300 lines before the first iteration (the system environment,
the whole config, the order of the hooks) and its libraries add warnings that tell a densedino
user nothing (one per frozen parameter in pretraining). The console instead shows:

- a compact header before the first iteration (:func:`run_header`): config, model, backbone and
  parameter counts, dataset sizes, device, precision, schedule, work dir, and the one line
  saying where the full log and the config as run are;
- a progress line (mmengine's format, with the time left) at iterations 1, 2, 5 and 10 before
  the logger's first interval, then every ``interval``, and at the last iteration
  (:class:`ProgressLoggerHook`);
- at the end, where the files are (:func:`run_summary`, printed by ``tools/train.py``).

The messages of :data:`FILE_ONLY` and the Python warnings of :data:`LIBRARY_WARNINGS` are kept
off the console by one filter that :class:`~densedino.engine.DensedinoRunner` installs when it
builds its logger (:func:`quiet_console`); the log file in the work dir keeps every message.
To see something that is filtered: read ``<work_dir>/<timestamp>/<timestamp>.log``.
"""
from __future__ import annotations

import logging
import os.path as osp
import re
import warnings
from typing import List, Optional, Tuple

from mmengine.hooks import CheckpointHook, LoggerHook

from ..registry import HOOKS
from .checkpoint import unwrap_model
from .files import latest_checkpoint

#: Log messages kept in the log file but off the console: (pattern, what it is).
FILE_ONLY: Tuple[Tuple[str, str], ...] = (
    (r'^\n-+\nSystem environment:', "mmengine's environment dump (~40 lines)"),
    (r'^Config:\n', "mmengine's dump of the whole config (~200 lines; also saved as a .py file)"),
    (r'^Hooks will be executed in the following order', "mmengine's hook order (~70 lines)"),
    (r'is skipped since its requires_grad=False',
     "mmengine's optimizer constructor, once per frozen parameter"),
    (r'^paramwise_options -- ', "mmengine's optimizer constructor, once per parameter with its "
     'own weight decay or learning rate'),
    (r'has no metainfo\. ``dataset_meta`` in visualizer will be None',
     'pretraining images have no classes, as intended'),
    (r'^Checkpoints will be saved to ', 'mmengine; the header names the work dir'),
    (r'^Distributed training is not used, all SyncBatchNorm',
     'mmengine: BatchNorm stays BatchNorm in a one-process run, as intended'),
    (r'^The prefix is not set in metric class', "mmseg's metrics: the default prefix is fine"),
    (r'"FileClient" will be deprecated', "mmseg's visualisation hook uses an old mmengine API"),
    (r'"HardDiskBackend" is the alias of "LocalBackend"', 'the same old API'),
)

#: Python warnings of mmseg that ask nothing of a densedino user: (message pattern, why).
LIBRARY_WARNINGS: Tuple[Tuple[str, str], ...] = (
    (r'``build_loss`` would be deprecated soon', "mmseg's heads call their own deprecated API"),
    (r'Default ``avg_non_ignore`` is False', "mmseg's default loss averaging, as the recipes use"),
    (r'The draw is False, it means that the hook for visualization',
     'the visualisation hook is off unless tools/test.py --show-dir turns it on'),
    (r'`reduce_zero_label` will be deprecated', "mmseg's loader option the ADE20K recipes need"),
)

_FILE_ONLY = re.compile('|'.join(f'(?:{pattern})' for pattern, _ in FILE_ONLY))


class ConsoleFilter(logging.Filter):
    """Drops the messages of :data:`FILE_ONLY` from the handler it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _FILE_ONLY.search(record.getMessage()) is None


def quiet_console(logger: logging.Logger) -> None:
    """Attach :class:`ConsoleFilter` to ``logger``'s console handlers (not its log files) and
    silence :data:`LIBRARY_WARNINGS`; calling it again changes nothing."""
    for handler in logger.handlers:
        is_console = isinstance(handler, logging.StreamHandler) and \
            not isinstance(handler, logging.FileHandler)
        if is_console and not any(isinstance(f, ConsoleFilter) for f in handler.filters):
            handler.addFilter(ConsoleFilter())
    for pattern, _ in LIBRARY_WARNINGS:
        warnings.filterwarnings('ignore', message=f'.*{pattern}')


@HOOKS.register_module()
class ProgressLoggerHook(LoggerHook):
    """mmengine's ``LoggerHook`` (same arguments, same log lines and ``scalars.json``) that also
    logs iterations 1, 2, 5 and 10 when they come before its first ``interval``, and the last
    iteration; and logs :func:`run_header` before training. A plain ``LoggerHook`` in a config
    becomes this one under densedino's runner."""

    EARLY_ITERS = (1, 2, 5, 10)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        runner.logger.info(run_header(runner))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        step = runner.iter + 1
        extra = (step in self.EARLY_ITERS and step < self.interval) or step == runner.max_iters
        if not extra:
            return super().after_train_iter(runner, batch_idx, data_batch, outputs)
        interval = self.interval
        self.interval = 1  # log this iteration exactly as mmengine logs the others
        try:
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
        finally:
            self.interval = interval


def run_header(runner) -> str:
    """The lines shown before the first iteration (one log record)."""
    model = unwrap_model(runner.model)
    rows = [('model', _model_text(runner.cfg, model)),
            ('data', _data_text(runner)),
            ('device', f'{_device_text(model)}; precision {_precision_text(runner, model)}'),
            ('schedule', _schedule_text(runner)),
            ('work dir', runner.work_dir),
            ('log', f'{log_file(runner)} (environment, full config, every message); config as '
                    f'run: {config_dump(runner)}')]
    config = runner.cfg.filename or 'a config object'
    return '\n'.join([f'densedino: training {config}'] + [f'  {k:<9} {v}' for k, v in rows])


def log_file(runner) -> str:
    """The run's log file (``<work_dir>/<timestamp>/<timestamp>.log``)."""
    return osp.join(runner.log_dir, f'{runner.timestamp}.log')


def config_dump(runner) -> str:
    """Where mmengine's runner dumps the config as run (as ``Runner.dump_config`` names it)."""
    name = osp.basename(runner.cfg.filename) if runner.cfg.filename else \
        f'{runner.timestamp}.py'
    return osp.join(runner.work_dir, name)


def count(n: int) -> str:
    """``21.7M``, ``56.3K`` or ``812``."""
    return f'{n / 1e6:.1f}M' if n >= 1e6 else f'{n / 1e3:.1f}K' if n >= 1e3 else str(n)


def _model_text(cfg, model) -> str:
    """``EncoderDecoder, backbone DinoBackbone dinov2_vits14 (depth=4), 1.2K of 56.3K
    parameters trained``."""
    model_cfg = cfg.get('model') or {}
    backbone = model_cfg.get('backbone') if isinstance(model_cfg.get('backbone'), dict) else {}
    arch = backbone.get('arch') or model_cfg.get('arch')
    overrides = backbone.get('arch_overrides') or model_cfg.get('backbone_overrides') or {}
    shown = ' '.join(str(p) for p in (backbone.get('type'), arch) if p)
    if overrides:
        shown += ' (' + ', '.join(f'{k}={v}' for k, v in overrides.items()) + ')'
    params = list(model.parameters())
    trained = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    return (f'{type(model).__name__}' + (f', backbone {shown}' if shown else '') +
            f'; {count(trained)} of {count(total)} parameters trained')


def _data_text(runner) -> str:
    """``train 400 (SyntheticSegDataset, batch 8), val 100 (batch 4)``."""
    parts = [f'train {_loader_text(runner.train_dataloader)}']
    val_loop = runner._val_loop
    if val_loop is not None and not isinstance(val_loop, dict):
        parts.append(f'val {_loader_text(val_loop.dataloader)}')
    return ', '.join(parts)


def _loader_text(loader) -> str:
    dataset = loader.dataset
    try:
        size = f'{len(dataset)}'
    except Exception:  # noqa: BLE001 - a lazily built dataset: the size is not worth a failure
        size = '?'
    return f'{size} ({type(dataset).__name__}, batch {loader.batch_size})'


def _device_text(model) -> str:
    import torch
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    if device.type == 'cuda':
        return f'{device} ({torch.cuda.get_device_name(device)})'
    return f'{device.type} ({torch.get_num_threads()} threads)'


def _precision_text(runner, model) -> str:
    """The optimizer wrapper's precision, and ``--amp`` advice where it would help."""
    from ..models.backbones import bf16_matmul_mode
    wrapper = runner.optim_wrapper
    name = type(wrapper).__name__
    if name == 'AmpOptimWrapper':
        dtype = str(getattr(wrapper, 'cast_dtype', None) or 'float16').replace('torch.', '')
        return f'{dtype} mixed ({name})'
    if name == 'BF16OptimWrapper':
        return f'bfloat16 autocast ({name})'
    param = next(model.parameters(), None)
    device = param.device if param is not None else 'cpu'
    if bf16_matmul_mode(device) == 'native':
        return 'float32 (bf16 is native here: tools/train.py --amp for mixed precision)'
    return 'float32'


def _schedule_text(runner) -> str:
    """``300 iterations, validation every 300, checkpoint every 50``."""
    loop = runner.train_loop
    epochs = 'Epoch' in type(loop).__name__
    unit = 'epochs' if epochs else 'iterations'
    parts = [f'{runner.max_epochs if epochs else runner.max_iters} {unit}']
    val = getattr(loop, 'val_interval', None)
    if runner._val_loop is not None and val:
        parts.append(f'validation every {val}')
    ckpt = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
    if ckpt is not None:
        parts.append(f'checkpoint every {ckpt.interval}')
    return ', '.join(parts)


def run_summary(runner) -> List[str]:
    """Where a finished run left its files: work dir, last and best checkpoints, log."""
    hub = runner.message_hub
    last = latest_checkpoint(runner.work_dir)
    best = _best_checkpoints(hub.runtime_info)
    lines = [f'finished {runner.iter} iterations; work dir {runner.work_dir}',
             f'  last checkpoint {last or "none written"}']
    lines += [f'  best checkpoint {path}' for path in best]
    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    lines.append(f'  log {log_file(runner)}' +
                 (f', scalars {scalars}' if osp.isfile(scalars) else ''))
    return lines


def _best_checkpoints(info: dict) -> List[str]:
    """The best checkpoints CheckpointHook recorded (``save_best``), one per metric."""
    found: List[Optional[str]] = [v for k, v in info.items()
                                  if k == 'best_ckpt' or k.startswith('best_ckpt_')]
    return sorted({p for p in found if isinstance(p, str)})
