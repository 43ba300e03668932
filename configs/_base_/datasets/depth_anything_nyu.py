# NYU-Depth-v2 test set (654 images, toolbox/BTS layout under data/nyu) read the way
# Depth-Anything-V2 models take an image: short side 518, both sides multiples of 14, bicubic.
# The depth is loaded after the resize, so it keeps its 480x640 size, where predictions return
# (bilinearly) and are scored: Eigen crop, 1e-3 to 10 m (docs/depth.md). No training split:
# these configs evaluate released models.
dataset_type = 'NYUDepthDataset'
data_root = 'data/nyu'
meta_keys = ('img_path', 'depth_map_path', 'focal', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'crop_box')
eval_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortSideToMultiple', short_side=518, multiple=14, interpolation='bicubic'),
    dict(type='LoadDepthAnnotation'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split_file='nyu_test.txt',
                 pipeline=eval_pipeline))
test_evaluator = dict(type='DenseDepthMetric', crop='nyu_eigen', min_depth=1e-3, max_depth=10.0)
test_cfg = dict(type='TestLoop')
