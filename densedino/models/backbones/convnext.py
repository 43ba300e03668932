"""DINOv3 ConvNeXt backbone (tiny / small / base / large).

The module tree reproduces the official ``dinov3.models.convnext.ConvNeXt`` parameter layout, so the
official hub files (``dinov3_convnext_{size}_pretrain_lvd1689m-<hash>.pth``) load with ``strict=True``
and no conversion. Official ``state_dict()`` keys (``s`` stage 0-3, ``j`` block in the stage)::

    downsample_layers.0.0.{weight,bias}     stem Conv2d 4x4 / stride 4      (C0, in_chans, 4, 4)
    downsample_layers.0.1.{weight,bias}     stem channels-first LayerNorm   (C0,)
    downsample_layers.{s}.0.{weight,bias}   s = 1..3: channels-first LN    (C_{s-1},)
    downsample_layers.{s}.1.{weight,bias}   s = 1..3: Conv2d 2x2 / stride 2 (C_s, C_{s-1}, 2, 2)
    stages.{s}.{j}.dwconv.{weight,bias}     depthwise Conv2d 7x7            (C_s, 1, 7, 7)
    stages.{s}.{j}.norm.{weight,bias}       channels-last LayerNorm         (C_s,)
    stages.{s}.{j}.pwconv1.{weight,bias}    Linear C -> 4C                  (4 C_s, C_s)
    stages.{s}.{j}.pwconv2.{weight,bias}    Linear 4C -> C                  (C_s, 4 C_s)
    stages.{s}.{j}.gamma                    LayerScale                      (C_s,)
    norm.{weight,bias}                      final LayerNorm                 (C3,)
    norms.3.{weight,bias}                   the same tensors as ``norm.*`` (official ``norms`` list:
                                            3 Identities + the final norm, saved twice in the file)

All LayerNorms use eps 1e-6. Hugging Face ``DINOv3ConvNextModel`` files name the same tensors
``stages.{s}.downsample_layers.{k}.*``, ``stages.{s}.layers.{j}.{depthwise_conv,layer_norm,
pointwise_conv1,pointwise_conv2}.*``, ``stages.{s}.layers.{j}.gamma`` and ``layer_norm.*`` (in memory
the stages carry a ``model.`` prefix); :func:`.convert.convnext_state_dict_from_hf` maps them back.

Input sizes: the strided convolutions have no padding, so an input of (H, W) gives stage maps of
``floor(H / 4) // 2**s`` (no error); trailing rows/columns that do not fill a stride are dropped.
Dense users should pad inputs to a multiple of 32 (``patch_size``) for aligned maps.
"""
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import DropPath, drop_path_rates

logger = logging.getLogger(__name__)

NUM_STAGES = 4

CONVNEXT_PRESETS: Dict[str, Dict[str, Tuple[int, ...]]] = {
    'dinov3_convnext_tiny': dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    'dinov3_convnext_small': dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    'dinov3_convnext_base': dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    'dinov3_convnext_large': dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
}


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map (the official "channels_first" LayerNorm)."""

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Block(nn.Module):
    """ConvNeXt block: dwconv 7x7 -> LN -> Linear 4x -> GELU -> Linear -> gamma -> drop path -> residual.

    Args:
        dim: Channels C.
        drop_prob: Stochastic depth probability of this block.
        layer_scale_init: Initial LayerScale value; 0 disables LayerScale (no ``gamma`` key).
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, drop_prob: float = 0.0, layer_scale_init: float = 1e-6,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.layer_scale_init = layer_scale_init
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init)) if layer_scale_init > 0 else None
        self.drop_path = DropPath(drop_prob) if drop_prob > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


def _stem(in_chans: int, dim: int, eps: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chans, dim, kernel_size=4, stride=4), LayerNorm2d(dim, eps=eps))


def _downsample(in_dim: int, out_dim: int, eps: float) -> nn.Sequential:
    return nn.Sequential(LayerNorm2d(in_dim, eps=eps), nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2))


def _check_stage_list(name: str, values: Sequence[int]) -> List[int]:
    values = list(values)
    if len(values) != NUM_STAGES or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f'{name} must be {NUM_STAGES} positive ints, got {values!r}')
    return values


class ConvNeXt(nn.Module):
    """DINOv3 ConvNeXt backbone with the official parameter names and feature API.

    Attributes for callers: ``embed_dims`` (channels of the 4 stages), ``embed_dim`` /
    ``num_features`` (last stage channels), ``patch_size = 32`` (total stride; informational: unlike
    the official optional ``patch_size``, it never triggers a resize of the outputs),
    ``input_pad_size = 4`` (official attribute: stem stride), ``n_blocks = 4`` (stages),
    ``n_storage_tokens = 0``.

    Args:
        depths: Blocks per stage, 4 ints (e.g. tiny (3, 3, 9, 3)).
        dims: Channels per stage, 4 ints (e.g. tiny (96, 192, 384, 768)).
        in_chans: Input channels.
        drop_path_rate: Largest stochastic depth rate; rates grow linearly from 0 over all blocks.
            Active only in training mode.
        layer_scale_init: Initial LayerScale ``gamma``; 0 disables LayerScale (as the official code).
        norm_eps: Epsilon of every LayerNorm (official 1e-6).
    """

    patch_size = 32
    input_pad_size = 4
    n_blocks = NUM_STAGES
    n_storage_tokens = 0
    chunked_blocks = False

    def __init__(self, *, depths: Sequence[int], dims: Sequence[int], in_chans: int = 3,
                 drop_path_rate: float = 0.0, layer_scale_init: float = 1e-6,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        depths = _check_stage_list('depths', depths)
        dims = _check_stage_list('dims', dims)
        self._check_scalars(in_chans, drop_path_rate, layer_scale_init, norm_eps)
        self.downsample_layers = nn.ModuleList(
            [_stem(in_chans, dims[0], norm_eps)]
            + [_downsample(dims[s - 1], dims[s], norm_eps) for s in range(1, NUM_STAGES)])
        self.stages = self._build_stages(depths, dims, drop_path_rate, layer_scale_init, norm_eps)
        self.norm = nn.LayerNorm(dims[-1], eps=norm_eps)
        # Official layout: per-stage output norms, Identity except the last (saved twice as norms.3.*).
        self.norms = nn.ModuleList([nn.Identity() for _ in range(NUM_STAGES - 1)] + [self.norm])
        self.head = nn.Identity()
        self.depths = depths
        self.embed_dims = dims
        self.embed_dim = self.num_features = dims[-1]
        self.init_weights()

    @staticmethod
    def _check_scalars(in_chans: int, drop_path_rate: float, layer_scale_init: float,
                       norm_eps: float) -> None:
        if not isinstance(in_chans, int) or in_chans <= 0:
            raise ValueError(f'in_chans must be a positive int, got {in_chans!r}')
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        if layer_scale_init < 0:
            raise ValueError(f'layer_scale_init must be >= 0 (0 disables it), got {layer_scale_init!r}')
        if norm_eps <= 0:
            raise ValueError(f'norm_eps must be > 0, got {norm_eps!r}')

    @staticmethod
    def _build_stages(depths: List[int], dims: List[int], drop_path_rate: float,
                      layer_scale_init: float, norm_eps: float) -> nn.ModuleList:
        total = sum(depths)
        # linear 0 -> drop_path_rate over all blocks (plain floats: construction also runs on 'meta')
        rates = drop_path_rates(drop_path_rate, total, uniform=False)
        stages, start = nn.ModuleList(), 0
        for depth, dim in zip(depths, dims):
            stages.append(nn.Sequential(*[
                Block(dim, rates[start + j], layer_scale_init, norm_eps) for j in range(depth)]))
            start += depth
        return stages

    def init_weights(self) -> None:
        """Official initialisation: trunc-normal(0.02) convs/linears, zero biases, unit norms, gamma."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
            elif isinstance(module, Block) and module.gamma is not None:
                nn.init.constant_(module.gamma, module.layer_scale_init)

    # ---- dense API -------------------------------------------------------------------------------

    def _run_stages(self, x: Tensor, keep: Sequence[int]) -> List[Tensor]:
        """Run the network up to the last stage in ``keep``; return those stages' raw outputs."""
        outputs = []
        for s in range(max(keep) + 1):
            x = self.stages[s](self.downsample_layers[s](x))
            if s in keep:
                outputs.append(x)
        return outputs

    def forward_stages(self, x: Tensor, norm: bool = True) -> List[Tensor]:
        """The 4 stage outputs for dense heads.

        Args:
            x: Images (B, in_chans, H, W); H, W need not be multiples of 32 (see module docstring).
            norm: Apply the official per-stage output norms (``self.norms``): Identity on stages
                0-2, the final LayerNorm (over channels) on stage 3. This equals
                ``get_intermediate_layers(x, n=4, reshape=True, norm=norm)``. False gives the raw
                stage outputs (Hugging Face ``hidden_states[1:]``).

        Returns:
            List of 4 maps (B, C_s, H_s, W_s) at strides 4, 8, 16, 32,
            with H_s = floor(H / 4) // 2**s.
        """
        maps = self._run_stages(x, range(NUM_STAGES))
        if not norm:
            return maps
        return [self._norm_map(self.norms[s], m) for s, m in enumerate(maps)]

    @staticmethod
    def _norm_map(norm: nn.Module, x: Tensor) -> Tensor:
        """Apply a channels-last norm (or Identity) to a (B, C, h, w) map."""
        if isinstance(norm, nn.Identity):
            return x
        return norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()

    # ---- official API mirrors --------------------------------------------------------------------

    def forward_features(self, x: Union[Tensor, List[Tensor]],
                         masks: Optional[Tensor] = None) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Official ``forward_features``: final features as ViT-style tokens.

        The "class token" is the global average pool of the last stage. It is concatenated with the
        patch tokens and the final LayerNorm applied per token.

        Args:
            x: Images (B, in_chans, H, W), or a list of such tensors (then a list of dicts is returned;
                ``masks`` is then a list too).
            masks: Passed through untouched as ``out['masks']`` (as the official code; unused).

        Returns:
            Dict with ``x_norm_clstoken`` (B, C), ``x_storage_tokens`` (B, 0, C),
            ``x_norm_patchtokens`` (B, h*w, C), ``x_prenorm`` (B, h*w, C) -- the un-normalised patch
            tokens only (no class token, unlike the ViT's), and ``masks``; C = embed_dim, h*w the
            stride-32 grid in row-major order.
        """
        if isinstance(x, Tensor):
            return self._features_dict(x, masks)
        masks_list = [None] * len(x) if masks is None else masks
        return [self._features_dict(xi, mi) for xi, mi in zip(x, masks_list)]

    def _features_dict(self, x: Tensor, masks: Optional[Tensor]) -> Dict[str, Any]:
        x = self._run_stages(x, [NUM_STAGES - 1])[0]
        pooled = x.mean(dim=(-2, -1))
        tokens = x.flatten(2).transpose(1, 2)
        normed = self.norm(torch.cat([pooled.unsqueeze(1), tokens], dim=1))
        return {
            'x_norm_clstoken': normed[:, 0],
            'x_storage_tokens': normed[:, 1:1],
            'x_norm_patchtokens': normed[:, 1:],
            'x_prenorm': tokens,
            'masks': masks,
        }

    def forward(self, x: Union[Tensor, List[Tensor]], masks: Optional[Tensor] = None,
                is_training: bool = False) -> Union[Tensor, Dict[str, Any], List[Dict[str, Any]]]:
        """Official ``forward``: ``head(x_norm_clstoken)`` (B, C), or the features dict if ``is_training``.

        Dense code should call :meth:`forward_stages` instead.
        """
        out = self.forward_features(x, masks)
        return out if is_training else self.head(out['x_norm_clstoken'])

    def get_intermediate_layers(self, x: Tensor, n: Union[int, Sequence[int]] = 1,
                                reshape: bool = False, return_class_token: bool = False,
                                norm: bool = True) -> Tuple[Any, ...]:
        """Official ``get_intermediate_layers``: outputs of the last ``n`` stages or of stages ``n``.

        Args:
            x: Images (B, in_chans, H, W).
            n: Number of last stages (1-4), or a sequence of stage indices (0-3).
            reshape: Return patch maps as (B, C_s, h_s, w_s) instead of tokens (B, h_s*w_s, C_s).
            return_class_token: Also return each stage's "class token": its global average pool
                (B, C_s), normalised like the patches when ``norm``.
            norm: Apply ``self.norms[s]`` (Identity on stages 0-2, final LayerNorm on stage 3).

        Returns:
            Tuple of patch outputs, one per selected stage in increasing stage order, or tuple of
            ``(patches, class_token)`` pairs if ``return_class_token``.
        """
        keep = self._stage_indices(n)
        maps = self._run_stages(x, keep)
        outputs = []
        for s, m in zip(keep, maps):
            stage_norm = self.norms[s] if norm else nn.Identity()
            cls = stage_norm(m.mean(dim=(-2, -1)))
            patches = self._norm_map(stage_norm, m) if reshape else stage_norm(m.flatten(2).transpose(1, 2))
            outputs.append((patches, cls) if return_class_token else patches)
        return tuple(outputs)

    @staticmethod
    def _stage_indices(n: Union[int, Sequence[int]]) -> List[int]:
        if isinstance(n, int):
            if not 1 <= n <= NUM_STAGES:
                raise ValueError(f'n must be in [1, {NUM_STAGES}] stages, got {n!r}')
            return list(range(NUM_STAGES - n, NUM_STAGES))
        keep = list(n)
        if not keep or any(not isinstance(s, int) or not 0 <= s < NUM_STAGES for s in keep):
            raise ValueError(f'stage indices must be ints in [0, {NUM_STAGES - 1}], got {keep!r}')
        if keep != sorted(set(keep)):
            raise ValueError(f'stage indices must be increasing and unique, got {keep!r}')
        return keep
