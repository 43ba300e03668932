"""densedino: semantic segmentation and monocular depth on DINO backbones."""
from . import compat  # noqa: F401  (must run before anything imports mmseg submodules)
from .models.backbones import CheckpointError, create_backbone, list_backbones
from .apis import inference_model, init_model
from .zoo import list_models

__version__ = '0.1.0'
__all__ = ['create_backbone', 'list_backbones', 'list_models', 'CheckpointError', 'init_model',
           'inference_model', '__version__']
