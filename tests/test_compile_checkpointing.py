"""The GPU path's options, on a CPU: torch.compile of the backbone (no graph breaks, eager
outputs, unchanged checkpoints, no recompiling per input size), activation checkpointing (same
losses and gradients, fewer saved activations), and --amp's choice of precision."""
import argparse

import pytest
import torch

from densedino import create_backbone
from densedino.models import DinoBackbone

TINY = dict(depth=3, embed_dim=32, num_heads=2)


@pytest.mark.parametrize('arch', ['dinov2_vits14_reg', 'dinov3_vits16'])
def test_vit_blocks_trace_without_graph_breaks(arch):
    """One graph per block, absolute positions or RoPE: nothing falls back to Python."""
    vit = create_backbone(arch, **TINY).eval()
    p = vit.patch_size
    tokens, rope, _ = vit.prepare_tokens(torch.randn(2, 3, 4 * p, 5 * p))
    explanation = torch._dynamo.explain(vit.blocks[0])(tokens, rope)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_backbone_matches_eager_and_keeps_its_checkpoint_keys():
    torch.manual_seed(0)
    eager = DinoBackbone('dinov3_vits16', arch_overrides=TINY, out_indices='last').eval()
    compiled = DinoBackbone('dinov3_vits16', arch_overrides=TINY, out_indices='last',
                            compile=True).eval()
    assert list(compiled.state_dict()) == list(eager.state_dict())
    compiled.load_state_dict(eager.state_dict(), strict=True)
    from torch._dynamo.utils import counters
    counters.clear()
    with torch.no_grad():
        for size in ((48, 64), (64, 96), (80, 112)):  # a slide window, then other frames
            x = torch.randn(1, 3, *size)
            torch.testing.assert_close(compiled(x)[0].map, eager(x)[0].map, rtol=1e-4,
                                       atol=1e-5)
    # the first size compiles, the second recompiles with dynamic shapes, the third reuses it
    assert counters['stats']['unique_graphs'] <= 2


def _grads(vit, x):
    torch.manual_seed(1)  # the same stochastic-depth draws in both runs
    loss = vit.forward_features(x)['x_norm_patchtokens'].square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in vit.named_parameters()
                           if p.grad is not None}


def test_checkpointing_gives_the_same_gradients_with_fewer_saved_activations():
    """Per-block checkpointing (stochastic depth on, so the random state must be replayed):
    same loss and gradients, and autograd keeps a fraction of the activations."""
    torch.manual_seed(0)
    plain = create_backbone('dinov2_vits14', depth=4, embed_dim=64, num_heads=2,
                            drop_path_rate=0.3).train()
    ckpt = create_backbone('dinov2_vits14', depth=4, embed_dim=64, num_heads=2,
                           drop_path_rate=0.3, grad_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 56, 56)
    saved = {}
    for name, model in (('plain', plain), ('ckpt', ckpt)):
        total = [0]

        def pack(t, total=total):
            total[0] += t.numel() * t.element_size()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            saved[name] = _grads(model, x)
        saved[name] += (total[0],)
    (loss_p, grads_p, bytes_p), (loss_c, grads_c, bytes_c) = saved['plain'], saved['ckpt']
    torch.testing.assert_close(loss_c, loss_p)
    assert grads_c.keys() == grads_p.keys()
    for name in grads_p:
        torch.testing.assert_close(grads_c[name], grads_p[name], rtol=1e-5, atol=1e-6)
    assert bytes_c < bytes_p / 3, (bytes_c, bytes_p)


def test_backbone_checkpointing_applies_to_the_trained_blocks_only():
    backbone = DinoBackbone('dinov2_vits14', arch_overrides=TINY, trainable_blocks=1,
                            grad_checkpointing=True).train()
    assert all(b.grad_checkpointing for b in backbone.model.blocks)
    out = backbone(torch.randn(1, 3, 42, 42))
    out[0].map.sum().backward()
    trained = [p for p in backbone.parameters() if p.grad is not None]
    assert trained and all(p.requires_grad for p in trained)
    with pytest.raises(ValueError, match='grad_checkpointing is for ViT backbones'):
        DinoBackbone('dinov3_convnext_tiny', arch_overrides=dict(depths=(1, 1, 1, 1)),
                     grad_checkpointing=True)


@pytest.mark.parametrize('cuda,bf16,expected', [
    (False, False, 'BF16OptimWrapper'),   # CPU: bf16 autocast
    (True, True, 'BF16OptimWrapper'),     # Ampere and later: bf16, no loss scaling
    (True, False, 'AmpOptimWrapper'),     # older GPUs: fp16 with dynamic loss scaling
])
def test_amp_picks_bf16_where_the_device_has_it(monkeypatch, cuda, bf16, expected):
    from mmengine.config import Config

    from densedino.cli import enable_compile
    from tools.train import enable_amp
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: cuda)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: bf16)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW')),
                      model=dict(type='EncoderDecoder', backbone=dict(type='DinoBackbone'))))
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == expected
    assert ('loss_scale' in cfg.optim_wrapper) == (expected == 'AmpOptimWrapper')
    enable_compile(cfg)
    assert cfg.model.backbone.compile is True
    with pytest.raises(ValueError, match='--compile compiles a model.backbone'):
        enable_compile(Config(dict(model=dict(type='DinoSSLModel'))))


def test_fused_losses_stay_fp32_under_autocast():
    """Mixed precision keeps the losses in fp32: the fused cross-entropy and depth bins give
    the fp32 values under bf16 autocast, with bf16 logits."""
    from densedino.models.heads.depth_bins import depth_bins, upsampled_bins_to_depth
    from densedino.models.losses import upsampled_cross_entropy
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 6, 7).bfloat16()
    labels = torch.randint(0, 5, (1, 24, 28))
    bins = depth_bins(1e-3, 10.0, 5)
    ref_ce = upsampled_cross_entropy(logits.float(), labels)[0]
    ref_depth = upsampled_bins_to_depth(logits.float(), bins, (24, 28))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ce = upsampled_cross_entropy(logits, labels)[0]
        depth = upsampled_bins_to_depth(logits, bins, (24, 28))
    assert ce.dtype == depth.dtype == torch.float32
    torch.testing.assert_close(ce, ref_ce, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(depth, ref_depth, rtol=1e-6, atol=1e-6)


def test_tools_take_compile(tmp_path):
    from tools.test import apply_test_options, parse_args
    from mmengine.config import Config
    args = parse_args(['c.py', str(tmp_path / 'x.pth'), '--compile'])
    (tmp_path / 'x.pth').write_bytes(b'')
    cfg = Config(dict(model=dict(type='EncoderDecoder', backbone=dict(type='DinoBackbone'))))
    apply_test_options(cfg, argparse.Namespace(**vars(args)))
    assert cfg.model.backbone.compile is True


def test_depth_demo_compiles_the_backbone_when_asked(monkeypatch, tmp_path):
    """demo/webcam_depth.py --compile: the runner compiles its model's backbone (the
    compilation itself is tested above; here it is counted, not run)."""
    import os.path as osp
    import sys
    sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'demo'))
    from webcam_depth import DepthRunner, parse_args
    calls = []
    monkeypatch.setattr(DinoBackbone, 'compile_backbone', lambda self, **o: calls.append(self))
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    config = osp.join(repo, 'configs', 'depth', 'synthetic_linear.py')
    DepthRunner(config, None, 'cpu', 'fp32', compile=False)
    assert not calls
    runner = DepthRunner(config, None, 'cpu', 'fp32', compile=True)
    assert calls == [runner.model.backbone]
    assert parse_args(['--config', config, '--compile']).compile
