# Depth-Anything-V2 ViT-S metric outdoor model (Virtual KITTI 2, up to 80 m), scored zero-shot as
# metric depth on KITTI's Eigen split: no alignment, Garg crop, 1e-3 to 80 m.
# Released model: densedino.init_model('depth_anything_v2_metric_outdoor_small').
_base_ = ['./depth_anything_v2_vits_metric_outdoor.py',
          '../_base_/datasets/depth_anything_kitti.py']
