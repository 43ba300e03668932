# DINOv2 ViT-S/14, Pascal VOC 2012 "+ms" protocol: frozen backbone, last 4 blocks (final norm)
# resized and concatenated, BatchNorm + 1x1 conv to 21 classes, crop 640, short side 640 x 1.0-3.0,
# 40k iterations at batch 16; test: sliding window 640 / 320 at scales 1.0-3.0 with flips (run
# tools/test.py with --tta). DINOv2 trained it on train + the SBD-augmented list: point
# ann_file at that list if you have it.
# Reproduces: DINOv2 paper, VOC 2012 linear +ms mIoU 82.6 (docs/protocols.md section 6). Head:
# dinov2_vits14_voc2012_ms_head.pth; with it: densedino.init_model('dinov2_vits14_voc2012_ms').
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/voc12_512.py',
    '../_base_/schedules/dinov2_40k.py', '../_base_/default_runtime.py'
]
crop_size = (640, 640)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='dinov2_vits14', pretrained=True,  # released weights (docs/zoo.md)
                  out_indices='four_last'),
    decode_head=dict(num_classes=21),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(320, 320)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(1.0, 3.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# DINOv2's multi-scale test: short side 640 x ratio (long side at most 2560 x ratio), each scale
# also flipped.
img_ratios = [1.0, 1.32, 1.73, 2.28, 3.0]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(2560 * r), int(640 * r)), keep_ratio=True)
         for r in img_ratios],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')],
    ])
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
