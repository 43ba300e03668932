# DINOv2 ViT-S/14, ADE20K linear protocol: frozen backbone, last block (final norm),
# BatchNorm + 1x1 conv, crop 512, 40k iterations at batch 16, sliding-window test 512 / 341.
# Reproduces: DINOv2 paper, ADE20K linear mIoU 44.3 (docs/protocols.md section 6).
# Weights: the released dinov2_vits14 backbone, fetched into the cache on first use
# (docs/zoo.md); a file of your own instead: --cfg-options model.backbone.pretrained=False
# model.backbone.checkpoint=PATH. Backbone + released head:
# densedino.init_model('dinov2_vits14_ade20k_linear').
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/ade20k_512.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', pretrained=True),
    decode_head=dict(num_classes=150))
