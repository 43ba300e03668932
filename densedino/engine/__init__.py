"""Training machinery: the runner, crash-safe checkpoints, non-finite guards, optimizer wrappers
and constructors."""
from .checkpoint import (describe_checkpoint, load_model_checkpoint, model_state_dict,
                         read_model_checkpoint)
from .files import latest_checkpoint, write_atomic, write_text_atomic
from .hooks import SafeCheckpointHook
from .layer_decay import LayerDecayOptimWrapperConstructor, layer_id
from .nonfinite import NonFiniteError, NonFiniteGuard
from .optim_wrapper import BF16OptimWrapper, HeadSweepOptimWrapperConstructor
from .runner import DensedinoRunner, build_runner

__all__ = ['LayerDecayOptimWrapperConstructor', 'HeadSweepOptimWrapperConstructor', 'layer_id',
           'BF16OptimWrapper', 'DensedinoRunner', 'build_runner', 'SafeCheckpointHook',
           'NonFiniteError', 'NonFiniteGuard', 'latest_checkpoint', 'write_atomic',
           'write_text_atomic', 'describe_checkpoint', 'load_model_checkpoint',
           'read_model_checkpoint', 'model_state_dict']
