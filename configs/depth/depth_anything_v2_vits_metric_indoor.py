# Depth-Anything-V2 ViT-S, metric depth indoors (fine-tuned on Hypersim): DINOv2 ViT-S/14
# (blocks [2, 5, 8, 11] after the final norm, class token unused) + DPT decoder (features 64,
# out_channels [48, 96, 192, 384]) ending in sigmoid(x) * 20 m.
# Weights (whole model, backbone + head), either of:
#   depth_anything_v2_metric_hypersim_vits.pth (official release: pretrained.* + depth_head.*)
#   depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf (Hugging Face directory)
# Load them with densedino.models.load_depth_anything_v2(model, PATH).
# Everything else (backbone, test pipeline, position resampling) as the relative model's config;
# predictions are clamped to [min_depth, max_depth].
_base_ = ['./depth_anything_v2_vits_relative.py']
model = dict(decode_head=dict(relative=False, min_depth=1e-3, max_depth=20.0))
visualizer = dict(relative=False)
