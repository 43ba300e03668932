"""``DinoBackbone``: the registered dense backbone that configs build.

Fixed output: a tuple with one ``BlockFeatures(map, cls_token)`` per tapped block, where
``map`` is (B, C, h, w) and ``cls_token`` is (B, C) (for ConvNeXt: the global average of the
stage map). Register/storage tokens never reach the heads.
"""
import logging
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ..layers import center_pad
from ...registry import MODELS
from .factory import create_backbone

logger = logging.getLogger(__name__)

# DINOv2's depth heads tap these blocks ("four_even"); ViT-L's first index is 4, not 5, in the
# official table, so the table wins over the even-spacing rule where it has an entry.
_FOUR_EVEN = {12: [2, 5, 8, 11], 24: [4, 11, 17, 23], 40: [9, 19, 29, 39]}
PAD_MODES = ('center', 'error')


class BlockFeatures(NamedTuple):
    """Features of one tapped block: ``map`` (B, C, h, w) and ``cls_token`` (B, C)."""
    map: torch.Tensor
    cls_token: torch.Tensor


def resolve_out_indices(spec: Union[str, int, Sequence[int]], depth: int) -> List[int]:
    """Block indices for 'last', 'four_last', 'four_even', an int or a list (negatives allowed).

    Raises:
        ValueError: unknown name or an index outside ``[-depth, depth)``.
    """
    if isinstance(spec, str):
        if spec == 'last':
            return [depth - 1]
        if spec == 'four_last':
            idx = list(range(depth - 4, depth))
        elif spec == 'four_even':
            idx = _FOUR_EVEN.get(depth, [depth * k // 4 - 1 for k in (1, 2, 3, 4)])
        else:
            raise ValueError(f"out_indices must be 'last', 'four_last', 'four_even' or indices, "
                             f'got {spec!r}')
        if depth < 4:
            raise ValueError(f'out_indices={spec!r} needs at least 4 blocks, the model has {depth}')
        return idx
    idx = [spec] if isinstance(spec, int) else list(spec)
    bad = [i for i in idx if not -depth <= i < depth]
    if bad or not idx:
        raise ValueError(f'out_indices {idx} out of range for {depth} blocks')
    return [i % depth for i in idx]


@MODELS.register_module()
class DinoBackbone(BaseModule):
    """A DINO backbone with dense outputs, freezing options and input padding.

    Args:
        arch: Preset name (``densedino.list_backbones()``).
        checkpoint: Backbone weights (any format ``create_backbone`` reads), or None.
        pretrained: Load the released weights of ``arch`` instead (fetched into the cache on
            first use: docs/zoo.md); the protocol configs set it, so they need no file. Give
            either this or ``checkpoint``.
        out_indices: Blocks (ConvNeXt: stages 0-3) to tap: indices or 'last' / 'four_last' /
            'four_even' (docs/protocols.md section 2).
        norm: Apply the final norm to each tapped block (DINOv2 segmentation: yes; DINOv2 depth:
            no).
        frozen: Freeze the backbone (no autograd, eval mode whatever the runner says).
        trainable_blocks: With ``frozen``, train the last N blocks (and the final norm); the rest
            stays frozen and in eval mode.
        pad_mode: 'center' pads inputs to the patch multiple as DINOv2 does; 'error' refuses them.
        arch_overrides: Preset options to replace (e.g. ``dict(depth=2)`` for small tests).
        compile: ``torch.compile`` the backbone: every ViT block in place (one compiled code
            shared by the blocks; new input sizes are compiled once, then run with dynamic
            shapes), the whole ConvNeXt. The first batch pays the compilation (tens of seconds
            on a CPU); weights and checkpoints are unchanged. Not with ``grad_checkpointing``
            on ConvNeXt.
        grad_checkpointing: Recompute the activations of the blocks that train (a partly
            unfrozen or unfrozen ViT) in the backward instead of keeping them: ViT-L / ViT-g
            recipes in the memory of a smaller model, for about one more forward per step.
            ViTs only.
        init_cfg: Unused (weights come from ``checkpoint``); kept for mmengine.
    """

    def __init__(self, arch: str, *, checkpoint: Optional[str] = None, pretrained: bool = False,
                 out_indices: Union[str, int, Sequence[int]] = 'last', norm: bool = True,
                 frozen: bool = True, trainable_blocks: int = 0, pad_mode: str = 'center',
                 arch_overrides: Optional[dict] = None, compile: bool = False,
                 grad_checkpointing: bool = False, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        if pad_mode not in PAD_MODES:
            raise ValueError(f'pad_mode must be one of {PAD_MODES}, got {pad_mode!r}')
        self.model = create_backbone(arch, checkpoint=checkpoint, pretrained=pretrained,
                                     **(arch_overrides or {}))
        self.is_vit = hasattr(self.model, 'blocks')
        depth = self.model.n_blocks if self.is_vit else 4
        if not 0 <= trainable_blocks <= depth:
            raise ValueError(f'trainable_blocks must be in [0, {depth}], got {trainable_blocks}')
        if trainable_blocks and not frozen:
            raise ValueError('trainable_blocks only applies to a frozen backbone (frozen=True)')
        self.arch, self.norm, self.pad_mode = arch, norm, pad_mode
        self.frozen, self.trainable_blocks = frozen, trainable_blocks
        self.patch_size = self.model.patch_size
        self.embed_dim = self.model.embed_dim
        self.tap(out_indices)
        self._apply_freezing()
        if grad_checkpointing:
            if not self.is_vit:
                raise ValueError(f'grad_checkpointing is for ViT backbones; {arch} is a ConvNeXt')
            self.model.set_grad_checkpointing(True)
        if compile:
            self.compile_backbone()

    def compile_backbone(self, **options) -> None:
        """``torch.compile`` the network in place (what ``compile=True`` does; for models that
        are already built, e.g. by ``init_model``): every ViT block, or the whole ConvNeXt."""
        if self.is_vit:
            self.model.compile_blocks(**options)
        else:
            self.model.compile(**options)

    def tap(self, out_indices: Union[str, int, Sequence[int]]) -> None:
        """Output these blocks from now on (indices or a name, as ``out_indices``); sets
        ``out_indices`` and ``out_channels``. A head sweep taps the union of its heads' blocks."""
        depth = self.model.n_blocks if self.is_vit else 4
        self.out_indices = resolve_out_indices(out_indices, depth)
        self.out_channels = [self.model.embed_dims[i] for i in self.out_indices] \
            if not self.is_vit else [self.embed_dim] * len(self.out_indices)

    # ------------------------------------------------------------- freezing
    def _trainable_modules(self) -> List[nn.Module]:
        if not self.frozen:
            return [self.model]
        if not self.trainable_blocks:
            return []
        if not self.is_vit:
            return [self.model.stages[-self.trainable_blocks:], self.model.norm]
        tail = list(self.model.blocks[-self.trainable_blocks:]) + [self.model.norm]
        return tail + ([self.model.cls_norm] if self.model.cls_norm is not None else [])

    def _apply_freezing(self) -> None:
        self.model.requires_grad_(not self.frozen)
        for m in self._trainable_modules():
            m.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> 'DinoBackbone':
        super().train(mode)
        if self.frozen:
            self.model.eval()
            for m in self._trainable_modules():
                m.train(mode)
        return self

    def init_weights(self) -> None:
        """Weights are set at construction (random preset init or ``checkpoint``); keep them."""

    # -------------------------------------------------------------- forward
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p == 0 and W % p == 0:
            return x
        if self.pad_mode == 'error':
            raise ValueError(f'input {H}x{W} is not a multiple of the patch size {p} of '
                             f"{self.arch}; resize it or use pad_mode='center'")
        return center_pad(x, p)

    def forward(self, x: torch.Tensor) -> Tuple[BlockFeatures, ...]:
        """(B, 3, H, W) -> one ``BlockFeatures`` per entry of ``out_indices``."""
        x = self._prepare(x)
        if self.is_vit:
            return self._forward_vit(x)
        return self._forward_convnext(x)

    def _grad_from(self) -> int:
        """First block that runs with autograd (blocks before it are frozen)."""
        if not self.frozen:
            return 0
        return self.model.n_blocks - self.trainable_blocks if self.trainable_blocks else 1 << 30

    def _forward_vit(self, x: torch.Tensor) -> Tuple[BlockFeatures, ...]:
        vit, grad_from = self.model, self._grad_from()
        grad = torch.is_grad_enabled()
        last = max(self.out_indices)
        with torch.set_grad_enabled(grad and grad_from == 0):
            tokens, rope, (h, w) = vit.prepare_tokens(x)
        taps = {}
        for i, blk in enumerate(vit.blocks[:last + 1]):
            with torch.set_grad_enabled(grad and i >= grad_from):
                tokens = blk(tokens, rope)
            if i in self.out_indices:
                taps[i] = tokens
        out = []
        with torch.set_grad_enabled(grad and grad_from < vit.n_blocks):
            for i in self.out_indices:
                t = vit.apply_norm(taps[i]) if self.norm else taps[i]
                fmap = t[:, vit.num_prefix_tokens:].reshape(x.shape[0], h, w, -1)
                out.append(BlockFeatures(fmap.permute(0, 3, 1, 2).contiguous(), t[:, 0]))
        return tuple(out)

    def _forward_convnext(self, x: torch.Tensor) -> Tuple[BlockFeatures, ...]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (
                self.frozen and not self.trainable_blocks)):
            stages = self.model.forward_stages(x, norm=self.norm)
        return tuple(BlockFeatures(stages[i], stages[i].mean(dim=(2, 3)))
                     for i in self.out_indices)
