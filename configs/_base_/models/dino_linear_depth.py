# Frozen DINO backbone + DINOv2's linear depth head (docs/protocols.md section 4.1): per block the
# patch map and the class token broadcast over it, resize-concat, x4 bilinear upsample, 1x1 conv
# to 256 depth bins spaced linearly over [min_depth, max_depth]; probabilities relu(l) + 0.1,
# normalised. DINOv2's depth heads read the blocks WITHOUT the final norm.
norm_mean = [123.675, 116.28, 103.53]
norm_std = [58.395, 57.12, 57.375]
# Training batches are padded (bottom/right) to a multiple of the patch size; padded ground
# truth is 0 = no measurement. Test images go in whole; the backbone centre-pads them.
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=norm_mean, std=norm_std, bgr_to_rgb=True, pad_val=0,
    seg_pad_val=0, size_divisor=14)
model = dict(
    type='DinoDepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='DinoBackbone', arch='dinov2_vits14', checkpoint=None, out_indices='last',
                  norm=False, frozen=True, pad_mode='center'),
    decode_head=dict(
        # in_channels='auto': the backbone's width at each tapped block (set by the model);
        # [min_depth, max_depth] is also the range DenseDepthMetric evaluates in
        type='LinearDepthHead', in_channels='auto', use_cls_token=True, upsample=4,
        classify=True, n_bins=256, bins_strategy='UD', norm_strategy='linear',
        min_depth=1e-3, max_depth=10.0, align_corners=False,
        loss_decode=dict(type='SigLoss', variant='dinov2', warm_up=True, warm_iter=100,
                         loss_weight=10.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', flip=True),
)
