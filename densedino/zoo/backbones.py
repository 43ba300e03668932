"""The released backbone files: DINOv1, DINOv2 (with and without registers) and DINOv3.

Sources: the official READMEs and torch-hub entries (docs/protocols.md section 9). The figures
are those of docs/protocols.md section 6; a backbone's ``config`` is the densedino config that
uses it by default (``pretrained=True``), where there is one.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..hub import DINOV3_GATE, OFFICIAL_BASE
from .entry import APACHE, DINOV3_LICENSE, ZooEntry

__all__ = ['backbone_rows', 'VIT_SIZE', 'DINOV2_WIDTH']

_DINOV1_BASE = f'{OFFICIAL_BASE}/dino'
_DINOV2_BASE = f'{OFFICIAL_BASE}/dinov2'
_DINOV3_BASE = DINOV3_GATE.official_prefix

VIT_SIZE = {'s': 'ViT-S', 'b': 'ViT-B', 'l': 'ViT-L', 'g': 'ViT-g'}
#: The DINOv2 widths, for the head shapes the zoo's checks expect.
DINOV2_WIDTH = {'s': 384, 'b': 768, 'l': 1024, 'g': 1536}
_HF_DINOV2_SIZE = {'s': 'small', 'b': 'base', 'l': 'large', 'g': 'giant'}

# DINOv1: (hub name, folder/file stem, title, ImageNet k-NN / linear top-1, DINO README)
_DINOV1: Tuple[Tuple[str, str, str, str], ...] = (
    ('dino_vits16', 'deitsmall16', 'ViT-S/16', '74.5 / 77.0'),
    ('dino_vits8', 'deitsmall8', 'ViT-S/8', '78.3 / 79.7'),
    ('dino_vitb16', 'vitbase16', 'ViT-B/16', '76.1 / 78.2'),
    ('dino_vitb8', 'vitbase8', 'ViT-B/8', '77.4 / 80.1'))

# DINOv2 without registers: the ADE20K linear config of each size and its figure (DINOv2
# Table 10, docs/protocols.md section 6.1).
_DINOV2_CONFIG = {'s': ('configs/seg/ade20k_linear.py', '44.3'),
                  'b': ('configs/seg/ade20k_linear_dinov2_vitb14.py', '47.3'),
                  'l': ('configs/seg/ade20k_linear_dinov2_vitl14.py', '47.7'),
                  'g': ('configs/seg/ade20k_linear_dinov2_vitg14.py', '49.0')}

# DINOv3 pretrained on LVD-1689M (and two on SAT-493M): (name, arch, title, data, hash8,
# HF arch, ADE20K linear mIoU / NYU linear RMSE of the model card or None); hash8 is the first
# 8 hex digits of the file's sha256 (torch.hub checks it).
_DINOV3: Tuple[Tuple[str, str, str, str, str, str, Optional[str]], ...] = (
    ('dinov3_vits16', 'dinov3_vits16', 'ViT-S/16', 'lvd1689m', '08c60483', 'vits16',
     '47.0 / 0.403'),
    ('dinov3_vits16plus', 'dinov3_vits16plus', 'ViT-S+/16', 'lvd1689m', '4057cbaa',
     'vits16plus', '48.8 / 0.399'),
    ('dinov3_vitb16', 'dinov3_vitb16', 'ViT-B/16', 'lvd1689m', '73cec8be', 'vitb16',
     '51.8 / 0.373'),
    ('dinov3_vitl16', 'dinov3_vitl16', 'ViT-L/16', 'lvd1689m', '8aa4cbdd', 'vitl16',
     '54.9 / 0.352'),
    ('dinov3_vith16plus', 'dinov3_vith16plus', 'ViT-H+/16', 'lvd1689m', '7c1da9a5',
     'vith16plus', '54.8 / 0.352'),
    ('dinov3_vit7b16', 'dinov3_vit7b16', 'ViT-7B/16', 'lvd1689m', 'a955f4ea', 'vit7b16',
     '55.9 / 0.309'),
    ('dinov3_vitl16_sat493m', 'dinov3_vitl16', 'ViT-L/16 (satellite, SAT-493M)', 'sat493m',
     'eadcf0ff', 'vitl16', None),
    ('dinov3_vit7b16_sat493m', 'dinov3_vit7b16', 'ViT-7B/16 (satellite, SAT-493M)', 'sat493m',
     'a6675841', 'vit7b16', None),
    ('dinov3_convnext_tiny', 'dinov3_convnext_tiny', 'ConvNeXt-T', 'lvd1689m', '21b726bb',
     'convnext-tiny', '42.7 / 0.448'),
    ('dinov3_convnext_small', 'dinov3_convnext_small', 'ConvNeXt-S', 'lvd1689m', '296db49d',
     'convnext-small', '44.8 / 0.432'),
    ('dinov3_convnext_base', 'dinov3_convnext_base', 'ConvNeXt-B', 'lvd1689m', '801f2ba9',
     'convnext-base', '46.3 / 0.420'),
    ('dinov3_convnext_large', 'dinov3_convnext_large', 'ConvNeXt-L', 'lvd1689m', '61fa432d',
     'convnext-large', '47.8 / 0.403'),
)
# DINOv3 backbones with a config of their own: name -> config
_DINOV3_CONFIG: Dict[str, str] = {'dinov3_vits16': 'configs/seg/ade20k_linear_dinov3_vits16.py'}


def _dinov1_rows() -> List[ZooEntry]:
    rows = []
    for name, stem, title, top1 in _DINOV1:
        file_name = f'dino_{stem}_pretrain.pth'
        rows.append(ZooEntry(
            name, 'dinov1', 'backbone', name, file_name,
            f'{_DINOV1_BASE}/dino_{stem}_pretrain/{file_name}', APACHE, False,
            f'DINOv1 {title}', hf_repo=f'facebook/dino-{name[len("dino_"):]}',
            figure=f'ImageNet k-NN / linear top-1 {top1} % (DINO README)'))
    return rows


def _dinov2_rows() -> List[ZooEntry]:
    rows = []
    for registers in (False, True):
        for size in 'sblg':
            arch = f'dinov2_vit{size}14'
            name = arch + ('_reg' if registers else '')
            file_name = f'{arch}{"_reg4" if registers else ""}_pretrain.pth'
            title = f'DINOv2 {VIT_SIZE[size]}/14' + (' with registers' if registers else '')
            hf = ('facebook/dinov2-with-registers-' if registers else 'facebook/dinov2-') \
                + _HF_DINOV2_SIZE[size]
            config, miou = (None, None) if registers else _DINOV2_CONFIG[size]
            figure = f'ADE20K linear {miou} mIoU (DINOv2 Table 10)' if miou else None
            rows.append(ZooEntry(
                name, 'dinov2_reg' if registers else 'dinov2', 'backbone', name, file_name,
                f'{_DINOV2_BASE}/{arch}/{file_name}', APACHE, False, title, hf_repo=hf,
                figure=figure, config=config))
    return rows


def _dinov3_rows() -> List[ZooEntry]:
    rows = []
    for name, arch, title, data, hash8, hf_arch, card in _DINOV3:
        file_name = f'{arch}_pretrain_{data}-{hash8}.pth'
        family = 'dinov3_convnext' if 'convnext' in arch else 'dinov3'
        figure = None
        if card:
            miou, rmse = card.split(' / ')
            figure = f'ADE20K linear {miou} mIoU, NYU linear RMSE {rmse} (DINOv3 model card)'
        rows.append(ZooEntry(
            name, family, 'backbone', arch, file_name, f'{_DINOV3_BASE}/{arch}/{file_name}',
            DINOV3_LICENSE, True, f'DINOv3 {title}', f'{arch}_pretrain_{data}-<8 hex digits>.pth',
            hf_repo=f'facebook/dinov3-{hf_arch}-pretrain-{data}', figure=figure,
            config=_DINOV3_CONFIG.get(name)))
    return rows


def backbone_rows() -> List[ZooEntry]:
    """Every released backbone file, DINOv1, DINOv2, DINOv2 with registers, DINOv3."""
    return _dinov1_rows() + _dinov2_rows() + _dinov3_rows()
