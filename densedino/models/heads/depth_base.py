"""What every depth head shares: the output range, the losses and the resize to labels / image.

A depth head maps backbone outputs to a (B, 1, h, w) map at its own resolution (metres for metric
heads, disparity for relative ones such as Depth-Anything-V2's relative model). Training resizes
the map to the ground truth (bilinear) and applies the configured losses on pixels with a
measurement; inference clamps it to ``[min_depth, max_depth]`` (metric heads) at the head's
resolution and then resizes it to the network input, in the order of DINOv2's depther.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS


def gt_depth_batch(batch_data_samples: Sequence) -> torch.Tensor:
    """Stack the samples' ``gt_depth_map`` into (B, 1, H, W) metres (0 = no measurement).

    Raises:
        ValueError: a sample without ``gt_depth_map`` (names its image).
    """
    maps = []
    for sample in batch_data_samples:
        if 'gt_depth_map' not in sample:
            raise ValueError(f'no gt_depth_map for {sample.metainfo.get("img_path", "an image")}: '
                             'the training pipeline needs LoadDepthAnnotation')
        maps.append(sample.gt_depth_map.data)
    return torch.stack(maps, dim=0).float()


def target_size(batch_img_metas: List[dict]) -> Sequence[int]:
    """The size a prediction is resized to at inference (mmseg's rule).

    Slide inference sets ``img_shape`` to the window (a ``torch.Size``); otherwise the padded
    batch size (``pad_shape``) when the data preprocessor padded, else ``img_shape``.
    """
    meta = batch_img_metas[0]
    if isinstance(meta['img_shape'], torch.Size):
        return meta['img_shape']
    if 'pad_shape' in meta:
        return meta['pad_shape'][:2]
    return meta['img_shape']


class DepthHead(BaseModule):
    """Base of the depth heads: range, losses, and mmseg's decode-head calling contract.

    Subclasses implement ``forward(inputs) -> (B, 1, h, w)``. The estimator calls ``loss``
    (training) and ``predict`` (inference) like mmseg's ``BaseDecodeHead``.

    Args:
        min_depth: Smallest depth the head predicts (metres); also the clamp at inference.
        max_depth: Largest depth; pixels with ground truth above it are not supervised.
        loss_decode: One loss config or a list (``SigLoss``, ``GradientLoss`` ...); each loss is
            called as ``loss(pred, gt, valid_mask)`` and reported under its ``loss_name``.
            An empty list makes an inference-only head (as the released heads are configured).
        align_corners: ``align_corners`` of the bilinear resizes to labels and image.
        relative: The head predicts relative depth / disparity (no metric range): predictions
            are not clamped and no metric losses apply.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self, *, min_depth: float = 1e-3, max_depth: float = 10.0,
                 loss_decode: Union[dict, Sequence[dict], None] = None,
                 align_corners: bool = False, relative: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 <= min_depth < max_depth:
            raise ValueError(f'need 0 <= min_depth < max_depth, got min_depth={min_depth}, '
                             f'max_depth={max_depth}')
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.align_corners = align_corners
        self.relative = relative
        # The segmentor reads these (mmseg's EncoderDecoder contract).
        self.num_classes = 1
        self.out_channels = 1
        if loss_decode is None:
            loss_decode = []
        elif isinstance(loss_decode, dict):
            loss_decode = [loss_decode]
        self.loss_decode = nn.ModuleList(
            [MODELS.build(cfg) if isinstance(cfg, dict) else cfg for cfg in loss_decode])

    def forward(self, inputs) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def valid_mask(self, gt: torch.Tensor) -> torch.Tensor:
        """Pixels that have a measurement inside the head's range (0 < gt <= max_depth)."""
        return (gt > 0) & (gt <= self.max_depth)

    def loss(self, inputs, batch_data_samples, train_cfg=None) -> Dict[str, torch.Tensor]:
        """Forward, then ``loss_by_feat``."""
        return self.loss_by_feat(self.forward(inputs), batch_data_samples)

    def loss_by_feat(self, pred: torch.Tensor, batch_data_samples) -> Dict[str, torch.Tensor]:
        """Resize the prediction to the ground truth and apply every loss on valid pixels."""
        if not len(self.loss_decode):
            raise ValueError(f'{type(self).__name__} has no loss_decode: set one in the config '
                             'to train it')
        gt = gt_depth_batch(batch_data_samples).to(pred.device)
        if pred.shape[-2:] != gt.shape[-2:]:
            pred = F.interpolate(pred, size=gt.shape[-2:], mode='bilinear',
                                 align_corners=self.align_corners)
        valid = self.valid_mask(gt)
        losses: Dict[str, torch.Tensor] = {}
        for loss_fn in self.loss_decode:
            value = loss_fn(pred, gt, valid)
            name = loss_fn.loss_name
            losses[name] = losses[name] + value if name in losses else value
        return losses

    def predict(self, inputs, batch_img_metas: List[dict], test_cfg=None) -> torch.Tensor:
        """Forward, clamped at the head's resolution (metric heads), then resized (bilinear) to
        the network input: DINOv2's depther order. A bilinear resize of clamped values stays in
        the range; clamping after the resize would instead blend out-of-range raw values (a
        ReLU output such as the DPT head's) into the pixels next to them.

        Returns:
            (B, 1, H, W) depth at ``target_size(batch_img_metas)`` (the window in slide mode).
        """
        pred = self.clamp(self.forward(inputs))
        size = tuple(target_size(batch_img_metas))
        if pred.shape[-2:] != size:
            pred = F.interpolate(pred, size=size, mode='bilinear',
                                 align_corners=self.align_corners)
        return pred

    def clamp(self, pred: torch.Tensor) -> torch.Tensor:
        """Clamp metric predictions to ``[min_depth, max_depth]`` (relative ones pass through)."""
        return pred if self.relative else pred.clamp(self.min_depth, self.max_depth)
