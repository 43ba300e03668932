# DINOv2 ViT-B/14, ADE20K linear protocol: configs/seg/ade20k_linear.py with the ViT-B/14
# backbone (the head takes its width from it).
# Reproduces: DINOv2 paper, ADE20K linear mIoU 47.3 (docs/protocols.md section 6).
# Weights: the released dinov2_vitb14 backbone (pretrained=True, inherited), fetched on first
# use (docs/zoo.md). Backbone + released head: densedino.init_model('dinov2_vitb14_ade20k_linear').
_base_ = ['./ade20k_linear.py']
model = dict(backbone=dict(arch='dinov2_vitb14'))
