# DINOv2 ViT-S/14, ADE20K linear protocol: frozen backbone, last block (final norm),
# BatchNorm + 1x1 conv, crop 512, 40k iterations at batch 16, sliding-window test 512 / 341.
# Reproduces: DINOv2 paper, ADE20K linear mIoU 44.3 (docs/protocols.md section 6).
# Weights: dinov2_vits14_pretrain.pth from the DINOv2 release (pass its path below or with
# --cfg-options model.backbone.checkpoint=PATH).
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/ade20k_512.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', checkpoint='checkpoints/dinov2_vits14_pretrain.pth'),
    decode_head=dict(num_classes=150))
