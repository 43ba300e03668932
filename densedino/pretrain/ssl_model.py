"""DINO / iBOT / KoLeo self-distillation as an mmengine model (DINOv2-style meta-architecture).

The student (backbone with drop path + DINO head, + iBOT head when separate) learns to match an
EMA teacher (the same networks without drop path, no gradients, always in eval mode) that sees
only the global crops. One :meth:`DinoSSLModel.train_step`:

1. teacher forward on the global crops -> CLS logits -> centred (softmax or Sinkhorn-Knopp)
   targets at the current teacher temperature; patch targets at the masked positions (iBOT);
2. student forward on the masked global crops and on the local crops;
3. losses ``dino`` (all pairs of different views), ``ibot`` (masked patches), ``koleo`` (student
   CLS of each global crop), weighted; a non-finite total raises before any parameter changes;
4. backward, last-layer gradients dropped while ``iter < freeze_last_layer_iters``, optimiser
   step (gradient clipping from the optim wrapper's ``clip_grad``);
5. EMA teacher update with a cosine momentum schedule (``base -> 1`` over ``max_iters``), then the
   centres are updated with this step's teacher logits.

The iteration and the number of iterations come from mmengine's ``MessageHub`` (``iter``,
``max_iters``), so schedules continue exactly after a resume; the centres are buffers and the
teacher is a submodule, so both are in the checkpoint.

References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", TMLR 2024.
"""
from __future__ import annotations

import contextlib
import math
import os
from typing import Any, Dict, Iterator, List, Optional, Union

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from ..models.backbones import create_backbone
from ..registry import MODELS
from .distributed import average_gradients, rank_and_world
from .heads import DINOHead
from .losses import DINOLoss, KoLeoLoss, iBOTPatchLoss

CENTERINGS = ('softmax', 'sinkhorn')


@MODELS.register_module()
class MultiCropDataPreprocessor(BaseDataPreprocessor):
    """Moves a :func:`~.collate.collate_multicrop` batch to the model's device (crops are already
    normalised by :class:`~.augment.MultiCropAugmentation`)."""

    def forward(self, data: dict, training: bool = False) -> dict:
        """Return ``data`` with every tensor on the model's device."""
        return self.cast_data(data)


def cosine_momentum(base: float, iteration: int, max_iters: int) -> float:
    """Teacher EMA momentum ``1 - (1 - base) (cos(pi it / max_iters) + 1) / 2``: base -> 1."""
    if max_iters <= 0:
        return base
    progress = min(max(iteration / max_iters, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


def warmup_teacher_temp(iteration: int, start: float, end: float, warmup_iters: int) -> float:
    """Teacher temperature, linear from ``start`` to ``end`` over ``warmup_iters``, then ``end``."""
    if warmup_iters <= 0 or iteration >= warmup_iters:
        return end
    return start + (end - start) * iteration / warmup_iters


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place ``t <- m t + (1 - m) s`` over matching parameters."""
    t_params = list(teacher.parameters())
    s_params = list(student.parameters())
    if len(t_params) != len(s_params):
        raise ValueError(f'teacher has {len(t_params)} parameters, student {len(s_params)}')
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, [p.detach() for p in s_params], alpha=1.0 - momentum)


@MODELS.register_module()
class DinoSSLModel(BaseModel):
    """Student / EMA-teacher self-distillation with DINO, iBOT and KoLeo losses.

    Args:
        arch: backbone hub name for :func:`~densedino.create_backbone` (e.g. 'dinov2_vits14').
        backbone_overrides: preset overrides (e.g. ``dict(depth=2, embed_dim=32, num_heads=2)``).
        drop_path_rate: stochastic depth of the student backbone (the teacher has none).
        head: :class:`~.heads.DINOHead` options besides ``in_dim`` (``n_prototypes``,
            ``hidden_dim``, ``bottleneck_dim``, ``n_layers``, ``norm_last_layer``, ``use_bn``).
        ibot_head: options of a separate iBOT head (v3 style); ``None`` shares the DINO head (v2).
        n_global_crops: global crops per image (2).
        dino_loss_weight: weight of the DINO CLS loss (0 disables).
        ibot_loss_weight: weight of the iBOT patch loss (0 disables; also off without masks).
        koleo_loss_weight: weight of the KoLeo loss on the student's global CLS (0 disables).
        student_temp: student temperature of both losses.
        center_momentum: EMA momentum of the centres.
        centering: 'softmax' (DINOv1/v2 centring) or 'sinkhorn' (Sinkhorn-Knopp, v2 large / v3).
        teacher_temp: teacher temperature after warmup.
        warmup_teacher_temp: teacher temperature at iteration 0.
        warmup_teacher_temp_iters: iterations of the linear temperature warmup.
        momentum_teacher: base EMA momentum, cosine-scheduled to 1 over ``max_iters``.
        freeze_last_layer_iters: iterations during which the heads' last layers do not train.
        data_preprocessor: defaults to :class:`MultiCropDataPreprocessor`.
        init_cfg: mmengine init config.
    """

    def __init__(self, arch: str, *, backbone_overrides: Optional[dict] = None,
                 drop_path_rate: float = 0.0, head: Optional[dict] = None,
                 ibot_head: Optional[dict] = None, n_global_crops: int = 2,
                 dino_loss_weight: float = 1.0, ibot_loss_weight: float = 1.0,
                 koleo_loss_weight: float = 0.1, student_temp: float = 0.1,
                 center_momentum: float = 0.9, centering: str = 'softmax',
                 teacher_temp: float = 0.07, warmup_teacher_temp: float = 0.04,
                 warmup_teacher_temp_iters: int = 0, momentum_teacher: float = 0.992,
                 freeze_last_layer_iters: int = 0,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = MultiCropDataPreprocessor()
        elif isinstance(data_preprocessor, dict):  # BaseModel would look in mmengine's registry
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self._check_args(centering, n_global_crops, momentum_teacher, teacher_temp,
                         warmup_teacher_temp, dict(dino=dino_loss_weight, ibot=ibot_loss_weight,
                                                   koleo=koleo_loss_weight))
        self.arch = arch
        self.backbone_overrides = dict(backbone_overrides or {})
        self.n_global_crops = n_global_crops
        self.weights = dict(dino=dino_loss_weight, ibot=ibot_loss_weight,
                            koleo=koleo_loss_weight)
        self.centering = centering
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_iters = warmup_teacher_temp_iters
        self.momentum_teacher = momentum_teacher
        self.freeze_last_layer_iters = freeze_last_layer_iters
        self._local_iter = 0
        # False when a wrapper reduces the gradients itself (FSDP)
        self.sync_gradients = True
        self._rng_seed = torch.initial_seed()  # set by the Runner's randomness before building

        self.student = self._build_networks(drop_path_rate, head, ibot_head)
        self.teacher = self._build_networks(0.0, head, ibot_head)
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        head_dim = self.student['dino_head'].last_layer.weight.shape[0]
        ibot_dim = self._ibot_head(self.student).last_layer.weight.shape[0]
        self.dino_loss = DINOLoss(head_dim, student_temp, center_momentum)
        self.ibot_loss = iBOTPatchLoss(ibot_dim, student_temp, center_momentum)
        self.koleo_loss = KoLeoLoss()

    @staticmethod
    def _check_args(centering: str, n_global_crops: int, momentum_teacher: float,
                    teacher_temp: float, warmup_temp: float, weights: Dict[str, float]) -> None:
        if centering not in CENTERINGS:
            raise ValueError(f'centering must be one of {CENTERINGS}, got {centering!r}')
        if n_global_crops < 1:
            raise ValueError(f'n_global_crops must be >= 1, got {n_global_crops}')
        if not 0.0 <= momentum_teacher <= 1.0:
            raise ValueError(f'momentum_teacher must be in [0, 1], got {momentum_teacher}')
        if teacher_temp <= 0 or warmup_temp <= 0:
            raise ValueError(f'teacher temperatures must be > 0, got {warmup_temp}, {teacher_temp}')
        for name, value in weights.items():
            if value < 0:
                raise ValueError(f'{name}_loss_weight must be >= 0, got {value}')

    def _build_networks(self, drop_path_rate: float, head: Optional[dict],
                        ibot_head: Optional[dict]) -> nn.ModuleDict:
        backbone = create_backbone(self.arch, **{**self.backbone_overrides,
                                                 'drop_path_rate': drop_path_rate})
        nets = nn.ModuleDict(dict(backbone=backbone,
                                  dino_head=DINOHead(backbone.embed_dim, **(head or {}))))
        if ibot_head is not None:
            nets['ibot_head'] = DINOHead(backbone.embed_dim, **ibot_head)
        return nets.train()

    @staticmethod
    def _ibot_head(nets: nn.ModuleDict) -> DINOHead:
        return nets['ibot_head'] if 'ibot_head' in nets else nets['dino_head']

    def train(self, mode: bool = True) -> 'DinoSSLModel':
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    # ------------------------------------------------------------- schedules
    def _progress(self) -> tuple:
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter')
        max_iters = hub.get_info('max_iters')
        if iteration is None:
            iteration = self._local_iter
        return int(iteration), int(max_iters or 0)

    def schedules(self, iteration: int, max_iters: int) -> Dict[str, float]:
        """The teacher temperature and EMA momentum used at ``iteration``."""
        return dict(teacher_temp=warmup_teacher_temp(iteration, self.warmup_teacher_temp,
                                                     self.teacher_temp,
                                                     self.warmup_teacher_temp_iters),
                    momentum=cosine_momentum(self.momentum_teacher, iteration, max_iters))

    @contextlib.contextmanager
    def _iteration_rng(self, iteration: int) -> Iterator[None]:
        """Seed torch's RNG (drop path) from the iteration, so a resumed run draws the same."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        rank = rank_and_world()[0]  # ranks see different images: draw different drop paths
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((self._rng_seed * 1_000_003 + iteration * 1_009 + rank) % 2**63)
            yield

    # --------------------------------------------------------------- forward
    def _targets(self, loss: nn.Module, logits: Tensor, temp: float) -> Tensor:
        if self.centering == 'sinkhorn':
            return loss.sinkhorn_knopp_teacher(logits, temp)
        return loss.softmax_center_teacher(logits, temp)

    @torch.no_grad()
    def _teacher_forward(self, data: dict, temp: float) -> Dict[str, Tensor]:
        out = self.teacher['backbone'].forward_features(data['global_crops'])
        cls_logits = self.teacher['dino_head'](out['x_norm_clstoken'])
        result = dict(cls_logits=cls_logits,
                      cls_probs=self._targets(self.dino_loss, cls_logits, temp))
        if self._use_ibot(data):
            patches = out['x_norm_patchtokens'].flatten(0, 1)[data['mask_indices']]
            patch_logits = self._ibot_head(self.teacher)(patches)
            result.update(patch_logits=patch_logits,
                          patch_probs=self._targets(self.ibot_loss, patch_logits, temp))
        return result

    def _use_ibot(self, data: dict) -> bool:
        return self.weights['ibot'] > 0 and data.get('masks') is not None

    def compute_losses(self, data: dict, teacher_temp: float) -> tuple:
        """Weighted losses of one batch and the teacher logits (for the centre updates).

        Args:
            data: collated batch (``global_crops`` (n_global B, 3, G, G), ``local_crops``,
                optionally ``masks`` (n_global B, h w), ``mask_indices``, ``masks_weight``).
            teacher_temp: teacher temperature.

        Returns:
            (dict name -> unweighted scalar loss, dict of teacher logits).
        """
        teacher = self._teacher_forward(data, teacher_temp)
        masks = data.get('masks') if self._use_ibot(data) else None
        g_out = self.student['backbone'].forward_features(data['global_crops'], masks=masks)
        g_cls = g_out['x_norm_clstoken']
        losses: Dict[str, Tensor] = {}
        if self.weights['dino'] > 0:
            student_logits = list(self.student['dino_head'](g_cls).chunk(self.n_global_crops))
            local = data.get('local_crops')
            if local is not None and local.numel():
                l_cls = self.student['backbone'].forward_features(local)['x_norm_clstoken']
                n_local = len(local) * self.n_global_crops // len(g_cls)
                student_logits += list(self.student['dino_head'](l_cls).chunk(n_local))
            losses['dino'] = self.dino_loss(student_logits,
                                            teacher['cls_probs'].chunk(self.n_global_crops))
        if masks is not None:
            patches = g_out['x_norm_patchtokens'].flatten(0, 1)[data['mask_indices']]
            losses['ibot'] = self.ibot_loss.forward_masked(
                self._ibot_head(self.student)(patches), teacher['patch_probs'], masks,
                masks_weight=data.get('masks_weight'), n_images=len(g_cls))
        if self.weights['koleo'] > 0:
            losses['koleo'] = self.koleo_loss(list(g_cls.chunk(self.n_global_crops)))
        return losses, teacher

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, float]:
        """One optimisation step; see the module docstring.

        Raises:
            FloatingPointError: the loss is not finite (nothing has been updated).
        """
        iteration, max_iters = self._progress()
        sched = self.schedules(iteration, max_iters)
        data = self.data_preprocessor(data, True)
        with optim_wrapper.optim_context(self), self._iteration_rng(iteration):
            losses, teacher = self.compute_losses(data, sched['teacher_temp'])
        total = sum(self.weights[k] * v for k, v in losses.items())
        if not isinstance(total, Tensor) or not torch.isfinite(total):
            parts = ', '.join(f'{k}={v.item():.4g}' for k, v in losses.items())
            raise FloatingPointError(f'non-finite loss at iteration {iteration}: {parts}; '
                                     'the last checkpoint is intact')
        self._optimize(total, optim_wrapper, iteration)
        ema_update_(self.teacher, self.student, sched['momentum'])
        self.dino_loss.update_center(teacher['cls_logits'])
        if 'patch_logits' in teacher:
            self.ibot_loss.update_center(teacher['patch_logits'])
        self._local_iter = iteration + 1
        logs = {'loss': total.item(), **{k: v.item() for k, v in losses.items()}}
        logs.update(sched)
        return logs

    def _optimize(self, total: Tensor, optim_wrapper: OptimWrapper, iteration: int) -> None:
        optim_wrapper.backward(optim_wrapper.scale_loss(total))
        if self.sync_gradients:
            average_gradients(self.student)
        if iteration < self.freeze_last_layer_iters:
            self.student['dino_head'].cancel_last_layer_gradients()
            self._ibot_head(self.student).cancel_last_layer_gradients()
        if optim_wrapper.should_update():
            optim_wrapper.step()
            optim_wrapper.zero_grad()

    def forward(self, inputs: Any = None, data_samples: Any = None,
                mode: str = 'tensor') -> Union[Tensor, Dict[str, Tensor]]:
        """``mode='tensor'``: teacher CLS features (B, D) of ``inputs`` (B, 3, H, W)."""
        if mode != 'tensor':
            raise NotImplementedError(f'DinoSSLModel supports mode="tensor" only, got {mode!r}')
        with torch.no_grad():
            return self.teacher['backbone'].forward_features(inputs)['x_norm_clstoken']

    def val_step(self, data: Any) -> List[Any]:
        """Not used: monitor pretraining with the k-NN hook instead."""
        raise NotImplementedError('DinoSSLModel has no validation step; use k-NN monitoring')

    test_step = val_step


def _teacher_backbone_state(source: Union[nn.Module, str, os.PathLike, dict]) -> Dict[str, Tensor]:
    if isinstance(source, nn.Module):
        module = getattr(source, 'module', source)  # unwrap DDP
        return {k: v.detach().cpu().clone()
                for k, v in module.teacher['backbone'].state_dict().items()}
    ckpt = source if isinstance(source, dict) else torch.load(
        os.fspath(source), map_location='cpu', weights_only=False)
    state = ckpt.get('state_dict', ckpt)
    prefix = 'teacher.backbone.'
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise KeyError(f'no {prefix}* keys in the checkpoint (is it a DinoSSLModel checkpoint?)')
    return out


def export_teacher_backbone(source: Union[nn.Module, str, os.PathLike, dict],
                            out_path: Union[str, os.PathLike]) -> Dict[str, Tensor]:
    """Save the teacher backbone's state dict in official keys, loadable by ``create_backbone``.

    Args:
        source: a :class:`DinoSSLModel`, an mmengine checkpoint path, or a loaded checkpoint.
        out_path: destination ``.pth``.

    Returns:
        The saved state dict.
    """
    state = _teacher_backbone_state(source)
    out_dir = os.path.dirname(os.fspath(out_path))
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    torch.save(state, os.fspath(out_path))
    return state
