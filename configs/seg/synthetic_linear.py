# Quick start on the embedded synthetic scenes: trains and evaluates in minutes on a 2-core CPU,
# no download. A ViT-S/14 (random init, no pretrained weights are shipped) with a linear head on
# its last 4 blocks. See README for the figure it reaches against the majority-class baseline.
_base_ = [
    '../_base_/models/dino_linear_seg.py', '../_base_/datasets/synthetic.py',
    '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(size=None, size_divisor=14),
    backbone=dict(arch='dinov2_vits14', checkpoint=None, out_indices='four_last', frozen=True),
    decode_head=dict(num_classes=9),
    test_cfg=dict(mode='whole'))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=300),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=20),
    # every 50 iterations (about a minute of a 2-core CPU): an interrupted run loses little
    checkpoint=dict(interval=50, max_keep_ckpts=2))
randomness = dict(seed=0)
