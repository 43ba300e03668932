# Frozen DINO backbone + linear head (DINOv2 "BNHead"), whole-image training, sliding-window test.
norm_mean = [123.675, 116.28, 103.53]
norm_std = [58.395, 57.12, 57.375]
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=norm_mean, std=norm_std, bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255, size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='DinoBackbone', arch='dinov2_vits14', checkpoint=None, out_indices='last',
                  norm=True, frozen=True, pad_mode='center'),
    decode_head=dict(
        # in_channels='auto': the backbone's width at each tapped block (set by the model)
        type='LinearSegHead', in_channels='auto', num_classes=150, dropout_ratio=0.0,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
)
