"""Never lose work, never train on garbage: crash-safe checkpoints, non-finite guards and strict
loads, for segmentation, depth and pretraining, through densedino's runner."""
import glob
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.hooks import Hook

import densedino  # noqa: F401
from densedino import CheckpointError
from densedino.engine import NonFiniteError, build_runner, latest_checkpoint
from densedino.engine import hooks as hooks_module

from .crash_hooks import NaNBufferHook, NaNGradientHook, SimulatedCrash, die_mid_write
from .depth_fixtures import write_nyu_split
from .seg_fixtures import write_ade20k_folder
from .test_depth_pipeline import tiny_depth_cfg
from .test_pretrain_model import _cfg as tiny_pretrain_cfg
from .test_seg_pipeline import tiny_cfg as tiny_seg_cfg

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ITERS = 8


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('data')
    return dict(seg=write_ade20k_folder(str(base / 'ade')),
                depth=write_nyu_split(str(base / 'nyu'), num_train=4, num_test=2))


def make_cfg(task: str, roots, work_dir, *, iters: int = ITERS, interval: int = 2):
    """A tiny config of ``task`` saving every ``interval`` iterations, keeping ONE checkpoint
    (as the quick starts did), through the default SafeCheckpointHook."""
    if task == 'seg':
        cfg = tiny_seg_cfg(roots['seg'], work_dir, iters=iters)
    elif task == 'depth':
        cfg = tiny_depth_cfg('configs/depth/nyu_linear.py', roots['depth'], work_dir, iters=iters)
    else:
        cfg = tiny_pretrain_cfg(work_dir, max_iters=iters)
        cfg.work_dir = str(work_dir)
        cfg.default_hooks.checkpoint = dict(type='SafeCheckpointHook', by_epoch=False)
    cfg.default_hooks.checkpoint.update(interval=interval, max_keep_ckpts=1)
    cfg.train_cfg.val_interval = 10 * iters
    return cfg


def losses_of(runner) -> list:
    return list(runner.message_hub.get_scalar('train/loss').data[0])


def weights_of(runner) -> dict:
    model = getattr(runner.model, 'module', runner.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def checkpoint_files(work_dir) -> list:
    return sorted(osp.basename(p) for p in glob.glob(osp.join(str(work_dir), '*.pth')))


def all_finite(path) -> bool:
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    tensors = list(ckpt['state_dict'].values())
    for state in ckpt.get('optimizer', {}).get('state', {}).values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    return all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())


@pytest.fixture(scope='module')
def reference(roots, tmp_path_factory):
    """Uninterrupted runs of each task: losses and final weights."""
    out = {}
    for task in ('seg', 'depth', 'pretrain'):
        runner = build_runner(make_cfg(task, roots, tmp_path_factory.mktemp(f'ref_{task}')))
        runner.train()
        out[task] = (losses_of(runner), weights_of(runner))
    return out


CRASH_POINTS = ('mid_write', 'before_pointer', 'before_delete')


def _inject(point: str, monkeypatch) -> None:
    if point == 'mid_write':
        monkeypatch.setattr(LocalBackend, 'put', die_mid_write(0.4))
    elif point == 'before_pointer':
        def fail(*_):
            raise SimulatedCrash('died before updating last_checkpoint')
        monkeypatch.setattr(hooks_module, 'write_text_atomic', fail)
    else:
        def fail(*_):
            raise SimulatedCrash('died before deleting the old checkpoint')
        monkeypatch.setattr(hooks_module.SafeCheckpointHook, '_remove', fail)


@pytest.mark.parametrize('task', ['seg', 'depth', 'pretrain'])
@pytest.mark.parametrize('point', CRASH_POINTS)
def test_a_crash_while_saving_loses_nothing_and_resume_is_exact(task, point, roots, reference,
                                                                 tmp_path, monkeypatch):
    """The run dies while saving (max_keep_ckpts=1 as configured): part-way through writing
    iter_4.pth, before pointing last_checkpoint at it, or (at iter_6.pth, the first save that
    deletes a file) before deleting the oldest. The work dir still holds a whole checkpoint that
    last_checkpoint points at, and --resume from it gives the uninterrupted run's next losses and
    final weights."""
    crash_at = 6 if point == 'before_delete' else 4
    cfg = make_cfg(task, roots, tmp_path)
    runner = build_runner(cfg)

    class CrashAtSecondSave(Hook):
        priority = 'VERY_HIGH'

        def before_save_checkpoint(self, runner, checkpoint):
            if runner.iter + 1 == crash_at:
                _inject(point, monkeypatch)

    runner.register_hook(CrashAtSecondSave())
    with pytest.raises(SimulatedCrash):
        runner.train()
    monkeypatch.undo()

    assert not glob.glob(osp.join(str(tmp_path), '.*.part')), 'the unfinished file was left'
    found = latest_checkpoint(str(tmp_path))
    assert found is not None and all_finite(found)
    expected = {'mid_write': ['iter_2.pth'], 'before_pointer': ['iter_2.pth', 'iter_4.pth'],
                'before_delete': ['iter_2.pth', 'iter_4.pth', 'iter_6.pth']}[point]
    assert checkpoint_files(tmp_path) == expected
    assert osp.basename(found) == ('iter_6.pth' if point == 'before_delete' else 'iter_2.pth')

    cfg = make_cfg(task, roots, tmp_path)
    cfg.resume = True
    resumed = build_runner(cfg)
    resumed.train()
    ref_losses, ref_weights = reference[task]
    start = int(osp.basename(found)[5:-4])
    np.testing.assert_allclose(losses_of(resumed)[-(ITERS - start):], ref_losses[start:],
                               rtol=1e-5, atol=1e-6)
    for k, v in weights_of(resumed).items():
        torch.testing.assert_close(v, ref_weights[k], rtol=1e-5, atol=1e-6, msg=k)
    # max_keep_ckpts=1 is raised to 2: the previous checkpoint survives the next write
    assert checkpoint_files(tmp_path) == ['iter_6.pth', 'iter_8.pth']


def test_a_kill_mid_write_leaves_a_stale_part_file_that_the_next_run_removes(roots, tmp_path,
                                                                            monkeypatch):
    cfg = make_cfg('seg', roots, tmp_path, iters=4)
    build_runner(cfg).train()
    stale = tmp_path / '.iter_6.pth.12345.part'
    stale.write_bytes(b'half a checkpoint')
    cfg = make_cfg('seg', roots, tmp_path, iters=6)
    cfg.resume = True
    build_runner(cfg).train()
    assert not stale.exists()
    assert checkpoint_files(tmp_path) == ['iter_4.pth', 'iter_6.pth']


def _write_subprocess_config(path, cfg, extra: str = '') -> str:
    cfg.dump(str(path))
    if extra:
        with open(path, 'a') as f:
            f.write(extra)
    return str(path)


def _train(config: str, *args, env_extra=None):
    env = {**os.environ, 'PYTHONPATH': REPO, **(env_extra or {})}
    return subprocess.run([sys.executable, osp.join(REPO, 'tools/train.py'), config, *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


def test_kill_9_during_a_checkpoint_write_then_resume(roots, reference, tmp_path):
    """A real SIGKILL of tools/train.py part-way through writing iter_4.pth: the work dir keeps
    iter_2.pth, last_checkpoint points at it, and `--resume` ends with the weights of the
    uninterrupted run."""
    work = tmp_path / 'work'
    cfg = make_cfg('seg', roots, work)
    cfg.custom_imports = dict(imports=['tests.crash_hooks'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='KillDuringSaveHook', at=4, fraction=0.6)]
    config = _write_subprocess_config(tmp_path / 'killed.py', cfg)
    run = _train(config, '--work-dir', str(work), '--force-work-dir')
    assert run.returncode == -9, run.stderr[-2000:]
    assert checkpoint_files(work) == ['iter_2.pth']
    assert osp.basename(latest_checkpoint(str(work))) == 'iter_2.pth'
    assert glob.glob(osp.join(str(work), '.iter_4.pth.*.part'))  # what the kill left

    cfg.custom_hooks = []
    config = _write_subprocess_config(tmp_path / 'resumed.py', cfg)
    run = _train(config, '--work-dir', str(work), '--resume', '--force-work-dir')
    assert run.returncode == 0, run.stderr[-2000:]
    assert checkpoint_files(work) == ['iter_6.pth', 'iter_8.pth']
    final = torch.load(work / 'iter_8.pth', map_location='cpu', weights_only=False)['state_dict']
    for k, v in reference['seg'][1].items():
        torch.testing.assert_close(final[k], v, rtol=1e-5, atol=1e-6, msg=k)


# --- non-finite guards -----------------------------------------------------------------------

@pytest.mark.parametrize('task, lr', [('seg', 1e6), ('depth', 1e12), ('pretrain', 1e6)])
def test_a_huge_learning_rate_stops_the_run_and_leaves_only_finite_checkpoints(task, lr, roots,
                                                                              tmp_path):
    """(The depth head clamps its predictions, so its loss and gradients stay finite while
    1e6 updates its weights; at 1e12 the weights overflow, which the weight norm catches.)"""
    cfg = make_cfg(task, roots, tmp_path, iters=8, interval=3)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.optim_wrapper.pop('clip_grad', None)
    runner = build_runner(cfg)
    with pytest.raises(NonFiniteError, match=r'non-finite values at iteration \d+ \(loss=.*'
                       r'grad_norm=.*weight_norm=.*\): the step was not applied and training '
                       r'stopped'):
        runner.train()
    files = checkpoint_files(tmp_path)
    assert all(all_finite(tmp_path / f) for f in files)
    assert runner.iter < 8


@pytest.mark.parametrize('task, param', [('seg', 'decode_head.conv_seg.weight'),
                                         ('depth', 'decode_head.conv_depth.weight'),
                                         ('pretrain', 'student.dino_head.mlp.0.weight')])
def test_a_nan_gradient_with_a_finite_loss_is_caught_before_the_step(task, param, roots,
                                                                      tmp_path):
    cfg = make_cfg(task, roots, tmp_path, iters=6, interval=2)
    runner = build_runner(cfg)
    runner.register_hook(NaNGradientHook(param, at=(3,)))
    with pytest.raises(NonFiniteError) as err:
        runner.train()
    msg = str(err.value)
    assert 'iteration 4 (loss=' in msg and 'grad_norm=nan' in msg
    assert 'loss=nan' not in msg  # the loss itself was finite
    assert msg.endswith('steps)') and '\n' not in msg
    assert f'the last good checkpoint is {tmp_path}' in msg and 'iter_2.pth' in msg
    weights = weights_of(runner)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert checkpoint_files(tmp_path) == ['iter_2.pth'] and all_finite(tmp_path / 'iter_2.pth')


def test_max_skips_skips_bad_steps_up_to_the_budget(roots, tmp_path):
    cfg = make_cfg('seg', roots, tmp_path / 'one', iters=4)
    cfg.nonfinite_guard = dict(max_skips=1)
    runner = build_runner(cfg)
    runner.register_hook(NaNGradientHook('decode_head.conv_seg.weight', at=(1,)))
    runner.train()
    assert runner.iter == 4
    assert all(torch.isfinite(v).all() for v in weights_of(runner).values()
               if v.is_floating_point())

    cfg = make_cfg('seg', roots, tmp_path / 'two', iters=4)
    cfg.nonfinite_guard = dict(max_skips=1)
    runner = build_runner(cfg)
    runner.register_hook(NaNGradientHook('decode_head.conv_seg.weight', at=(1, 2)))
    with pytest.raises(NonFiniteError, match='iteration 3'):
        runner.train()


def test_skipped_step_leaves_the_weights_unchanged(roots, tmp_path):
    """A skipped step applies nothing: the weights after it equal those before it."""
    cfg = make_cfg('seg', roots, tmp_path, iters=2)
    cfg.nonfinite_guard = dict(max_skips=5)
    runner = build_runner(cfg)
    runner.register_hook(NaNGradientHook('decode_head.conv_seg.weight', at=(0, 1)))
    before = {}

    class Snapshot(Hook):
        def before_train(self, runner):
            before.update({k: v.detach().clone() for k, v in runner.model.named_parameters()})

    runner.register_hook(Snapshot())
    runner.train()
    after = dict(runner.model.named_parameters())
    assert before and all(torch.equal(before[k], after[k]) for k in before)


def test_unknown_guard_option_is_refused(roots, tmp_path):
    cfg = make_cfg('seg', roots, tmp_path, iters=2)
    cfg.nonfinite_guard = dict(max_skip=3)
    with pytest.raises(ValueError, match=r"nonfinite_guard: unknown keys \['max_skip'\]"):
        build_runner(cfg).train()


@pytest.mark.parametrize('task, name', [('seg', 'decode_head.bn.running_var'),
                                        ('pretrain', 'dino_loss.center')])
def test_a_checkpoint_with_non_finite_tensors_is_never_written(task, name, roots, tmp_path):
    """Damage no gradient shows (a NaN buffer) is caught by the check before saving."""
    cfg = make_cfg(task, roots, tmp_path, iters=6, interval=2)
    runner = build_runner(cfg)
    runner.register_hook(NaNBufferHook(name, at=3))
    with pytest.raises(NonFiniteError, match=rf'refusing to save iter_4.pth: 1 of \d+ tensors '
                       rf'are not finite \(state_dict.{name}\); the last good checkpoint is '
                       rf'.*iter_2.pth'):
        runner.train()
    assert checkpoint_files(tmp_path) == ['iter_2.pth']
    assert osp.basename(latest_checkpoint(str(tmp_path))) == 'iter_2.pth'


def test_the_guard_reads_the_logged_values_once(roots, tmp_path, monkeypatch):
    """One host transfer per step for the guard and the logger together: the logged values
    reach the message hub as floats, not tensors."""
    cfg = make_cfg('seg', roots, tmp_path, iters=2)
    runner = build_runner(cfg)
    seen = []

    class Outputs(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            seen.append(outputs)

    runner.register_hook(Outputs())
    runner.train()
    assert seen and all(isinstance(v, float) for out in seen for v in out.values())
    assert {'loss', 'decode.loss_ce', 'decode.acc_seg'} <= set(seen[0])
    assert len(runner.message_hub.get_scalar('train/grad_norm').data[0]) == 2


# --- strict loading --------------------------------------------------------------------------

@pytest.fixture(scope='module')
def trained_files(roots, tmp_path_factory):
    """One checkpoint of each task, trained 2 iterations."""
    files = {}
    for task in ('seg', 'depth', 'pretrain'):
        work = tmp_path_factory.mktemp(f'files_{task}')
        build_runner(make_cfg(task, roots, work, iters=2)).train()
        files[task] = str(work / 'iter_2.pth')
    return files


@pytest.mark.parametrize('source, pattern', [
    ('depth', r'the file looks like a depth model'),
    ('pretrain', r'the file looks like a pretraining checkpoint'),
    ('backbone', r'unexpected keys cls_token.*the file looks like a backbone alone \(a ViT\): '
                 r'give it as model.backbone.checkpoint'),
    ('other_classes', r'shape mismatch .*decode_head.conv_seg.weight \(150, 32, 1, 1\) vs '
                      r'\(5, 32, 1, 1\).*a segmentation model with 150 classes'),
])
@pytest.mark.parametrize('how', ['load_from', 'resume'])
def test_a_checkpoint_of_another_architecture_is_refused(source, pattern, how, roots,
                                                         trained_files, tmp_path):
    cfg = make_cfg('seg', roots, tmp_path, iters=2)
    if source == 'backbone':
        path = str(tmp_path / 'vit.pth')
        torch.save(densedino.create_backbone('dinov2_vits14', depth=2, embed_dim=32,
                                             num_heads=2).state_dict(), path)
    else:
        path = trained_files['seg' if source == 'other_classes' else source]
    if source == 'other_classes':  # (the data check would refuse this config first)
        cfg.model.decode_head.num_classes, cfg.check_data = 5, 'off'
    cfg.load_from = path
    cfg.resume = how == 'resume'
    with pytest.raises(CheckpointError, match=rf'checkpoint {path} does not fit the model.*'
                       rf'{pattern}.*set load_strict=False'):
        build_runner(cfg).train()
    assert not glob.glob(osp.join(str(tmp_path), 'iter_*.pth'))


def test_load_strict_false_loads_what_fits(roots, trained_files, tmp_path):
    cfg = make_cfg('seg', roots, tmp_path, iters=1)
    cfg.model.decode_head.num_classes, cfg.check_data = 5, 'off'
    cfg.load_from, cfg.load_strict = trained_files['seg'], False
    runner = build_runner(cfg)
    runner.train()
    source = torch.load(trained_files['seg'], map_location='cpu', weights_only=False)
    loaded = weights_of(runner)
    # the frozen backbone and the BatchNorm came from the file, the 5-class conv did not
    backbone = [k for k in loaded if k.startswith('backbone.')]
    assert backbone and all(torch.equal(loaded[k], source['state_dict'][k]) for k in backbone)
    assert loaded['decode_head.conv_seg.weight'].shape[0] == 5


def test_tools_test_refuses_a_checkpoint_of_another_task(roots, trained_files, tmp_path):
    cfg = make_cfg('seg', roots, tmp_path / 'work', iters=2)
    config = _write_subprocess_config(tmp_path / 'seg.py', cfg)
    env = {**os.environ, 'PYTHONPATH': REPO}
    run = subprocess.run([sys.executable, osp.join(REPO, 'tools/test.py'), config,
                          trained_files['depth']], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=600)
    assert run.returncode != 0
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith('error:')]
    assert len(lines) == 1 and 'does not fit the model' in lines[0] and 'a depth model' in lines[0]
    assert 'mIoU' not in run.stdout


# --- the pointer -----------------------------------------------------------------------------

def test_a_copied_work_dir_resumes_from_its_own_files(roots, tmp_path):
    first = tmp_path / 'first'
    build_runner(make_cfg('seg', roots, first, iters=4)).train()
    assert (first / 'last_checkpoint').read_text() == 'iter_4.pth'  # relative
    copy = tmp_path / 'copy'
    shutil.copytree(first, copy)
    shutil.rmtree(first)
    cfg = make_cfg('seg', roots, copy, iters=6)
    cfg.resume = True
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter == 6 and checkpoint_files(copy) == ['iter_4.pth', 'iter_6.pth']


def test_an_absolute_pointer_in_a_copied_work_dir_names_the_copy(tmp_path):
    (tmp_path / 'orig').mkdir()
    (tmp_path / 'orig' / 'iter_8.pth').write_bytes(b'x')
    (tmp_path / 'copy').mkdir()
    (tmp_path / 'copy' / 'iter_8.pth').write_bytes(b'x')
    (tmp_path / 'copy' / 'last_checkpoint').write_text(str(tmp_path / 'orig' / 'iter_8.pth'))
    assert latest_checkpoint(str(tmp_path / 'copy')) == str(tmp_path / 'copy' / 'iter_8.pth')
    os.remove(tmp_path / 'copy' / 'iter_8.pth')
    assert latest_checkpoint(str(tmp_path / 'copy')) == str(tmp_path / 'orig' / 'iter_8.pth')
    assert latest_checkpoint(str(tmp_path / 'orig')) is None


def test_ctrl_c_during_a_save_finishes_the_checkpoint_first(roots, tmp_path):
    cfg = make_cfg('seg', roots, tmp_path, iters=6, interval=2)
    runner = build_runner(cfg)

    class InterruptWhileSaving(Hook):
        def before_save_checkpoint(self, runner, checkpoint):
            if runner.iter + 1 == 4:
                os.kill(os.getpid(), signal.SIGINT)

    runner.register_hook(InterruptWhileSaving())
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert runner.iter == 3  # stopped after the save of iteration 4, before iteration 5
    assert checkpoint_files(tmp_path) == ['iter_2.pth', 'iter_4.pth']
    assert osp.basename(latest_checkpoint(str(tmp_path))) == 'iter_4.pth'
    assert all_finite(tmp_path / 'iter_4.pth')


def test_resume_attaches_the_guard_once(roots, tmp_path):
    """mmengine's resume builds the optimiser wrapper again: the guard keeps its skip count and
    the model's parse_losses is wrapped once."""
    build_runner(make_cfg('seg', roots, tmp_path, iters=2)).train()
    cfg = make_cfg('seg', roots, tmp_path, iters=4)
    cfg.resume = True
    runner = build_runner(cfg)
    runner.train()
    guard = runner.optim_wrapper.nonfinite_guard
    assert runner.build_optim_wrapper(runner.optim_wrapper).nonfinite_guard is guard
    parse = runner.model.parse_losses
    assert parse.__closure__ is not None and not any(
        getattr(c.cell_contents, '__name__', '') == 'parse_and_keep' for c in parse.__closure__)
