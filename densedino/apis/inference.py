"""Single-image inference with a trained segmentor: build it from a config, run it on images.

Follows ``mmseg.apis`` (``init_model`` / ``inference_model`` return the same objects), with
these differences:

- Models, datasets and transforms are built in the ``'densedino'`` registry scope.
- ``model.dataset_meta`` (class names, palette) comes from the checkpoint's
  ``meta.dataset_meta``, which mmengine's ``CheckpointHook`` writes; failing that, from the
  config's dataset (``METAINFO`` of its class, updated by its ``metainfo``). mmseg instead guesses a
  dataset from the number of classes and falls back to Cityscapes' names; here the model's
  classes are never guessed: without either source ``init_model`` raises.
- Checkpoints are loaded strictly; missing files, unreadable files, files of another
  architecture, unreadable images give one-line errors that name the file.
- The test pipeline is built afresh for every call, from the config's ``test_dataloader``
  (what ``tools/test.py`` runs). mmseg's ``_preprare_data`` edits ``model.cfg.test_pipeline``
  in place (after one call with an array, later calls with a path fail), and decides file vs array
  for a whole list from its first item.
- Images are run through ``test_step`` one at a time: mmseg's ``SegDataPreProcessor`` refuses a
  test batch of images of different sizes.
"""
import copy
import os
import os.path as osp
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from mmseg.models import BaseSegmentor
from mmseg.structures import SegDataSample

from .. import zoo
from ..engine.checkpoint import load_model_checkpoint, read_model_checkpoint
from ..models import load_depth_anything_v2
from ..models.backbones.checkpoint import CheckpointError
from ..models.heads import load_head_checkpoint
from ..registry import DATASETS, MODELS, TRANSFORMS
from ..visualization.overlay import default_palette

SCOPE = 'densedino'
ImageInput = Union[str, os.PathLike, np.ndarray]
StateDict = Dict[str, torch.Tensor]
# Transforms of the test pipeline that belong to a dataset, not to the model: annotation loading,
# and the fixed benchmark crops (KITTI's 352 x 1216 KB crop, NYU's border crop) that would fail
# on or mutilate images of other sizes.
_DATASET_ONLY = ('LoadAnnotations', 'LoadDepthAnnotation', 'KBCrop', 'NYUCrop')
_DATALOADERS = ('test_dataloader', 'val_dataloader', 'train_dataloader')


class InferenceError(ValueError):
    """An image, config or class list that inference cannot use; the message names it."""


def init_model(config: Union[str, Path, Config], checkpoint: Optional[Union[str, Path]] = None,
               device: str = 'cpu', cfg_options: Optional[dict] = None) -> BaseSegmentor:
    """Build a segmentor from a config and load a trained checkpoint into it, or build a
    released model by its zoo name.

    Args:
        config: Config file path or ``Config`` (not modified; a copy is used), or the name of a
            complete model of the zoo (``densedino.list_models()``, e.g.
            ``'dinov2_vits14_nyu_dpt'``): its config, with the released backbone and head (or
            Depth-Anything-V2 file) fetched into the cache on first use and loaded strictly.
        checkpoint: Full-model checkpoint (e.g. ``iter_N.pth`` from training), or None to keep
            the config's weights (random head, backbone from ``model.backbone.checkpoint`` or,
            with ``model.backbone.pretrained``, the released one). Not with a zoo name.
        device: Device to put the model on.
        cfg_options: Config overrides, as ``Config.merge_from_dict`` takes them (for a zoo
            name, applied after the entry's own).

    Returns:
        The segmentor in eval mode, with ``dataset_meta`` (``classes``, ``palette``, ...) and
        ``cfg`` (the config used) set.

    Raises:
        CheckpointError: The checkpoint is missing, unreadable, or does not fit the model.
        InferenceError: The config file is missing (and the name is no zoo model), or no
            class names are known (neither ``meta.dataset_meta`` in the checkpoint nor classes
            in the config's dataset), or they do not match the head's number of classes.
        densedino.hub.DownloadError: A released file cannot be fetched.
    """
    if _is_zoo_name(config):
        if checkpoint is not None:
            raise InferenceError(f'{config} is a zoo model and brings its own weights; to load '
                                 f'{checkpoint}, pass its config instead of the name')
        return _init_zoo_model(str(config), device, cfg_options)
    cfg = _load_config(config, cfg_options)
    ckpt = read_model_checkpoint(checkpoint) if checkpoint is not None else None
    _prepare_model_cfg(cfg, from_checkpoint=ckpt is not None)
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(cfg.model)
        if ckpt is not None:
            load_model_checkpoint(model, ckpt, checkpoint, what=f'the model of {_cfg_name(cfg)}')
        model.dataset_meta = model_dataset_meta(model, cfg, ckpt, checkpoint)
    _check_num_classes(model, checkpoint)
    model.cfg = cfg
    return model.to(device).eval()


def _is_zoo_name(config: Any) -> bool:
    """A zoo name rather than a config: a string that names an entry and no file."""
    return isinstance(config, str) and config in zoo.ZOO and not osp.exists(config)


def _init_zoo_model(name: str, device: str, cfg_options: Optional[dict]) -> BaseSegmentor:
    """``init_model(name)``: the entry's config with its released files, assembled in memory
    as ``tools/convert_checkpoint.py`` would join them (backbone file as the backbone
    checkpoint, head file loaded strictly into the head; or one Depth-Anything-V2 file)."""
    entry = zoo.get(name)
    if entry.kind != 'model':
        use = 'densedino.create_backbone(name, pretrained=True)' if entry.kind == 'backbone' \
            else f'init_model({entry.name[:-len("_head")]!r}), its complete model'
        raise InferenceError(f'{name} is a {entry.kind}, not a complete model: init_model takes '
                             f'densedino.list_models() names; use {use}')
    config = zoo.config_path(entry)  # a missing configs/ folder before any download
    paths = [zoo.fetch(part) for part in zoo.files(name)]  # downloads before the slow build
    cfg = _load_config(config, {**dict(entry.cfg_options), **(cfg_options or {})})
    _prepare_model_cfg(cfg, from_checkpoint=True)
    joined = entry.loader == 'backbone+head'
    if joined:
        cfg.model.backbone.checkpoint = paths[0]
    with DefaultScope.overwrite_default_scope(SCOPE):
        model = MODELS.build(cfg.model)
        if joined:
            load_head_checkpoint(model, paths[1])
        else:
            load_depth_anything_v2(model, paths[0])
        model.dataset_meta = model_dataset_meta(model, cfg)
    _check_num_classes(model, None)
    model.cfg = cfg
    return model.to(device).eval()


def inference_model(model: BaseSegmentor, img: Union[ImageInput, Sequence[ImageInput]]
                    ) -> Union[SegDataSample, List[SegDataSample]]:
    """Segment image(s) with a model from :func:`init_model`.

    Args:
        model: The segmentor; ``model.cfg`` gives the test pipeline.
        img: An image file path, or an ``(H, W, 3)`` array in **BGR** channel order (mmseg's
            and OpenCV's convention: what ``cv2.imread`` returns; the model's data preprocessor
            converts to RGB as it does for files), or a list/tuple of these (mixed is fine).

    Returns:
        A ``SegDataSample`` per image (a list for a list input) whose ``pred_sem_seg.data`` is
        ``(1, H, W)`` class indices and ``seg_logits.data`` ``(C, H, W)``, at the image's size.

    Raises:
        InferenceError: An image file is missing or unreadable, or an array is not
            ``(H, W, 3)``; the message names it.
    """
    is_batch = isinstance(img, (list, tuple))
    images = list(img) if is_batch else [img]
    if not images:
        raise InferenceError('inference_model got an empty list of images')
    pipeline = InferencePipeline(model.cfg)
    results = []
    with torch.no_grad():
        for image in images:
            data = pipeline(image)
            batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
            results.extend(model.test_step(batch))
    return results if is_batch else results[0]


class InferencePipeline:
    """The config's test pipeline without dataset-only steps, for a file path or a BGR array.

    Args:
        cfg: Config whose ``test_dataloader.dataset.pipeline`` (or ``test_pipeline``) starts with
            an image loader such as ``LoadImageFromFile``.
    """

    def __init__(self, cfg: Config) -> None:
        steps = [t for t in _test_pipeline_cfg(cfg) if _type_name(t) not in _DATASET_ONLY]
        if not steps or 'LoadImage' not in _type_name(steps[0]):
            first = _type_name(steps[0]) if steps else 'nothing'
            raise InferenceError(f'the test pipeline of {_cfg_name(cfg)} must start with an '
                                 f'image loader such as LoadImageFromFile, got {first}')
        loader = steps[0]
        with DefaultScope.overwrite_default_scope(SCOPE):
            self.file_loader = TRANSFORMS.build(loader)
            self.array_loader = TRANSFORMS.build(dict(
                type='LoadImageFromNDArray', to_float32=loader.get('to_float32', False)))
            self.transforms = Compose([TRANSFORMS.build(t) for t in steps[1:]])

    def __call__(self, img: ImageInput) -> Dict[str, Any]:
        """Load ``img`` and apply the remaining transforms (``inputs``, ``data_samples``)."""
        if isinstance(img, np.ndarray):
            return self.transforms(self._load_array(img))
        if isinstance(img, (str, os.PathLike)):
            return self.transforms(self._load_file(os.fspath(img)))
        raise InferenceError(f'an image must be a file path or an (H, W, 3) BGR array, got '
                             f'{type(img).__name__}')

    def _load_file(self, path: str) -> dict:
        if not osp.isfile(path):
            raise InferenceError(f'image file {path} does not exist')
        try:
            results = self.file_loader(dict(img_path=path))
        except Exception as e:  # noqa: BLE001 - any decoding failure becomes one line
            raise InferenceError(f'cannot read image file {path}: not an image, or corrupt '
                                 f'({type(e).__name__})') from None
        if results is None or results.get('img') is None:  # ignore_empty=True returns None
            raise InferenceError(f'cannot read image file {path}: not an image, or corrupt')
        return results

    def _load_array(self, img: np.ndarray) -> dict:
        if img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
            raise InferenceError(f'an image array must be (H, W, 3) in BGR order, got shape '
                                 f'{img.shape}')
        return self.array_loader(dict(img=img))


def resolve_dataset_meta(cfg: Config, checkpoint: Optional[dict] = None,
                         checkpoint_path: Optional[str] = None) -> dict:
    """The model's class names and palette: from the checkpoint, else from the config's dataset.

    Args:
        cfg: The model's config.
        checkpoint: The loaded checkpoint (a dict with ``meta``), or None.
        checkpoint_path: Its file name, for the error message.

    Returns:
        ``dataset_meta`` with ``classes`` (a tuple) and ``palette`` (one RGB list per class; a
        fixed random one where the source has none) and any other keys of the source.

    Raises:
        InferenceError: Neither source names the classes.
    """
    meta = _meta_from_checkpoint(checkpoint) or _meta_from_config(cfg)
    if meta is None:
        where = (f'checkpoint {checkpoint_path} has no meta.dataset_meta' if checkpoint_path
                 else 'no checkpoint was given')
        raise InferenceError(f'{where} and the dataset of {_cfg_name(cfg)} declares no '
                             'classes (METAINFO / metainfo); cannot tell the class names')
    return _complete_meta(meta)


def model_dataset_meta(model: BaseSegmentor, cfg: Config, ckpt: Optional[dict] = None,
                       checkpoint: Optional[str] = None) -> dict:
    """``resolve_dataset_meta``; depth models without class names get the single class 'depth'."""
    from ..models.heads import DepthHead
    try:
        return resolve_dataset_meta(cfg, ckpt, checkpoint)
    except InferenceError:
        if isinstance(getattr(model, 'decode_head', None), DepthHead):
            return _complete_meta(dict(classes=('depth',)))
        raise


def _load_config(config: Union[str, Path, Config], cfg_options: Optional[dict]) -> Config:
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise InferenceError(_missing_config(str(config)))
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a file name or a Config, got {type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _missing_config(config: str) -> str:
    """A missing config file; a bare name (no folder, no .py) is taken for a mistyped zoo
    name and answered with the nearest model names."""
    if osp.dirname(config) or config.endswith('.py'):
        return f'config file {config} does not exist'
    return (f'{config} is neither a config file nor a zoo model name; '
            f'{zoo.suggest(config, zoo.list_models())}')


def _prepare_model_cfg(cfg: Config, *, from_checkpoint: bool) -> None:
    """No training-only settings; with a full checkpoint, no separate backbone weights to read
    (neither a file nor the released weights, which would be downloaded for nothing)."""
    cfg.model.train_cfg = None
    cfg.model.pop('pretrained', None)
    backbone = cfg.model.get('backbone')
    if backbone is not None:
        backbone.pop('init_cfg', None)
        if from_checkpoint and 'checkpoint' in backbone:
            # the full checkpoint holds the backbone too; the pretrained file may not be here
            backbone.checkpoint = None
        if from_checkpoint and backbone.get('pretrained'):
            backbone.pretrained = False


def _meta_from_checkpoint(ckpt: Optional[dict]) -> Optional[dict]:
    meta = (ckpt or {}).get('meta') or {}
    if meta.get('dataset_meta') and meta['dataset_meta'].get('classes'):
        return dict(meta['dataset_meta'])
    if meta.get('CLASSES'):  # mmseg 0.x checkpoints
        return dict(classes=meta['CLASSES'], palette=meta.get('PALETTE'))
    return None


def _meta_from_config(cfg: Config) -> Optional[dict]:
    """``METAINFO`` of the first dataloader's dataset class, updated by its ``metainfo``."""
    for name in _DATALOADERS:
        dataset = _innermost_dataset(cfg.get(name) or {})
        if dataset is None:
            continue
        cls = dataset['type']
        if isinstance(cls, str):
            with DefaultScope.overwrite_default_scope(SCOPE):
                cls = DATASETS.get(cls)
        meta = dict(getattr(cls, 'METAINFO', None) or {})
        meta.update(dataset.get('metainfo') or {})
        if meta.get('classes'):
            return meta
    return None


def _innermost_dataset(dataloader: dict) -> Optional[dict]:
    """The dataset config inside wrappers (``RepeatDataset``, ``ConcatDataset``: its first)."""
    dataset = dataloader.get('dataset')
    while isinstance(dataset, dict) and ('dataset' in dataset or 'datasets' in dataset):
        dataset = dataset['dataset'] if 'dataset' in dataset else dataset['datasets'][0]
    return dataset if isinstance(dataset, dict) and 'type' in dataset else None


def _complete_meta(meta: dict) -> dict:
    classes = tuple(meta['classes'])
    palette = meta.get('palette')
    if not palette or len(palette) < len(classes):
        palette = default_palette(len(classes))
    return {**meta, 'classes': classes, 'palette': [list(map(int, c)) for c in palette]}


def _check_num_classes(model: BaseSegmentor, checkpoint: Optional[str]) -> None:
    num = getattr(getattr(model, 'decode_head', None), 'num_classes', None)
    classes = model.dataset_meta['classes']
    if num is not None and num != len(classes):
        source = f'checkpoint {checkpoint}' if checkpoint else 'the config\'s dataset'
        raise InferenceError(f'{source} names {len(classes)} classes but the model\'s head '
                             f'predicts {num}')


def _test_pipeline_cfg(cfg: Config) -> List[dict]:
    """The test dataloader's pipeline (what ``tools/test.py`` runs), else ``test_pipeline``."""
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise InferenceError(f'{_cfg_name(cfg)} has no test pipeline (test_dataloader.dataset.'
                             'pipeline or test_pipeline)')
    return copy.deepcopy(list(pipeline))


def _type_name(transform: dict) -> str:
    t = transform.get('type', '')
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _cfg_name(cfg: Config) -> str:
    return f'config {cfg.filename}' if getattr(cfg, 'filename', None) else 'the config'
