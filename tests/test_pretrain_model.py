"""DinoSSLModel: a few Runner iterations of a tiny ViT on tiny synthetic images."""
import copy
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from densedino import create_backbone
from densedino.engine import NonFiniteError
from densedino.registry import MODELS

from .launch import torchrun_train
from densedino.pretrain import DinoSSLModel, collate_multicrop, export_teacher_backbone
from densedino.pretrain.schedules import cosine_momentum
from densedino.pretrain.networks import ema_update_

TINY = dict(depth=2, embed_dim=32, num_heads=2, img_size=56)
HEAD = dict(n_prototypes=64, hidden_dim=32, bottleneck_dim=16)


def _model_cfg(**kwargs) -> dict:
    cfg = dict(type='DinoSSLModel', arch='dinov2_vits14', backbone_overrides=TINY,
               drop_path_rate=0.1, head=HEAD, freeze_last_layer_iters=2,
               warmup_teacher_temp_iters=2, momentum_teacher=0.9)
    cfg.update(kwargs)
    return cfg


def _cfg(tmp_path, max_iters: int = 5, **model) -> Config:
    dataset = dict(type='SyntheticUnlabeledImages', data_root=str(tmp_path.parent / 'synth'),
                   num_train=8, num_val=2, passes=2,
                   transform=dict(global_size=56, local_size=28, n_local=2))
    return Config(dict(
        default_scope='densedino',
        model=_model_cfg(**model),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=4, num_workers=0, dataset=dataset,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='collate_multicrop', mask_generator=dict(), patch_size=14)),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(type='OptimWrapper', clip_grad=dict(max_norm=3.0),
                           optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.04)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
    ))


def _losses(runner: Runner) -> list:
    return list(runner.message_hub.log_scalars['train/loss'].data[0])  # one value per iteration


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('full')
    runner = Runner.from_cfg(_cfg(tmp))
    runner.train()
    return runner, tmp


def test_runner_trains_and_resume_is_exact(trained, tmp_path):
    runner, tmp = trained
    model = runner.model
    losses = _losses(runner)
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)
    assert not torch.equal(model.student['backbone'].blocks[0].attn.qkv.weight,
                           model.teacher['backbone'].blocks[0].attn.qkv.weight)
    assert model.dino_loss.center.abs().sum() > 0 and model.ibot_loss.center.abs().sum() > 0
    assert not model.teacher.training and all(not p.requires_grad
                                              for p in model.teacher.parameters())

    cfg = _cfg(tmp_path)
    cfg.resume, cfg.load_from = True, str(tmp / 'work' / 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    again = _losses(resumed)
    assert again[-3:] == pytest.approx(losses[-3:], rel=1e-5, abs=1e-6)  # iterations 3-5


def _batch(model: DinoSSLModel) -> dict:
    gen = torch.Generator().manual_seed(0)
    samples = [dict(global_crops=[torch.randn(3, 56, 56, generator=gen) for _ in range(2)],
                    local_crops=[torch.randn(3, 28, 28, generator=gen) for _ in range(2)],
                    seed=i) for i in range(4)]
    return collate_multicrop(samples, mask_generator=dict(), patch_size=14)


def _standalone(lr: float = 1e-2, **kwargs):
    MessageHub.get_current_instance().update_info('iter', 0)
    MessageHub.get_current_instance().update_info('max_iters', 10)
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg(**kwargs))
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=lr),
                           clip_grad=dict(max_norm=3.0))
    return model, wrapper


def test_knn_monitor_does_not_change_training(trained, tmp_path):
    """The same run with KNNMonitorHook (before the start and every iteration) logs the same
    losses: the monitor only reads the teacher."""
    _, tmp = trained  # its run generated the labelled scenes
    ade = tmp.parent / 'synth' / 'ADEChallengeData2016'
    plain = Runner.from_cfg(_cfg(tmp_path / 'plain'))
    plain.train()
    expected = _losses(plain)[-5:]
    cfg = _cfg(tmp_path / 'monitored')
    cfg.custom_hooks = [dict(type='KNNMonitorHook', interval=1, at_start=True, ks=(1,), size=56,
                             resize=64, train_dir=str(ade / 'images' / 'training'),
                             train_labels=str(ade / 'image_labels_training.txt'),
                             val_dir=str(ade / 'images' / 'validation'),
                             val_labels=str(ade / 'image_labels_validation.txt'))]
    monitored = Runner.from_cfg(cfg)
    monitored.train()
    assert len(monitored.message_hub.get_scalar('knn/top1_k1').data[0]) == 6  # 0, 1, ..., 5
    assert _losses(monitored)[-5:] == pytest.approx(expected, rel=0, abs=0)


def test_ema_freeze_and_center_one_step():
    model, wrapper = _standalone()
    data = _batch(model)
    last = model.student['dino_head'].last_layer.weight.detach().clone()
    teacher0 = copy.deepcopy(model.teacher.state_dict())
    logs = model.train_step(data, wrapper)
    assert {'loss', 'dino', 'ibot', 'koleo', 'teacher_temp', 'momentum'} <= set(logs)
    assert logs['teacher_temp'] == pytest.approx(0.04)
    m = cosine_momentum(0.9, 0, 10)
    assert logs['momentum'] == pytest.approx(m) == pytest.approx(0.9)
    assert torch.equal(model.student['dino_head'].last_layer.weight, last)  # frozen at iter 0
    key = 'backbone.blocks.1.mlp.fc1.weight'
    student = model.student.state_dict()[key]
    expected = m * teacher0[key] + (1 - m) * student
    assert torch.allclose(model.teacher.state_dict()[key], expected, atol=1e-7)
    assert model.dino_loss.center.abs().sum() > 0
    MessageHub.get_current_instance().update_info('iter', 5)
    model.train_step(data, wrapper)
    assert not torch.equal(model.student['dino_head'].last_layer.weight, last)


def test_non_finite_loss_raises_before_step():
    model, wrapper = _standalone()
    data = _batch(model)
    data['local_crops'][0, 0, 0, 0] = float('nan')
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteError, match=r'non-finite values at iteration 1 \(loss=nan, '
                       r'dino=nan, .*grad_norm=nan, weight_norm=[\d.]+\): the step was not applied'):
        model.train_step(data, wrapper)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class PoisonAtIter(Hook):
    """A NaN in the student's first weight before iteration ``at`` (0-based)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter == self.at:
            with torch.no_grad():
                runner.model.student['backbone'].patch_embed.proj.weight[0, 0, 0, 0] = float('nan')


def test_runner_stops_on_a_non_finite_loss_and_keeps_the_last_checkpoint(tmp_path):
    """The run dies at iteration 4 with the one-line message; iter_2.pth is the last checkpoint,
    intact, and resuming from it (without the fault) trains on."""
    runner = Runner.from_cfg(_cfg(tmp_path))  # 5 iterations, a checkpoint every 2
    runner.register_hook(PoisonAtIter(at=3))
    with pytest.raises(NonFiniteError, match=r'non-finite values at iteration 4 \(loss=nan, '
                       r'dino=nan.*the last good checkpoint is .*iter_2.pth'):
        runner.train()
    work = tmp_path / 'work'
    assert sorted(p.name for p in work.glob('iter_*.pth')) == ['iter_2.pth']
    state = torch.load(work / 'iter_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())

    cfg = _cfg(tmp_path / 'again')
    cfg.resume, cfg.load_from = True, str(work / 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 5 and all(math.isfinite(v) for v in _losses(resumed)[-3:])


def test_ema_formula_and_schedules():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.7 * a.weight.detach() + 0.3 * b.weight.detach()
    ema_update_(a, b, 0.7)
    assert torch.allclose(a.weight, expected)
    assert cosine_momentum(0.996, 10, 10) == pytest.approx(1.0)
    assert cosine_momentum(0.996, 5, 10) == pytest.approx(0.998)


def test_export_teacher_loads_strictly(trained, tmp_path):
    runner, tmp = trained
    out = tmp_path / 'teacher.pth'
    export_teacher_backbone(str(tmp / 'work' / 'iter_4.pth'), out)
    backbone = create_backbone('dinov2_vits14', checkpoint=str(out), **TINY)
    ckpt = torch.load(tmp / 'work' / 'iter_4.pth', map_location='cpu', weights_only=False)
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, ckpt['state_dict']['teacher.backbone.' + k]), k
    x = torch.randn(1, 3, 56, 70)
    teacher = runner.model.teacher['backbone']
    export_teacher_backbone(runner.model, out)
    backbone = create_backbone('dinov2_vits14', checkpoint=str(out), **TINY)
    assert torch.allclose(backbone.forward_features(x)['x_norm_clstoken'],
                          teacher.forward_features(x)['x_norm_clstoken'])


def test_export_tool_checks_the_architecture_and_leaves_no_bad_file(trained, tmp_path, capsys):
    from tools import export_teacher
    _, tmp = trained
    ckpt = str(tmp / 'work' / 'iter_4.pth')
    overrides = [f'{k}={v}' for k, v in TINY.items()]
    good = tmp_path / 'teacher.pth'
    export_teacher.run_cli(export_teacher.main, export_teacher.parse_args(
        [ckpt, '--arch', 'dinov2_vits14', '--overrides', *overrides, '--out', str(good)]))
    assert good.is_file() and 'loads as dinov2_vits14' in capsys.readouterr().out
    bad = tmp_path / 'bad.pth'
    with pytest.raises(SystemExit):
        export_teacher.run_cli(export_teacher.main, export_teacher.parse_args(
            [ckpt, '--arch', 'dinov2_vits14', '--overrides', *overrides, 'depth=1', '--out',
             str(bad)]))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'does not fit' in err[0] and not bad.exists()


PRETRAIN_CONFIGS = {  # name: (arch, blocks, prototypes, layer-wise decay)
    'synthetic_vits': ('dinov2_vits14', 4, 1024, False),
    'dinov1_vits16': ('dino_vits16', 12, 65536, False),
    'dinov2_vits14': ('dinov2_vits14', 12, 65536, True),
    'dinov2_vitl14': ('dinov2_vitl14', 24, 65536, True),
    'dinov3_vits16_gram': ('dinov3_vits16', 12, 65536, True),
    'distill_vits14_from_vitl14': ('dinov2_vits14', 12, 65536, True),
}


def test_every_pretrain_config_is_tested():
    import glob
    import os.path as osp
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    found = {osp.splitext(osp.basename(p))[0]
             for p in glob.glob(osp.join(repo, 'configs', 'pretrain', '*.py'))}
    assert found == set(PRETRAIN_CONFIGS)


@pytest.mark.parametrize('name', sorted(PRETRAIN_CONFIGS))
def test_pretrain_configs_build(name, tmp_path):
    """Each config builds its model (on the meta device: no memory), optimiser and pipeline."""
    import os.path as osp
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from densedino.pretrain.augment import MultiCropAugmentation
    init_default_scope('densedino')
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'pretrain', f'{name}.py'))
    arch, depth, prototypes, layer_decay = PRETRAIN_CONFIGS[name]
    distill = cfg.model.get('distill_teacher')
    if distill:  # a small stand-in for the teacher checkpoint, built from the same config
        small = dict(depth=2, embed_dim=32, num_heads=2, img_size=224)
        tiny = copy.deepcopy(cfg.model)
        tiny.update(arch=distill['arch'], backbone_overrides=small, distill_teacher=None,
                    head=dict(cfg.model.head, n_prototypes=64, hidden_dim=32, bottleneck_dim=16))
        torch.save({'state_dict': MODELS.build(tiny).state_dict()}, tmp_path / 'teacher.pth')
        distill.update(checkpoint=str(tmp_path / 'teacher.pth'), backbone_overrides=small)
        cfg.model.head = tiny.head
        prototypes = 64
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert isinstance(model, DinoSSLModel) and model.arch == arch
    assert len(model.student['backbone'].blocks) == depth
    rates = [block.drop_path.p for block in model.student['backbone'].blocks]
    if name == 'dinov1_vits16':  # DINOv1: linear from 0 to the rate; DINOv2/v3: uniform
        assert rates[0] == 0.0 and rates[-1] == pytest.approx(cfg.model.drop_path_rate)
    else:
        assert set(rates) == {cfg.model.drop_path_rate}
    assert all(block.drop_path.p == 0.0 for block in model.teacher['backbone'].blocks)
    assert model.student['dino_head'].last_layer.weight.shape[0] == prototypes
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {g['lr'] for g in wrapper.optimizer.param_groups}
    assert (len(lrs) > 1) == layer_decay
    assert cfg.train_dataloader.collate_fn.type == 'collate_multicrop'
    transform = dict(cfg.train_dataloader.dataset.transform)
    transform.pop('type', None)
    crops = MultiCropAugmentation(**transform)
    assert crops.global_size % model.student['backbone'].patch_size == 0
    assert cfg.train_dataloader.collate_fn.get('patch_size', 14) == model.student['backbone'].patch_size \
        or 'mask_generator' not in cfg.train_dataloader.collate_fn


AGREEMENT_HOOK = '''
import torch
from mmengine.hooks import Hook
from densedino.registry import HOOKS


@HOOKS.register_module()
class DumpStateHook(Hook):
    """Each rank writes its model's state after training (test helper)."""

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(model.state_dict(), f'{runner.work_dir}/rank{runner.rank}.pth')
'''


def test_torchrun_two_processes_agree(tmp_path):
    """2 gloo processes: every rank ends with the same student, teacher and centres, and they
    moved (gradients averaged by the model, EMA and centre updates applied on each rank)."""
    (tmp_path / 'dump_state_hook.py').write_text(AGREEMENT_HOOK)
    cfg = _cfg(tmp_path, max_iters=3)
    cfg.model_wrapper_cfg = dict(type='SSLDistributedWrapper')
    cfg.custom_imports = dict(imports=['densedino.pretrain', 'dump_state_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='DumpStateHook')]
    cfg.default_hooks.checkpoint.interval = 100
    path = tmp_path / 'ddp.py'
    cfg.dump(str(path))
    torchrun_train(path, tmp_path / 'work', extra_paths=[tmp_path])
    a, b = (torch.load(tmp_path / 'work' / f'rank{r}.pth') for r in (0, 1))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    centre = next(k for k in a if k.endswith('center'))
    assert a[centre].abs().sum() > 0  # the centre was updated from the (global) batch
