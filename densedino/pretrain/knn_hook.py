"""Teacher k-NN monitor in pretraining: CLS, cosine, k=20 (docs/protocols.md section 8.10)."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from ..registry import HOOKS
from .knn_folders import knn_eval_folders, labelled_folder

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE_ATTRS = ('teacher_backbone', 'student_ema.backbone', 'teacher.backbone')


def find_backbone(model: nn.Module, attr: Optional[str] = None,
                  candidates: Sequence[str] = DEFAULT_BACKBONE_ATTRS) -> nn.Module:
    """The module at a dotted attribute path of ``model`` (wrappers such as DDP unwrapped).

    Args:
        model: The (possibly wrapped) model.
        attr: Dotted path, e.g. ``'teacher.backbone'``; None tries ``candidates`` in order.
        candidates: Paths tried when ``attr`` is None.

    Raises:
        AttributeError: No path resolves to an ``nn.Module``; the message lists those tried.
    """
    if is_model_wrapper(model):
        model = model.module
    tried = [attr] if attr is not None else list(candidates)
    for path in tried:
        module = model
        for name in path.split('.'):
            module = getattr(module, name, None)
            if module is None:
                break
        if isinstance(module, nn.Module):
            return module
    raise AttributeError(f'{type(model).__name__} has no backbone module at '
                         f'{" or ".join(map(repr, tried))}; set backbone_attr')


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log the k-NN top-1 of the teacher backbone's CLS features every ``interval`` iterations.

    A small labelled reference set (``train_dir`` + ``train_labels``) and query set
    (``val_dir`` + ``val_labels``) are embedded with
    :func:`~densedino.pretrain.knn_folders.extract_cls_features` and classified by the weighted
    cosine vote of :func:`~densedino.pretrain.knn.knn_accuracy`. Each ``k`` gives a scalar
    ``knn/top1_k{k}`` (percent) in ``runner.message_hub``, a visualizer scalar at the current
    iteration and a log line. It also runs after the last iteration (unless it just ran), and with
    ``at_start`` before the first one (not on a resume): the initialisation's accuracy, the
    reference a pretraining run has to beat.

    Only the main process (rank 0) computes; other ranks skip without synchronising. That is
    right for replicated teachers (single process, DDP); a sharded (FSDP) teacher needs every
    rank in the forward pass, so under ``SSLDistributedWrapper(fsdp=...)`` the hook logs a
    warning and does nothing (score exported checkpoints with ``tools/knn_eval.py``).

    Example config::

        ade = 'data/synthetic/ADEChallengeData2016'
        custom_hooks = [dict(type='KNNMonitorHook', interval=1000,
            train_dir=f'{ade}/images/training', train_labels=f'{ade}/image_labels_training.txt',
            val_dir=f'{ade}/images/validation', val_labels=f'{ade}/image_labels_validation.txt')]

    Args:
        train_dir: Reference image folder.
        train_labels: Its label file (lines ``"<path or stem> <label>"``).
        val_dir: Query image folder.
        val_labels: Its label file.
        interval: Iterations between evaluations (> 0).
        ks: Neighbour counts.
        temperature: Vote temperature.
        size: Crop side; ``resize``: short side before the centre crop.
        resize: See ``size``.
        batch_size: Images per forward pass.
        num_workers: Image loading workers.
        backbone_attr: Dotted path of the teacher backbone in the (unwrapped) model; None tries
            ``teacher_backbone``, ``student_ema.backbone`` (distillation), then ``teacher.backbone``.
        at_start: Also evaluate before the first iteration of a run that starts from 0.
    """

    priority = 'LOW'

    def __init__(self, *, train_dir: str, train_labels: str, val_dir: str, val_labels: str,
                 interval: int = 1000, ks: Sequence[int] = (10, 20), temperature: float = 0.07,
                 size: int = 224, resize: int = 256, batch_size: int = 64, num_workers: int = 0,
                 backbone_attr: Optional[str] = None, at_start: bool = False) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if not ks or min(ks) < 1 or temperature <= 0:
            raise ValueError(f'need ks >= 1 and temperature > 0, got ks={ks}, '
                             f'temperature={temperature}')
        self.folders = dict(train_dir=train_dir, train_labels=train_labels, val_dir=val_dir,
                            val_labels=val_labels)
        self.interval = interval
        self.ks = tuple(ks)
        self.temperature = temperature
        self.extract_args = dict(size=size, resize=resize, batch_size=batch_size,
                                 num_workers=num_workers)
        self.backbone_attr = backbone_attr
        self.at_start = at_start
        self.disabled = False
        self._last_iter = -1

    def before_train(self, runner) -> None:
        """Fail fast (main process) on missing folders / label files and on the backbone path."""
        self.disabled = getattr(runner.model, 'fsdp', None) is not None
        if self.disabled:
            runner.logger.warning('KNNMonitorHook is off: the model is sharded (FSDP) and the '
                                  'k-NN runs on one process; use tools/knn_eval.py on checkpoints')
            return
        if not is_main_process():
            return
        f = self.folders
        labelled_folder(f['train_dir'], f['train_labels'])
        labelled_folder(f['val_dir'], f['val_labels'])
        find_backbone(runner.model, self.backbone_attr)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.at_start and runner.iter == 0 and self._last_iter < 0:
            self.evaluate(runner, 0)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self.evaluate(runner, runner.iter + 1)  # runner.iter counts from 0 until the loop steps

    def after_train(self, runner) -> None:
        if self._last_iter != runner.iter:
            self.evaluate(runner, runner.iter)

    def evaluate(self, runner, step: int) -> Optional[dict]:
        """Compute and log the k-NN accuracies after ``step`` completed iterations.

        Returns:
            The accuracies (None on non-main ranks).
        """
        self._last_iter = step
        if self.disabled or not is_main_process():
            return None
        backbone = find_backbone(runner.model, self.backbone_attr)
        results = knn_eval_folders(backbone, ks=self.ks, temperature=self.temperature,
                                   **self.folders, **self.extract_args)
        scalars = {f'knn/top1_k{k}': results[f'knn_top1_k{k}'] for k in self.ks}
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        visualizer = getattr(runner, 'visualizer', None)
        if visualizer is not None:
            visualizer.add_scalars(scalars, step=step)
        runner.logger.info('k-NN (iter %d): %s', step,
                           ', '.join(f'{k} {v:.2f}' for k, v in scalars.items()))
        return results
