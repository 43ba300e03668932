"""Run an exported model (``export_onnx``) with ONNX Runtime, as ``inference_model`` runs a
PyTorch one: same inputs, same ``SegDataSample`` outputs."""
import ast
import json
import os
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

INPUT_NAME = 'image'


class OnnxRuntimeError(ValueError):
    """An input the exported graph cannot take, or a file that is no densedino export."""


def default_providers() -> List[str]:
    """CUDA where ONNX Runtime has it, then the CPU."""
    import onnxruntime as ort
    available = ort.get_available_providers()
    return [p for p in ('CUDAExecutionProvider', 'CPUExecutionProvider') if p in available]


class OnnxModel:
    """An exported densedino model on ONNX Runtime.

    ``model(img)`` takes what ``densedino.apis.inference_model`` takes (an image file, an
    (H, W, 3) **BGR** uint8 array, or a list of these), runs the config's test pipeline stored
    in the file (resize rule included), and returns ``SegDataSample`` objects at the original
    image size: ``seg_logits`` and ``pred_sem_seg`` (segmentation) or ``pred_depth_map`` with
    the head's ``depth_range`` / ``relative_disparity`` metainfo (depth), as the PyTorch model.

    Args:
        path: The .onnx file written by ``export_onnx``.
        providers: ONNX Runtime execution providers (default: CUDA when available, CPU).

    Attributes:
        task: 'seg' or 'depth'; ``dataset_meta``: classes and palette; ``patch_size``;
        ``size_multiple``: what height and width must be a multiple of (0: only the export size).
    """

    def __init__(self, path: Union[str, os.PathLike], providers: Optional[Sequence[str]] = None
                 ) -> None:
        import onnxruntime as ort
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise OnnxRuntimeError(f'ONNX file {path} does not exist')
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, options,
                                                providers=list(providers or default_providers()))
        except Exception as e:  # noqa: BLE001 - ORT's messages are long
            raise OnnxRuntimeError(f'cannot load {path}: {" ".join(str(e).split())[:200]}') \
                from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if 'densedino.task' not in meta:
            raise OnnxRuntimeError(f'{path} is not a densedino export (no densedino.task '
                                   'metadata): write it with tools/export_onnx.py')
        self.path, self.metadata = path, meta
        self.task = meta['densedino.task']
        self.patch_size = int(meta['densedino.patch_size'])
        self.size_multiple = int(meta.get('densedino.size_multiple', '0'))
        self.export_size = tuple(json.loads(meta.get('densedino.export_size', '[0, 0]')))
        self.align_corners = json.loads(meta.get('densedino.align_corners', 'false'))
        self.dataset_meta = dict(classes=tuple(json.loads(meta['densedino.classes'])),
                                 palette=json.loads(meta.get('densedino.palette', '[]')))
        self.relative = json.loads(meta.get('densedino.relative', 'false'))
        depth_range = json.loads(meta.get('densedino.depth_range', 'null'))
        self.depth_range = tuple(depth_range) if depth_range else None
        self._pipeline = None

    @property
    def pipeline(self):
        """The test pipeline of the exported model's config (``InferencePipeline``)."""
        if self._pipeline is None:
            from mmengine.config import Config
            from ..apis import InferencePipeline
            steps = ast.literal_eval(self.metadata.get('densedino.test_pipeline', '[]'))
            if not steps:
                raise OnnxRuntimeError(f'{self.path} stores no test pipeline: pass image '
                                       'tensors to run() instead')
            self._pipeline = InferencePipeline(Config(dict(test_pipeline=steps)))
        return self._pipeline

    def check_size(self, height: int, width: int) -> None:
        """One-line error for an input size the graph cannot take."""
        m = self.size_multiple
        if m == 0 and (height, width) != self.export_size:
            raise OnnxRuntimeError(f'input {height}x{width}: {self.path} was exported for '
                                   f'{self.export_size[0]}x{self.export_size[1]} only (export '
                                   'with --dynamic for other sizes)')
        if m > 1 and (height % m or width % m):
            raise OnnxRuntimeError(f'input {height}x{width} is not a multiple of {m} (the patch '
                                   f'size {self.patch_size}'
                                   f'{"" if m == self.patch_size else " x 2, for this head"}), '
                                   f'which {self.path} needs')
        if min(height, width) <= max(m, self.patch_size) and m != 0:
            raise OnnxRuntimeError(f'input {height}x{width} is too small for {self.path}: '
                                   f'at least {max(m, self.patch_size) + 1} pixels a side')

    def run(self, image: np.ndarray) -> List[np.ndarray]:
        """The raw graph: (B, 3, H, W) float32 RGB 0-255 -> [logits, labels] or [depth]."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        if image.ndim != 4 or image.shape[1] != 3:
            raise OnnxRuntimeError(f'expected a (B, 3, H, W) RGB batch, got {image.shape}')
        self.check_size(*image.shape[-2:])
        return self.session.run(None, {INPUT_NAME: image})

    def __call__(self, img):
        """Like ``inference_model(model, img)``: one ``SegDataSample`` or a list of them."""
        is_batch = isinstance(img, (list, tuple))
        images = list(img) if is_batch else [img]
        if not images:
            raise OnnxRuntimeError('OnnxModel got an empty list of images')
        results = [self._predict_one(image) for image in images]
        return results if is_batch else results[0]

    def _predict_one(self, img):
        data = self.pipeline(img)
        sample = data['data_samples']
        bgr = data['inputs'].numpy()  # (3, h, w) BGR, as the pipeline packs it
        outputs = self.run(bgr[::-1][None].astype(np.float32))
        pred = torch.from_numpy(outputs[0])
        return self._postprocess(pred, sample)

    def _postprocess(self, pred: torch.Tensor, sample):
        """The model's ``postprocess_result``: un-flip, resize to the original size."""
        from mmengine.structures import PixelData
        meta = sample.metainfo
        left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
        pred = pred[..., top:pred.shape[-2] - bottom, left:pred.shape[-1] - right]
        if meta.get('flip', False):
            dims = {'horizontal': (-1,), 'vertical': (-2,), 'diagonal': (-2, -1)}[
                meta.get('flip_direction', 'horizontal')]
            pred = pred.flip(dims)
        ori = tuple(meta['ori_shape'][:2])
        if self.task == 'depth':
            if tuple(pred.shape[-2:]) != ori:
                pred = F.interpolate(pred, size=ori, mode='bilinear',
                                     align_corners=self.align_corners)
            sample.set_data({'pred_depth_map': PixelData(data=pred[0])})
            sample.set_metainfo({'relative_disparity': True} if self.relative
                                else {'depth_range': self.depth_range})
            return sample
        logits = F.interpolate(pred, size=ori, mode='bilinear',
                               align_corners=self.align_corners)[0]
        if logits.shape[0] > 1:
            labels = logits.argmax(dim=0, keepdim=True)
        else:
            logits = logits.sigmoid()
            labels = (logits > float(self.metadata.get('densedino.threshold', 0.3))).to(logits)
        sample.set_data({'seg_logits': PixelData(data=logits),
                         'pred_sem_seg': PixelData(data=labels)})
        return sample
