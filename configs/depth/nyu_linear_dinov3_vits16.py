# DINOv3 ViT-S/16, linear depth head on the last block WITH the final norm, no class token,
# 256 linear bins over 0.001-10 m, SigLoss weight 1; 38.4k iterations, batch 16, AdamW 3e-4,
# betas (0.9, 0.99), wd 1e-4, clip 35; full-image test with flips (docs/protocols.md section 4.5).
# Target (DINOv3 model card, docs/protocols.md section 6): RMSE 0.403 (S+ 0.399, B 0.373, L 0.352,
# 7B 0.309). DINOv3's head is BatchNorm -> 1x1 conv on the token grid (no x4 feature
# upsampling; the depth map is resized); its file calls the norm batchnorm_layer where
# densedino says bn.
_base_ = [
    '../_base_/models/dino_linear_depth.py', '../_base_/datasets/nyu.py',
    '../_base_/default_runtime.py', '../_base_/schedules/depth_38k.py'
]
model = dict(
    data_preprocessor=dict(size_divisor=16),
    # the released weights (gated: request access, set DINOV3_WEIGHTS_URL; docs/zoo.md)
    backbone=dict(arch='dinov3_vits16', pretrained=True, out_indices='last', norm=True),
    decode_head=dict(use_cls_token=False, upsample=1, use_norm=True,
                     min_depth=1e-3, max_depth=10.0,  # also the evaluation range
                     loss_decode=dict(type='SigLoss', variant='dinov2', warm_up=True,
                                      warm_iter=100, loss_weight=1.0)))
# tools/test.py --show-dir: image | ground truth | prediction | colour bar in metres.
visualizer = dict(type='DepthLocalVisualizer')
