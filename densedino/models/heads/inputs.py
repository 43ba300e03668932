"""What a head reads from the backbone: the maps it consumes and how wide they are.

:func:`block_maps` / :func:`resize_concat` turn a backbone's ``BlockFeatures`` tuple into the
maps a head consumes (one place for all heads).

Input widths, ``in_channels='auto'``: a head's input-width arguments must equal what the backbone outputs at the blocks the head
reads, which depends on the arch (384 for ViT-S, 768 for ViT-B ...) and on ``out_indices``.
Stated by hand they go stale when the arch is changed (``--cfg-options
model.backbone.arch=dinov2_vitb14``) and BatchNorm fails on the first batch. So the segmentor and
the depth model (``densedino.models.segmentor.EncoderDecoder``) pass each head config through
:func:`resolve_input_widths` once the backbone is built: ``'auto'`` becomes the backbone's widths,
and an explicit value is checked against them.

The width arguments, and what they hold:

- ``in_channels``: one width per backbone output the head reads (``in_index``; all outputs when it
  is None), an int when ``in_index`` is an int (mmseg's single-input heads). It is the width of
  each block's patch map: heads that append the class token (``use_cls_token``) double it
  themselves.
- ``embed_dims`` (``DPTDepthHead``, mmseg's ``DPTHead``): the one width the outputs read share.
"""
import inspect
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS

AUTO = 'auto'
Widths = Union[int, List[int]]
# Width arguments of heads from other packages; densedino's heads list theirs in
# ``input_width_args``. Other heads: ``in_channels`` only (their ``embed_dims``, if any, may be
# an inner width, e.g. mmseg's SegmenterMaskTransformerHead).
_FOREIGN_WIDTH_ARGS = {'DPTHead': ('in_channels', 'embed_dims')}


def resolve_input_widths(head_cfg: dict, source: nn.Module, key: str) -> dict:
    """A copy of ``head_cfg`` whose width arguments fit ``source``'s outputs.

    Args:
        head_cfg: The head's config (``type`` a registered name or a class).
        source: The module whose outputs the head reads (backbone, or neck if there is one);
            it reports its widths as ``out_channels``, one int per output (``DinoBackbone``).
        key: The head's config key for messages, e.g. ``'model.decode_head'``.

    Raises:
        ValueError: (one line) an explicit width that differs from the source's, ``'auto'`` with a
            source that reports no widths, or ``in_index`` outside the source's outputs.
    """
    cfg = dict(head_cfg)
    head_cls = _head_class(cfg.get('type'))
    widths = _reported_widths(source)
    for arg in width_args(head_cls):
        given = cfg.get(arg, _default(head_cls, arg))
        if widths is None:
            if given == AUTO:
                raise ValueError(f"{key}.{arg}='auto' needs a backbone that reports its output "
                                 f'widths (out_channels); {type(source).__name__} does not: '
                                 f'give {key}.{arg} explicitly')
            continue
        if given != AUTO and arg not in cfg:
            continue  # a class default that is no width choice of the config: left alone
        expected = _expected(arg, widths, cfg.get('in_index', _default(head_cls, 'in_index')),
                             key, source)
        if given == AUTO:
            cfg[arg] = expected
        elif _as_list(given) != _as_list(expected):
            raise ValueError(f'{key}.{arg}={_text(given)} does not fit the backbone: '
                             f'{_describe(source)} gives {_text(expected)}; set {key}.{arg}='
                             f"'auto' (or {_text(expected)})")
    return cfg


def block_widths(in_channels: Union[str, int, Sequence[int]],
                 in_index: Optional[Sequence[int]], head: str) -> List[int]:
    """``in_channels`` as one width per block read, checked against ``in_index`` (linear heads).

    Raises:
        ValueError: unresolved ``'auto'`` (the head is built outside a segmentor or depth model),
            or ``in_index`` and ``in_channels`` of different lengths.
    """
    require_resolved(in_channels, 'in_channels', head)
    per_block = [in_channels] if isinstance(in_channels, int) else list(in_channels)
    if in_index is not None and len(in_index) != len(per_block):
        raise ValueError(f'in_index {list(in_index)} and in_channels {per_block} differ '
                         'in length')
    return per_block


def require_resolved(value: Any, arg: str, head: str) -> None:
    """Refuse ``'auto'`` in a head built on its own: only a model knows its backbone's widths."""
    if value == AUTO:
        raise ValueError(f"{head}: {arg}='auto' is resolved from the backbone when a segmentor or "
                         f'depth model builds the head; give {arg} to build the head alone')


def width_args(head_cls: Optional[type]) -> Tuple[str, ...]:
    """The constructor arguments of ``head_cls`` that are its input widths."""
    if head_cls is None:
        return ('in_channels',)
    declared = getattr(head_cls, 'input_width_args', None)
    return tuple(declared or _FOREIGN_WIDTH_ARGS.get(head_cls.__name__, ('in_channels',)))


def _head_class(head_type: Any) -> Optional[type]:
    if isinstance(head_type, type):
        return head_type
    return MODELS.get(head_type) if isinstance(head_type, str) else None


def _default(head_cls: Optional[type], arg: str) -> Any:
    """The default of constructor argument ``arg`` along ``head_cls``'s MRO (None if none)."""
    for klass in getattr(head_cls, '__mro__', ()):
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        param = inspect.signature(init).parameters.get(arg)
        if param is not None:
            return None if param.default is inspect.Parameter.empty else param.default
    return None


def _reported_widths(source: nn.Module) -> Optional[List[int]]:
    widths = getattr(source, 'out_channels', None)
    if isinstance(widths, (list, tuple)) and widths and all(isinstance(w, int) for w in widths):
        return list(widths)
    return None


def _expected(arg: str, widths: List[int], in_index: Any, key: str, source: nn.Module) -> Widths:
    """The widths the head reads, in ``arg``'s form (see the module docstring)."""
    indices = range(len(widths)) if in_index is None else (
        [in_index] if isinstance(in_index, int) else list(in_index))
    bad = [i for i in indices if not -len(widths) <= i < len(widths)]
    if bad:
        raise ValueError(f'{key}.in_index={_text(in_index)} reads outputs {bad} that '
                         f'{_describe(source)} does not have ({len(widths)} outputs)')
    selected = [widths[i] for i in indices]
    if arg == 'embed_dims':
        if len(set(selected)) != 1:
            raise ValueError(f'{key}.embed_dims: the outputs read ({_describe(source)}, in_index '
                             f'{_text(in_index)}) differ in width {selected}; DPT needs one width')
        return selected[0]
    return selected[0] if isinstance(in_index, int) else selected


def _describe(source: nn.Module) -> str:
    arch, taps = getattr(source, 'arch', None), getattr(source, 'out_indices', None)
    name = f'backbone {arch}' if arch else type(source).__name__
    return f'{name} (out_indices {list(taps)})' if taps is not None else name


def _as_list(value: Any) -> List[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else repr(value)


def block_maps(inputs: Sequence, in_index: Optional[Sequence[int]] = None,
               use_cls_token: bool = False) -> List[torch.Tensor]:
    """Select tapped blocks and optionally append the class token to every position.

    Args:
        inputs: The backbone output: ``BlockFeatures(map, cls_token)`` items, or bare (B, C, h, w)
            maps.
        in_index: Which items to use (all by default).
        use_cls_token: Concatenate the class token, broadcast over the grid, after each map's
            channels (DINOv2 depth heads): C -> 2C.

    Returns:
        List of (B, C or 2C, h, w) maps.
    """
    items = list(inputs) if in_index is None else [inputs[i] for i in in_index]
    maps = []
    for item in items:
        fmap = item[0] if isinstance(item, tuple) else item
        if use_cls_token:
            if not isinstance(item, tuple):
                raise ValueError('use_cls_token=True needs backbone outputs with class tokens')
            cls = item[1][:, :, None, None].expand(-1, -1, *fmap.shape[-2:])
            fmap = torch.cat([fmap, cls], dim=1)
        maps.append(fmap)
    return maps


def resize_concat(maps: Sequence[torch.Tensor], align_corners: bool = False) -> torch.Tensor:
    """Resize every map to the first one's size (bilinear) and concatenate channels."""
    size = maps[0].shape[-2:]
    resized = [m if m.shape[-2:] == size else
               F.interpolate(m, size=size, mode='bilinear', align_corners=align_corners)
               for m in maps]
    return torch.cat(resized, dim=1) if len(resized) > 1 else resized[0]
