# Every released DINOv2 ViT-g/14 dense model: ADE20K linear and +ms, VOC 2012 linear and +ms
# (mIoU, DINOv2 Table 10), NYU-Depth-v2 and KITTI linear / linear4 / DPT (RMSE, Table 11).
# The entries, their configs and target figures come from the zoo (densedino.zoo, the complete
# models of this backbone); tools/benchmark_suite.py generates them.
zoo = dict(family='dinov2', arch='dinov2_vitg14')
