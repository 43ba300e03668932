"""The linear depth head of the DINOv2 and DINOv3 protocols."""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from .depth_base import DepthHead
from .depth_bins import NORM_STRATEGIES, bins_to_depth, depth_bins, upsampled_bins_to_depth
from .inputs import block_maps, resize_concat
from .inputs import AUTO, block_widths


@MODELS.register_module()
class LinearDepthHead(DepthHead):
    """Resize-concat of tapped blocks -> [dropout / BN] -> 1x1 conv -> x``upsample`` -> depth.

    DINOv2 configuration (defaults; released ``dinov2_*_{nyu,kitti}_linear{,4}_head.pth`` load
    strictly): each tapped block's patch map concatenated with its class token broadcast over
    the grid, resize-concat (bilinear), x4 bilinear upsampling, 1x1 conv ``conv_depth`` to 256
    bins, 'UD' bins, 'linear' normalisation. State dict: ``conv_depth.weight``, ``conv_depth.bias``
    only (the bins are a non-persistent buffer).

    DINOv2 upsamples the (B, C, h, w) features and then applies the conv; a 1x1 conv is a
    per-pixel linear map and bilinear weights sum to one, so the two commute and this head
    applies ``conv_depth`` on the token grid and upsamples the ``n_bins`` logits instead: the
    same values up to float rounding, with C / n_bins (12 for ViT-S linear4) times less memory.
    With the 'linear' normalisation the upsampling and the bins are fused
    (:func:`upsampled_bins_to_depth`): the (B, n_bins, 4h, 4w) logits are never stored (one NYU
    linear head's training step on a 2-core CPU: 865 -> 659 ms, live tensors 270 -> 45 MB;
    docs/benchmarks.md, "Head sweeps").
    (DINOv2 resizes every tapped map straight to the upsampled size; for maps on one grid, as
    every ViT gives, that equals resizing to the first map then upsampling.)

    DINOv3 configuration: last block with the final norm, no class token
    (``use_cls_token=False``), ``use_norm=True``, ``upsample=1``. Its ``LinearHead`` (one
    published version) names the norm ``batchnorm_layer`` (SyncBatchNorm) and has no dropout;
    here it is ``bn`` (as in ``LinearSegHead``), so DINOv3 head files need that key renamed.
    With ``upsample > 1``, BN and dropout act on the token grid, before upsampling.

    ``conv_depth`` is initialised N(0, 0.01) with zero bias, as DINOv3 (and the segmentation
    heads) do; DINOv2's depth toolbox left PyTorch's default conv init.

    Args:
        in_channels: Channels of each tapped block (an int for one block), or 'auto': the
            backbone's, filled in by the depth model that builds the head (``input_widths``).
        in_index: Which backbone outputs to use (all by default).
        use_cls_token: Append the class token to every position (channels x2; DINOv2).
        upsample: Bilinear upsampling factor of the output over the token grid (DINOv2: 4).
        classify: Predict ``n_bins`` logits and output the expected bin depth; else regress
            ``relu(conv) + min_depth``.
        n_bins: Number of depth bins.
        bins_strategy: 'UD' (uniform) or 'SID' (log-spaced), see ``depth_bins``.
        norm_strategy: 'linear', 'softmax' or 'sigmoid', see ``bin_weights``.
        use_norm: BatchNorm (``bn``) on the concatenated features.
        dropout_ratio: Channel dropout (``Dropout2d``) before the conv.
        dropout_before_norm: Dropout -> BN -> conv instead of BN -> dropout -> conv.
        **kwargs: ``DepthHead`` options (``min_depth``, ``max_depth``, ``loss_decode``,
            ``align_corners`` ...).
    """

    input_width_args = ('in_channels',)

    def __init__(self, in_channels: Union[str, int, Sequence[int]] = AUTO, *,
                 in_index: Optional[Sequence[int]] = None, use_cls_token: bool = True,
                 upsample: int = 4, classify: bool = True, n_bins: int = 256,
                 bins_strategy: str = 'UD', norm_strategy: str = 'linear', use_norm: bool = False,
                 dropout_ratio: float = 0.0, dropout_before_norm: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        per_block = block_widths(in_channels, in_index, type(self).__name__)
        if upsample < 1 or int(upsample) != upsample:
            raise ValueError(f'upsample must be a positive integer, got {upsample}')
        if classify and norm_strategy not in NORM_STRATEGIES:
            raise ValueError(f'norm_strategy must be one of {NORM_STRATEGIES}, '
                             f'got {norm_strategy!r}')
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f'dropout_ratio must be in [0, 1), got {dropout_ratio}')
        self.channels = sum(per_block) * (2 if use_cls_token else 1)
        self.block_index = None if in_index is None else list(in_index)
        self.use_cls_token, self.upsample = use_cls_token, int(upsample)
        self.classify, self.norm_strategy = classify, norm_strategy
        self.dropout_before_norm = dropout_before_norm
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.bn = nn.BatchNorm2d(self.channels) if use_norm else nn.Identity()
        self.conv_depth = nn.Conv2d(self.channels, n_bins if classify else 1, kernel_size=1)
        nn.init.normal_(self.conv_depth.weight, mean=0.0, std=0.01)
        nn.init.zeros_(self.conv_depth.bias)
        bins = depth_bins(self.min_depth, self.max_depth, n_bins, bins_strategy) \
            if classify else None
        self.register_buffer('bins', bins, persistent=False)

    def features(self, inputs) -> torch.Tensor:
        """Backbone outputs -> (B, channels, h, w) after resize-concat, dropout and norm."""
        x = resize_concat(block_maps(inputs, self.block_index, self.use_cls_token),
                          self.align_corners)
        if self.dropout_before_norm:
            return self.bn(self.dropout(x))
        return self.dropout(self.bn(x))

    def forward(self, inputs) -> torch.Tensor:
        """Backbone outputs -> (B, 1, upsample * h, upsample * w) depth."""
        logits = self.conv_depth(self.features(inputs))
        # resize and bins fused; not while exporting, where the chunk loop would fix the size
        if self.upsample > 1 and self.classify and self.norm_strategy == 'linear' \
                and not torch.compiler.is_exporting():
            size = [s * self.upsample for s in logits.shape[-2:]]
            return upsampled_bins_to_depth(logits, self.bins, size, self.align_corners)
        if self.upsample > 1:
            size = [s * self.upsample for s in logits.shape[-2:]]
            logits = F.interpolate(logits, size=size, mode='bilinear',
                                   align_corners=self.align_corners)
        if self.classify:
            return bins_to_depth(logits, self.bins, self.norm_strategy)
        return torch.relu(logits) + self.min_depth
