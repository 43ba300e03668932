# DINOv2 ViT-S/14, linear depth head on the last block (+ class token), NYU-Depth-v2.
# Target (DINOv2 paper, docs/protocols.md section 6): RMSE 0.449 (ViT-B 0.399, L 0.384, g 0.344).
# Released head: dinov2_vits14_nyu_linear_head.pth; backbone + head in one call:
# densedino.init_model('dinov2_vits14_nyu_linear') (docs/zoo.md).
_base_ = [
    '../_base_/models/dino_linear_depth.py', '../_base_/datasets/nyu.py',
    '../_base_/default_runtime.py', '../_base_/schedules/depth_38k.py'
]
model = dict(
    backbone=dict(arch='dinov2_vits14', pretrained=True,  # released weights (docs/zoo.md)
                  out_indices='last'),
    # the depth range, stated once: the evaluator evaluates in the head's range
    decode_head=dict(min_depth=1e-3, max_depth=10.0))
# tools/test.py --show-dir: image | ground truth | prediction | colour bar in metres.
visualizer = dict(type='DepthLocalVisualizer')
