"""DinoSSLModel options beyond DINOv2's recipe: Gram anchoring (DINOv3), the DINO loss
normalisation and distillation."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from densedino import create_backbone
from densedino.models.backbones.checkpoint import CheckpointError
from densedino.pretrain import collate_multicrop, export_teacher_backbone
from densedino.pretrain.schedules import gram_weight
from densedino.registry import MODELS

from .test_pretrain_model import HEAD, TINY, _batch, _cfg, _losses, _model_cfg, _standalone

BIG = dict(depth=2, embed_dim=48, num_heads=3, img_size=56)


def _at(iteration: int, max_iters: int = 10) -> None:
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', iteration)
    hub.update_info('max_iters', max_iters)


def _build(**kwargs):
    return _standalone(lr=1e-3, **kwargs)


def test_gram_weight_schedule():
    assert [gram_weight(i, 2.0, 3, 4) for i in range(9)] == [0, 0, 0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert gram_weight(5, 2.0, 5, 0) == 2.0


def test_gram_loss_is_zero_against_itself_and_uses_the_2x_crops():
    model, _ = _build(gram_loss_weight=1.0, drop_path_rate=0.0)
    model._refresh_gram_teacher(0)  # snapshot of the (still identical) EMA teacher
    assert int(model.gram_ready) == 1
    batch = _batch(model)
    batch.pop('masks')  # unmasked student crops: identical features to the Gram teacher's
    with torch.no_grad():
        losses, _ = model.compute_losses(batch, 0.04, gram=True)
    assert losses['gram'].item() == pytest.approx(0.0, abs=1e-10)

    # 2x crops: the teacher's 8x8 grid is resampled to the student's 4x4 before the Gram matrix
    batch['gram_crops'] = torch.nn.functional.interpolate(batch['global_crops'], scale_factor=2.0,
                                                          mode='bilinear', align_corners=False)
    with torch.no_grad():
        losses, _ = model.compute_losses(batch, 0.04, gram=True)
    assert 0 < losses['gram'].item() < 4  # entries of two cosine matrices differ by at most 2


def test_gram_teacher_snapshot_refresh_and_weighted_total():
    model, wrapper = _build(gram_loss_weight=2.0, gram_start_iter=1, gram_warmup_iters=2,
                            gram_update_interval=2)
    batch = _batch(model)
    logs = []
    for it in range(5):
        _at(it)
        before = {k: v.clone() for k, v in model.teacher['backbone'].state_dict().items()}
        logs.append(model.train_step(batch, wrapper))
        gram = {k: v.clone() for k, v in model.gram_teacher.state_dict().items()}
        if it in (1, 3):  # taken at the start, refreshed every 2 iterations: the EMA teacher then
            assert all(torch.equal(gram[k], before[k]) for k in gram)
            snapshot = gram
        elif it > 1:  # in between, the Gram teacher keeps the last snapshot
            assert all(torch.equal(gram[k], snapshot[k]) for k in gram)
            assert not all(torch.equal(gram[k], before[k]) for k in gram)
    assert 'gram' not in logs[0] and [log['gram_weight'] for log in logs] == [0, 1, 2, 2, 2]
    parts = ('dino', 'ibot', 'koleo')
    for log in logs[1:]:
        expected = sum(log[k] * w for k, w in zip(parts, (1.0, 1.0, 0.1))) + log['gram_weight'] * log['gram']
        assert log['loss'] == pytest.approx(expected, rel=1e-5)
    assert not any(p.requires_grad for p in model.gram_teacher.parameters())


def _gram_formula(student, teacher, over_batch, remove_negatives):
    """MSE of cosine-similarity matrices (per crop, or over every patch of the batch), negative
    similarities set to 0 in both when removed; student/teacher (n, N, D)."""
    if over_batch:
        student, teacher = student.reshape(1, -1, student.shape[-1]), teacher.reshape(
            1, -1, teacher.shape[-1])
    s = student / student.norm(dim=-1, keepdim=True)
    t = teacher / teacher.norm(dim=-1, keepdim=True)
    gs, gt = s @ s.transpose(1, 2), t @ t.transpose(1, 2)
    if remove_negatives:
        gs, gt = gs.clamp(min=0), gt.clamp(min=0)
    return ((gs - gt) ** 2).mean()


@pytest.mark.parametrize('over_batch, remove_negatives', [(False, False), (True, True)])
def test_gram_options_reach_the_loss_of_a_train_step(over_batch, remove_negatives):
    model, _ = _build(gram_loss_weight=1.0, drop_path_rate=0.0, gram_batch=over_batch,
                      gram_remove_negatives=remove_negatives)
    model._refresh_gram_teacher(0)
    with torch.no_grad():  # a Gram teacher that differs from the student
        for p in model.gram_teacher.parameters():
            p.add_(0.5 * torch.randn_like(p))
    batch = _batch(model)
    batch.pop('masks')  # unmasked student: its patch features can be recomputed here
    losses, _ = model.compute_losses(batch, 0.04, gram=True)
    with torch.no_grad():
        student = model.student['backbone'].forward_features(batch['global_crops'])
        teacher = model.gram_teacher.forward_features(batch['global_crops'])
    expected = _gram_formula(student['x_norm_patchtokens'].double(),
                             teacher['x_norm_patchtokens'].double(), over_batch, remove_negatives)
    assert losses['gram'].item() == pytest.approx(expected.item(), rel=1e-5)
    other = _gram_formula(student['x_norm_patchtokens'].double(),
                          teacher['x_norm_patchtokens'].double(), not over_batch,
                          not remove_negatives)
    assert abs(other.item() - expected.item()) > 1e-3 * expected.item()  # the options matter


def test_dino_loss_normalization_reaches_the_model_without_local_crops():
    batch = None
    values = {}
    for normalization in ('dinov2', 'pairs'):
        model, _ = _build(drop_path_rate=0.0, dino_loss_normalization=normalization)
        batch = _batch(model) if batch is None else batch
        batch.pop('local_crops', None)
        with torch.no_grad():
            values[normalization] = model.compute_losses(batch, 0.04)[0]['dino'].item()
    # 2 global crops, no local crop: DINOv2 divides the 2 pair terms by 3, the pair mean by 2
    assert values['dinov2'] == pytest.approx(values['pairs'] * 2 / 3, rel=1e-6)
    with pytest.raises(ValueError, match="normalization must be one of .*got 'sum'"):
        _build(dino_loss_normalization='sum')


def test_dinov3_config_uses_the_released_recipe_options():
    import os.path as osp
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'pretrain', 'dinov3_vits16_gram.py'))
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.gram_loss.batch_gram is False and model.gram_loss.remove_negatives is False
    assert model.dino_loss.normalization == 'pairs'
    for nets in (model.student, model.teacher):
        rope = nets['backbone'].rope_embed
        assert (rope.shift_coords, rope.jitter_coords, rope.rescale_coords) == (None, None, 2.0)
    assert model.student.training and not model.teacher.training  # only the student draws


def test_gram_runner_resume_is_exact(tmp_path):
    model = dict(gram_loss_weight=2.0, gram_start_iter=1, gram_warmup_iters=2,
                 gram_update_interval=2)  # snapshot at 1 (in iter_2.pth), refresh at 3
    cfg = _cfg(tmp_path / 'a', **model)
    cfg.train_dataloader.dataset.transform['gram_size'] = 112  # 2x the global crops
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = _losses(runner)
    assert int(runner.model.gram_ready) == 1
    assert 'train/gram' in runner.message_hub.log_scalars

    cfg = _cfg(tmp_path / 'b', **model)
    cfg.train_dataloader.dataset.transform['gram_size'] = 112
    cfg.resume, cfg.load_from = True, str(tmp_path / 'a' / 'work' / 'iter_2.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert _losses(resumed)[-3:] == pytest.approx(losses[-3:], rel=1e-5, abs=1e-6)
    for key, value in runner.model.gram_teacher.state_dict().items():
        assert torch.equal(resumed.model.gram_teacher.state_dict()[key], value)


def test_gram_teacher_from_a_file_survives_the_runners_weight_init(tmp_path):
    source = create_backbone('dinov2_vits14', **TINY)
    torch.save(source.state_dict(), tmp_path / 'gram.pth')
    runner = Runner.from_cfg(_cfg(tmp_path, max_iters=1, gram_loss_weight=1.0,
                                  gram_teacher_checkpoint=str(tmp_path / 'gram.pth')))
    runner.train()  # mmengine initialises the model's weights here
    for key, value in source.state_dict().items():
        assert torch.equal(runner.model.gram_teacher.state_dict()[key], value), key


def test_gram_teacher_from_an_exported_backbone(tmp_path):
    source = create_backbone('dinov2_vits14', **TINY)
    torch.save(source.state_dict(), tmp_path / 'gram.pth')
    model, _ = _build(gram_loss_weight=1.0, gram_teacher_checkpoint=str(tmp_path / 'gram.pth'))
    assert int(model.gram_ready) == 1
    for k, v in source.state_dict().items():
        assert torch.equal(model.gram_teacher.state_dict()[k], v)
    model._refresh_gram_teacher(0)  # a given Gram teacher is not replaced by the snapshot
    assert torch.equal(model.gram_teacher.state_dict()['cls_token'], source.state_dict()['cls_token'])


def _teacher_checkpoint(tmp_path, official: bool = False) -> str:
    """A pretraining checkpoint of a bigger model (as densedino or official DINOv2 writes it)."""
    torch.manual_seed(1)
    big = MODELS.build(_model_cfg(backbone_overrides=BIG))
    path = str(tmp_path / ('official.pth' if official else 'big.pth'))
    if official:
        state = {k[len('teacher.'):]: v for k, v in big.state_dict().items()
                 if k.startswith('teacher.')}
        for key in [k for k in state if k.endswith('last_layer.weight')]:  # weight_norm pair
            state[key[:-len('weight')] + 'weight_v'] = state.pop(key)
            state[key[:-len('weight')] + 'weight_g'] = torch.ones(HEAD['n_prototypes'], 1)
        torch.save({'teacher': state}, path)
    else:
        torch.save({'meta': {}, 'state_dict': big.state_dict()}, path)
    return path, big


@pytest.mark.parametrize('official', [False, True])
def test_distillation_loads_the_frozen_teacher_and_exports_the_student_ema(tmp_path, official):
    path, big = _teacher_checkpoint(tmp_path, official)
    distill = dict(arch='dinov2_vits14', checkpoint=path, backbone_overrides=BIG)
    model, wrapper = _build(distill_teacher=distill)
    reference = big.teacher.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.teacher.state_dict().items())
    assert model.teacher['backbone'].embed_dim == 48 and model.student['backbone'].embed_dim == 32

    batch = _batch(model)
    ema_before = model.student_ema['backbone'].blocks[0].attn.qkv.weight.clone()
    first = [model.train_step(batch, wrapper) for _ in range(1)][0]
    for it in range(1, 12):
        _at(it)
        last = model.train_step(batch, wrapper)
    # the frozen teacher never moves; the student's EMA does
    assert all(torch.equal(v, reference[k]) for k, v in model.teacher.state_dict().items())
    assert not torch.equal(ema_before, model.student_ema['backbone'].blocks[0].attn.qkv.weight)
    assert last['dino'] < first['dino']  # the student learns the teacher's assignments

    exported = export_teacher_backbone(model, tmp_path / 'student.pth')
    assert exported['cls_token'].shape[-1] == 32
    assert torch.equal(exported['cls_token'], model.student_ema['backbone'].cls_token)
    ckpt = {'state_dict': model.state_dict()}
    assert torch.equal(export_teacher_backbone(ckpt, tmp_path / 's2.pth')['pos_embed'],
                       model.student_ema['backbone'].pos_embed)
    loaded = create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'student.pth'), **TINY)
    assert torch.equal(loaded.cls_token, model.student_ema['backbone'].cls_token)


def test_distillation_checkpoints_leave_the_frozen_teacher_out(tmp_path):
    path, big = _teacher_checkpoint(tmp_path)
    model, wrapper = _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=path,
                                                 backbone_overrides=BIG))
    state = model.state_dict()
    assert not any(k.startswith('teacher.') for k in state)
    assert any(k.startswith('student_ema.') for k in state)
    again, _ = _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=path,
                                           backbone_overrides=BIG))
    again.load_state_dict(state, strict=True)  # the teacher comes from its own file
    reference = big.teacher.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in again.teacher.state_dict().items())


def test_distillation_reads_a_dinov1_training_checkpoint(tmp_path):
    """DINOv1's checkpoints name the head ``head.*`` and may keep DDP's ``module.`` prefix."""
    _, big = _teacher_checkpoint(tmp_path)
    state = {'module.' + k.replace('dino_head.', 'head.'): v for k, v in big.teacher.state_dict().items()}
    torch.save({'teacher': state, 'epoch': 100}, tmp_path / 'dino_v1.pth')
    model, _ = _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=str(tmp_path / 'dino_v1.pth'),
                                           backbone_overrides=BIG))
    reference = big.teacher.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.teacher.state_dict().items())


def test_distillation_errors_name_the_problem(tmp_path):
    path, _ = _teacher_checkpoint(tmp_path)
    backbone_only = tmp_path / 'backbone.pth'
    torch.save(create_backbone('dinov2_vits14', **BIG).state_dict(), backbone_only)
    with pytest.raises(CheckpointError, match='no dino_head'):
        _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=str(backbone_only),
                                    backbone_overrides=BIG))
    with pytest.raises(CheckpointError, match='does not fit'):  # wrong teacher architecture
        _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=path,
                                    backbone_overrides=dict(BIG, embed_dim=64, num_heads=4)))
    with pytest.raises(CheckpointError, match='dino_head'):  # prototypes differ
        _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=path, backbone_overrides=BIG,
                                    head=dict(HEAD, n_prototypes=32)))
    with pytest.raises(ValueError, match='patch size 16, the student 14'):
        _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=path,
                                    backbone_overrides=dict(BIG, patch_size=16)))
    torch.manual_seed(2)
    separate = MODELS.build(_model_cfg(backbone_overrides=BIG, ibot_head=HEAD))
    torch.save({'state_dict': separate.state_dict()}, tmp_path / 'separate.pth')
    with pytest.raises(CheckpointError, match='separate ibot_head'):
        _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=str(tmp_path / 'separate.pth'),
                                    backbone_overrides=BIG))
    with pytest.raises(ValueError, match='arch and checkpoint'):
        _build(distill_teacher=dict(checkpoint=path))
    with pytest.raises(CheckpointError, match='does not exist'):
        _build(distill_teacher=dict(arch='dinov2_vits14', checkpoint=str(tmp_path / 'nope.pth')))


def test_collate_keeps_gram_crops_crop_major():
    samples = [dict(global_crops=[torch.full((3, 28, 28), float(10 * i + c)) for c in range(2)],
                    local_crops=[], gram_crops=[torch.full((3, 56, 56), float(10 * i + c))
                                                for c in range(2)], seed=i) for i in range(3)]
    batch = collate_multicrop(samples)
    assert batch['gram_crops'].shape == (6, 3, 56, 56)
    assert batch['gram_crops'][:, 0, 0, 0].tolist() == batch['global_crops'][:, 0, 0, 0].tolist()


def test_layer_decay_reaches_the_student_backbone_only():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    init_default_scope('densedino')
    model, _ = _build(gram_loss_weight=1.0)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.04),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.9, patch_embed_lr_mult=0.2,
                           backbone_prefix='student.backbone.')))
    lr_of = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
    wd_of = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    names = dict(model.named_parameters())
    assert set(lr_of) == {id(p) for p in model.student.parameters()}  # no teacher, no Gram teacher
    expected = {'student.backbone.patch_embed.proj.weight': 1e-3 * 0.9 ** 3 * 0.2,
                'student.backbone.cls_token': 1e-3 * 0.9 ** 3,
                'student.backbone.blocks.0.attn.qkv.weight': 1e-3 * 0.9 ** 2,
                'student.backbone.blocks.1.mlp.fc1.weight': 1e-3 * 0.9,
                'student.backbone.norm.weight': 1e-3,
                'student.dino_head.mlp.0.weight': 1e-3}
    for name, lr in expected.items():
        assert lr_of[id(names[name])] == pytest.approx(lr), name
    assert wd_of[id(names['student.backbone.blocks.0.ls1.gamma'])] == 0.0
    assert wd_of[id(names['student.backbone.blocks.0.attn.qkv.bias'])] == 0.0
    assert wd_of[id(names['student.dino_head.last_layer.weight'])] == 0.04
    with pytest.raises(KeyError, match='backbone_prefx'):
        build_optim_wrapper(model, dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(num_layers=2, backbone_prefx='student.backbone.')))
