"""bf16 inference for DINO backbones: bf16 weights and activations, fp32 where accuracy needs it.

``to_bf16(model)`` casts the parameters to bfloat16 in place; feed it bf16 images and the tokens
between blocks (the residual stream, every block output, the features) are bf16. What needs fp32
runs in fp32 inside the model or the kernels:

- LayerNorm statistics (torch's CPU and CUDA kernels accumulate bf16 inputs in fp32),
- the softmax of attention (``F.scaled_dot_product_attention`` keeps fp32 running sums),
- RoPE angles and the rotation (the ``periods`` buffer stays fp32; ``Attention`` rotates in fp32),
- position-embedding resampling (bicubic, computed in fp32).

How the matrix products run depends on the hardware (``bf16_matmul_mode``):

- ``'native'``: bf16 GEMMs (cuBLAS / oneDNN) and bf16 attention. Chosen on CUDA GPUs of compute
  capability 8.0 or newer (Ampere on) and on CPUs with
  bf16 dot-product instructions (AVX512-BF16 or AMX), where torch reports oneDNN bf16 support.
- ``'fp32'``: for CPUs without them (AVX2 only, e.g. AMD Zen 3), where torch's fallback bf16 GEMM
  runs 5-100x slower than its fp32 GEMM. Each attention and FFN sub-layer upcasts its bf16 input
  once, runs in fp32 with its bf16 weights upcast on the fly, and rounds its output to bf16; other
  Linear / Conv2d layers (the patch embedding) do the same one by one. The product of two bf16
  numbers is exact in fp32, so each GEMM is a bf16 GEMM with fp32 accumulation; the sub-layer
  intermediates (q, k, v, attention output, FFN hidden) are simply not rounded to bf16, which
  saves four casts per sub-layer and is slightly more accurate than rounding them.
"""
from typing import Dict, Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Attention, Mlp, SwiGLU, SwiGLUPacked

MATMUL_MODES = ('auto', 'native', 'fp32')


def bf16_matmul_mode(device: Optional[torch.device] = None) -> str:
    """'native' where bf16 GEMMs have hardware support on ``device`` (default CPU), else 'fp32'."""
    device = torch.device(device if device is not None else 'cpu')
    if device.type == 'cuda':
        # bf16 tensor cores from Ampere (compute capability 8.0) on; older GPUs emulate it.
        if not torch.cuda.is_available():
            return 'native'  # nothing to ask; the device cannot run here anyway
        index = device.index if device.index is not None else torch.cuda.current_device()
        return 'native' if torch.cuda.get_device_capability(index) >= (8, 0) else 'fp32'
    if device.type == 'cpu' and torch.backends.mkldnn.is_available() \
            and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 'native'
    return 'fp32'


class Fp32ComputeLinear(nn.Linear):
    """A Linear computed in fp32 from (possibly) bf16 input and weights; keeps the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.linear(x.float(), self.weight.float(), bias).to(x.dtype)


class Fp32ComputeConv2d(nn.Conv2d):
    """A Conv2d computed in fp32 from (possibly) bf16 input and weights; keeps the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return self._conv_forward(x.float(), self.weight.float(), bias).to(x.dtype)


class _Fp32Inside:
    """Mixin: run the wrapped sub-layer in fp32 on its upcast input; return the input dtype."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return super().forward(x.float(), *args, **kwargs).to(x.dtype)


class Fp32ComputeAttention(_Fp32Inside, Attention):
    """``Attention`` computed in fp32 (see the module docstring)."""


class Fp32ComputeMlp(_Fp32Inside, Mlp):
    """``Mlp`` computed in fp32 (see the module docstring)."""


class Fp32ComputeSwiGLU(_Fp32Inside, SwiGLU):
    """``SwiGLU`` computed in fp32 (see the module docstring)."""


class Fp32ComputeSwiGLUPacked(_Fp32Inside, SwiGLUPacked):
    """``SwiGLUPacked`` computed in fp32 (see the module docstring)."""


_FP32_COMPUTE: Dict[Type[nn.Module], Type[nn.Module]] = {
    nn.Linear: Fp32ComputeLinear, nn.Conv2d: Fp32ComputeConv2d,
    Attention: Fp32ComputeAttention, Mlp: Fp32ComputeMlp, SwiGLU: Fp32ComputeSwiGLU,
    SwiGLUPacked: Fp32ComputeSwiGLUPacked,
}
_NATIVE = {v: k for k, v in _FP32_COMPUTE.items()}


def _swap_classes(model: nn.Module, table: Dict[Type[nn.Module], Type[nn.Module]]) -> None:
    # Only the class changes (its forward); parameters, names and hooks stay: state dicts match.
    for m in model.modules():
        if type(m) in table:
            m.__class__ = table[type(m)]


def to_bf16(model: nn.Module, *, matmul: str = 'auto') -> nn.Module:
    """Cast ``model`` in place for bf16 inference and return it.

    Args:
        model: A densedino backbone (any ``nn.Module`` works).
        matmul: 'auto' (``bf16_matmul_mode`` of the model's device), 'native' or 'fp32'
            (see the module docstring). Calling again with another mode switches modes.

    Returns:
        The same module: every floating-point parameter is bf16, buffers (RoPE periods) keep
        their dtype, ``model.bf16_matmul`` names the mode; bf16 images in, bf16 features out.
    """
    if matmul not in MATMUL_MODES:
        raise ValueError(f'matmul must be one of {MATMUL_MODES}, got {matmul!r}')
    if matmul == 'auto':
        first = next(model.parameters(), None)
        matmul = bf16_matmul_mode(first.device if first is not None else None)
    for p in model.parameters():
        if p.is_floating_point():
            p.data = p.data.to(torch.bfloat16)
    _swap_classes(model, _FP32_COMPUTE if matmul == 'fp32' else _NATIVE)
    model.bf16_matmul = matmul
    return model
