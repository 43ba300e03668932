"""The depth model: backbone + depth head on mmseg's segmentor contract.

``DinoDepthEstimator`` reuses mmseg's ``EncoderDecoder`` (densedino's, which fits the head's
input widths to the backbone) for feature extraction, training and the sliding window, and
replaces what depth needs differently: flip averaging for either inference mode, the metric
clamp, and ``pred_depth_map`` outputs resized to the ground truth (original image) size.
mmseg's own ``DepthEstimator`` is not used: its ``inference`` runs whole-image inference
whenever ``mode='slide'`` is asked for, and it only flips in a slide mode.

Each prediction of a metric head carries the head's range as metainfo ``depth_range``
(``(min_depth, max_depth)``): ``DenseDepthMetric`` evaluates in it unless its config gives
bounds, so the range is stated once, in ``model.decode_head``.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ..registry import MODELS
from .segmentor import EncoderDecoder

INFERENCE_MODES = ('whole', 'slide')
# Metainfo key of the head's (min_depth, max_depth) on every metric prediction; DenseDepthMetric
# reads it under the same name (models and evaluation do not import each other).
DEPTH_RANGE_KEY = 'depth_range'
#: Metainfo of a relative (affine-invariant disparity) head's predictions: no metric range.
RELATIVE_KEY = 'relative_disparity'


@MODELS.register_module()
class DinoDepthEstimator(EncoderDecoder):
    """Monocular depth estimation: backbone -> depth head, whole or sliding-window inference.

    ``test_cfg``:
        mode: ``'whole'`` (default) or ``'slide'`` (with ``crop_size`` and ``stride``).
        flip: Average the prediction with that of the horizontally flipped input (DINOv2 /
            DINOv3 evaluation). Default False.

    Predictions are clamped to the head's ``[min_depth, max_depth]`` (metric heads) at the
    head's resolution and then resized (bilinear) to the input, per window in slide mode (as
    DINOv2's depther clamps and resizes in every ``encode_decode`` call); windows and flips are
    averaged; the result is cut to the unpadded image, un-flipped when the test pipeline flipped
    the image, and resized (bilinear) to the original image size as ``pred_depth_map``: the size
    of the ground truth the metric compares with.

    Args:
        backbone, decode_head, data_preprocessor, train_cfg, test_cfg, init_cfg: as mmseg's
            ``EncoderDecoder``; ``decode_head`` is a depth head (``LinearDepthHead``,
            ``DPTDepthHead``).
    """

    def __init__(self, backbone: dict, decode_head: dict, *, data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        # mmseg's slide inference reads test_cfg.stride: a plain dict from Python needs wrapping
        test_cfg = ConfigDict(mode='whole') if test_cfg is None else ConfigDict(test_cfg)
        mode = test_cfg.get('mode', 'whole')
        if mode not in INFERENCE_MODES:
            raise ValueError(f'test_cfg.mode must be one of {INFERENCE_MODES}, got {mode!r}')
        if mode == 'slide':
            for key in ('crop_size', 'stride'):
                value = test_cfg.get(key)
                if not (isinstance(value, (tuple, list)) and len(value) == 2
                        and all(isinstance(v, int) and v > 0 for v in value)):
                    raise ValueError(f"test_cfg.mode='slide' needs {key} as (height, width) "
                                     f'positive integers, got {value!r}')
        super().__init__(backbone=backbone, decode_head=decode_head,
                         data_preprocessor=data_preprocessor, train_cfg=train_cfg,
                         test_cfg=test_cfg, init_cfg=init_cfg, **kwargs)

    def _forward_once(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        if self.test_cfg.get('mode', 'whole') == 'slide':
            return self.slide_inference(inputs, batch_img_metas)
        return self.encode_decode(inputs, batch_img_metas)

    def inference(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        """(B, 1, H, W) depth at the input size, flip-averaged if configured.

        The head clamps every prediction at its own resolution before resizing it to the input
        or window (``DepthHead.predict``); averages of windows and flips, and bilinear resizes,
        stay inside the range, so nothing is clamped again here.
        """
        depth = self._forward_once(inputs, batch_img_metas)
        if self.test_cfg.get('flip', False):
            flipped = self._forward_once(inputs.flip(-1), batch_img_metas).flip(-1)
            depth = (depth + flipped) / 2
        return depth

    def depth_range(self) -> Optional[Tuple[float, float]]:
        """The head's ``(min_depth, max_depth)``; None for relative heads (no metric range)."""
        head = self.decode_head
        return None if head.relative else (head.min_depth, head.max_depth)

    def postprocess_result(self, depth: torch.Tensor,
                           data_samples: Optional[List[SegDataSample]] = None
                           ) -> List[SegDataSample]:
        """Cut padding, undo a pipeline flip, resize to the original size; set ``pred_depth_map``
        and the head's range (metainfo ``depth_range``, which the depth metric evaluates in)."""
        depth_range = self.depth_range()
        info = {RELATIVE_KEY: True} if depth_range is None else {DEPTH_RANGE_KEY: depth_range}
        if data_samples is None:
            return [SegDataSample(pred_depth_map=PixelData(data=d), metainfo=info) for d in depth]
        height, width = depth.shape[-2:]
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            left, right, top, bottom = meta.get('img_padding_size',
                                                meta.get('padding_size', [0, 0, 0, 0]))
            d = depth[i:i + 1, :, top:height - bottom, left:width - right]
            if meta.get('flip', False):
                direction = meta.get('flip_direction', 'horizontal')
                dims = {'horizontal': (-1,), 'vertical': (-2,), 'diagonal': (-2, -1)}[direction]
                d = d.flip(dims)
            if tuple(d.shape[-2:]) != tuple(meta['ori_shape'][:2]):
                d = F.interpolate(d, size=tuple(meta['ori_shape'][:2]), mode='bilinear',
                                  align_corners=self.align_corners)
            sample.set_data({'pred_depth_map': PixelData(data=d[0])})
            sample.set_metainfo(info)
        return data_samples
