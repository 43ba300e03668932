# DINOv2 ViT-G/14, ADE20K linear protocol: configs/seg/ade20k_linear.py with the ViT-G/14
# backbone (the head takes its width from it).
# Reproduces: DINOv2 paper, ADE20K linear mIoU 49.0 (docs/protocols.md section 6).
# Weights: dinov2_vitg14_pretrain.pth from the DINOv2 release (pass its path below or with
# --cfg-options model.backbone.checkpoint=PATH).
_base_ = ['./ade20k_linear.py']
model = dict(
    backbone=dict(arch='dinov2_vitg14', checkpoint='checkpoints/dinov2_vitg14_pretrain.pth'))
