# The ADE20K linear protocol (configs/seg/ade20k_linear.py: frozen DINOv2 ViT-S/14, last block,
# BatchNorm + 1x1 conv, 40k iterations, crop 512) with four learning rates around its 1e-3
# trained at once on one backbone pass per batch: 3e-4, 1e-3, 3e-3, 1e-2. Each head has its own
# optimizer group, the warm-up + poly schedule scales every group. Validation scores all four in
# one pass (one backbone forward per sliding window) and names the best; checkpoints hold all
# heads, and tools/extract_head.py writes one as a checkpoint of configs/seg/ade20k_linear.py
# (docs/sweeps.md). Other backbones: --cfg-options model.backbone.arch=dinov2_vitb14.
_base_ = ['./ade20k_linear.py']
_lrs = (3e-4, 1e-3, 3e-3, 1e-2)
model = dict(type='HeadSweepSegmentor', heads={f'lr_{lr:.0e}': dict(lr=lr) for lr in _lrs})
optim_wrapper = dict(constructor='HeadSweepOptimWrapperConstructor')
val_evaluator = dict(_delete_=True, type='HeadSweepMetric', metric={{_base_.val_evaluator}})
test_evaluator = val_evaluator
