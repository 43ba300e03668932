# Depth schedule: DINOv3's NYU linear recipe (docs/protocols.md section 4.5): 38.4k iterations,
# batch 16 in total (2 per GPU on 8 GPUs here), AdamW lr 3e-4, betas (0.9, 0.99), weight decay
# 1e-4, gradient clipping at 35. DINOv2 released no depth training configs; densedino uses this
# recipe for its DINOv2 depth configs too. Warm-up length and the cosine decay are densedino's
# choice (as in the segmentation schedules): the sources (docs/protocols.md section 4.5) omit them.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.99), weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=False, begin=1500, end=38400),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=38400, val_interval=4000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# 8 GPUs x 2 images; mmengine rescales lr with --auto-scale-lr when this differs.
auto_scale_lr = dict(enable=False, base_batch_size=16)
