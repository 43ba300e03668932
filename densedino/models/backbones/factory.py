"""``create_backbone``: a preset by hub name, optional overrides, optional checkpoint."""
from typing import Optional

from torch import nn

from .checkpoint import load_into
from .convnext import ConvNeXt
from .presets import get_preset
from .vit import DinoVisionTransformer


def create_backbone(name: str, *, checkpoint: Optional[str] = None, **overrides) -> nn.Module:
    """Build the backbone ``name`` (an official hub name) and load ``checkpoint`` strictly.

    Args:
        name: e.g. 'dinov2_vits14', 'dinov2_vitb14_reg', 'dinov3_vitl16', 'dino_vitb8',
            'dinov3_convnext_tiny'. ``densedino.list_backbones()`` lists them.
        checkpoint: Official torch-hub ``.pth``, official training checkpoint, Hugging Face
            directory or file, or timm state dict; the format is detected from the keys.
        **overrides: Replace preset options (e.g. ``depth=2, embed_dim=32, num_heads=2``).

    Returns:
        A ``DinoVisionTransformer`` or ``ConvNeXt`` in eval mode.
    """
    preset = get_preset(name)
    kwargs = {**preset.kwargs, **overrides}
    cls = DinoVisionTransformer if preset.is_vit else ConvNeXt
    try:
        model = cls(**kwargs)
    except TypeError as e:
        raise TypeError(f'{name}: bad override ({e})') from None
    model.preset = preset
    if checkpoint is not None:
        load_into(model, checkpoint, name=name)
    return model.eval()
