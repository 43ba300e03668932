# Frozen DINO backbone + DINOv2's DPT depth head (docs/protocols.md section 4.2): four blocks
# (class token read out by projection), reassembled at 1/4, 1/8, 1/16 and 1/32 of the input,
# fused top-down, regressed to depth = relu(x) + min_depth. Blocks WITHOUT the final norm.
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
    backbone=dict(type='DinoBackbone', arch='dinov2_vits14', checkpoint=None,
                  out_indices='four_even', norm=False, frozen=True, pad_mode='center'),
    decode_head=dict(
        # embed_dims='auto': the backbone's width D (set by the model); the 'dinov2' variant
        # then gives DINOv2's widths for it: channels 256, post_process_channels [D/8, D/4,
        # D/2, D]. [min_depth, max_depth] is also the range DenseDepthMetric evaluates in.
        type='DPTDepthHead', variant='dinov2', embed_dims='auto', readout_type='project',
        min_depth=1e-3, max_depth=10.0,
        loss_decode=dict(type='SigLoss', variant='dinov2', warm_up=True, warm_iter=100,
                         loss_weight=10.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole', flip=True),
)
