"""Training machinery: optimizer wrappers and constructors, hooks."""
from .layer_decay import LayerDecayOptimWrapperConstructor, layer_id
from .optim_wrapper import BF16OptimWrapper

__all__ = ['LayerDecayOptimWrapperConstructor', 'layer_id', 'BF16OptimWrapper']
