# DINOv2-style pretraining (DINO + iBOT + KoLeo) of a small ViT/14 on the embedded synthetic
# scenes: 300 iterations in under 4 minutes on a 2-core CPU, no download. Export the teacher with
# tools/export_teacher.py and train configs/seg/synthetic_linear_pretrained.py on it (README).
_base_ = ['../_base_/default_runtime.py']
max_iters = 300
model = dict(
    type='DinoSSLModel', arch='dinov2_vits14',
    backbone_overrides=dict(depth=4, embed_dim=192, num_heads=3, img_size=112),
    drop_path_rate=0.1,
    head=dict(n_prototypes=1024, hidden_dim=512, bottleneck_dim=128),
    dino_loss_weight=1.0, ibot_loss_weight=1.0, koleo_loss_weight=0.1,
    teacher_temp=0.07, warmup_teacher_temp=0.04, warmup_teacher_temp_iters=60,
    momentum_teacher=0.992, freeze_last_layer_iters=30)
train_dataloader = dict(
    batch_size=16, num_workers=2, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='SyntheticUnlabeledImages', data_root='data/synthetic', split='training',
                 passes=20,
                 # the scenes' classes differ by hue: no hue jitter, no grayscale (see
                 # docs/pretraining.md, "Augmentation")
                 transform=dict(global_size=112, local_size=56, n_local=2,
                                color_jitter=(0.4, 0.4, 0.2, 0.0), grayscale_probability=0.0)),
    collate_fn=dict(type='collate_multicrop', mask_generator=dict(), patch_size=14,
                    mask_probability=0.5, mask_ratio_range=(0.1, 0.5)))
optim_wrapper = dict(
    type='OptimWrapper', clip_grad=dict(max_norm=3.0),
    # DINOv2's rule 4e-3 x sqrt(B / 1024) with B = 16
    optimizer=dict(type='AdamW', lr=4e-3 * (16 / 1024) ** 0.5, betas=(0.9, 0.999), weight_decay=0.04),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=30, end=max_iters),
    # weight decay cosine 0.04 -> 0.4; a ratio keeps the groups without decay at 0
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=50, max_keep_ckpts=2))
randomness = dict(seed=0)
# k-NN top-1 of the teacher on the labelled scenes (8 object classes), before training and every
# 50 iterations: `python tools/plot_pretrain.py work_dirs/pretrain/synthetic_vits` draws the curve.
ade = 'data/synthetic/ADEChallengeData2016'
custom_hooks = [dict(type='KNNMonitorHook', interval=50, at_start=True, ks=(10, 20), size=112,
                     resize=128, train_dir=f'{ade}/images/training',
                     train_labels=f'{ade}/image_labels_training.txt',
                     val_dir=f'{ade}/images/validation',
                     val_labels=f'{ade}/image_labels_validation.txt')]
# Multi-process runs (torchrun ... --launcher pytorch): the wrapper hands train_step to the
# model, which averages gradients itself (mmengine's DDP would skip the teacher update).
model_wrapper_cfg = dict(type='SSLDistributedWrapper')
custom_imports = dict(imports=['densedino.pretrain'], allow_failed_imports=False)
