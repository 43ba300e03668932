# DINOv3 ViT-S/16, ADE20K linear protocol: frozen backbone, last block (final norm),
# dropout(0.1) -> BatchNorm -> 1x1 conv, crop 512, 40k iterations at batch 16, AdamW lr 1e-3,
# wd 1e-3, 1500 warm-up iterations then cosine; test: short side 512, sliding window 512 / 341,
# no test-time augmentation.
# Reproduces: DINOv3 model card, ADE20K linear mIoU 47.0 (docs/protocols.md section 6).
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/ade20k_512.py',
    '../_base_/schedules/dinov3_40k.py', '../_base_/default_runtime.py'
]
model = dict(
    # the released weights (gated: request access, set DINOV3_WEIGHTS_URL; docs/zoo.md)
    backbone=dict(arch='dinov3_vits16', pretrained=True),
    decode_head=dict(num_classes=150, dropout_ratio=0.1, dropout_before_norm=True))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
