"""Many heads on one frozen backbone pass: learning-rate, layer and head-type sweeps.

With a frozen backbone nearly all of a probe's cost is the backbone forward, yet protocols are
tuned by training one head per learning rate. :class:`HeadSweepSegmentor` and
:class:`HeadSweepDepthEstimator` train N heads side by side on the same features of the same
augmented batch: one backbone forward per batch (for the union of the blocks the heads read),
then every head's forward, loss and backward. Their gradients do not mix (the backbone takes
none), each head has its own optimizer parameter group (lr, weight decay; see
:class:`densedino.engine.HeadSweepOptimWrapperConstructor`), so the schedule scales each group's
rate, and gradient clipping is per head.

Sharing the forward changes nothing but the cost: every head is built and initialised from the
random state a single-head model would build it from, and runs its training forward from the
random state a single-head model would be in (dropout masks), so a head trained in a sweep
equals the same head trained alone with the same seed, data and lr (``tests/test_head_sweep.py``).

Evaluation runs the backbone once per image (or window, or flip / scale of a test-time
augmentation) for all heads: the first head's inference records the backbone outputs, the
others replay them, so mmseg's whole / slide inference and the depth model's flips are used
unchanged. Predictions carry every head's result in ``head_preds`` (``{name: PixelData}``);
``pred_sem_seg`` / ``pred_depth_map`` hold the first live head's. ``HeadSweepMetric``
(densedino.evaluation) scores each head.

A head whose loss turns non-finite (a too-high lr: what sweeps probe) is marked diverged,
logged once, and left out of training and evaluation from then on; the others go on. The
marks are a buffer, so they survive checkpoints and resuming.

Config (``model.heads``: name -> spec; the base head is ``model.decode_head``)::

    model = dict(type='HeadSweepSegmentor', heads=dict(
        lr_3e-4=dict(lr=3e-4),                                  # decode_head, another lr
        four_last=dict(out_indices='four_last', use_cls_token=True),  # other blocks, + cls
        dpt=dict(head=dict(type='DPTDepthHead', ...)),          # another head type
    ))

A spec's ``lr`` / ``weight_decay`` set its optimizer group (default: the optimizer's);
``out_indices`` the blocks it reads ('last', 'four_last', 'four_even' or indices; default: the
backbone config's); ``head`` replaces ``decode_head`` entirely; every other key overrides a key
of ``decode_head``. Names are module names: no '.'.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from mmengine.logging import MMLogger
from mmseg.utils import add_prefix
from torch import nn

from ..registry import MODELS
from .backbones.dense import resolve_out_indices
from .depth_estimator import DinoDepthEstimator
from .heads import resolve_input_widths
from .segmentor import EncoderDecoder

#: Spec keys that are not head options.
SPEC_KEYS = ('lr', 'weight_decay', 'out_indices', 'head')
#: The data-sample field each head's prediction is gathered in.
HEAD_PREDS = 'head_preds'


def _rng_state() -> tuple:
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and \
        torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1])


class _FeatureCache:
    """Backbone outputs recorded by the first head's inference and replayed for the others."""

    def __init__(self) -> None:
        self.items: List[tuple] = []
        self.replay: Optional[Iterator[tuple]] = None

    def take(self, inputs: torch.Tensor, compute) -> tuple:
        if self.replay is None:
            feats = compute(inputs)
            self.items.append((tuple(inputs.shape), feats))
            return feats
        shape, feats = next(self.replay)
        if shape != tuple(inputs.shape):  # inference must call the backbone in one order
            raise RuntimeError(f'head sweep: replayed backbone input {shape} != {tuple(inputs.shape)}')
        return feats


class HeadSweepMixin:
    """N heads on one backbone: the part shared by segmentation and depth (module docstring)."""

    pred_field = 'pred_sem_seg'

    def __init__(self, *args, heads: Dict[str, dict], **kwargs) -> None:
        if not heads:
            raise ValueError('model.heads: a head sweep needs at least one head')
        for name, spec in heads.items():
            if not isinstance(name, str) or not name or '.' in name:
                raise ValueError(f'model.heads: head name {name!r} must be a non-empty string '
                                 "without '.'")
            if not isinstance(spec, dict):
                raise ValueError(f'model.heads.{name} must be a dict, got {type(spec).__name__}')
        self._head_specs = {name: dict(spec) for name, spec in heads.items()}
        self._features: Optional[_FeatureCache] = None
        self._active: Optional[str] = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ building
    def _init_decode_head(self, decode_head: dict) -> None:
        backbone = self._feature_source()
        depth = backbone.model.n_blocks if getattr(backbone, 'is_vit', False) else 4
        base_blocks = list(backbone.out_indices)
        blocks = {name: self._head_blocks(name, spec, decode_head, base_blocks, depth)
                  for name, spec in self._head_specs.items()}
        union = sorted({b for bs in blocks.values() for b in bs})
        backbone.tap(union)
        built, state = {}, _rng_state()
        for name, spec in self._head_specs.items():
            cfg = dict(spec['head']) if 'head' in spec else {
                **decode_head, **{k: v for k, v in spec.items() if k not in SPEC_KEYS}}
            cfg['in_index'] = [union.index(b) for b in blocks[name]]
            cfg = resolve_input_widths(cfg, backbone, f'model.heads.{name}')
            _set_rng_state(state)  # as a single-head model would build it
            built[name] = MODELS.build(cfg)
        self.heads = nn.ModuleDict(built)
        self.register_buffer('head_diverged', torch.zeros(len(built), dtype=torch.bool))
        self.head_blocks = blocks
        first = next(iter(built.values()))
        self.align_corners, self.num_classes = first.align_corners, first.num_classes
        self.out_channels = first.out_channels

    @staticmethod
    def _head_blocks(name: str, spec: dict, decode_head: dict, base_blocks: List[int],
                     depth: int) -> List[int]:
        """The backbone blocks head ``name`` reads."""
        cfg = spec.get('head', {**decode_head, **spec})
        if 'out_indices' in spec:
            own = resolve_out_indices(spec['out_indices'], depth)
        else:
            own = base_blocks
        index = cfg.get('in_index')
        if index is None:
            return list(own)
        index = [index] if isinstance(index, int) else list(index)
        if any(not -len(own) <= i < len(own) for i in index):
            raise ValueError(f'model.heads.{name}: in_index {index} is outside the {len(own)} '
                             f'blocks it reads ({own})')
        return [own[i] for i in index]

    def _init_auxiliary_head(self, auxiliary_head) -> None:
        if auxiliary_head is not None:
            raise ValueError('model.auxiliary_head: a head sweep trains its heads only; '
                             'remove the auxiliary head')
        super()._init_auxiliary_head(None)

    def init_weights(self) -> None:
        """Initialise the backbone (and neck), then every head from the same random state."""
        for name, child in self.named_children():
            if name != 'heads' and hasattr(child, 'init_weights'):
                child.init_weights()
        state = _rng_state()
        for head in self.heads.values():
            _set_rng_state(state)
            head.init_weights()
        self._is_init = True

    # ------------------------------------------------------------------- queries
    @property
    def decode_head(self) -> nn.Module:
        """The head inference is running for (mmseg's inference reads ``decode_head``)."""
        return self.heads[self._active or next(iter(self.heads))]

    @property
    def head_names(self) -> List[str]:
        return list(self.heads)

    def live_heads(self) -> List[str]:
        """Heads that have not diverged."""
        return [n for n, d in zip(self.heads, self.head_diverged.tolist()) if not d]

    def head_param_groups(self, lr: float, weight_decay: float) -> List[dict]:
        """One optimizer group per head: its trainable parameters, lr and weight decay (the
        spec's, else the given defaults), and its name."""
        return [dict(params=[p for p in head.parameters() if p.requires_grad],
                     lr=float(self._head_specs[name].get('lr', lr)),
                     weight_decay=float(self._head_specs[name].get('weight_decay', weight_decay)),
                     name=name)
                for name, head in self.heads.items()]

    # ------------------------------------------------------------------ training
    def extract_feat(self, inputs: torch.Tensor):
        if self._features is None:
            return super().extract_feat(inputs)
        return self._features.take(inputs, super().extract_feat)

    def loss(self, inputs: torch.Tensor, data_samples) -> dict:
        """Every live head's loss on one backbone pass, named ``<head>.decode.<loss>``."""
        feats = self.extract_feat(inputs)
        state, per_head = _rng_state(), {}
        for name in self.live_heads():
            _set_rng_state(state)  # the dropout masks a single-head run would draw
            per_head[name] = self.heads[name].loss(feats, data_samples, self.train_cfg)
        totals = [sum(v for k, v in losses.items() if 'loss' in k)
                  for losses in per_head.values()]
        finite = torch.stack([torch.as_tensor(t, dtype=torch.float32).detach()
                              for t in totals]).isfinite().tolist() if totals else []
        out = {}
        for (name, losses), ok in zip(per_head.items(), finite):
            if ok:
                out.update(add_prefix(losses, f'{name}.decode'))
            else:
                self._mark_diverged(name, totals[list(per_head).index(name)])
        if not out:
            raise FloatingPointError('head sweep: every head diverged (non-finite losses); '
                                     'lower the learning rates')
        return out

    def _mark_diverged(self, name: str, total) -> None:
        self._diverge(name, f'loss {float(total)}')

    def mark_group_diverged(self, name: str) -> None:
        """The optimizer's report of a head whose gradients or weights are not finite."""
        self._diverge(name, 'gradients or weights not finite')

    def _diverge(self, name: str, why: str) -> None:
        index = self.head_names.index(name)
        if bool(self.head_diverged[index]):
            return
        self.head_diverged[index] = True
        MMLogger.get_current_instance().warning(
            f'head sweep: head {name} diverged ({why}); it is left out of training and '
            f'evaluation, the other {len(self.live_heads())} heads go on')

    # ----------------------------------------------------------------- inference
    @contextmanager
    def _running(self, name: str, cache: _FeatureCache, record: bool):
        self._active, self._features = name, cache
        cache.replay = None if record else iter(cache.items)
        try:
            yield
        finally:
            self._active, self._features = None, None

    def predict(self, inputs: torch.Tensor, data_samples=None):
        """Every live head's prediction from one set of backbone passes (``head_preds``)."""
        live, cache, preds = self.live_heads(), _FeatureCache(), {}
        for i, name in enumerate(live):
            with self._running(name, cache, record=i == 0):
                samples = super().predict(inputs, data_samples)
            preds[name] = [s.get(self.pred_field) for s in samples]
            if data_samples is None:
                data_samples = samples
        for j, sample in enumerate(data_samples):
            sample.set_field({name: p[j] for name, p in preds.items()}, HEAD_PREDS,
                             field_type='data')
            sample.set_data({self.pred_field: preds[live[0]][j]})
        return data_samples

    def _forward(self, inputs: torch.Tensor, data_samples=None):
        """Every live head's raw output, ``{name: tensor}`` (one backbone pass)."""
        feats = super().extract_feat(inputs)
        return {name: self.heads[name].forward(feats) for name in self.live_heads()}


@MODELS.register_module()
class HeadSweepSegmentor(HeadSweepMixin, EncoderDecoder):
    """Segmentation head sweep: ``EncoderDecoder`` with ``heads`` (module docstring).

    Args:
        heads: ``{name: spec}``; see :mod:`densedino.models.head_sweep`.
        **kwargs: ``EncoderDecoder`` arguments; ``decode_head`` is the base head.
    """


@MODELS.register_module()
class HeadSweepDepthEstimator(HeadSweepMixin, DinoDepthEstimator):
    """Depth head sweep: ``DinoDepthEstimator`` with ``heads`` (module docstring).

    Args:
        heads: ``{name: spec}``; see :mod:`densedino.models.head_sweep`.
        **kwargs: ``DinoDepthEstimator`` arguments; ``decode_head`` is the base head.
    """

    pred_field = 'pred_depth_map'


def sweep_head_state(state_dict: Dict[str, torch.Tensor], head: str,
                     names: Optional[Sequence[str]] = None) -> Dict[str, torch.Tensor]:
    """A sweep checkpoint's state dict as a single-head model's: ``heads.<head>.*`` becomes
    ``decode_head.*``, the other heads and the sweep's buffers are dropped, the backbone kept.

    Raises:
        KeyError: (one line) ``head`` is not in the checkpoint, naming the heads that are.
    """
    names = list(names) if names is not None else sweep_head_names(state_dict)
    if head not in names:
        raise KeyError(f'no head {head!r} in the sweep checkpoint; its heads: {", ".join(names)}')
    prefix, out = f'heads.{head}.', {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            out['decode_head.' + key[len(prefix):]] = value
        elif not key.startswith('heads.') and key != 'head_diverged':
            out[key] = value
    return out


def sweep_head_names(state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """The head names of a sweep checkpoint's state dict, in order."""
    names: List[str] = []
    for key in state_dict:
        if key.startswith('heads.'):
            name = key.split('.')[1]
            if name not in names:
                names.append(name)
    return names

