# Depth-Anything-V2 ViT-S relative depth, scored zero-shot on NYU-Depth-v2 as the
# Depth-Anything papers do: the predicted disparity gets a per-image least-squares scale and
# shift against 1 / ground truth on the scored pixels, then the depth metrics (docs/depth.md,
# "Relative depth (affine-invariant) evaluation"). The papers report abs_rel and d1.
# Released model: densedino.init_model('depth_anything_v2_small'); suite
# configs/suites/depth_anything_v2_small.py.
_base_ = ['./depth_anything_v2_vits_relative.py', '../_base_/datasets/depth_anything_nyu.py']
test_evaluator = dict(align='lstsq_disparity')
