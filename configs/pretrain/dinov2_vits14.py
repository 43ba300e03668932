# DINOv2 ViT-S/14 pretraining recipe on ImageNet-1k (docs/pretraining.md, "Recipes"), in config
# form: built by the tests, meant for 8+ GPUs
# (torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch).
# Batch 1024 total (8 x 128); epoch = 1,250 iterations; 100 epochs. DINO + iBOT (shared head) +
# KoLeo, softmax centering, layer-wise lr decay 0.9 with the patch embedding at x0.2.
_base_ = ['../_base_/default_runtime.py']
epoch_iters = 1250
max_iters = 100 * epoch_iters
batch_size = 128  # per GPU
num_layers = 12
model = dict(
    type='DinoSSLModel', arch='dinov2_vits14', backbone_overrides=dict(img_size=224),
    drop_path_rate=0.3,
    head=dict(n_prototypes=65536, hidden_dim=2048, bottleneck_dim=256, n_layers=3),
    ibot_head=None,  # shared with the DINO head, as DINOv2
    dino_loss_weight=1.0, ibot_loss_weight=1.0, koleo_loss_weight=0.1,
    centering='softmax', teacher_temp=0.07, warmup_teacher_temp=0.04,
    warmup_teacher_temp_iters=30 * epoch_iters, momentum_teacher=0.992,
    freeze_last_layer_iters=epoch_iters)
train_dataloader = dict(
    batch_size=batch_size, num_workers=10, persistent_workers=True, pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='UnlabeledImageFolder', root='data/imagenet/train',
                 transform=dict(type='MultiCropAugmentation', global_size=224, local_size=98,
                                n_local=8, global_scale=(0.32, 1.0),
                                local_scale=(0.05, 0.32))),
    collate_fn=dict(type='collate_multicrop', mask_generator=dict(), patch_size=14,
                    mask_probability=0.5, mask_ratio_range=(0.1, 0.5)))
optim_wrapper = dict(
    type='OptimWrapper', clip_grad=dict(max_norm=3.0),
    # 4e-3 x sqrt(B / 1024) with B = 1024
    optimizer=dict(type='AdamW', lr=4e-3, betas=(0.9, 0.999), weight_decay=0.04),
    # no weight decay on biases, norms, LayerScale and tokens
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(num_layers=num_layers, layer_decay_rate=0.9, patch_embed_lr_mult=0.2,
                       backbone_prefix='student.backbone.'))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=False, begin=0, end=10 * epoch_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=10 * epoch_iters,
         end=max_iters),
    # weight decay cosine 0.04 -> 0.4; a ratio keeps the groups without decay at 0
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=epoch_iters, max_keep_ckpts=3))
randomness = dict(seed=0)
# Multi-process runs (torchrun ... --launcher pytorch): the wrapper hands train_step to the
# model, which averages gradients itself (mmengine's DDP would skip the teacher update).
model_wrapper_cfg = dict(type='SSLDistributedWrapper')
custom_imports = dict(imports=['densedino.pretrain'], allow_failed_imports=False)
