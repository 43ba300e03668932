# The embedded synthetic scenes (no download): a linear segmentation head and DINOv2's linear
# depth head on a frozen, randomly initialised ViT-S/14. No released heads exist for them, so
# the suite always trains (--train is implied). The targets are the README quick-start figures,
# measured on a 2-core CPU (work_dirs/*/synthetic_linear logs of 2026-12-05).
# Read by tools/benchmark_suite.py (docs/benchmarks.md, "Reproducing the papers").
train = True
_smoke_backbone = dict(depth=4, embed_dim=32, num_heads=2)  # four_last: 4 blocks
_smoke_loaders = {
    f'{loader}.{key}': value
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key, value in (('num_workers', 0), ('persistent_workers', False), ('batch_size', 4),
                       ('dataset.num_train', 16), ('dataset.scene', dict(image_size=(56, 84))))}
_smoke_common = {'model.backbone.arch_overrides': _smoke_backbone, 'train_cfg.max_iters': 10,
                 'train_cfg.val_interval': 10, 'default_hooks.checkpoint.interval': 10,
                 'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=False)],
                 'default_hooks.logger.interval': 5, **_smoke_loaders}
entries = [
    dict(name='seg_synthetic_linear', config='configs/seg/synthetic_linear.py',
         metric='mIoU', target=55.86,
         source='README quick start: 300 iterations on a 2-core CPU',
         smoke={**_smoke_common,
                **{f'{loader}.dataset.num_val': 8
                   for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}}),
    dict(name='depth_synthetic_linear', config='configs/depth/synthetic_linear.py',
         metric='rmse', target=1.8794,
         source='README depth quick start: 300 iterations on a 2-core CPU',
         smoke={**_smoke_common,
                **{f'{loader}.dataset.num_test': 8
                   for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')}}),
]
