# Depth-Anything-V2 ViT-S, metric depth outdoors (fine-tuned on Virtual KITTI 2): as the indoor
# model (depth_anything_v2_vits_metric_indoor.py) but its DPT decoder ends in sigmoid(x) * 80 m.
# Weights (whole model, backbone + head), either of:
#   depth_anything_v2_metric_vkitti_vits.pth (official release: pretrained.* + depth_head.*)
#   depth-anything/Depth-Anything-V2-Metric-VKITTI-Small (Hugging Face repository)
# densedino.init_model('depth_anything_v2_metric_outdoor_small') fetches and loads them.
_base_ = ['./depth_anything_v2_vits_relative.py']
model = dict(decode_head=dict(relative=False, min_depth=1e-3, max_depth=80.0))
visualizer = dict(relative=False)
