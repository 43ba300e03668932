# KITTI Eigen test split (697 lines, 652 with ground truth; layout under data/kitti) read the way
# Depth-Anything-V2 models take an image: the KB crop (352x1216, image and depth together), then
# short side 518 with both sides multiples of 14, bicubic, for the image only: the depth keeps
# the cropped size, where predictions return (bilinearly) and are scored: Garg crop, 1e-3 to
# 80 m (the crop of the ZoeDepth evaluation code Depth-Anything uses; docs/depth.md).
dataset_type = 'KITTIEigenDepthDataset'
data_root = 'data/kitti'
meta_keys = ('img_path', 'depth_map_path', 'focal', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'crop_box')
eval_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='KBCrop'),
    dict(type='ResizeShortSideToMultiple', short_side=518, multiple=14, interpolation='bicubic',
         resize_annotations=False),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split_file='kitti_eigen_test.txt',
                 skip_missing_gt=True, pipeline=eval_pipeline))
test_evaluator = dict(type='DenseDepthMetric', crop='kitti_garg', min_depth=1e-3, max_depth=80.0)
test_cfg = dict(type='TestLoop')
