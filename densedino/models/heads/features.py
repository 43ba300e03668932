"""Turning a backbone's ``BlockFeatures`` tuple into the maps a head consumes (one place for all heads)."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F


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
