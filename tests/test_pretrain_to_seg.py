"""A backbone pretrained by DinoSSLModel, exported, then trained under as a segmentation backbone."""
import torch
from mmengine.runner import Runner

from densedino.pretrain import export_teacher_backbone

from .test_pretrain_model import _cfg as pretrain_cfg
from .test_seg_pipeline import TINY_BACKBONE, _losses, tiny_cfg

# the segmentation tests' tiny backbone, at the pretraining crops' position grid
ARCH = dict(TINY_BACKBONE['arch_overrides'], img_size=56)


def test_synthetic_linear_pretrained_matches_the_synthetic_pretraining():
    """The segmentation config's backbone is the architecture synthetic_vits.py pretrains."""
    import os.path as osp
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    seg = Config.fromfile(osp.join(repo, 'configs/seg/synthetic_linear_pretrained.py'))
    pre = Config.fromfile(osp.join(repo, 'configs/pretrain/synthetic_vits.py'))
    assert seg.model.backbone.arch == pre.model.arch
    assert seg.model.backbone.arch_overrides == pre.model.backbone_overrides
    assert seg.model.backbone.checkpoint.startswith('work_dirs/pretrain/synthetic_vits/')
    from mmengine.registry import DefaultScope
    from densedino.registry import MODELS
    seg.model.backbone.checkpoint = None
    with DefaultScope.overwrite_default_scope('densedino'):
        head = MODELS.build(seg.model).decode_head  # its width comes from the backbone
    assert head.bn.num_features == pre.model.backbone_overrides.embed_dim * 4  # 4 tapped blocks


def test_exported_teacher_trains_under_synthetic_linear_pretrained(tmp_path):
    cfg = pretrain_cfg(tmp_path / 'pretrain', max_iters=3, backbone_overrides=ARCH)
    pretrain = Runner.from_cfg(cfg)
    pretrain.train()
    teacher = tmp_path / 'teacher.pth'
    exported = export_teacher_backbone(str(tmp_path / 'pretrain' / 'work' / 'iter_2.pth'), teacher)

    seg = tiny_cfg(str(tmp_path / 'scenes'), tmp_path / 'seg', iters=12,
                   config='configs/seg/synthetic_linear_pretrained.py')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        seg[loader].dataset.update(num_train=8, num_val=2)  # generated on first use
    seg.model.data_preprocessor.size_divisor = None  # tiny_cfg pads to a fixed crop instead
    seg.model.backbone.update(checkpoint=str(teacher), arch_overrides=ARCH)
    seg.optim_wrapper.optimizer.lr = 1e-2
    runner = Runner.from_cfg(seg)
    backbone = runner.model.backbone.model
    for key, value in exported.items():  # the pretrained weights, not a fresh initialisation
        assert torch.equal(backbone.state_dict()[key], value), key
    runner.train()
    losses = _losses(runner)
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])
    for key, value in exported.items():  # frozen backbone: still the pretrained weights
        assert torch.equal(backbone.state_dict()[key], value), key
