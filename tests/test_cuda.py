"""The GPU path: CUDA against CPU for backbones, training steps, the fused loss, inference, NCCL,
FSDP and torch.compile.

Every test is marked ``cuda``: collected everywhere, skipped without a GPU (tests/conftest.py).
On a GPU machine: ``python -m pytest -q -m cuda tests`` (or ``tools/gpu_check.sh``, which also
installs carried wheels). ``DENSEDINO_CUDA_TEST_DEVICE=cpu`` runs the same code on the CPU, CPU
against CPU, to check the tests themselves where no GPU is available.

Tolerances (stated once here):

* fp32, CUDA against CPU: ``atol = rtol = 1e-4`` (:data:`FP32_TOL`). TF32 is switched off for
  these tests (matmuls and cuDNN convolutions), so both sides do IEEE fp32 arithmetic and differ
  only in summation order.
* bf16 autocast against fp32 (:func:`assert_bf16_close`): bf16 keeps 8 significant bits (a
  relative rounding step of 2^-8 = 0.4%), and autocast runs matmuls and convolutions in bf16 with
  fp32 accumulation, norms and softmax in fp32. The bound is on the whole output: relative
  Frobenius error ``|a - b| / |b| <= 0.03`` and per-image cosine similarity ``>= 0.99``
  (:data:`BF16_REL`, :data:`BF16_COS`); a real-size ViT-S/14 stays well inside it (about 1%
  relative error on the CPU's bf16 autocast path).
* losses: fp32 first-step losses within ``rtol 1e-4``, bf16 within ``rtol 2e-2`` of the CPU fp32
  loss (:data:`BF16_LOSS_RTOL`).
"""
import copy
import os
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

from densedino.models.losses import upsampled_cross_entropy
from densedino.pretrain import DinoSSLModel, SSLDistributedWrapper, collate_multicrop
from densedino.registry import MODELS

from .test_depth_pipeline import tiny_depth_cfg
from .test_losses import check_fused_against_reference
from .test_pretrain_model import HEAD, TINY as PRETRAIN_TINY
from .test_seg_pipeline import tiny_cfg

pytestmark = pytest.mark.cuda

DEVICE = torch.device(os.environ.get('DENSEDINO_CUDA_TEST_DEVICE', 'cuda'))
CPU = torch.device('cpu')
FP32_TOL = dict(atol=1e-4, rtol=1e-4)
BF16_REL, BF16_COS, BF16_LOSS_RTOL = 3e-2, 0.99, 2e-2
TINY_VIT = dict(embed_dim=32, depth=2, num_heads=2)
#: One preset per backbone family, shrunk (LayerScale 1 so that DINOv3's blocks change tokens).
FAMILY_PRESETS = {
    'dinov1': ('dino_vits16', TINY_VIT),
    'dinov2': ('dinov2_vits14', TINY_VIT),
    'dinov2_reg': ('dinov2_vits14_reg', TINY_VIT),
    'dinov3': ('dinov3_vits16', dict(TINY_VIT, layerscale_init=1.0)),
    'dinov3_convnext': ('dinov3_convnext_tiny', dict(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64))),
}
SEG_CROP = (42, 56)


@pytest.fixture(autouse=True)
def _ieee_fp32():
    """No TF32 on either side: fp32 comparisons then hold to 1e-4."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def needs_real_gpu() -> None:
    if DEVICE.type != 'cuda':
        pytest.skip('needs a real GPU (NCCL / CUDA-only kernels)')


def autocast(enabled: bool = True):
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=enabled)


def assert_bf16_close(got: torch.Tensor, ref: torch.Tensor) -> None:
    """The documented bf16 bound (module docstring) of ``got`` against the fp32 ``ref``."""
    got, ref = got.float().cpu(), ref.float().cpu()
    rel = ((got - ref).norm() / ref.norm()).item()
    cos = F.cosine_similarity(got.flatten(1), ref.flatten(1), dim=1).min().item()
    assert rel <= BF16_REL and cos >= BF16_COS, f'bf16 vs fp32: rel {rel:.4f}, cosine min {cos:.4f}'


def build(cfg_model, device=CPU):
    with DefaultScope.overwrite_default_scope('densedino'):
        return MODELS.build(copy.deepcopy(cfg_model)).to(device)


def dense_backbone(name: str, overrides: dict, **kw):
    out = [0, 1, 2, 3] if 'convnext' in name else [overrides.get('depth', 12) - 1]
    return build(dict(type='DinoBackbone', arch=name, arch_overrides=overrides,
                      out_indices=out, **kw)).eval()


def feature_tensors(feats):
    return [t for f in feats for t in (f.map, f.cls_token) if t is not None]


# ------------------------------------------------------------------ backbones
@pytest.mark.parametrize('family', sorted(FAMILY_PRESETS))
def test_backbone_cuda_matches_cpu_per_family(family):
    name, overrides = FAMILY_PRESETS[family]
    cpu = dense_backbone(name, overrides)
    gpu = copy.deepcopy(cpu).to(DEVICE)
    x = torch.randn(2, 3, 70, 98)  # centre-padded to the patch multiple: non-square grid
    with torch.no_grad():
        ref = feature_tensors(cpu(x))
        got = feature_tensors(gpu(x.to(DEVICE)))
        with autocast():
            low = feature_tensors(gpu(x.to(DEVICE)))
    for g, r, b in zip(got, ref, low):
        torch.testing.assert_close(g.cpu(), r, **FP32_TOL)
        assert b.dtype == torch.float32 or b.dtype == torch.bfloat16
        assert_bf16_close(b, r)


def test_real_size_vits14_cuda_matches_cpu_fp32_and_bf16():
    cpu = dense_backbone('dinov2_vits14', {})
    gpu = copy.deepcopy(cpu).to(DEVICE)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = feature_tensors(cpu(x))
        got = feature_tensors(gpu(x.to(DEVICE)))
        with autocast():
            low = feature_tensors(gpu(x.to(DEVICE)))
    assert got[0].shape == (2, 384, 16, 16)
    for g, r, b in zip(got, ref, low):
        torch.testing.assert_close(g.cpu(), r, **FP32_TOL)
        assert_bf16_close(b, r)


def test_compiled_backbone_gives_the_eager_outputs():
    """``DinoBackbone(compile=True)`` (``model.backbone.compile=True``): same outputs, and a
    second input size runs without error (dynamic shapes)."""
    eager = dense_backbone('dinov2_vits14_reg', dict(TINY_VIT, depth=4)).to(DEVICE)
    compiled = dense_backbone('dinov2_vits14_reg', dict(TINY_VIT, depth=4), compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.to(DEVICE)
    with torch.no_grad():
        for size in ((56, 84), (70, 42)):
            x = torch.randn(2, 3, *size, device=DEVICE)
            for g, r in zip(feature_tensors(compiled(x)), feature_tensors(eager(x))):
                torch.testing.assert_close(g, r, atol=2e-4, rtol=1e-4)


# -------------------------------------------------------------------- losses
@pytest.mark.parametrize('align_corners', [False, True])
def test_fused_loss_equals_interpolate_cross_entropy_on_cuda(align_corners):
    size = (64, 80)
    x = torch.randn(2, 5, 9, 11, device=DEVICE, requires_grad=True)
    labels = torch.randint(0, 5, (2, *size), device=DEVICE)
    labels[0, :3] = 255
    total, ours = check_fused_against_reference(x, labels, align_corners)
    # and the same numbers as on the CPU
    xc = x.detach().cpu().requires_grad_()
    cpu_total = upsampled_cross_entropy(xc, labels.cpu(), align_corners=align_corners)[0]
    cpu_total.backward()
    torch.testing.assert_close(total.cpu(), cpu_total, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.cpu(), xc.grad, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ training steps
def optim_wrapper(model, precision: str, lr: float):
    """fp32: OptimWrapper; bf16: autocast through mmengine's AmpOptimWrapper on CUDA (no loss
    scaling for bf16), densedino's BF16OptimWrapper on the CPU."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    if precision == 'fp32':
        return OptimWrapper(optimizer)
    if DEVICE.type == 'cuda':
        from mmengine.optim import AmpOptimWrapper
        return AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16')
    from densedino.engine import BF16OptimWrapper
    return BF16OptimWrapper(optimizer)


def total_loss(logs: dict) -> float:
    """The step's total loss: ``loss`` (pretraining) or the sum of the ``*loss*`` terms."""
    if 'loss' in logs:
        return float(logs['loss'])
    return float(sum(float(v) for k, v in logs.items() if 'loss' in k))


def run_steps(model, data, precision: str, steps: int, lr: float):
    """Losses of ``steps`` training steps of ``model`` on the fixed batch ``data``."""
    wrapper = optim_wrapper(model, precision, lr)
    model.train()
    losses = []
    for i in range(steps):
        MessageHub.get_current_instance().update_info('iter', i)
        losses.append(total_loss(model.train_step(copy.deepcopy(data), wrapper)))
    return losses


def check_training(cpu_model, data, precision: str, steps: int = 4, lr: float = 1e-3):
    """CUDA steps on a fixed batch: finite, decreasing, first loss as on the CPU (fp32)."""
    gpu_model = copy.deepcopy(cpu_model).to(DEVICE)
    ref = run_steps(cpu_model, data, 'fp32', 1, lr)[0]
    losses = run_steps(gpu_model, data, precision, steps, lr)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], f'{precision} losses do not decrease: {losses}'
    tol = FP32_TOL['rtol'] if precision == 'fp32' else BF16_LOSS_RTOL
    assert losses[0] == pytest.approx(ref, rel=tol), (losses[0], ref)
    return losses


def seg_batch(num_classes: int, batch: int = 2, size=SEG_CROP):
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *size), generator=gen, dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *size), generator=gen))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def depth_batch(batch: int = 2, size=(42, 56)):
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *size), generator=gen, dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        s.gt_depth_map = PixelData(data=0.5 + 4 * torch.rand(1, *size, generator=gen))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def seg_model(tmp_path):
    return build(tiny_cfg('unused', tmp_path).model)


def depth_model(tmp_path, flip: bool = False):
    cfg = tiny_depth_cfg('configs/depth/nyu_dpt.py', 'unused', tmp_path)
    cfg.model.test_cfg.flip = flip
    return build(cfg.model)


def pretrain_model():
    """The tiny pretraining model, deterministic (no drop path), with a constant teacher
    temperature and a fast EMA so that its loss falls within 4 steps on a fixed batch."""
    return DinoSSLModel('dinov2_vits14', backbone_overrides=PRETRAIN_TINY, drop_path_rate=0.0,
                        head=HEAD, freeze_last_layer_iters=0, warmup_teacher_temp_iters=0,
                        momentum_teacher=0.9)


def pretrain_batch(batch: int = 4, size: int = 56, local: int = 28):
    gen = torch.Generator().manual_seed(0)
    samples = [dict(global_crops=[torch.randn(3, size, size, generator=gen) for _ in range(2)],
                    local_crops=[torch.randn(3, local, local, generator=gen) for _ in range(2)],
                    seed=i) for i in range(batch)]
    return collate_multicrop(samples, mask_generator=dict(), patch_size=14,
                             mask_probability=0.5, mask_ratio_range=(0.1, 0.5))


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_seg_train_step_on_cuda(precision, tmp_path):
    model = seg_model(tmp_path)
    check_training(model, seg_batch(model.decode_head.num_classes), precision, lr=1e-2)


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_depth_train_step_on_cuda(precision, tmp_path):
    check_training(depth_model(tmp_path), depth_batch(), precision, lr=1e-3)


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_pretrain_train_step_on_cuda(precision):
    """The DINO / iBOT / KoLeo step; its data preprocessor moves the crops to the model."""
    MessageHub.get_current_instance().update_info('max_iters', 100)
    cpu_model = pretrain_model()
    batch = pretrain_batch()
    gpu_model = copy.deepcopy(cpu_model).to(DEVICE)
    ref = run_steps(cpu_model, batch, 'fp32', 1, 1e-3)[0]
    losses = run_steps(gpu_model, to_device(batch, DEVICE), precision, 4, 1e-3)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], f'{precision} losses do not decrease: {losses}'
    tol = FP32_TOL['rtol'] if precision == 'fp32' else BF16_LOSS_RTOL
    assert losses[0] == pytest.approx(ref, rel=tol), (losses[0], ref)


# ----------------------------------------------------------------- inference
def test_slide_inference_cuda_equals_cpu(tmp_path):
    cpu = seg_model(tmp_path).eval()
    gpu = copy.deepcopy(cpu).to(DEVICE)
    cfg = ConfigDict(mode='slide', crop_size=(28, 28), stride=(14, 14))
    cpu.test_cfg = gpu.test_cfg = cfg
    x = torch.randn(1, 3, 42, 70)
    metas = [dict(img_shape=(42, 70), ori_shape=(42, 70), pad_shape=(42, 70))]
    with torch.no_grad():
        ref = cpu.inference(x, [dict(m) for m in metas])
        got = gpu.inference(x.to(DEVICE), [dict(m) for m in metas])
    assert got.shape == (1, 150, 42, 70)
    torch.testing.assert_close(got.cpu(), ref, **FP32_TOL)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_depth_flip_tta_cuda_equals_cpu(mode, tmp_path):
    cpu = depth_model(tmp_path, flip=True).eval()
    if mode == 'slide':
        cpu.test_cfg.update(mode='slide', crop_size=(28, 28), stride=(14, 14))
    gpu = copy.deepcopy(cpu).to(DEVICE)
    x = torch.randn(1, 3, 42, 56)
    metas = [dict(img_shape=(42, 56), ori_shape=(42, 56), pad_shape=(42, 56))]
    with torch.no_grad():
        ref = cpu.inference(x, [dict(m) for m in metas])
        got = gpu.inference(x.to(DEVICE), [dict(m) for m in metas])
        cpu.test_cfg.flip = False
        plain = cpu.inference(x, [dict(m) for m in metas])
    assert not torch.allclose(plain, ref)  # the flip did something
    torch.testing.assert_close(got.cpu(), ref, **FP32_TOL)


def test_depth_demo_runner_on_cuda(tmp_path):
    """demo/webcam_depth.py's DepthRunner on a BGR frame: CUDA fp32 equals CPU, bf16 within the
    bf16 bound."""
    import sys
    import numpy as np
    sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'demo'))
    from webcam_depth import DepthRunner
    cfg = tiny_depth_cfg('configs/depth/nyu_dpt.py', 'unused', tmp_path)
    path = str(tmp_path / 'depth_cfg.py')
    cfg.dump(path)
    cpu = DepthRunner(path, None, 'cpu', 'fp32')
    gpu32 = DepthRunner(path, None, str(DEVICE), 'fp32')
    gpu16 = DepthRunner(path, None, str(DEVICE), 'bf16')
    for runner in (gpu32, gpu16):
        runner.model.load_state_dict(cpu.model.state_dict())
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ref = cpu(frame)
    assert ref.shape == (120, 160)
    np.testing.assert_allclose(gpu32(frame), ref, atol=1e-4, rtol=1e-4)
    assert_bf16_close(torch.from_numpy(gpu16(frame))[None], torch.from_numpy(ref)[None])


# -------------------------------------------------------------- distributed
@pytest.fixture
def process_group(tmp_path):
    """A 1-process group: NCCL on CUDA (gloo in a CPU dry run), file:// rendezvous."""
    import torch.distributed as dist
    backend = 'nccl' if DEVICE.type == 'cuda' else 'gloo'
    if DEVICE.type == 'cuda':
        torch.cuda.set_device(DEVICE.index or 0)
    dist.init_process_group(backend, init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def test_nccl_syncbn_seg_step(process_group, tmp_path):
    needs_real_gpu()
    from mmengine.model import MMDistributedDataParallel
    t = torch.ones(3, device=DEVICE)
    process_group.all_reduce(t)
    assert t.tolist() == [1.0, 1.0, 1.0]
    plain = seg_model(tmp_path).to(DEVICE)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(plain))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in synced.modules())
    ddp = MMDistributedDataParallel(synced, device_ids=[torch.cuda.current_device()])
    data = seg_batch(plain.decode_head.num_classes)
    ref = run_steps(plain, data, 'fp32', 1, 1e-2)[0]
    losses = run_steps(ddp, data, 'fp32', 2, 1e-2)
    assert losses[0] == pytest.approx(ref, rel=1e-4)
    assert all(torch.isfinite(torch.tensor(losses)))
    head = synced.decode_head
    bn = next(m for m in head.modules() if isinstance(m, torch.nn.SyncBatchNorm))
    assert int(bn.num_batches_tracked) == 2


def test_fsdp_bf16_mixed_precision_step(process_group):
    """SSLDistributedWrapper(fsdp=dict(mixed_precision='bf16')) on one GPU: parameters sharded
    (DTensor, fp32 master weights), losses finite and decreasing, the first one within the bf16
    bound of the unsharded fp32 step."""
    from torch.distributed.tensor import DTensor
    MessageHub.get_current_instance().update_info('max_iters', 100)
    cpu_model = pretrain_model()
    batch = pretrain_batch()
    ref = run_steps(copy.deepcopy(cpu_model), batch, 'fp32', 1, 1e-3)[0]
    wrapper = SSLDistributedWrapper(copy.deepcopy(cpu_model).to(DEVICE),
                                    fsdp=dict(mixed_precision='bf16'))
    losses = run_steps(wrapper, to_device(batch, DEVICE), 'fp32', 4, 1e-3)
    weight = wrapper.module.student['backbone'].blocks[0].attn.qkv.weight
    assert isinstance(weight, DTensor) and weight.dtype == torch.float32
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses
    assert losses[0] == pytest.approx(ref, rel=BF16_LOSS_RTOL)
