# DINOv2 ViT-S/14, ADE20K "+ms" protocol: frozen backbone, last 4 blocks (final norm) resized and
# concatenated, BatchNorm + 1x1 conv, crop 640, 40k iterations at batch 16; test: sliding window
# 640 / 320 at scales 1.0-3.0 with flips (run tools/test.py with --tta).
# Reproduces: DINOv2 paper, ADE20K linear +ms mIoU 47.2 (docs/protocols.md section 6).
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/ade20k_512.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='dinov2_vits14', pretrained=True,  # released weights (docs/zoo.md)
                  out_indices='four_last'),
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(320, 320)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(1.0, 3.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# DINOv2's multi-scale test: short side 640 x ratio (long side at most 2560 x ratio), each scale
# also flipped (scaling the image as loaded would start at ADE20K's ~512 px, not at 640).
img_ratios = [1.0, 1.32, 1.73, 2.28, 3.0]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(2560 * r), int(640 * r)), keep_ratio=True)
         for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)],
        [dict(type='PackSegInputs')],
    ])
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
