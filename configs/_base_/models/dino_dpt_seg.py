# Frozen DINO backbone (4 tapped blocks with class tokens) + DPT decoder, sliding-window test.
norm_mean = [123.675, 116.28, 103.53]
norm_std = [58.395, 57.12, 57.375]
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=norm_mean, std=norm_std, bgr_to_rgb=True, pad_val=0,
    seg_pad_val=255, size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='DinoBackbone', arch='dinov2_vits14', checkpoint=None,
                  out_indices='four_even', norm=True, frozen=True, pad_mode='center'),
    decode_head=dict(
        # in_channels / embed_dims 'auto': the backbone's width (set by the model); the
        # decoder's own widths (channels, post_process_channels) do not depend on the arch
        type='DPTHead', in_channels='auto', in_index=(0, 1, 2, 3),
        input_transform='multiple_select', channels=256, embed_dims='auto',
        post_process_channels=[48, 96, 192, 384], readout_type='project', num_classes=150,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
)
