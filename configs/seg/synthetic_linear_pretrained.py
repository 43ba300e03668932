# configs/seg/synthetic_linear.py on a backbone pretrained here: the teacher of
# configs/pretrain/synthetic_vits.py, exported with
#   python tools/export_teacher.py work_dirs/pretrain/synthetic_vits/iter_300.pth \
#       --arch dinov2_vits14 --overrides depth=4 embed_dim=192 num_heads=3 img_size=112 \
#       --out work_dirs/pretrain/synthetic_vits/teacher.pth
# The architecture overrides are those of the pretraining run (4 blocks, width 192, 112 px
# position grid, interpolated to the segmentation crops); the head takes the width 192 from it.
_base_ = ['./synthetic_linear.py']
model = dict(
    backbone=dict(checkpoint='work_dirs/pretrain/synthetic_vits/teacher.pth',
                  arch_overrides=dict(depth=4, embed_dim=192, num_heads=3, img_size=112)))
