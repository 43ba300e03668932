"""Hub names -> architecture options. One table for every DINO family (docs/protocols.md section 1).

``PRESETS[name]`` holds the family and the constructor options; ``create_backbone`` builds them.
"""
import difflib
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FAMILIES = ('dinov1', 'dinov2', 'dinov2_reg', 'dinov3', 'dinov3_convnext')


@dataclass(frozen=True)
class Preset:
    """A named architecture.

    Attributes:
        name: The official torch-hub entry name.
        family: One of ``FAMILIES``.
        kwargs: Constructor options of the backbone class.
        mean: RGB normalisation mean (0-1 scale) the weights were trained with.
        std: RGB normalisation std (0-1 scale).
    """
    name: str
    family: str
    kwargs: Dict = field(default_factory=dict)
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD

    @property
    def is_vit(self) -> bool:
        return self.family != 'dinov3_convnext'


_VIT_SIZES = {  # embed_dim, depth, heads
    's': (384, 12, 6), 'b': (768, 12, 12), 'l': (1024, 24, 16), 'g': (1536, 40, 24),
    'h': (1280, 32, 20), '7b': (4096, 40, 32),
}


def _vit(size: str, **kwargs) -> Dict:
    dim, depth, heads = _VIT_SIZES[size]
    return dict(embed_dim=dim, depth=depth, num_heads=heads, **kwargs)


def _dinov1(size: str, patch: int) -> Dict:
    return _vit(size, patch_size=patch, img_size=224, layerscale_init=None, norm_eps=1e-6,
                interpolate_offset=0.1, mask_token=False)


def _dinov2(size: str, registers: bool) -> Dict:
    interp = dict(interpolate_offset=0.0, interpolate_antialias=True) if registers else \
        dict(interpolate_offset=0.1, interpolate_antialias=False)
    return _vit(size, patch_size=14, img_size=518, layerscale_init=1.0, norm_eps=1e-6,
                ffn_layer='swiglu_packed' if size == 'g' else 'mlp',
                num_register_tokens=4 if registers else 0, **interp)


def _dinov3(size: str, ffn_layer: str = 'mlp', ffn_ratio: float = 4.0, **kwargs) -> Dict:
    return _vit(size, patch_size=16, pos_embed='rope', rope_base=100.0, layerscale_init=1e-5,
                norm_eps=1e-5, num_register_tokens=4, ffn_layer=ffn_layer, ffn_ratio=ffn_ratio,
                **kwargs)


def _build_table() -> Dict[str, Preset]:
    table = {}
    for size, tag in (('s', 'deitsmall'), ('b', 'vitbase')):
        for patch in (16, 8):
            name = f'dino_vit{size}{patch}'
            table[name] = Preset(name, 'dinov1', _dinov1(size, patch))
    for size in 'sblg':
        table[f'dinov2_vit{size}14'] = Preset(f'dinov2_vit{size}14', 'dinov2',
                                              _dinov2(size, registers=False))
        table[f'dinov2_vit{size}14_reg'] = Preset(f'dinov2_vit{size}14_reg', 'dinov2_reg',
                                                  _dinov2(size, registers=True))
    v3 = {
        'dinov3_vits16': _dinov3('s'),
        'dinov3_vits16plus': _dinov3('s', 'swiglu', 6.0),
        'dinov3_vitb16': _dinov3('b'),
        'dinov3_vitl16': _dinov3('l'),
        'dinov3_vith16plus': _dinov3('h', 'swiglu', 6.0),
        'dinov3_vit7b16': _dinov3('7b', 'swiglu', 3.0, ffn_align=64, qkv_bias=False),
    }
    table.update({k: Preset(k, 'dinov3', v) for k, v in v3.items()})
    from .convnext import CONVNEXT_PRESETS
    table.update({k: Preset(k, 'dinov3_convnext', dict(v)) for k, v in CONVNEXT_PRESETS.items()})
    return table


PRESETS: Dict[str, Preset] = _build_table()


def list_backbones() -> List[str]:
    """All preset names, in table order."""
    return list(PRESETS)


class UnknownBackboneError(KeyError):
    """An unknown preset name; the message lists the nearest known names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def get_preset(name: str) -> Preset:
    """Look a preset up; an unknown name raises a KeyError listing the nearest names."""
    if name in PRESETS:
        return PRESETS[name]
    near = difflib.get_close_matches(name, PRESETS, n=4, cutoff=0.5)
    hint = f'did you mean {", ".join(near)}?' if near else f'known: {", ".join(PRESETS)}'
    raise UnknownBackboneError(f'unknown backbone {name!r}; {hint}')
