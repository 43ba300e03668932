"""SSLDistributedWrapper(fsdp=...): FSDP2-sharded DinoSSLModel training over 2 gloo processes."""
import pytest
import torch
from torch import nn

from densedino import create_backbone
from densedino.pretrain import export_teacher_backbone
from densedino.pretrain.distributed import SSLDistributedWrapper, parse_fsdp_options
from densedino.registry import MODELS
from tests.launch import torchrun_train
from tests.test_pretrain_model import TINY, _cfg, _model_cfg


DUMP_HOOK = '''
import torch
from mmengine.hooks import Hook
from densedino.pretrain import export_teacher_backbone
from densedino.registry import HOOKS


@HOOKS.register_module()
class DumpLossesHook(Hook):
    """Each rank writes its per-iteration losses and the type and local shape of one student
    weight; rank 0 exports the in-memory teacher."""

    def after_train(self, runner):
        weight = runner.model.module.student['backbone'].blocks[0].attn.qkv.weight
        local = weight.to_local() if hasattr(weight, 'to_local') else weight
        torch.save(dict(losses=list(runner.message_hub.log_scalars['train/loss'].data[0]),
                        weight=(type(weight).__name__, tuple(local.shape))),
                   f'{runner.work_dir}/losses_rank{runner.rank}.pth')
        if hasattr(runner.model, 'full_state_dict'):
            state = runner.model.full_state_dict()  # every rank takes part
            if runner.rank == 0:
                export_teacher_backbone(state, f'{runner.work_dir}/teacher_in_memory.pth')
'''


def _torchrun(tmp_path, name: str, wrapper: dict, max_iters: int = 4, resume: str = None,
              model: dict = None, optim_wrapper: dict = None):
    """Train ``_cfg``'s tiny model on 2 gloo processes; returns the work dir."""
    (tmp_path / 'dump_losses_hook.py').write_text(DUMP_HOOK)
    cfg = _cfg(tmp_path / name, max_iters=max_iters, **(model or {}))
    if optim_wrapper:
        cfg.optim_wrapper.update(optim_wrapper)
    cfg.model_wrapper_cfg = wrapper
    cfg.custom_imports = dict(imports=['densedino.pretrain', 'dump_losses_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='DumpLossesHook')]
    if wrapper.get('fsdp'):
        cfg.default_hooks.checkpoint.type = 'FSDPCheckpointHook'
    if resume is not None:
        cfg.resume, cfg.load_from = True, resume
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    path = tmp_path / name / 'cfg.py'
    cfg.dump(str(path))
    work = tmp_path / name / 'work'
    torchrun_train(path, work, extra_paths=[tmp_path])
    return work


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def test_fsdp_matches_replicated_and_checkpoints_are_full(tmp_path):
    """Same losses, weights and optimiser state as the replicated (DDP-style) wrapper; the
    checkpoint holds plain full tensors that load without FSDP; resuming under FSDP is exact."""
    from torch.distributed.tensor import DTensor
    ddp = _torchrun(tmp_path, 'ddp', dict(type='SSLDistributedWrapper'))
    fsdp = _torchrun(tmp_path, 'fsdp', dict(type='SSLDistributedWrapper', fsdp=True))
    for rank in (0, 1):
        expected, got = _load(ddp / f'losses_rank{rank}.pth'), _load(fsdp / f'losses_rank{rank}.pth')
        assert expected['weight'] == ('Parameter', (96, 32)) and got['weight'] == ('DTensor', (48, 32))
        assert len(expected['losses']) == 4
        assert got['losses'] == pytest.approx(expected['losses'], rel=1e-4)

    ref, ckpt = _load(ddp / 'iter_4.pth'), _load(fsdp / 'iter_4.pth')
    assert ckpt['state_dict'].keys() == ref['state_dict'].keys()
    for key, value in ckpt['state_dict'].items():
        assert type(value) is torch.Tensor and value.shape == ref['state_dict'][key].shape, key
        torch.testing.assert_close(value, ref['state_dict'][key], rtol=1e-4, atol=1e-5, msg=key)
    moments = [v for st in ckpt['optimizer']['state'].values() for v in st.values()]
    assert moments and not any(isinstance(v, DTensor) for v in moments)
    for i, st in ref['optimizer']['state'].items():
        for k, v in st.items():
            torch.testing.assert_close(ckpt['optimizer']['state'][i][k], v, rtol=1e-4, atol=1e-6)

    model = MODELS.build(_model_cfg())
    model.load_state_dict(ckpt['state_dict'])  # strict, no FSDP
    export_teacher_backbone(str(fsdp / 'iter_4.pth'), tmp_path / 'teacher.pth')
    backbone = create_backbone('dinov2_vits14', checkpoint=str(tmp_path / 'teacher.pth'), **TINY)
    in_memory = _load(fsdp / 'teacher_in_memory.pth')
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, in_memory[key]), key

    resumed = _torchrun(tmp_path, 'resumed', dict(type='SSLDistributedWrapper', fsdp=True),
                        resume=str(fsdp / 'iter_2.pth'))
    for rank in (0, 1):  # iterations 3 and 4 again, from the gathered model and optimiser state
        assert _load(resumed / f'losses_rank{rank}.pth')['losses'][-2:] == pytest.approx(
            _load(fsdp / f'losses_rank{rank}.pth')['losses'][-2:], rel=1e-5)


@pytest.mark.parametrize('fsdp, match', [
    (dict(shard_heads=True), r"unknown fsdp option\(s\) \['shard_heads'\]"),
    (dict(mixed_precision='fp16'), "mixed_precision must be one of"),
    (dict(reshard_after_forward='yes'), 'reshard_after_forward must be a bool'),
    ('full', 'fsdp must be None, a bool or a dict'),
])
def test_fsdp_option_errors(fsdp, match):
    with pytest.raises(ValueError, match=match):
        parse_fsdp_options(fsdp)


def test_fsdp_options_and_wrapper_checks():
    assert parse_fsdp_options(None) is None and parse_fsdp_options(False) is None
    assert parse_fsdp_options(True) == dict(reshard_after_forward=True, mixed_precision=None)
    assert parse_fsdp_options(dict(mixed_precision='bf16'))['mixed_precision'] == 'bf16'
    with pytest.raises(ValueError, match=r"fsdp needs .* Linear has no \['student', 'teacher'\]"):
        SSLDistributedWrapper(nn.Linear(2, 2), fsdp=True)
    wrapper = SSLDistributedWrapper(MODELS.build(_model_cfg()))  # replicated: no group needed
    wrapper.shard()
    assert not wrapper.sharded and wrapper.module.sync_gradients


@pytest.mark.skipif(torch.distributed.is_initialized(), reason='needs no process group')
def test_fsdp_without_process_group_raises():
    with pytest.raises(RuntimeError, match='fsdp needs an initialised torch.distributed process group'):
        SSLDistributedWrapper(MODELS.build(_model_cfg()), fsdp=True)


def test_fsdp_bf16_with_gram_anchoring_and_layer_decay(tmp_path):
    """The shipped large-model setting (bf16 compute) with a Gram teacher refreshed mid-run and
    layer-wise lr decay: both ranks finish with finite losses and a full fp32 checkpoint
    that holds the Gram teacher."""
    work = _torchrun(
        tmp_path, 'bf16', dict(type='SSLDistributedWrapper', fsdp=dict(mixed_precision='bf16')),
        max_iters=4, model=dict(gram_loss_weight=1.0, gram_start_iter=1, gram_update_interval=2),
        optim_wrapper=dict(constructor='LayerDecayOptimWrapperConstructor',
                           paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.9,
                                              patch_embed_lr_mult=0.2,
                                              backbone_prefix='student.backbone.')))
    losses = [_load(work / f'losses_rank{rank}.pth')['losses'] for rank in (0, 1)]
    assert len(losses[0]) == 4 and all(torch.isfinite(torch.tensor(v)).all() for v in losses)
    state = _load(work / 'iter_4.pth')['state_dict']
    assert any(k.startswith('gram_teacher.') for k in state) and int(state['gram_ready']) == 1
    floats = [v for v in state.values() if torch.is_tensor(v) and v.is_floating_point()]
    assert all(type(v) is torch.Tensor and v.dtype == torch.float32 for v in floats)
    model = MODELS.build(_model_cfg(gram_loss_weight=1.0))
    model.load_state_dict(state, strict=True)
