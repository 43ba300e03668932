# Depth-Anything-V2 ViT-S metric indoor model (Hypersim, up to 20 m), scored zero-shot as metric
# depth on NYU-Depth-v2: no alignment, the evaluator's 1e-3 to 10 m range inside the model's.
# Released model: densedino.init_model('depth_anything_v2_metric_indoor_small').
_base_ = ['./depth_anything_v2_vits_metric_indoor.py', '../_base_/datasets/depth_anything_nyu.py']
