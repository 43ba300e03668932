"""The DINO projection head: MLP -> L2 normalise -> weight-normalised linear to prototypes.

DINOv1, iBOT, DINOv2 and DINOv3 all use the same shape of head: a 3-layer MLP (``in_dim`` ->
2048 -> 2048 -> 256 bottleneck, GELU, optional BatchNorm as DINOv1's ``use_bn`` option), an L2
normalisation of the bottleneck and a bias-free linear layer to 65,536 prototypes. In v1/v2 that
last layer is weight-normalised with the norm ``g`` set to 1 (DINOv1 keeps it fixed, so each
prototype is a unit vector and a logit a cosine similarity in [-1, 1]; DINOv2's code lets ``g``
train).

Here the weight normalisation is written out (:class:`NormalizedLinear`) instead of using
``torch.nn.utils.parametrizations.weight_norm``: with ``g`` fixed to 1 the layer is just
``F.linear(x, F.normalize(weight, dim=1))`` and its state dict holds one tensor,
``last_layer.weight`` (the direction ``v``). Official checkpoints' ``weight_v`` / ``weight_g``
pairs load through a state-dict hook when ``weight_g`` is all ones; a head with a trained ``g``
loads into ``norm_last_layer=False``, whose plain linear layer takes the effective weight
``g v / |v|``.

The last layer is kept frozen for the first epoch: call :meth:`DINOHead.cancel_last_layer_gradients`
after ``backward()`` and before the optimiser step while ``epoch < freeze_last_layer_epochs``.

References:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
    Salimans and Kingma, "Weight Normalization", NeurIPS 2016.
"""
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import MODELS


class NormalizedLinear(nn.Module):
    """Bias-free linear layer whose rows (prototypes) are unit vectors: weight norm with g = 1.

    Args:
        in_features: input dimension (the bottleneck).
        out_features: number of prototypes K.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def normalized_weight(self) -> Tensor:
        """The effective (K, in_features) weight, each row of norm 1."""
        return F.normalize(self.weight, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_features) -> (..., K) cosine-similarity logits when ``x`` is unit-norm."""
        return F.linear(x, self.normalized_weight())

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        # Official checkpoints store torch's legacy weight_norm pair; g == 1 makes v the weight.
        g_key, v_key = prefix + 'weight_g', prefix + 'weight_v'
        if v_key in state_dict:
            g = state_dict.pop(g_key, None)
            if g is not None and not torch.allclose(g.float(), torch.ones_like(g.float())):
                raise ValueError(f'{g_key} must be all ones for a normalised last layer (values '
                                 f'in [{g.min().item():.4g}, {g.max().item():.4g}]: g was trained, '
                                 'as DINOv2 does): build the head with norm_last_layer=False')
            state_dict[prefix + 'weight'] = state_dict.pop(v_key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f'in_features={self.in_features}, out_features={self.out_features}, g=1'


def _mlp(in_dim: int, hidden_dim: int, bottleneck_dim: int, n_layers: int,
         use_bn: bool) -> nn.Sequential:
    dims = [in_dim] + [hidden_dim] * (n_layers - 1) + [bottleneck_dim]
    layers: List[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):  # noqa: B905 (py3.9)
        layers.append(nn.Linear(d_in, d_out))
        if i < n_layers - 1:
            if use_bn:
                layers.append(nn.BatchNorm1d(d_out))
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


@MODELS.register_module()
class DINOHead(nn.Module):
    """DINO/iBOT projection head.

    Args:
        in_dim: backbone embedding dimension.
        n_prototypes: output dimension K (65,536 in DINOv1/v2/v3).
        hidden_dim: MLP hidden width.
        bottleneck_dim: MLP output width, L2-normalised before the last layer.
        n_layers: number of MLP linear layers (>= 1; 1 maps ``in_dim`` straight to the bottleneck).
        use_bn: BatchNorm after each hidden linear layer (DINOv1 option, off by default).
        norm_last_layer: weight-normalised last layer with g = 1 (v1/v2). False gives a plain
            bias-free ``nn.Linear`` (v3 style).
    """

    def __init__(self, in_dim: int, n_prototypes: int = 65536, *, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, n_layers: int = 3, use_bn: bool = False,
                 norm_last_layer: bool = True) -> None:
        super().__init__()
        for name, value in (('in_dim', in_dim), ('n_prototypes', n_prototypes),
                            ('hidden_dim', hidden_dim), ('bottleneck_dim', bottleneck_dim),
                            ('n_layers', n_layers)):
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, n_layers, use_bn)
        self.mlp.apply(self._init_weights)
        if norm_last_layer:
            self.last_layer: nn.Module = NormalizedLinear(bottleneck_dim, n_prototypes)
        else:
            self.last_layer = nn.Linear(bottleneck_dim, n_prototypes, bias=False)
            nn.init.trunc_normal_(self.last_layer.weight, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, *, no_last_layer: bool = False) -> Tensor:
        """Project tokens to prototype logits.

        Args:
            x: (..., in_dim) class or patch tokens (2-D when ``use_bn``).
            no_last_layer: return the L2-normalised (..., bottleneck_dim) features instead.

        Returns:
            (..., n_prototypes) logits.
        """
        x = F.normalize(self.mlp(x), dim=-1, eps=1e-6 if x.dtype == torch.float16 else 1e-12)
        return x if no_last_layer else self.last_layer(x)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        # A plain last layer takes a weight_norm pair as its effective weight g v / |v|.
        g_key, v_key = prefix + 'last_layer.weight_g', prefix + 'last_layer.weight_v'
        if isinstance(self.last_layer, nn.Linear) and v_key in state_dict:
            v = state_dict.pop(v_key)
            g = state_dict.pop(g_key, None)
            weight = F.normalize(v.float(), dim=1)
            if g is not None:
                weight = weight * g.float().reshape(-1, 1)
            state_dict[prefix + 'last_layer.weight'] = weight.to(v.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def cancel_last_layer_gradients(self) -> None:
        """Drop the last layer's gradients (set to None) so the optimiser step skips it.

        Call after ``backward()`` during the first ``freeze_last_layer`` epoch(s).
        """
        for p in self.last_layer.parameters():
            p.grad = None
