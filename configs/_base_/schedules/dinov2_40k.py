# DINOv2 linear segmentation schedule (released configs): AdamW lr 1e-3, wd 1e-4, 40k iterations,
# linear warm-up over 1500 iterations from 1e-6 x lr, then poly (power 1) to 0.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=40000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# 8 GPUs x 2 images in the paper; mmengine rescales lr with --auto-scale-lr when this differs.
auto_scale_lr = dict(enable=False, base_batch_size=16)
