"""``create_backbone``: a preset by hub name, optional overrides, optional weights (a file, or
the released ones fetched by name)."""
from typing import Optional

from torch import nn

from ... import zoo
from .checkpoint import load_into
from .convnext import ConvNeXt
from .presets import get_preset
from .vit import DinoVisionTransformer


def create_backbone(name: str, *, checkpoint: Optional[str] = None, pretrained: bool = False,
                    **overrides) -> nn.Module:
    """Build the backbone ``name`` (an official hub name) and load weights strictly.

    Args:
        name: e.g. 'dinov2_vits14', 'dinov2_vitb14_reg', 'dinov3_vitl16', 'dino_vitb8',
            'dinov3_convnext_tiny'. ``densedino.list_backbones()`` lists them; with
            ``pretrained=True`` any backbone of the zoo (e.g. 'dinov3_vitl16_sat493m').
        checkpoint: Official torch-hub ``.pth``, official training checkpoint, Hugging Face
            directory or file, or timm state dict; the format is detected from the keys.
        pretrained: Load the released weights of ``name``: fetched into the cache on first use
            through ``densedino.hub`` (mirror, offline mode, DINOv3 access URL: docs/zoo.md),
            then read like a ``checkpoint`` (format detection, weights-only unpickling, strict).
        **overrides: Replace preset options (e.g. ``depth=2, embed_dim=32, num_heads=2``).

    Returns:
        A ``DinoVisionTransformer`` or ``ConvNeXt`` in eval mode.

    Raises:
        ValueError: both ``checkpoint`` and ``pretrained`` given (they would name two sources
            of the same weights), or ``pretrained`` for a name with no released backbone file.
        densedino.hub.DownloadError: the released file cannot be fetched.
    """
    entry = None
    if pretrained:
        if checkpoint is not None:
            raise ValueError(
                f'{name}: give checkpoint= or pretrained=True, not both (checkpoint={checkpoint} '
                'would replace the released weights); in a config set '
                'model.backbone.pretrained=False to load the checkpoint')
        entry = zoo.backbone_entry(name)
        checkpoint = zoo.fetch(entry)  # before the build: a failed download fails fast
    preset = get_preset(entry.arch if entry is not None else name)
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
