# DINOv2 ViT-S/14 with a DPT decoder for ADE20K: frozen backbone, four evenly spaced blocks
# [2, 5, 8, 11] with their class tokens (readout "project"), crop 512, the DINOv2 40k schedule.
# Reproduces: no published figure for this exact combination; expect above the linear
# protocol's 44.3 mIoU (docs/protocols.md section 6) since the decoder is far larger.
_base_ = [
    '../_base_/models/dino_dpt_seg.py', '../_base_/datasets/ade20k_512.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
# Backbone: the released dinov2_vits14 weights, fetched on first use (docs/zoo.md).
model = dict(backbone=dict(arch='dinov2_vits14', pretrained=True))
