"""The overlapped gradient synchroniser against the flat all-reduce, on 2 gloo CPU processes."""
import copy
import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from densedino.pretrain.collectives import OverlappedGradientSync, average_gradients


def _spawn(fn, tmp_path, *args) -> None:
    """Run ``fn(rank, store, *args)`` on 2 gloo processes of one thread each."""
    store = tmp_path / 'store'
    os.environ['OMP_NUM_THREADS'] = '1'  # inherited by the spawned processes
    mp.spawn(fn, args=(str(store), *args), nprocs=2, join=True)


def _init(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))


class Net(nn.Module):
    """Linear layers, a parameter used only when asked and one never used."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(),
                                    nn.Linear(32, 4))
        self.sometimes = nn.Parameter(torch.randn(4))
        self.unused = nn.Parameter(torch.randn(16))

    def forward(self, x, use_sometimes: bool):
        y = self.layers(x)
        return y + self.sometimes if use_sometimes else y


def _backward(model: nn.Module, seed: int, use_sometimes: bool) -> None:
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(seed))
    model(x, use_sometimes).square().mean().backward()


def _grads(model: nn.Module) -> dict:
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def _equality_worker(rank: int, store: str, out: str) -> None:
    _init(rank, store)
    torch.manual_seed(0)
    overlapped = Net()
    flat = copy.deepcopy(overlapped)
    sync = OverlappedGradientSync(overlapped, bucket_mb=1e-3)  # ~1 KB: several buckets
    results = {'n_buckets': sync.n_buckets}
    # step 1, two backwards with accumulation; `sometimes` only in the first (not reduced)
    for i, (enabled, use) in enumerate([(False, True), (True, False)]):
        sync.prepare(enabled=enabled)
        _backward(overlapped, 10 * rank + i, use)
        _backward(flat, 10 * rank + i, use)
    results['launched_in_backward'] = sync._next
    sync.finish()
    average_gradients(flat)
    results['step1'] = (_grads(overlapped), _grads(flat))
    # step 2, one backward: `sometimes` gets no gradient anywhere (stays None)
    for model in (overlapped, flat):
        model.zero_grad(set_to_none=True)
    sync.prepare(enabled=True)
    _backward(overlapped, 100 + rank, False)
    _backward(flat, 100 + rank, False)
    sync.finish()
    average_gradients(flat)
    results['step2'] = (_grads(overlapped), _grads(flat))
    # step 3: `sometimes` used on rank 0 only (the flat all-reduce cannot do this): every rank
    # gets half of rank 0's gradient, as DDP counts a missing gradient as zeros
    overlapped.zero_grad(set_to_none=True)
    sync.prepare(enabled=True)
    _backward(overlapped, 200 + rank, rank == 0)
    results['local3'] = _grads(overlapped)
    sync.finish()
    results['step3'] = _grads(overlapped)
    torch.save(results, f'{out}{rank}.pt')
    dist.barrier()
    dist.destroy_process_group()


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] is None) == (b[name] is None), name
        if a[name] is not None:
            torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7, msg=name)


def test_overlapped_equals_flat_average(tmp_path):
    _spawn(_equality_worker, tmp_path, str(tmp_path / 'rank'))
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1)]
    for res in ranks:
        assert res['n_buckets'] > 2
        # the buckets up to the one holding `sometimes` (no gradient this time) went during backward
        assert 0 < res['launched_in_backward'] < res['n_buckets']
        for step in ('step1', 'step2'):
            _assert_same(*res[step])
        assert res['step1'][0]['unused'] is None and res['step2'][0]['sometimes'] is None
        assert res['step1'][0]['sometimes'] is not None
    _assert_same(ranks[0]['step1'][0], ranks[1]['step1'][0])  # every rank holds the average
    _assert_same(ranks[0]['step3'], ranks[1]['step3'])
    torch.testing.assert_close(ranks[1]['step3']['sometimes'],
                               ranks[0]['local3']['sometimes'] / 2)
    assert ranks[1]['local3']['sometimes'] is None


def test_single_process_is_a_noop():
    torch.manual_seed(0)
    model = Net()
    sync = OverlappedGradientSync(model)
    assert sync.n_buckets == 0
    sync.prepare(enabled=True)
    _backward(model, 0, True)
    before = _grads(model)
    sync.finish()
    _assert_same(before, _grads(model))
    with pytest.raises(ValueError):
        OverlappedGradientSync(model, bucket_mb=0)


def _pretrain_worker(rank: int, store: str, out: str) -> None:
    """4 iterations (accumulation over 2, last-layer freeze in the first) per ``grad_sync``."""
    _init(rank, store)
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from densedino.pretrain import DinoSSLModel, SSLDistributedWrapper, collate_multicrop
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 4)
    states = {}
    for mode in ('flat', 'overlap'):
        torch.manual_seed(0)
        model = DinoSSLModel('dinov2_vits14', grad_sync=mode, freeze_last_layer_iters=2,
                             backbone_overrides=dict(depth=2, embed_dim=32, num_heads=2,
                                                     img_size=56),
                             head=dict(n_prototypes=64, hidden_dim=32, bottleneck_dim=16))
        wrapper = SSLDistributedWrapper(model.train())
        states['init'] = {k: v.clone() for k, v in model.state_dict().items()}
        optim = OptimWrapper(torch.optim.AdamW(model.student.parameters(), lr=1e-2),
                             clip_grad=dict(max_norm=3.0), accumulative_counts=2)
        optim.initialize_count_status(model, 0, 4)
        for it in range(4):
            gen = torch.Generator().manual_seed(100 * it + rank)
            samples = [dict(global_crops=[torch.randn(3, 56, 56, generator=gen)] * 2,
                            local_crops=[torch.randn(3, 28, 28, generator=gen)] * 2,
                            seed=10 * it + 2 * rank + i) for i in range(2)]
            batch = collate_multicrop(samples, mask_generator=dict(), patch_size=14,
                                      mask_probability=1.0)
            hub.update_info('iter', it)
            wrapper.train_step(batch, optim)
        states[mode] = {k: v.clone() for k, v in model.state_dict().items()}
        states[mode + '_sync'] = model._overlapped_sync is not None
    torch.save(states, f'{out}{rank}.pt')
    dist.barrier()
    dist.destroy_process_group()


def test_pretraining_overlap_matches_flat(tmp_path):
    _spawn(_pretrain_worker, tmp_path, str(tmp_path / 'rank'))
    for rank in (0, 1):
        states = torch.load(tmp_path / f'rank{rank}.pt')
        assert states['overlap_sync'] and not states['flat_sync']
        flat, overlap = states['flat'], states['overlap']
        assert not any(v.isnan().any() for v in flat.values())
        key = 'student.backbone.blocks.0.attn.qkv.weight'
        assert not torch.equal(flat[key], states['init'][key])  # it trained
        for key in flat:
            torch.testing.assert_close(overlap[key], flat[key], rtol=0, atol=1e-6, msg=key)
