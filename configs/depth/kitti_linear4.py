# DINOv2 ViT-S/14, linear depth head on four blocks [2, 5, 8, 11] (+ class tokens), KITTI.
# Target (DINOv2 paper, docs/protocols.md section 6): RMSE 2.86 (ViT-B 2.59, L 2.50, g 2.35).
# Released head: dinov2_vits14_kitti_linear4_head.pth.
_base_ = [
    '../_base_/models/dino_linear_depth.py', '../_base_/datasets/kitti.py',
    '../_base_/default_runtime.py', '../_base_/schedules/depth_38k.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', pretrained=True,  # released weights (docs/zoo.md)
                  out_indices='four_even'),
    # the depth range, stated once: the evaluator evaluates in the head's range
    decode_head=dict(min_depth=1e-3, max_depth=80.0))
# tools/test.py --show-dir: image | ground truth | prediction | colour bar in metres.
visualizer = dict(type='DepthLocalVisualizer')
