"""densedino's registries: children of mmseg's, so mmseg modules resolve from densedino configs.

Configs use ``default_scope = 'densedino'``; anything not registered here is looked up in the
parent (mmseg, then mmengine) registries.
"""
from mmengine.registry import Registry
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS

MODELS = Registry('model', parent=MMSEG_MODELS, scope='densedino',
                  locations=['densedino.models'])
DATASETS = Registry('dataset', parent=MMSEG_DATASETS, scope='densedino',
                    locations=['densedino.datasets'])
TRANSFORMS = Registry('transform', parent=MMSEG_TRANSFORMS, scope='densedino',
                      locations=['densedino.datasets'])
METRICS = Registry('metric', parent=MMSEG_METRICS, scope='densedino',
                   locations=['densedino.evaluation'])
HOOKS = Registry('hook', parent=MMSEG_HOOKS, scope='densedino', locations=['densedino.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='densedino', locations=['densedino.engine'])
VISUALIZERS = Registry('visualizer', parent=MMSEG_VISUALIZERS, scope='densedino',
                       locations=['densedino.visualization'])
