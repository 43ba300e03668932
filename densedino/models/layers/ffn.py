"""Feed-forward networks of the DINO families: GELU MLP and the two SwiGLU layouts."""
import torch
import torch.nn.functional as F
from torch import nn


def swiglu_hidden_dim(hidden: int, align: int = 8) -> int:
    """SwiGLU hidden width used by DINOv2/DINOv3: 2/3 of ``hidden``, rounded up to ``align``."""
    d = int(hidden * 2 / 3)
    return d + (-d) % align


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUPacked(nn.Module):
    """DINOv2 SwiGLU: ``w12`` packs both input projections; out = w3(silu(a) * b)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden, bias=bias)
        self.w3 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class SwiGLU(nn.Module):
    """DINOv3 SwiGLU with separate projections: out = w3(silu(w1 x) * w2 x)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=bias)
        self.w2 = nn.Linear(dim, hidden, bias=bias)
        self.w3 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))
