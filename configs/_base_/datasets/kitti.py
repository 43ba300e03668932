# KITTI, Eigen split (docs/protocols.md section 4): data/kitti holds input/ (RGB), gt_depth/ (uint16
# metres * 256, 0 = no measurement) and kitti_eigen_{train,test}.txt (23,158 / 697 lines; the
# 45 test lines without ground truth are skipped: 652 images evaluated). Train and test images
# are KB-cropped to 352 x 1216; metrics on the Garg crop of that, 0.001 < gt < 80 m, averaged
# per image (the Monocular-Depth-Estimation-Toolbox protocol DINOv2 evaluates with).
dataset_type = 'KITTIEigenDepthDataset'
data_root = 'data/kitti'
meta_keys = ('img_path', 'depth_map_path', 'focal', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'crop_box')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='KBCrop'),
    dict(type='RandomDepthRotate', max_angle=1.0, prob=0.5),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=(352, 704)),
    dict(type='DepthColorJitter', brightness=(0.75, 1.25), prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation'),
    dict(type='KBCrop'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split_file='kitti_eigen_train.txt',
                 skip_missing_gt=True, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split_file='kitti_eigen_test.txt',
                 skip_missing_gt=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
# Evaluated in the model's [min_depth, max_depth] (model.decode_head), stated once in the depth
# configs; give min_depth / max_depth here only to score a narrower range (docs/depth.md).
val_evaluator = dict(type='DenseDepthMetric', crop='kitti_garg')
test_evaluator = val_evaluator
