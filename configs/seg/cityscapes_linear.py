# DINOv2 ViT-S/14, Cityscapes linear protocol: frozen backbone, last block (final norm),
# BatchNorm + 1x1 conv, crop 512 x 1024, 40k iterations at batch 16, sliding-window test.
# Target: the DINOv2 paper's Cityscapes linear column (not in docs/protocols.md section 6: check the
# paper's segmentation table before quoting a target).
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/cityscapes_512x1024.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(size=(512, 1024)),
    backbone=dict(arch='dinov2_vits14', pretrained=True),  # released weights (docs/zoo.md)
    decode_head=dict(num_classes=19),
    test_cfg=dict(mode='slide', crop_size=(512, 1024), stride=(341, 683)))
