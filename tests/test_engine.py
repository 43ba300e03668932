"""Layer-wise lr decay for partially unfrozen backbones, and the CPU bf16 optimizer wrapper."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

import densedino  # noqa: F401
from densedino.engine import BF16OptimWrapper, layer_id
from densedino.registry import MODELS


class _Model(nn.Module):
    def __init__(self, trainable_blocks):
        super().__init__()
        self.backbone = MODELS.build(dict(
            type='DinoBackbone', arch='dinov2_vits14', trainable_blocks=trainable_blocks,
            frozen=True, arch_overrides=dict(depth=4, embed_dim=32, num_heads=2)))
        self.decode_head = nn.Conv2d(32, 3, 1)


@pytest.mark.parametrize('name,expected', [
    ('backbone.model.cls_token', 0), ('backbone.model.patch_embed.proj.weight', 0),
    ('backbone.model.blocks.0.attn.qkv.weight', 1), ('backbone.model.blocks.3.ls1.gamma', 4),
    ('backbone.model.norm.weight', 5), ('decode_head.weight', 5),
    ('backbone.model.stages.2.0.dwconv.weight', 3)])
def test_layer_id(name, expected):
    assert layer_id(name, 4) == expected


def test_layer_decay_groups():
    init_default_scope('densedino')
    model = _Model(trainable_blocks=2)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.5)))
    groups = wrapper.optimizer.param_groups
    handed = {id(p) for g in groups for p in g['params']}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert handed == trainable  # frozen blocks are not in the optimizer
    by_layer = {}
    for g in groups:
        by_layer.setdefault(g['layer_id'], set()).add(g['lr'])
    assert by_layer == {3: {1e-3 * 0.5 ** 2}, 4: {1e-3 * 0.5}, 5: {1e-3}}
    for g in groups:
        one_d = all(p.ndim == 1 for p in g['params'])
        assert g['weight_decay'] == (0.0 if one_d else 0.05)


def test_bf16_wrapper_runs_forward_in_bf16():
    model = nn.Linear(4, 4)
    wrapper = BF16OptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        y = model(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    wrapper.update_params(y.float().sum())
    assert model.weight.dtype == torch.float32
