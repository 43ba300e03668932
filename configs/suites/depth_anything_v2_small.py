# Depth-Anything-V2 Small (DINOv2 ViT-S/14 + DPT decoder), its released models scored zero-shot
# on NYU-Depth-v2 and KITTI (Eigen split). The relative model predicts disparity up to scale and
# shift, so it is scored after a per-image least-squares fit in disparity space (docs/depth.md,
# "Relative depth (affine-invariant) evaluation"); the paper reports abs_rel and d1 (Table 2,
# zero-shot relative depth; d1 in the notes below, both are in results.json). The metric models
# (indoor: Hypersim-tuned, outdoor: Virtual-KITTI-tuned) are scored as they are; the paper
# publishes no zero-shot figure for the Small metric models, so their rows carry none.
# Read by tools/benchmark_suite.py (docs/benchmarks.md, "Reproducing the papers").
entries = [
    dict(name='nyu_relative', zoo='depth_anything_v2_small',
         config='configs/depth/depth_anything_v2_vits_relative_nyu.py', metric='abs_rel',
         target=0.053, source='Depth-Anything-V2 Table 2 (d1 0.973)'),
    dict(name='kitti_relative', zoo='depth_anything_v2_small',
         config='configs/depth/depth_anything_v2_vits_relative_kitti.py', metric='abs_rel',
         target=0.078, source='Depth-Anything-V2 Table 2 (d1 0.936)'),
    dict(name='nyu_metric_indoor', zoo='depth_anything_v2_metric_indoor_small',
         config='configs/depth/depth_anything_v2_vits_metric_indoor_nyu.py', metric='rmse',
         target=None, source='no published figure for Small'),
    dict(name='kitti_metric_outdoor', zoo='depth_anything_v2_metric_outdoor_small',
         config='configs/depth/depth_anything_v2_vits_metric_outdoor_kitti.py', metric='rmse',
         target=None, source='no published figure for Small'),
]
