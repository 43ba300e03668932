"""Mixed precision without a GPU: bf16 autocast for CPUs (mmengine's AmpOptimWrapper needs CUDA)."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """Runs forward and loss under ``torch.autocast(dtype=bfloat16)`` on the model's device.

    bf16 keeps fp32's exponent range, so no loss scaling is needed. Parameters, gradients and
    optimizer state stay fp32.
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        param = next(model.parameters(), None)
        device = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device_type=device,
                                                          dtype=torch.bfloat16):
            yield
