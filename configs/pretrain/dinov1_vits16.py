# DINOv1 ViT-S/16, ImageNet-1k, 100 epochs (docs/pretraining.md, "Recipes"): k-NN 69.3 /
# linear 74.0 with 8 GPUs in 1.75 days. DINO loss only (no iBOT, no KoLeo), softmax centering,
# teacher momentum 0.996, global crops at scale 0.4-1 and local crops at 0.05-0.4 (DINOv1's own
# defaults), lr 5e-4 x B / 256, no layer-wise decay, drop path rising linearly to 0.1 over the
# blocks.
# Batch 1024 total (8 x 128); epoch = 1,251 iterations.
_base_ = ['../_base_/default_runtime.py']
epoch_iters = 1251
max_iters = 100 * epoch_iters
batch_size = 128  # per GPU
model = dict(
    type='DinoSSLModel', arch='dino_vits16',
    backbone_overrides=dict(img_size=224, drop_path_uniform=False),  # DINOv1's linear rule
    drop_path_rate=0.1,
    head=dict(n_prototypes=65536, hidden_dim=2048, bottleneck_dim=256, n_layers=3),
    dino_loss_weight=1.0, ibot_loss_weight=0.0, koleo_loss_weight=0.0,
    centering='softmax', teacher_temp=0.07, warmup_teacher_temp=0.04,
    warmup_teacher_temp_iters=30 * epoch_iters, momentum_teacher=0.996,
    freeze_last_layer_iters=epoch_iters)
train_dataloader = dict(
    batch_size=batch_size, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='UnlabeledImageFolder', root='data/imagenet/train',
                 transform=dict(type='MultiCropAugmentation', global_size=224, local_size=96,
                                n_local=8, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4))),
    collate_fn=dict(type='collate_multicrop'))  # no masks: DINOv1 has no iBOT
optim_wrapper = dict(
    type='OptimWrapper', clip_grad=dict(max_norm=3.0),
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 256, betas=(0.9, 0.999), weight_decay=0.04),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=10 * epoch_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=10 * epoch_iters,
         end=max_iters),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=epoch_iters, max_keep_ckpts=3))
randomness = dict(seed=0)
model_wrapper_cfg = dict(type='SSLDistributedWrapper')
custom_imports = dict(imports=['densedino.pretrain'], allow_failed_imports=False)
