# Depth-Anything-V2 ViT-S, relative depth: DINOv2 ViT-S/14 (blocks [2, 5, 8, 11] after the final
# norm, class token unused) + DPT decoder (features 64, out_channels [48, 96, 192, 384]).
# Output: relu(x) as disparity (larger = nearer; no metric scale, not clamped).
# Weights (whole model, backbone + head), either of:
#   depth_anything_v2_vits.pth (official release: pretrained.* + depth_head.* keys)
#   depth-anything/Depth-Anything-V2-Small-hf (Hugging Face directory)
# Load them with densedino.models.load_depth_anything_v2(model, PATH).
# The backbone resamples positions as the official DINOv2 code does (+0.1 offset), like the
# official Depth-Anything-V2 model; transformers' port resamples without it, so its outputs off
# the 518 px grid differ slightly: set
# model.backbone.arch_overrides=dict(interpolate_offset=0.0) to reproduce those instead.
# Test pipeline: short side 518, both sides multiples of 14, aspect kept, bicubic (as
# Depth-Anything-V2's infer_image); predictions go back to the image size bilinearly with
# align_corners=True (the head's align_corners).
# No dataset or evaluator here (inference / visualisation only). To score it on depth ground
# truth, combine it with a dataset whose test pipeline fits this model and evaluate the disparity
# after a per-image least-squares scale and shift (docs/depth.md, "Relative depth
# (affine-invariant) evaluation"); the model has no range, so the evaluator states it, e.g. NYUv2:
#   test_evaluator = dict(type='DenseDepthMetric', align='lstsq_disparity', min_depth=1e-3,
#                         max_depth=10.0, crop='nyu_eigen')
_base_ = ['../_base_/default_runtime.py']

norm_mean = [123.675, 116.28, 103.53]
norm_std = [58.395, 57.12, 57.375]
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=norm_mean, std=norm_std, bgr_to_rgb=True, pad_val=0,
    seg_pad_val=0)  # 0 = no depth measurement
model = dict(
    type='DinoDepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='DinoBackbone', arch='dinov2_vits14', checkpoint=None,
                  out_indices='four_even', norm=True, frozen=True, pad_mode='center'),
    # embed_dims='auto': the backbone's width; the decoder widths follow it (ViT-S: features
    # 64, out_channels [48, 96, 192, 384])
    decode_head=dict(type='DPTDepthHead', variant='depth_anything_v2', embed_dims='auto',
                     relative=True, align_corners=True),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortSideToMultiple', short_side=518, multiple=14, interpolation='bicubic'),
    dict(type='PackSegInputs'),
]
# tools/test.py --show-dir draws image | ground truth | prediction | colour bar.
visualizer = dict(type='DepthLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                  name='visualizer', relative=True)
