"""densedino's registries: children of mmseg's, so mmseg modules resolve from densedino configs.

Configs use ``default_scope = 'densedino'``; names not registered here are looked up in the
parent (mmseg, then mmengine) registries. ``locations`` lists the modules imported lazily on
first lookup, mmseg's included, since a parent registry does not import its own modules when
a child searches it.
"""
import mmseg.registry as _mmseg
from mmengine.registry import Registry
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS


def _child(name: str, parent: Registry, *locations: str) -> Registry:
    return Registry(name, parent=parent, scope='densedino', locations=list(locations))


MODELS = _child('model', MMSEG_MODELS, 'densedino.models', 'densedino.pretrain', 'mmseg.models')
DATASETS = _child('dataset', MMSEG_DATASETS, 'densedino.datasets', 'densedino.pretrain',
                  'mmseg.datasets')
TRANSFORMS = _child('transform', MMSEG_TRANSFORMS, 'densedino.datasets', 'mmseg.datasets')
METRICS = _child('metric', MMSEG_METRICS, 'densedino.evaluation', 'mmseg.evaluation')
HOOKS = _child('hook', MMSEG_HOOKS, 'densedino.engine', 'densedino.pretrain', 'mmseg.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMSEG_OPTIM_WRAPPER_CONSTRUCTORS, 'densedino.engine',
                                    'mmseg.engine')
OPTIM_WRAPPERS = _child('optim wrapper', MMSEG_OPTIM_WRAPPERS, 'densedino.engine', 'mmseg.engine')
RUNNERS = _child('runner', _mmseg.RUNNERS, 'densedino.engine')
VISUALIZERS = _child('visualizer', MMSEG_VISUALIZERS, 'densedino.visualization',
                     'mmseg.visualization')

# The rest of mmseg's registries get plain children too, so that building loops, samplers,
# schedulers ... in the 'densedino' scope finds mmengine's classes without falling back.
for _name in ('DATA_SAMPLERS', 'EVALUATOR', 'INFERENCERS', 'LOG_PROCESSORS', 'LOOPS',
              'MODEL_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'RUNNER_CONSTRUCTORS',
              'TASK_UTILS', 'VISBACKENDS', 'WEIGHT_INITIALIZERS'):
    globals()[_name] = _child(getattr(_mmseg, _name).name, getattr(_mmseg, _name))

__all__ = ['MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS',
           'OPTIM_WRAPPERS', 'RUNNERS', 'VISUALIZERS', 'DATA_SAMPLERS', 'EVALUATOR', 'INFERENCERS',
           'LOG_PROCESSORS', 'LOOPS', 'MODEL_WRAPPERS', 'OPTIMIZERS', 'PARAM_SCHEDULERS',
           'RUNNER_CONSTRUCTORS', 'TASK_UTILS', 'VISBACKENDS', 'WEIGHT_INITIALIZERS']
