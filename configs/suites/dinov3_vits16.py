# DINOv3 ViT-S/16 on its dense linear protocols: ADE20K segmentation (mIoU) and NYU-Depth-v2
# depth (RMSE), targets from the DINOv3 model card (docs/protocols.md, section 6.2). DINOv3
# released no heads for ViT-S, so the suite trains each head first (--train is implied) on the
# released backbone (gated: docs/zoo.md, "Gated weights").
# Read by tools/benchmark_suite.py (docs/benchmarks.md, "Reproducing the papers").
train = True
entries = [
    dict(name='ade20k_linear', config='configs/seg/ade20k_linear_dinov3_vits16.py',
         metric='mIoU', target=47.0, source='DINOv3 model card, ADE20K linear'),
    dict(name='nyu_linear', config='configs/depth/nyu_linear_dinov3_vits16.py',
         metric='rmse', target=0.403, source='DINOv3 model card, NYU linear'),
]
