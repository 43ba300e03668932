"""DPT depth head: DINOv2's released DPT head and Depth-Anything-V2's decoder in one module.

Both decoders share the DPT layout (Ranftl et al., "Vision Transformers for Dense Prediction",
2021): reassemble four tapped blocks into a pyramid at 4x, 2x, 1x and 1/2x the token grid, 3x3
convs to a common width, four fusion blocks of pre-activation residual units from the coarsest
level up, and a small convolutional output head. They differ in details, which ``variant`` sets
(docs/protocols.md section 4.2; transformers' ``DepthAnythingForDepthEstimation`` for
Depth-Anything-V2):

============================  ==========================  ===================================
option                        ``'dinov2'``                ``'depth_anything_v2'``
============================  ==========================  ===================================
``readout_type``              ``'project'`` (uses cls)    ``'ignore'``
``unit_bias``                 False                       True
``fusion_upsample``           ``'x2'``                    ``'next'`` (to the next level's size)
``final_project``             True (3x3 conv + ReLU)      False
``head_upsample``             ``'x2'``                    ``'patch'`` (to grid x patch size)
``output_act``                ``'relu_plus_min'``         ``'relu'`` (relative) /
                                                          ``'sigmoid_times_max'`` (metric)
============================  ==========================  ===================================

Module names follow mmseg's ``DPTHead`` and DINOv2's ``conv_depth`` so that
``dinov2_vit*14_{nyu,kitti}_dpt_head.pth`` load strictly; Depth-Anything-V2 files are renamed to
them by :func:`densedino.models.load_depth_anything_v2`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS
from .depth_base import DepthHead
from .inputs import block_maps
from .inputs import AUTO, require_resolved

READOUT_TYPES = ('ignore', 'add', 'project')
FUSION_UPSAMPLES = ('x2', 'next')
HEAD_UPSAMPLES = ('x2', 'patch')
OUTPUT_ACTS = ('relu_plus_min', 'relu', 'sigmoid_times_max')
VARIANTS = ('dinov2', 'depth_anything_v2')

# Depth-Anything-V2's decoder widths per backbone width: (features, out_channels).
DAV2_WIDTHS: dict[int, tuple[int, list[int]]] = {
    384: (64, [48, 96, 192, 384]),
    768: (128, [96, 192, 384, 768]),
    1024: (256, [256, 512, 1024, 1024]),
    1536: (384, [1536, 1536, 1536, 1536]),
}


class ConvUnit(nn.Module):
    """A conv with an optional ReLU before (``pre_act``) or after (``post_act``) it.

    Holds the conv as ``conv`` so its keys read ``<name>.conv.weight`` like mmcv's ``ConvModule``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 bias: bool = True, pre_act: bool = False, post_act: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=bias)
        self.pre_act, self.post_act = pre_act, post_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.relu(x) if self.pre_act else x)
        return F.relu(x) if self.post_act else x


class Reassemble(nn.Module):
    """Token maps of four blocks -> a four-level pyramid (4x, 2x, 1x, 1/2x the token grid).

    Args:
        embed_dims: Backbone width D.
        out_channels: Channels of the four levels.
        readout_type: How the class token enters: 'ignore', 'add' (added to every position) or
            'project' (Linear(2D -> D) + GELU on concat(patch, cls)).
    """

    def __init__(self, embed_dims: int, out_channels: Sequence[int], readout_type: str) -> None:
        super().__init__()
        self.readout_type = readout_type
        self.projects = nn.ModuleList([ConvUnit(embed_dims, c, 1) for c in out_channels])
        c0, c1, _, c3 = out_channels
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c0, c0, kernel_size=4, stride=4),
            nn.ConvTranspose2d(c1, c1, kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(c3, c3, kernel_size=3, stride=2, padding=1),
        ])
        if readout_type == 'project':
            self.readout_projects = nn.ModuleList([
                nn.Sequential(nn.Linear(2 * embed_dims, embed_dims), nn.GELU())
                for _ in out_channels])

    def _readout(self, i: int, fmap: torch.Tensor, cls: torch.Tensor | None) -> torch.Tensor:
        if self.readout_type == 'ignore':
            return fmap
        if cls is None:
            raise ValueError(f"readout_type={self.readout_type!r} needs backbone outputs with "
                             'class tokens (BlockFeatures)')
        if self.readout_type == 'add':
            return fmap + cls[:, :, None, None]
        both = torch.cat([fmap, cls[:, :, None, None].expand_as(fmap)], dim=1)
        return self.readout_projects[i](both.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, items: Sequence) -> list[torch.Tensor]:
        """``(map (B, D, h, w), cls (B, D))`` pairs or bare maps -> four (B, C_i, h_i, w_i)."""
        out = []
        for i, item in enumerate(items):
            fmap, cls = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
            x = self.projects[i](self._readout(i, fmap, cls))
            out.append(self.resize_layers[i](x))
        return out


class ResidualUnit(nn.Module):
    """Pre-activation residual unit: x + conv2(relu(conv1(relu(x)))), 3x3 convs."""

    def __init__(self, channels: int, bias: bool) -> None:
        super().__init__()
        self.conv1 = ConvUnit(channels, channels, 3, bias=bias, pre_act=True)
        self.conv2 = ConvUnit(channels, channels, 3, bias=bias, pre_act=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class FusionBlock(nn.Module):
    """Add a refined skip level to the path, refine, upsample (align_corners True), 1x1 project.

    Args:
        channels: Width of the path.
        bias: Biases in the residual units' convs.
        with_skip: Whether the block takes a skip level (the first, coarsest block does not and
            holds no ``res_conv_unit1``).
    """

    def __init__(self, channels: int, bias: bool, with_skip: bool = True) -> None:
        super().__init__()
        self.project = ConvUnit(channels, channels, 1)
        self.res_conv_unit1 = ResidualUnit(channels, bias) if with_skip else None
        self.res_conv_unit2 = ResidualUnit(channels, bias)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: Sequence[int] | None = None) -> torch.Tensor:
        """Fuse ``skip`` into ``x`` and upsample to ``size`` (x2 when None)."""
        if skip is not None:
            # odd token grids: the levels differ by one pixel. While exporting, always resize
            # (exact when the sizes agree), so the graph has no branch on the input size
            if torch.compiler.is_exporting() or skip.shape[-2:] != x.shape[-2:]:
                skip = F.interpolate(skip, size=x.shape[-2:], mode='bilinear',
                                     align_corners=False)
            x = x + self.res_conv_unit1(skip)
        x = self.res_conv_unit2(x)
        resize = {'scale_factor': 2} if size is None else {'size': tuple(size)}
        x = F.interpolate(x, mode='bilinear', align_corners=True, **resize)
        return self.project(x)


class DepthOutput(nn.Module):
    """conv3x3 f -> f/2, bilinear upsample (align_corners True), conv3x3 f/2 -> hidden, ReLU,
    conv1x1 hidden -> 1. Kept as ``head.{0,2,4}`` (DINOv2's key names); index 1 is the resize."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1),
            nn.Identity(),  # the upsample; its size depends on the input, see forward
            nn.Conv2d(channels // 2, hidden, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, kernel_size=1))

    def forward(self, x: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        """(B, f, h', w') -> (B, 1, H', W') with H', W' = ``size`` (x2 when None)."""
        x = self.head[0](x)
        resize = {'scale_factor': 2} if size is None else {'size': tuple(size)}
        x = F.interpolate(x, mode='bilinear', align_corners=True, **resize)
        return self.head[4](self.head[3](self.head[2](x)))


def _variant_options(variant: str, relative: bool, embed_dims: int) -> dict:
    """Preset options of ``variant`` (see the module table)."""
    if variant == 'dinov2':
        return {'channels': 256,
                'post_process_channels': [embed_dims // 8, embed_dims // 4, embed_dims // 2,
                                          embed_dims],
                'readout_type': 'project', 'unit_bias': False, 'fusion_upsample': 'x2',
                'final_project': True, 'head_upsample': 'x2', 'output_act': 'relu_plus_min'}
    channels, outs = DAV2_WIDTHS.get(embed_dims, (None, None))
    return {'channels': channels, 'post_process_channels': outs, 'readout_type': 'ignore',
            'unit_bias': True, 'fusion_upsample': 'next', 'final_project': False,
            'head_upsample': 'patch', 'output_act': 'relu' if relative else 'sigmoid_times_max'}


def _check_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {tuple(choices)}, got {value!r}')


@MODELS.register_module()
class DPTDepthHead(DepthHead):
    """DPT depth decoder over four tapped ViT blocks (DINOv2 DPT head / Depth-Anything-V2).

    Every option left at None takes the ``variant``'s value (module docstring table); any of
    them can be set to override it.

    Args:
        embed_dims: Backbone width D (384 for ViT-S), or 'auto' (default): the backbone's, filled
            in by the depth model that builds the head (``input_widths``).
        variant: 'dinov2' (the head of ``dinov2_vit*14_*_dpt_head.pth``; feed it blocks without
            final norm, with class tokens) or 'depth_anything_v2' (feed it normed blocks).
        channels: Fusion width (DINOv2 256; Depth-Anything-V2 S/B/L/G 64/128/256/384).
        post_process_channels: Widths of the four reassembled levels (DINOv2 [D/8, D/4, D/2, D];
            Depth-Anything-V2 S [48, 96, 192, 384], B [96, 192, 384, 768], L [256, 512, 1024,
            1024], G [1536] * 4).
        readout_type: 'project', 'add' or 'ignore': how the class token is used.
        unit_bias: Biases in the residual units' 3x3 convs.
        fusion_upsample: 'x2' (fixed factor) or 'next' (to the next finer level's size, the
            last block x2).
        final_project: A 3x3 conv + ReLU after the last fusion block (DINOv2's ``project``).
        head_upsample: Resize inside the output head: 'x2' or 'patch' (to the token grid times
            ``patch_size``, i.e. the network input size).
        output_act: 'relu_plus_min' (relu(x) + min_depth), 'relu' (disparity for relative
            models) or 'sigmoid_times_max' (sigmoid(x) * max_depth).
        head_hidden: Channels of the output head's last 3x3 conv (32).
        patch_size: Backbone patch size, for ``head_upsample='patch'``.
        in_index: Which four backbone outputs to use.
        **kwargs: ``DepthHead`` options (``min_depth``, ``max_depth``, ``loss_decode``,
            ``align_corners``, ``relative``, ``init_cfg``).

    Shapes:
        Input: four ``BlockFeatures`` (maps (B, D, h, w), class tokens (B, D)), or bare maps
        when ``readout_type='ignore'``. Output of ``forward``: (B, 1, H', W'), with
        H', W' = 14h, 14w for Depth-Anything-V2 and about 16h, 16w for DINOv2 (x2 per stage
        from the level at 1/2 the grid).
    """

    input_width_args = ('embed_dims',)

    def __init__(self, *, embed_dims: int | str = AUTO, variant: str = 'dinov2',
                 channels: int | None = None,
                 post_process_channels: Sequence[int] | None = None,
                 readout_type: str | None = None, unit_bias: bool | None = None,
                 fusion_upsample: str | None = None, final_project: bool | None = None,
                 head_upsample: str | None = None, output_act: str | None = None,
                 head_hidden: int = 32, patch_size: int = 14,
                 in_index: Sequence[int] = (0, 1, 2, 3), **kwargs) -> None:
        super().__init__(**kwargs)
        _check_choice('variant', variant, VARIANTS)
        require_resolved(embed_dims, 'embed_dims', type(self).__name__)
        given = {'channels': channels, 'post_process_channels': post_process_channels,
                 'readout_type': readout_type, 'unit_bias': unit_bias,
                 'fusion_upsample': fusion_upsample, 'final_project': final_project,
                 'head_upsample': head_upsample, 'output_act': output_act}
        opts = _variant_options(variant, self.relative, embed_dims)
        opts.update({k: v for k, v in given.items() if v is not None})
        self._validate(embed_dims, variant, opts, in_index)
        self.variant, self.embed_dims, self.patch_size = variant, embed_dims, patch_size
        self.in_index = list(in_index)
        self.channels = opts['channels']
        self.post_process_channels = list(opts['post_process_channels'])
        self.readout_type = opts['readout_type']
        self.fusion_upsample, self.head_upsample = opts['fusion_upsample'], opts['head_upsample']
        self.output_act = opts['output_act']
        self._build(opts['unit_bias'], opts['final_project'], head_hidden)

    @staticmethod
    def _validate(embed_dims: int, variant: str, opts: dict, in_index: Sequence[int]) -> None:
        if opts['channels'] is None or opts['post_process_channels'] is None:
            raise ValueError(f"variant={variant!r} has no preset widths for embed_dims="
                             f'{embed_dims} (known: {sorted(DAV2_WIDTHS)}); set channels and '
                             'post_process_channels')
        if len(opts['post_process_channels']) != 4 or len(in_index) != 4:
            raise ValueError('DPTDepthHead needs four levels, got post_process_channels='
                             f"{list(opts['post_process_channels'])}, in_index={list(in_index)}")
        if opts['channels'] < 2 or opts['channels'] % 2:
            raise ValueError(f"channels must be even and >= 2, got {opts['channels']}")
        _check_choice('readout_type', opts['readout_type'], READOUT_TYPES)
        _check_choice('fusion_upsample', opts['fusion_upsample'], FUSION_UPSAMPLES)
        _check_choice('head_upsample', opts['head_upsample'], HEAD_UPSAMPLES)
        _check_choice('output_act', opts['output_act'], OUTPUT_ACTS)

    def _build(self, unit_bias: bool, final_project: bool, head_hidden: int) -> None:
        c = self.channels
        self.reassemble_blocks = Reassemble(self.embed_dims, self.post_process_channels,
                                            self.readout_type)
        self.convs = nn.ModuleList([ConvUnit(p, c, 3, bias=False)
                                    for p in self.post_process_channels])
        self.fusion_blocks = nn.ModuleList([FusionBlock(c, unit_bias, with_skip=i > 0)
                                            for i in range(4)])
        self.project = ConvUnit(c, c, 3, post_act=True) if final_project else None
        self.conv_depth = DepthOutput(c, head_hidden)

    def _fusion_sizes(self, levels: list[torch.Tensor]) -> list[torch.Size | None]:
        """Upsample target of each fusion block (coarsest first); None means x2."""
        if self.fusion_upsample == 'x2':
            return [None] * len(levels)
        finer = [lvl.shape[-2:] for lvl in levels[::-1][1:]]
        return finer + [None]

    def forward(self, inputs: Sequence) -> torch.Tensor:
        """Backbone outputs -> (B, 1, H', W') depth (metres) or disparity (relative)."""
        items = [inputs[i] for i in self.in_index]
        grid = block_maps(items)[0].shape[-2:]
        levels = [conv(x) for conv, x in zip(self.convs, self.reassemble_blocks(items))]
        sizes = self._fusion_sizes(levels)
        out = self.fusion_blocks[0](levels[-1], size=sizes[0])
        for i in range(1, len(self.fusion_blocks)):
            out = self.fusion_blocks[i](out, levels[-(i + 1)], size=sizes[i])
        if self.project is not None:
            out = self.project(out)
        size = None if self.head_upsample == 'x2' else \
            (grid[0] * self.patch_size, grid[1] * self.patch_size)
        return self._activate(self.conv_depth(out, size=size))

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        if self.output_act == 'relu_plus_min':
            return F.relu(x) + self.min_depth
        if self.output_act == 'relu':
            return F.relu(x)
        return torch.sigmoid(x) * self.max_depth
