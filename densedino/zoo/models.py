"""The released heads and the complete models built from them, and Depth-Anything-V2.

DINOv2 released, for every size, linear segmentation heads for ADE20K and Pascal VOC 2012
(``linear``: the last block; ``ms``: the last four, for the multi-scale protocol) and depth
heads for NYU-Depth-v2 and KITTI (``linear``, ``linear4``, ``dpt``), each in the folder of its
backbone (docs/protocols.md section 9). A complete model is a densedino config + the backbone
file + the head file: ``init_model(name)`` puts them together. Sizes without a config of their
own reuse the ViT-S config with ``model.backbone.arch`` overridden: the heads take their widths
from the backbone (``in_channels='auto'``, ``embed_dims='auto'``).

Depth-Anything-V2 files hold the whole model (backbone + DPT decoder) and come from Hugging Face.
Figures: docs/protocols.md section 6.1 (DINOv2 paper, segmentation Table 10, depth Table 11).
"""
from __future__ import annotations

from typing import List, Tuple

from ..hub import OFFICIAL_BASE
from .backbones import VIT_SIZE
from .entry import APACHE, CC_BY_NC, HF_BASE, ZooEntry

__all__ = ['head_and_model_rows', 'depth_anything_rows', 'DINOV2_PROTOCOLS', 'SIZES']

SIZES = 'sblg'

# (dataset in the file names, protocol, task, ViT-S config, label, figures for S / B / L / g)
DINOV2_PROTOCOLS: Tuple[Tuple[str, str, str, str, str, Tuple[str, ...]], ...] = (
    ('ade20k', 'linear', 'seg', 'configs/seg/ade20k_linear.py', 'ADE20K linear',
     ('44.3', '47.3', '47.7', '49.0')),
    ('ade20k', 'ms', 'seg', 'configs/seg/ade20k_linear_ms.py', 'ADE20K linear +ms',
     ('47.2', '51.3', '53.1', '53.0')),
    ('voc2012', 'linear', 'seg', 'configs/seg/voc12_linear.py', 'VOC 2012 linear',
     ('81.1', '82.5', '82.1', '83.0')),
    ('voc2012', 'ms', 'seg', 'configs/seg/voc12_linear_ms.py', 'VOC 2012 linear +ms',
     ('82.6', '84.9', '86.0', '86.2')),
    ('nyu', 'linear', 'depth', 'configs/depth/nyu_linear.py', 'NYU-Depth-v2 linear',
     ('0.449', '0.399', '0.384', '0.344')),
    ('nyu', 'linear4', 'depth', 'configs/depth/nyu_linear4.py', 'NYU-Depth-v2 linear4',
     ('0.417', '0.362', '0.333', '0.298')),
    ('nyu', 'dpt', 'depth', 'configs/depth/nyu_dpt.py', 'NYU-Depth-v2 DPT',
     ('0.356', '0.317', '0.293', '0.279')),
    ('kitti', 'linear', 'depth', 'configs/depth/kitti_linear.py', 'KITTI linear',
     ('3.10', '2.90', '2.78', '2.62')),
    ('kitti', 'linear4', 'depth', 'configs/depth/kitti_linear4.py', 'KITTI linear4',
     ('2.86', '2.59', '2.50', '2.35')),
    ('kitti', 'dpt', 'depth', 'configs/depth/kitti_dpt.py', 'KITTI DPT',
     ('2.34', '2.23', '2.14', '2.11')),
)
# Configs of their own for a size (the rest override the ViT-S config's arch).
_OWN_CONFIG = {('ade20k', 'linear', size): f'configs/seg/ade20k_linear_dinov2_vit{size}14.py'
               for size in 'blg'}


def _figure(task: str, label: str, value: str, protocol: str) -> str:
    if task == 'seg':
        tta = ', multi-scale test: tools/test.py --tta' if protocol == 'ms' else ''
        return f'{label} {value} mIoU (DINOv2 Table 10{tta})'
    return f'{label} RMSE {value} (DINOv2 Table 11)'


def _config_of(dataset: str, protocol: str, size: str, small_config: str
               ) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
    """The config of a protocol at a size and the overrides it needs."""
    own = _OWN_CONFIG.get((dataset, protocol, size))
    if own or size == 's':
        return own or small_config, ()
    return small_config, (('model.backbone.arch', f'dinov2_vit{size}14'),)


def head_and_model_rows() -> List[ZooEntry]:
    """The DINOv2 heads and, for each, the complete model it makes with its backbone."""
    rows = []
    for dataset, protocol, task, small_config, label, figures in DINOV2_PROTOCOLS:
        for size, value in zip(SIZES, figures):
            arch = f'dinov2_vit{size}14'
            name = f'{arch}_{dataset}_{protocol}'
            file_name = f'{name}_head.pth'
            config, options = _config_of(dataset, protocol, size, small_config)
            title = f'DINOv2 {VIT_SIZE[size]}/14 {label}'
            common = dict(task=task, figure=_figure(task, label, value, protocol),
                          config=config, cfg_options=options)
            rows.append(ZooEntry(f'{name}_head', 'dinov2', 'head', arch, file_name,
                                 f'{OFFICIAL_BASE}/dinov2/{arch}/{file_name}', APACHE, False,
                                 title, **common))
            rows.append(ZooEntry(name, 'dinov2', 'model', arch, None, None, APACHE, False,
                                 f'{title} (backbone + head)', parts=(arch, f'{name}_head'),
                                 loader='backbone+head', **common))
    return rows


# Depth-Anything-V2: (size letter, size name, licence); Giant is not released.
_DAV2_SIZES = (('s', 'Small', APACHE), ('b', 'Base', CC_BY_NC), ('l', 'Large', CC_BY_NC))
# (name suffix, config, HF repository prefix, file stem, title suffix)
_DAV2_KINDS = (
    ('', 'configs/depth/depth_anything_v2_vits_relative.py', 'Depth-Anything-V2',
     'depth_anything_v2', 'relative depth'),
    ('_metric_indoor', 'configs/depth/depth_anything_v2_vits_metric_indoor.py',
     'Depth-Anything-V2-Metric-Hypersim', 'depth_anything_v2_metric_hypersim',
     'metric depth indoors (Hypersim, up to 20 m)'),
    ('_metric_outdoor', 'configs/depth/depth_anything_v2_vits_metric_outdoor.py',
     'Depth-Anything-V2-Metric-VKITTI', 'depth_anything_v2_metric_vkitti',
     'metric depth outdoors (Virtual KITTI 2, up to 80 m)'),
)


def depth_anything_rows() -> List[ZooEntry]:
    """Depth-Anything-V2 relative, indoor-metric and outdoor-metric models, Small / Base /
    Large."""
    rows = []
    for suffix, config, repo_prefix, stem, what in _DAV2_KINDS:
        for size, size_name, license in _DAV2_SIZES:
            repo = f'depth-anything/{repo_prefix}-{size_name}'
            file_name = f'{stem}_vit{size}.pth'
            options = () if size == 's' else (('model.backbone.arch', f'dinov2_vit{size}14'),)
            rows.append(ZooEntry(
                f'depth_anything_v2{suffix}_{size_name.lower()}', 'depth_anything_v2', 'model',
                f'dinov2_vit{size}14', file_name, f'{HF_BASE}/{repo}/resolve/main/{file_name}',
                license, False, f'Depth-Anything-V2 {size_name}, {what}', hf_repo=repo,
                hf_file=file_name, task='depth', config=config, cfg_options=options,
                loader='depth_anything_v2'))
    return rows
