# Quick start for depth on the embedded synthetic scenes: trains and evaluates in minutes on a
# 2-core CPU, no download. A frozen ViT-S/14 (random init: no pretrained weights are shipped)
# with DINOv2's linear depth head on its last 4 blocks (+ class tokens), 256 bins over
# 0.001-10 m. README gives the RMSE it reaches against the best constant-depth prediction.
_base_ = [
    '../_base_/models/dino_linear_depth.py', '../_base_/datasets/synthetic_depth.py',
    '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', checkpoint=None, out_indices='four_last'),
    decode_head=dict(min_depth=1e-3, max_depth=10.0,  # also the evaluation range
                     loss_decode=dict(type='SigLoss', variant='dinov2', warm_up=True,
                                      warm_iter=20, loss_weight=1.0)),
    test_cfg=dict(mode='whole', flip=True))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-4),
                     clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=30, end=300),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=20),
    # every 50 iterations (about a minute of a 2-core CPU): an interrupted run loses little
    checkpoint=dict(interval=50, max_keep_ckpts=2))
randomness = dict(seed=0)
# tools/test.py --show-dir: image | ground truth | prediction | colour bar in metres.
visualizer = dict(type='DepthLocalVisualizer')
