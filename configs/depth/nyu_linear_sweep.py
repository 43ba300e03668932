# The NYU-Depth-v2 linear depth protocol (configs/depth/nyu_linear.py: frozen DINOv2 ViT-S/14,
# last block + class token, 256 bins, AdamW 3e-4, clip 35, 38.4k iterations) with four learning
# rates around its 3e-4 trained at once on one backbone pass per batch: 1e-4, 3e-4, 1e-3, 3e-3.
# Gradient clipping (max norm 35) applies to each head on its own. Validation scores all four
# (RMSE and the other depth metrics) in one pass and names the best by RMSE; tools/extract_head.py
# writes one as a checkpoint of configs/depth/nyu_linear.py (docs/sweeps.md).
_base_ = ['./nyu_linear.py']
_lrs = (1e-4, 3e-4, 1e-3, 3e-3)
model = dict(type='HeadSweepDepthEstimator',
             heads={f'lr_{lr:.0e}': dict(lr=lr) for lr in _lrs})
optim_wrapper = dict(constructor='HeadSweepOptimWrapperConstructor')
val_evaluator = dict(_delete_=True, type='HeadSweepMetric', metric={{_base_.val_evaluator}},
                     rank_by='rmse')
test_evaluator = val_evaluator
