# DINOv2 ViT-S/14, DPT depth head on blocks [2, 5, 8, 11] (class token read out), NYU.
# Target (DINOv2 paper, docs/protocols.md section 6): RMSE 0.356 (ViT-B 0.317, L 0.293, g 0.279).
# Released head: dinov2_vits14_nyu_dpt_head.pth.
_base_ = [
    '../_base_/models/dino_dpt_depth.py', '../_base_/datasets/nyu.py',
    '../_base_/default_runtime.py', '../_base_/schedules/depth_38k.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', pretrained=True,  # released weights (docs/zoo.md)
                  out_indices='four_even'),
    # the depth range, stated once: the evaluator evaluates in the head's range
    decode_head=dict(min_depth=1e-3, max_depth=10.0))
# tools/test.py --show-dir: image | ground truth | prediction | colour bar in metres.
visualizer = dict(type='DepthLocalVisualizer')
