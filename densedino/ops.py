"""Small tensor operations shared by the models and the visualisation tools."""
import torch
import torch.nn.functional as F


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
