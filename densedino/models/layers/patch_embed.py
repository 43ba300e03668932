"""Patch embedding: a strided convolution that turns pixels into a token grid, and the padding
that fits an image to that grid."""
import torch
import torch.nn.functional as F
from torch import nn


def center_pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad H and W up to ``multiple``: floor(pad / 2) top/left, the rest bottom/right.

    The padding DINOv2 applies before its dense heads, and the one every densedino dense model
    and feature visualisation uses.
    """
    H, W = x.shape[-2:]
    ph, pw = -H % multiple, -W % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding (checkpoint keys ``proj.weight``, ``proj.bias``).

    Args:
        patch_size: Side of a square patch in pixels.
        in_chans: Input channels.
        embed_dim: Token width D.
    """

    def __init__(self, *, patch_size: int, in_chans: int = 3, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, h, w, D) with h = H / p, w = W / p."""
        _, _, H, W = x.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(
                f'input size {H}x{W} is not a multiple of the patch size {p}; pad or resize it '
                f'(the dense DinoBackbone pads for you with pad_mode="center")')
        return self.proj(x).permute(0, 2, 3, 1)
