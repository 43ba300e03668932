"""The linear segmentation head of the DINOv2 / DINOv3 protocols."""
from typing import Optional, Sequence, Union

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import nn

from ...registry import MODELS
from ..losses import upsampled_cross_entropy
from .inputs import block_maps, resize_concat
from .inputs import block_widths


@MODELS.register_module()
class LinearSegHead(BaseDecodeHead):
    """Resize-concat of tapped blocks -> BatchNorm -> dropout -> 1x1 conv (DINOv2 "BNHead").

    Checkpoint keys are the official ones (``bn.*``, ``conv_seg.*``), so DINOv2's released
    ``*_linear_head.pth`` / ``*_ms_head.pth`` files load into it.

    Args:
        in_channels: Channels of each tapped block (an int for one block), or 'auto': the
            backbone's, filled in by the segmentor that builds the head (``input_widths``).
        num_classes: Number of classes.
        in_index: Which backbone outputs to use (all by default).
        use_cls_token: Append the class token to every position (channels x2).
        dropout_ratio: Channel dropout (``Dropout2d``) before the classifier.
        dropout_before_norm: DINOv3 order (dropout -> BN -> conv) instead of DINOv2's
            (BN -> dropout -> conv).
        use_norm: BatchNorm on the concatenated features (converted to SyncBatchNorm only under
            multi-process training, by the runner's ``sync_bn``).
        **kwargs: ``BaseDecodeHead`` options (``loss_decode``, ``ignore_index``, ``align_corners``
            ...).
    """

    input_width_args = ('in_channels',)

    def __init__(self, in_channels: Union[str, int, Sequence[int]], num_classes: int, *,
                 in_index: Optional[Sequence[int]] = None, use_cls_token: bool = False,
                 dropout_ratio: float = 0.0, dropout_before_norm: bool = False,
                 use_norm: bool = True, **kwargs) -> None:
        per_block = block_widths(in_channels, in_index, type(self).__name__)
        channels = sum(per_block) * (2 if use_cls_token else 1)
        super().__init__(in_channels=channels, channels=channels, num_classes=num_classes,
                         dropout_ratio=dropout_ratio, **kwargs)
        self.block_index = None if in_index is None else list(in_index)
        self.use_cls_token = use_cls_token
        self.dropout_before_norm = dropout_before_norm
        self.bn = nn.BatchNorm2d(channels) if use_norm else nn.Identity()

    def _transform_inputs(self, inputs) -> torch.Tensor:
        maps = block_maps(inputs, self.block_index, self.use_cls_token)
        return resize_concat(maps, self.align_corners)

    def forward(self, inputs) -> torch.Tensor:
        """Backbone outputs -> logits (B, num_classes, h, w) at the token grid."""
        x = self._transform_inputs(inputs)
        if self.dropout_before_norm and self.dropout is not None:
            return self.conv_seg(self.bn(self.dropout(x)))
        return self.cls_seg(self.bn(x))

    def _fusable_loss(self):
        """The single plain cross-entropy the fused path reproduces exactly, else None."""
        from mmseg.models.losses import CrossEntropyLoss
        loss = self.loss_decode
        if self.sampler is not None or not isinstance(loss, CrossEntropyLoss):
            return None
        if loss.use_sigmoid or loss.use_mask or loss.class_weight is not None:
            return None
        return loss

    def loss_by_feat(self, seg_logits: torch.Tensor, batch_data_samples) -> dict:
        """mmseg's loss (upsample to the labels, cross-entropy, pixel accuracy), fused.

        For a plain ``CrossEntropyLoss`` the upsampling, loss and accuracy run chunk by chunk
        (``upsampled_cross_entropy``): same values, a fraction of the time and memory. Other
        losses take mmseg's path.
        """
        loss_fn = self._fusable_loss()
        if loss_fn is None:
            return super().loss_by_feat(seg_logits, batch_data_samples)
        labels = self._stack_batch_gt(batch_data_samples).squeeze(1)
        total, correct, n_valid = upsampled_cross_entropy(
            seg_logits, labels, ignore_index=self.ignore_index, align_corners=self.align_corners)
        denom = n_valid.clamp(min=1) if loss_fn.avg_non_ignore else labels.numel()
        return {
            loss_fn.loss_name: loss_fn.loss_weight * total / denom,
            'acc_seg': 100.0 * correct.float() / n_valid.clamp(min=1),
        }
