"""bf16 inference path (``to_bf16``) and the backbone benchmark script, on tiny models."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from densedino import create_backbone
from densedino.models.backbones import bf16_matmul_mode, to_bf16
from densedino.models.backbones.precision import (Fp32ComputeAttention, Fp32ComputeConv2d,
                                                  Fp32ComputeLinear, Fp32ComputeMlp)
from densedino.models.layers import Attention, Mlp

# LayerScale 1 so that every random block changes the tokens (DINOv3 inits it at 1e-5).
TINY = dict(embed_dim=32, depth=2, num_heads=2, layerscale_init=1.0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'tools', 'benchmark_backbone.py')


def _tokens(model, x):
    f = model.forward_features(x)
    return torch.cat([f['x_norm_clstoken'][:, None], f['x_norm_patchtokens']], dim=1)


@pytest.mark.parametrize('matmul', ['fp32', 'native'])
@pytest.mark.parametrize('name', ['dinov2_vits14_reg', 'dinov3_vits16plus'])
def test_bf16_close_to_fp32(name, matmul):
    model = create_backbone(name, img_size=56, **TINY) if 'v2' in name else \
        create_backbone(name, **TINY)
    x = torch.randn(2, 3, 8 * model.patch_size, 5 * model.patch_size)  # non-square
    with torch.inference_mode():
        ref = _tokens(model, x)
        out = _tokens(to_bf16(model, matmul=matmul), x.bfloat16())
    assert out.dtype == torch.bfloat16
    cos = F.cosine_similarity(out.float(), ref, dim=-1)
    assert cos.min() > 0.99, cos.min()


def test_bf16_dtypes_and_keys():
    model = create_backbone('dinov3_vits16', **TINY)
    keys = set(model.state_dict())
    to_bf16(model, matmul='fp32')
    assert set(model.state_dict()) == keys
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert model.rope_embed.periods.dtype == torch.float32  # RoPE angles stay fp32
    assert isinstance(model.blocks[0].attn.qkv, Fp32ComputeLinear)
    assert isinstance(model.blocks[0].attn, Fp32ComputeAttention)
    assert isinstance(model.blocks[0].mlp, Fp32ComputeMlp)
    assert isinstance(model.patch_embed.proj, Fp32ComputeConv2d)
    assert model.bf16_matmul == 'fp32'
    out = model.get_intermediate_layers(torch.randn(1, 3, 32, 48).bfloat16(), n=2,
                                        reshape=True, return_class_token=True)
    assert all(t.dtype == torch.bfloat16 for pair in out for t in pair)
    to_bf16(model, matmul='native')  # switching back restores the plain classes
    assert type(model.blocks[0].attn.qkv) is torch.nn.Linear
    assert type(model.patch_embed.proj) is torch.nn.Conv2d
    assert type(model.blocks[0].attn) is Attention and type(model.blocks[0].mlp) is Mlp


def test_fp32_compute_linear_is_bf16_gemm_with_fp32_accumulation():
    lin = torch.nn.Linear(64, 16).bfloat16()
    x = torch.randn(8, 64).bfloat16()
    ref = (x.double() @ lin.weight.double().t() + lin.bias.double()).to(torch.bfloat16)
    lin.__class__ = Fp32ComputeLinear
    out = lin(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref.float(), atol=0, rtol=2 ** -7)


def test_matmul_mode_validation(monkeypatch):
    assert bf16_matmul_mode() in ('native', 'fp32')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda index=None: (8, 0))
    assert bf16_matmul_mode('cuda:0') == 'native'  # Ampere on: bf16 tensor cores
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda index=None: (7, 5))
    assert bf16_matmul_mode('cuda:0') == 'fp32'  # Turing: bf16 would be emulated
    with pytest.raises(ValueError, match='matmul'):
        to_bf16(torch.nn.Linear(2, 2), matmul='fast')


def test_benchmark_script_end_to_end(tmp_path):
    pytest.importorskip('transformers')
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, BENCH, '--preset', 'dinov2_vits14', '--size', '56', '--batch', '1',
           '--dtype', 'bf16', '--iters', '2', '--warmup', '1', '--roofline-seconds', '0.05',
           '--override', 'depth=1', '--override', 'embed_dim=32', '--override', 'num_heads=2',
           '--out', str(out)]
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert {'args', 'machine', 'roofline', 'gflop_per_forward', 'bf16_matmul', 'densedino', 'hf',
            'ratio', 'diff_vs_hf', 'vs_fp32'} <= set(res)
    # FLOPs of the tiny model (depth 1, width 32, 4 x 4 patches + class token), by hand
    n, d, p = 17, 32, 14
    macs = 16 * d * 3 * p * p + n * d * 3 * d + 2 * n * n * d + n * d * d + 2 * n * d * 4 * d
    assert res['gflop_per_forward'] == pytest.approx(2 * macs / 1e9)
    roof = res['roofline']
    assert roof['roofline_gflops'] == max(v['gflops'] for v in roof['variants'].values())
    printed = ' '.join(proc.stdout.split())
    for side in ('densedino', 'hf'):
        r = res[side]
        assert r['iters'] == 2
        # batch 1: one image per median latency, the model's FLOPs per median latency
        med_s = r['latency_median_ms'] / 1e3
        assert r['images_per_s'] == pytest.approx(1 / med_s)
        assert r['gflops'] == pytest.approx(res['gflop_per_forward'] / med_s)
        assert r['roofline_fraction'] == pytest.approx(r['gflops'] / roof['roofline_gflops'])
        assert r['native_roofline_fraction'] == pytest.approx(r['gflops'] / roof['native_gflops'])
        assert r['peak_mem_mb'] is not None and r['peak_tensor_mb'] > 0  # live tensors exist
        # the printed row carries the JSON's figures
        assert f"| {side} | {r['images_per_s']:.2f} | {r['latency_median_ms']:.1f} |" in printed
        # --dtype bf16 really ran in bf16: close to the fp32 reference, but not equal to it
        assert res['vs_fp32'][side]['max_abs'] > 0
    ours, hf = res['densedino'], res['hf']
    assert res['ratio'] == pytest.approx(ours['images_per_s'] / hf['images_per_s'])
    assert f"densedino / HF throughput: {res['ratio']:.2f}x" in proc.stdout
    assert res['diff_vs_hf']['max_abs'] < 0.1
    assert res['vs_fp32']['densedino']['cosine_mean'] > 0.99
