# DINOv2 ViT-S/14, Pascal VOC 2012 linear protocol: frozen backbone, last block (final norm),
# BatchNorm + 1x1 conv, crop 512, 40k iterations at batch 16, sliding-window test 512 / 341.
# Reproduces: DINOv2 paper, VOC 2012 linear mIoU 81.1 (docs/protocols.md section 6).
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/voc12_512.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', pretrained=True),  # released weights (docs/zoo.md)
    decode_head=dict(num_classes=21))
