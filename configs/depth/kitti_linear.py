# DINOv2 ViT-S/14, linear depth head on the last block (+ class token), KITTI Eigen split.
# Target (DINOv2 paper, docs/protocols.md section 6): RMSE 3.10 (ViT-B 2.90, L 2.78, g 2.62).
# Released head: dinov2_vits14_kitti_linear_head.pth.
_base_ = [
    '../_base_/models/dino_linear_depth.py', '../_base_/datasets/kitti.py',
    '../_base_/default_runtime.py', '../_base_/schedules/depth_38k.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', pretrained=True,  # released weights (docs/zoo.md)
                  out_indices='last'),
    # the depth range, stated once: the evaluator evaluates in the head's range
    decode_head=dict(min_depth=1e-3, max_depth=80.0))
# tools/test.py --show-dir: image | ground truth | prediction | colour bar in metres.
visualizer = dict(type='DepthLocalVisualizer')
