# Distillation (DINOv2): a ViT-S/14 student learns from a frozen ViT-L/14 teacher's DINO and iBOT
# targets, with the ViT-S/14 recipe otherwise (crops, masks, KoLeo, schedules). The teacher's
# checkpoint must hold its heads: a checkpoint of configs/pretrain/dinov2_vitl14.py (or an
# official DINOv2 training checkpoint). The student's EMA is exported (tools/export_teacher.py).
_base_ = ['./dinov2_vits14.py']
model = dict(
    drop_path_rate=0.0,  # DINOv2 distils without stochastic depth
    centering='sinkhorn',  # as the ViT-L/14 teacher was trained
    distill_teacher=dict(arch='dinov2_vitl14', backbone_overrides=dict(img_size=224),
                         checkpoint='work_dirs/dinov2_vitl14/iter_125000.pth'))
