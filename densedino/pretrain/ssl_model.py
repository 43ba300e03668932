"""DINO / iBOT / KoLeo self-distillation as an mmengine model (DINOv2-style meta-architecture).

The student (backbone with drop path + DINO head, + iBOT head when separate) learns to match an
EMA teacher (the same networks without drop path, no gradients, always in eval mode) that sees
only the global crops. One :meth:`DinoSSLModel.train_step`:

1. teacher forward on the global crops -> CLS logits -> centred (softmax or Sinkhorn-Knopp)
   targets at the current teacher temperature; patch targets at the masked positions (iBOT);
2. student forward on the masked global crops and on the local crops;
3. losses ``dino`` (all pairs of different views), ``ibot`` (masked patches), ``koleo`` (student
   CLS of each global crop), weighted;
4. backward, last-layer gradients dropped while ``iter < freeze_last_layer_iters``, then the
   non-finite guard (every loss term and the gradient norm; a non-finite value stops the run
   before any parameter, centre or teacher changes) and the optimiser step (gradient clipping
   from the optim wrapper's ``clip_grad``);
5. EMA teacher update with a cosine momentum schedule (``base -> 1`` over ``max_iters``), then the
   centres are updated with this step's teacher logits.

Two options extend the recipe (docs/pretraining.md, "Gram anchoring" and "Distillation"): a
frozen *Gram teacher* whose patch Gram matrices anchor the student's from ``gram_start_iter``
(DINOv3), and a frozen pretrained ``distill_teacher`` that gives the targets while the student's
EMA (``student_ema``) is what gets exported (DINOv2).

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
from typing import Any, Dict, Iterator, List, Optional, Union

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from ..engine.nonfinite import NonFiniteGuard
from ..models.backbones import create_backbone
from ..registry import MODELS
from .checkpoints import drop_teacher_state, fill_teacher_state, load_backbone_weights
from .collate import MultiCropDataPreprocessor
from .collectives import OverlappedGradientSync, average_gradients
from .networks import build_distill_teacher, build_networks, ema_update_, frozen, ibot_head_of
from .schedules import cosine_momentum, gram_weight, warmup_teacher_temp
from .losses import DINOLoss, GramLoss, KoLeoLoss, downsample_gram_teacher_features, iBOTPatchLoss

CENTERINGS = ('softmax', 'sinkhorn')
GRAD_SYNCS = ('overlap', 'flat')


def _checked_grad_sync(value: str) -> str:
    if value not in GRAD_SYNCS:
        raise ValueError(f'grad_sync must be one of {GRAD_SYNCS}, got {value!r}')
    return value


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
        dino_loss_normalization: divisor of the summed DINO pair terms: 'dinov2' (DINOv2's
            count, at least one local term: 2 global crops and no local crop divide by 3) or
            'pairs' (the number of pairs: DINOv1, DINOv3); the same whenever there are local
            crops. See :class:`~.losses.DINOLoss`.
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
        gram_loss_weight: final weight of the Gram anchoring loss (0 disables; DINOv3: 2.0).
        gram_start_iter: first iteration with Gram anchoring (the Gram teacher is taken then).
        gram_warmup_iters: iterations of the linear weight ramp from 0 after ``gram_start_iter``.
        gram_update_interval: refresh the Gram teacher from the EMA teacher every this many
            iterations after the start (0: never).
        gram_teacher_checkpoint: backbone weights for the Gram teacher instead of the snapshot
            (a pretraining checkpoint, an exported teacher, or an official file).
        gram_batch: one Gram matrix over all patches of this process's global crops instead of
            one per crop (DINOv3's ``img_level: false``).
        gram_remove_negatives: set negative similarities to 0 in both Gram matrices (DINOv3's
            ``remove_neg``). See :class:`~.losses.GramLoss`.
        distill_teacher: ``dict(arch=..., checkpoint=..., backbone_overrides=..., head=...,
            ibot_head=...)``: distil from this frozen model instead of an EMA teacher. The
            checkpoint must hold the teacher's heads (a densedino pretraining checkpoint or an
            official training checkpoint); its prototypes must number as the student's.
        grad_sync: how a multi-process run without FSDP averages the student's gradients:
            'overlap' (bucketed all-reduces during backward, :class:`~.collectives.
            OverlappedGradientSync`) or 'flat' (one all-reduce after backward,
            :func:`~.collectives.average_gradients`). The same averages.
        data_preprocessor: defaults to :class:`MultiCropDataPreprocessor`.
        init_cfg: mmengine init config.
    """

    def __init__(self, arch: str, *, backbone_overrides: Optional[dict] = None,
                 drop_path_rate: float = 0.0, head: Optional[dict] = None,
                 ibot_head: Optional[dict] = None, n_global_crops: int = 2,
                 dino_loss_weight: float = 1.0, dino_loss_normalization: str = 'dinov2',
                 ibot_loss_weight: float = 1.0,
                 koleo_loss_weight: float = 0.1, student_temp: float = 0.1,
                 center_momentum: float = 0.9, centering: str = 'softmax',
                 teacher_temp: float = 0.07, warmup_teacher_temp: float = 0.04,
                 warmup_teacher_temp_iters: int = 0, momentum_teacher: float = 0.992,
                 freeze_last_layer_iters: int = 0, gram_loss_weight: float = 0.0,
                 gram_start_iter: int = 0, gram_warmup_iters: int = 0,
                 gram_update_interval: int = 0, gram_teacher_checkpoint: Optional[str] = None,
                 gram_batch: bool = False, gram_remove_negatives: bool = False,
                 distill_teacher: Optional[dict] = None, grad_sync: str = 'overlap',
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = MultiCropDataPreprocessor()
        elif isinstance(data_preprocessor, dict):  # BaseModel would look in mmengine's registry
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self._check_args(centering, n_global_crops, momentum_teacher, teacher_temp,
                         warmup_teacher_temp, dict(dino=dino_loss_weight, ibot=ibot_loss_weight,
                                                   koleo=koleo_loss_weight, gram=gram_loss_weight),
                         dict(gram_start_iter=gram_start_iter, gram_warmup_iters=gram_warmup_iters,
                              gram_update_interval=gram_update_interval))
        self.arch = arch
        self.backbone_overrides = dict(backbone_overrides or {})
        self.n_global_crops = n_global_crops
        self.weights = dict(dino=dino_loss_weight, ibot=ibot_loss_weight,
                            koleo=koleo_loss_weight, gram=gram_loss_weight)
        self.gram_start_iter = gram_start_iter
        self.gram_warmup_iters = gram_warmup_iters
        self.gram_update_interval = gram_update_interval
        self.centering = centering
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_iters = warmup_teacher_temp_iters
        self.momentum_teacher = momentum_teacher
        self.freeze_last_layer_iters = freeze_last_layer_iters
        self._local_iter = 0
        self._guard = NonFiniteGuard()  # when no runner attached one (max_skips=0)
        self._gram_taken = False  # mirrors the gram_ready buffer once it is 1
        # False when a wrapper reduces the gradients itself (FSDP)
        self.sync_gradients = True
        self.grad_sync = _checked_grad_sync(grad_sync)
        self._overlapped_sync: Optional[OverlappedGradientSync] = None  # built at the first step
        self._rng_seed = torch.initial_seed()  # set by the Runner's randomness before building

        self._build_student_and_teacher(drop_path_rate, head, ibot_head, distill_teacher)
        head_dim = self.student['dino_head'].last_layer.weight.shape[0]
        ibot_dim = ibot_head_of(self.student).last_layer.weight.shape[0]
        if gram_loss_weight > 0:
            self._build_gram_teacher(gram_teacher_checkpoint)
            self.gram_loss = GramLoss(batch_gram=gram_batch,
                                      remove_negatives=gram_remove_negatives)
        self.dino_loss = DINOLoss(head_dim, student_temp, center_momentum,
                                  normalization=dino_loss_normalization)
        self.ibot_loss = iBOTPatchLoss(ibot_dim, student_temp, center_momentum)
        self.koleo_loss = KoLeoLoss()

    def _build_student_and_teacher(self, drop_path_rate: float, head: Optional[dict],
                                   ibot_head: Optional[dict],
                                   distill_teacher: Optional[dict]) -> None:
        """``student``, and ``teacher``: the student's EMA, or with ``distill_teacher`` a frozen
        model read from its file (the EMA is then ``student_ema``, the model to export)."""
        self.student = build_networks(self.arch, self.backbone_overrides, drop_path_rate,
                                            head, ibot_head)
        ema = build_networks(self.arch, self.backbone_overrides, 0.0, head, ibot_head)
        ema.load_state_dict(self.student.state_dict())
        if distill_teacher is None:
            self.teacher = frozen(ema)
            return
        self.student_ema = frozen(ema)
        self.teacher = frozen(build_distill_teacher(distill_teacher, self.student, head,
                                                   ibot_head))
        # the frozen teacher is read from its own file: keep it out of every checkpoint
        self._register_state_dict_hook(drop_teacher_state)
        self._register_load_state_dict_pre_hook(fill_teacher_state, with_module=True)

    def _build_gram_teacher(self, checkpoint: Optional[str]) -> None:
        """The frozen Gram teacher, loaded from ``checkpoint`` now or snapshotted later, and
        ``gram_ready``: 1 once it holds weights (a buffer, so a resume knows)."""
        self.gram_teacher = frozen(create_backbone(self.arch, **self.backbone_overrides))
        # weights come from a file or a snapshot: mmengine's init_weights must not redraw them
        self.gram_teacher.is_init = True
        self.register_buffer('gram_ready', torch.zeros((), dtype=torch.long))
        if checkpoint is not None:
            load_backbone_weights(self.gram_teacher, checkpoint, 'Gram teacher')
            self.gram_ready.fill_(1)

    @staticmethod
    def _check_args(centering: str, n_global_crops: int, momentum_teacher: float,
                    teacher_temp: float, warmup_temp: float, weights: Dict[str, float],
                    gram_iters: Dict[str, int]) -> None:
        for name, value in gram_iters.items():
            if value < 0:
                raise ValueError(f'{name} must be >= 0, got {value}')
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

    @property
    def ema(self) -> nn.ModuleDict:
        """The EMA of the student: ``student_ema`` when distilling, else the teacher."""
        return self.student_ema if hasattr(self, 'student_ema') else self.teacher

    def train(self, mode: bool = True) -> 'DinoSSLModel':
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        for name in ('teacher', 'student_ema', 'gram_teacher'):
            if hasattr(self, name):
                getattr(self, name).eval()
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
        """The teacher temperature, EMA momentum (and Gram weight) used at ``iteration``."""
        out = dict(teacher_temp=warmup_teacher_temp(iteration, self.warmup_teacher_temp,
                                                    self.teacher_temp,
                                                    self.warmup_teacher_temp_iters),
                   momentum=cosine_momentum(self.momentum_teacher, iteration, max_iters))
        if self.weights['gram'] > 0:
            out['gram_weight'] = gram_weight(iteration, self.weights['gram'],
                                             self.gram_start_iter, self.gram_warmup_iters)
        return out

    @torch.no_grad()
    def _refresh_gram_teacher(self, iteration: int) -> None:
        """Take the Gram teacher from the EMA teacher at the start and every update interval."""
        if self.weights['gram'] <= 0 or iteration < self.gram_start_iter:
            return
        since = iteration - self.gram_start_iter
        due = self.gram_update_interval > 0 and since > 0 and since % self.gram_update_interval == 0
        if not self._gram_taken:  # read the buffer (a device sync) until it says taken
            self._gram_taken = bool(self.gram_ready)
        if not self._gram_taken or due:
            self.gram_teacher.load_state_dict(self.ema['backbone'].state_dict())
            self.gram_ready.fill_(1)
            self._gram_taken = True

    @contextlib.contextmanager
    def _iteration_rng(self, iteration: int) -> Iterator[None]:
        """Seed torch's RNG (drop path) from the iteration, so a resumed run draws the same."""
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        rank = get_rank()  # ranks see different images: draw different drop paths
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
            patch_logits = ibot_head_of(self.teacher)(patches)
            result.update(patch_logits=patch_logits,
                          patch_probs=self._targets(self.ibot_loss, patch_logits, temp))
        return result

    def _use_ibot(self, data: dict) -> bool:
        return self.weights['ibot'] > 0 and data.get('masks') is not None

    def compute_losses(self, data: dict, teacher_temp: float, gram: bool = False) -> tuple:
        """Unweighted losses of one batch and the teacher logits (for the centre updates).

        Args:
            data: collated batch (``global_crops`` (n_global B, 3, G, G), ``local_crops``,
                optionally ``masks`` (n_global B, h w), ``mask_indices``, ``masks_weight``,
                ``gram_crops``).
            teacher_temp: teacher temperature.
            gram: add the Gram anchoring loss (needs the Gram teacher).

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
                ibot_head_of(self.student)(patches), teacher['patch_probs'], masks,
                masks_weight=data.get('masks_weight'), n_images=len(g_cls))
        if self.weights['koleo'] > 0:
            losses['koleo'] = self.koleo_loss(list(g_cls.chunk(self.n_global_crops)))
        if gram:
            losses['gram'] = self._gram_loss(data, g_out['x_norm_patchtokens'])
        return losses, teacher

    def _gram_loss(self, data: dict, student_patches: Tensor) -> Tensor:
        crops = data.get('gram_crops')
        crops = data['global_crops'] if crops is None or not crops.numel() else crops
        with torch.no_grad():
            feats = self.gram_teacher.forward_features(crops)['x_norm_patchtokens']
        patch = self.student['backbone'].patch_size
        grid = (data['global_crops'].shape[-2] // patch, data['global_crops'].shape[-1] // patch)
        t_grid = (crops.shape[-2] // patch, crops.shape[-1] // patch)
        if t_grid != grid:
            feats = downsample_gram_teacher_features(feats.unflatten(1, t_grid), grid)
        return self.gram_loss(student_patches, feats)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, float]:
        """One optimisation step; see the module docstring.

        Raises:
            NonFiniteError: a loss term or the gradient norm is not finite (nothing has been
                updated; see :class:`~densedino.engine.nonfinite.NonFiniteGuard`).
        """
        iteration, max_iters = self._progress()
        sched = self.schedules(iteration, max_iters)
        self._refresh_gram_teacher(iteration)
        use_gram = sched.get('gram_weight', 0.0) > 0
        data = self.data_preprocessor(data, True)
        with optim_wrapper.optim_context(self), self._iteration_rng(iteration):
            losses, teacher = self.compute_losses(data, sched['teacher_temp'], gram=use_gram)
        weights = {**self.weights, 'gram': sched.get('gram_weight', 0.0)}
        if not losses:
            raise ValueError('no loss to train: every loss weight is 0 (or iBOT without masks)')
        total = sum(weights[k] * v for k, v in losses.items())
        values, updated = self._optimize(total, losses, optim_wrapper, iteration)
        if updated:
            ema_update_(self.ema, self.student, sched['momentum'])
        finite = all(math.isfinite(v) for v in values.values())
        if self.centering == 'softmax' and finite:  # Sinkhorn-Knopp targets use no centres
            self.dino_loss.update_center(teacher['cls_logits'])
            if 'patch_logits' in teacher:
                self.ibot_loss.update_center(teacher['patch_logits'])
        self._local_iter = iteration + 1
        return {**values, **sched}

    def _optimize(self, total: Tensor, losses: Dict[str, Tensor], optim_wrapper: OptimWrapper,
                  iteration: int) -> tuple:
        """Backward, and on an update step (gradient accumulation aside: every step) the
        last-layer freeze, gradient averaging over the processes, then the non-finite guard
        (loss terms and gradient norm in one host sync) and the optimiser step.

        Returns:
            The logged values as floats, and whether the parameters were updated.
        """
        overlapped = self._gradient_sync()
        if overlapped is not None:  # reduce during the backward before an update
            overlapped.prepare(enabled=optim_wrapper.should_sync())
        optim_wrapper.backward(optim_wrapper.scale_loss(total))
        update = optim_wrapper.should_update()
        if update:
            if overlapped is not None:  # before the freeze drops gradients
                overlapped.finish()
            if iteration < self.freeze_last_layer_iters:  # before averaging: nothing to send
                self.student['dino_head'].cancel_last_layer_gradients()
                ibot_head_of(self.student).cancel_last_layer_gradients()
            if self.sync_gradients and overlapped is None:
                average_gradients(self.student)
        guard = getattr(optim_wrapper, 'nonfinite_guard', None) or self._guard
        return guard.step(optim_wrapper, {'loss': total, **losses}, iteration=iteration,
                          update=update)

    def _gradient_sync(self) -> Optional[OverlappedGradientSync]:
        """The overlapped synchroniser (``grad_sync='overlap'``, several processes, no FSDP),
        built at the first step (FSDP, which reduces itself, shards at its first step); else
        None: :func:`~.collectives.average_gradients` after backward, or nothing."""
        if self.grad_sync != 'overlap' or not self.sync_gradients or get_world_size() == 1:
            return None
        if self._overlapped_sync is None:
            self._overlapped_sync = OverlappedGradientSync(self.student)
        return self._overlapped_sync

    def forward(self, inputs: Any = None, data_samples: Any = None,
                mode: str = 'tensor') -> Union[Tensor, Dict[str, Tensor]]:
        """``mode='tensor'``: EMA-model CLS features (B, D) of ``inputs`` (B, 3, H, W)."""
        if mode != 'tensor':
            raise NotImplementedError(f'DinoSSLModel supports mode="tensor" only, got {mode!r}')
        with torch.no_grad():
            return self.ema['backbone'].forward_features(inputs)['x_norm_clstoken']

    def val_step(self, data: Any) -> List[Any]:
        """Not used: monitor pretraining with the k-NN hook instead."""
        raise NotImplementedError('DinoSSLModel has no validation step; use k-NN monitoring')

    test_step = val_step

