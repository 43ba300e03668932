"""densedino's ``EncoderDecoder``: mmseg's, with head input widths taken from the backbone.

Registered under mmseg's name in the ``densedino`` scope, so the segmentation configs
(``type='EncoderDecoder'``), the work dirs that record that model type and mmseg's own
configs build it unchanged; ``type='mmseg.EncoderDecoder'`` still reaches mmseg's class. The
depth model (``DinoDepthEstimator``) derives from it, so segmentation and depth resolve
``in_channels='auto'`` in one place.
"""
from typing import List, Optional, Union

from mmseg.models.segmentors import EncoderDecoder as MMSegEncoderDecoder
from torch import nn

from ..registry import MODELS
from .heads import resolve_input_widths

HeadConfig = Optional[Union[dict, List[dict]]]


@MODELS.register_module()
class EncoderDecoder(MMSegEncoderDecoder):
    """mmseg's ``EncoderDecoder`` whose heads take their input widths from the backbone.

    Every head config (``decode_head``, each ``auxiliary_head``) goes through
    :func:`densedino.models.heads.resolve_input_widths` before it is built: ``'auto'`` widths
    (``in_channels``, ``embed_dims``) become those of the module that feeds the head (the neck
    if there is one, else the backbone), and explicit ones are checked against them, so a
    changed ``model.backbone.arch`` or ``out_indices`` gives a fitting head or a one-line error
    naming the config key, instead of a shape error in the first forward.
    """

    def _feature_source(self) -> nn.Module:
        """The module whose outputs the heads read."""
        return self.neck if self.with_neck else self.backbone

    def _init_decode_head(self, decode_head: dict) -> None:
        super()._init_decode_head(
            resolve_input_widths(decode_head, self._feature_source(), 'model.decode_head'))

    def _init_auxiliary_head(self, auxiliary_head: HeadConfig) -> None:
        source = self._feature_source()
        if isinstance(auxiliary_head, list):
            auxiliary_head = [resolve_input_widths(cfg, source, f'model.auxiliary_head[{i}]')
                              for i, cfg in enumerate(auxiliary_head)]
        elif auxiliary_head is not None:
            auxiliary_head = resolve_input_widths(auxiliary_head, source, 'model.auxiliary_head')
        super()._init_auxiliary_head(auxiliary_head)
