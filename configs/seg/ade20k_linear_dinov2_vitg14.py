# DINOv2 ViT-G/14, ADE20K linear protocol: configs/seg/ade20k_linear.py with the ViT-G/14
# backbone (the head takes its width from it).
# Reproduces: DINOv2 paper, ADE20K linear mIoU 49.0 (docs/protocols.md section 6).
# Weights: the released dinov2_vitg14 backbone (pretrained=True, inherited), fetched on first
# use (docs/zoo.md). Backbone + released head: densedino.init_model('dinov2_vitg14_ade20k_linear').
_base_ = ['./ade20k_linear.py']
model = dict(backbone=dict(arch='dinov2_vitg14'))
