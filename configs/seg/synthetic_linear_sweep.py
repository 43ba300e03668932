# Four linear heads on one frozen backbone pass, trained side by side on the embedded synthetic
# scenes (no download): configs/seg/synthetic_linear.py with its learning rate 1e-3 swept over
# 3e-4, 1e-3, 3e-3 and 1e-2 (one optimizer group each; the schedule scales each). Validation
# scores every head in one pass, prints a table and names the best; extract a head with
#   python tools/extract_head.py work_dirs/seg/synthetic_linear_sweep/iter_300.pth --head lr_3e-03 \
#       --out head.pth
# and it loads into configs/seg/synthetic_linear.py (docs/sweeps.md).
_base_ = ['./synthetic_linear.py']
_lrs = (3e-4, 1e-3, 3e-3, 1e-2)
model = dict(type='HeadSweepSegmentor', heads={f'lr_{lr:.0e}': dict(lr=lr) for lr in _lrs})
optim_wrapper = dict(constructor='HeadSweepOptimWrapperConstructor')
# every head scored with the protocol's own evaluator, in one pass
val_evaluator = dict(_delete_=True, type='HeadSweepMetric', metric={{_base_.val_evaluator}})
test_evaluator = val_evaluator
