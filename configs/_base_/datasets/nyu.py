# NYU-Depth-v2, BTS / toolbox split-file layout (docs/protocols.md section 4.6): data/nyu holds the
# scene folders and nyu_train.txt (24,231 lines) / nyu_test.txt (654 lines). Depth is uint16 mm.
# Train: DINOv3's NYU recipe (fixed border crop, rotation 2.5 deg, flip, 416 x 544 crop,
# brightness 0.75-1.25). Test: the full 480 x 640 image; metrics inside the Eigen crop,
# 0.001 < gt < 10 m, averaged per image.
dataset_type = 'NYUDepthDataset'
data_root = 'data/nyu'
meta_keys = ('img_path', 'depth_map_path', 'focal', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'crop_box')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='NYUCrop'),
    dict(type='RandomDepthRotate', max_angle=2.5, prob=0.5),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=(416, 544)),
    dict(type='DepthColorJitter', brightness=(0.75, 1.25), prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split_file='nyu_train.txt',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split_file='nyu_test.txt',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
# Evaluated in the model's [min_depth, max_depth] (model.decode_head), stated once in the depth
# configs; give min_depth / max_depth here only to score a narrower range (docs/depth.md).
val_evaluator = dict(type='DenseDepthMetric', crop='nyu_eigen')
test_evaluator = val_evaluator
