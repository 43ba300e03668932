# The embedded procedural scenes (densedino/datasets/synthetic.py) in NYU layout, written to
# data/synthetic/nyu on first use: 400 training and 100 test images of 240 x 320 with exact
# metric depth (0.5-10 m). No fixed NYU crop (the images are not 480 x 640).
dataset_type = 'SyntheticDepthDataset'
data_root = 'data/synthetic'
meta_keys = ('img_path', 'depth_map_path', 'focal', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'crop_box')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='RandomDepthRotate', max_angle=2.5, prob=0.5),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=(224, 224)),
    dict(type='DepthColorJitter', brightness=(0.75, 1.25), prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
# Evaluated in the model's [min_depth, max_depth] (model.decode_head), stated once in the depth
# configs; give min_depth / max_depth here only to score a narrower range (docs/depth.md).
val_evaluator = dict(type='DenseDepthMetric')
test_evaluator = val_evaluator
