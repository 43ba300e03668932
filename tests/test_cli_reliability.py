"""tools/train.py and tools/test.py as users run them: work dirs, Ctrl-C, resume, overrides and
one-line errors. Most tests run the real tools as subprocesses on a 4-block, 32-wide model."""
import glob
import json
import os
import os.path as osp
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config, ConfigDict

import densedino  # noqa: F401
from densedino.datasets import DatasetError
from densedino.models.backbones.checkpoint import CheckpointError, read_file
from densedino import cli as _cli
from tools import train

from .seg_fixtures import write_ade20k_folder

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def write_config(path, data_root, *, iters: int) -> str:
    """ADE20K's linear config on a fixture folder, a tiny backbone, a checkpoint every 2 steps."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/seg/ade20k_linear.py'))
    cfg.model.backbone.update(checkpoint=None, pretrained=False,
                              arch_overrides=dict(depth=4, embed_dim=32, num_heads=2))
    cfg.model.data_preprocessor.size = (42, 56)
    cfg.model.test_cfg = ConfigDict(mode='whole')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, 2
        dl.dataset.data_root = data_root
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomCrop', crop_size=(42, 56)), dict(type='PackSegInputs')]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=2)
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    cfg.dump(str(path))
    return str(path)


@pytest.fixture(scope='module')
def configs(tmp_path_factory):
    root = tmp_path_factory.mktemp('cli')
    data = write_ade20k_folder(str(root / 'ade'), num_train=4, num_val=2)
    return dict(short=write_config(root / 'tiny.py', data, iters=2),
                long=write_config(root / 'long.py', data, iters=1000))


def tool_args(script, *args):
    return [sys.executable, f'tools/{script}', *map(str, args)]


def run_tool(script, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(tool_args(script, *args), cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def interrupt_when(wd, ready, *args) -> subprocess.CompletedProcess:
    """Start tools/train.py, send SIGINT (Ctrl-C) once ``ready()`` holds, wait for the exit.

    The output goes to files: a pipe nobody reads while waiting could fill and block the run.
    """
    out_path, err_path = f'{wd}.out', f'{wd}.err'
    with open(out_path, 'w') as out, open(err_path, 'w') as err:
        proc = subprocess.Popen(tool_args('train.py', *args, '--work-dir', wd), cwd=REPO,
                                env=ENV, stdout=out, stderr=err)
        deadline = time.time() + 60
        while not ready() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, 'the run ended before it could be interrupted'
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    with open(out_path) as out, open(err_path) as err:
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


@pytest.fixture(scope='module')
def trained(configs, tmp_path_factory):
    """tools/train.py --resume-if-any --check-data on an empty work dir: a fresh 2-step run."""
    wd = tmp_path_factory.mktemp('trained') / 'wd'
    proc = run_tool('train.py', configs['short'], '--work-dir', wd, '--resume-if-any',
                    '--check-data')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wd, proc


# ------------------------------------------------------------------------- work dirs

def test_default_work_dir_is_the_config_path_under_configs(tmp_path):
    outside = tmp_path / 'my_run.py'
    outside.write_text("_base_ = ['%s']\n" % osp.join(REPO, 'configs/seg/synthetic_linear.py'))
    found = {c: _cli.load_config(train.parse_args([c])).work_dir for c in (
        'configs/seg/synthetic_linear.py', 'configs/depth/synthetic_linear.py',
        osp.join(REPO, 'configs/pretrain/synthetic_vits.py'), str(outside))}
    assert list(found.values()) == [
        osp.join('work_dirs', 'seg', 'synthetic_linear'),
        osp.join('work_dirs', 'depth', 'synthetic_linear'),
        osp.join('work_dirs', 'pretrain', 'synthetic_vits'),
        osp.join('work_dirs', 'my_run')]


def test_a_work_dir_holding_another_configs_checkpoints_is_refused(trained, configs, tmp_path):
    wd, _ = trained
    other = tmp_path / 'other.py'
    shutil.copy(configs['short'], other)
    before = sorted(os.listdir(wd))
    proc = run_tool('train.py', other, '--work-dir', wd)
    assert proc.returncode == 1
    assert proc.stderr.strip().count('\n') == 0, proc.stderr
    assert proc.stderr.startswith(f'error: work dir {wd} holds checkpoints of '
                                  f'{osp.realpath(configs["short"])} (model EncoderDecoder), '
                                  f'not of {osp.realpath(other)}')
    assert '--force-work-dir' in proc.stderr
    assert sorted(os.listdir(wd)) == before

    forced = tmp_path / 'forced'
    shutil.copytree(wd, forced)
    proc = run_tool('train.py', other, '--work-dir', forced, '--force-work-dir')
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(forced / _cli.OWNER_FILE) as f:
        assert json.load(f)['config'] == osp.realpath(other)


def test_a_work_dir_of_another_model_type_is_refused(trained, configs):
    wd, _ = trained
    cfg = Config.fromfile(configs['short'])
    cfg.work_dir = str(wd)
    cfg.model.type = 'DinoDepthEstimator'
    with pytest.raises(SystemExit, match=r'\(model EncoderDecoder\), not of .*tiny\.py \(model '
                                         r'DinoDepthEstimator\)'):
        train.claim_work_dir(cfg, configs['short'])
    train.claim_work_dir(cfg, configs['short'], force=True)  # allowed when asked for
    with open(wd / _cli.OWNER_FILE) as f:
        assert json.load(f)['model'] == 'DinoDepthEstimator'
    cfg.model.type = 'EncoderDecoder'
    train.claim_work_dir(cfg, configs['short'], force=True)


# ------------------------------------------------------------------- resume, Ctrl-C

def test_resume_if_any_starts_fresh_and_densedino_runner_writes_the_pointer(trained):
    wd, proc = trained
    assert f'--resume-if-any: no checkpoint in {wd}, starting from scratch' in proc.stderr
    # densedino's runner (build_runner) writes the pointer relative to the work dir
    assert (wd / 'last_checkpoint').read_text().strip() == 'iter_2.pth'
    assert torch.load(wd / 'iter_2.pth', map_location='cpu')['meta']['iter'] == 2


def test_resume_with_nothing_to_resume_is_refused(configs, tmp_path):
    wd = tmp_path / 'empty'
    proc = run_tool('train.py', configs['short'], '--work-dir', wd, '--resume')
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f'error: --resume: no checkpoint in {wd} (no readable last_checkpoint there); run '
        'without --resume to start fresh, use --resume-if-any, or --resume CKPT to resume from '
        'a given file')
    assert not wd.exists()


def test_ctrl_c_names_the_checkpoint_and_its_command_resumes(configs, tmp_path):
    wd = tmp_path / 'long'
    proc = interrupt_when(wd, lambda: (wd / 'iter_2.pth').exists(), configs['long'])
    assert proc.returncode == 130, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    line = last_line(proc.stderr)
    prefix = f'interrupted; the last checkpoint is {wd}{os.sep}iter_'
    assert line.startswith(prefix), line
    done = int(line[len(prefix):].split('.pth')[0])
    command = line.split('; continue with: ')[1]
    assert command == (f'python tools/train.py {configs["long"]} --work-dir {wd} --resume')

    # the printed command, with a KEY=VALUE after --resume (taken as a config override)
    argv = shlex.split(command)
    options = [f'train_cfg.max_iters={done + 2}', 'log_level=INFO']
    resumed = subprocess.run([sys.executable, *argv[1:], *options], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'--resume: taking {" ".join(options)} as --cfg-options' in resumed.stderr
    assert f'max_iters 1000 -> {done + 2}: set train_cfg.val_interval' in resumed.stderr
    assert f'resumed epoch: 0, iter: {done}' in resumed.stdout
    final = torch.load(wd / f'iter_{done + 2}.pth', map_location='cpu')
    assert final['meta']['iter'] == done + 2


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_saved(configs, tmp_path):
    wd = tmp_path / 'early'
    proc = interrupt_when(wd, lambda: glob.glob(str(wd / '*' / '*.log')), configs['long'],
                          '--cfg-options', 'default_hooks.checkpoint.interval=1000')
    assert proc.returncode == 130, proc.stderr
    assert 'Traceback' not in proc.stderr
    assert last_line(proc.stderr) == (
        f'interrupted before the first checkpoint: nothing to resume from in {wd}; run the same '
        'command again to start over')


def test_ctrl_c_inside_torch_save_still_exits_130(tmp_path):
    """Ctrl-C landing just before torch.save finalises its zip file: the half-written writer
    must not abort the process when it is destroyed after its buffer was closed."""
    script = tmp_path / 'interrupted_save.py'
    script.write_text(f'''import io, sys
import torch, torch.serialization
sys.path.insert(0, {REPO!r})
from densedino import cli as _cli
from tools import train


def interrupted(self, *args):  # Ctrl-C before write_end_of_file
    raise KeyboardInterrupt


torch.serialization._open_zipfile_writer_buffer.__exit__ = interrupted


def main(args):
    with io.BytesIO() as f:
        torch.save({{'w': torch.zeros(10)}}, f)


_cli.run_cli(main, train.parse_args(['c.py']), on_interrupt=lambda a: 'stopped')
''')
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, env=ENV)
    assert (proc.returncode, proc.stderr) == (130, 'stopped\n')


@pytest.mark.parametrize('rank', ['0', '1'])
def test_ctrl_c_line_comes_from_rank_0_only(monkeypatch, capsys, rank):
    monkeypatch.setenv('RANK', rank)

    def main(args):
        raise KeyboardInterrupt

    args = train.parse_args(['configs/seg/synthetic_linear.py'])
    with pytest.raises(SystemExit) as e:
        _cli.run_cli(main, args, on_interrupt=lambda a: 'stopped here')
    assert e.value.code == 130
    assert capsys.readouterr().err == ('stopped here\n' if rank == '0' else '')


def test_resume_value_with_equals_is_a_config_override(tmp_path, capsys):
    cfg = 'configs/seg/synthetic_linear.py'
    args = train.parse_args([cfg, '--cfg-options', 'a=1', '--resume', 'b=2', 'c.d=[1,2]'])
    assert (args.resume, args.cfg_options) == ('auto', {'a': 1, 'b': 2, 'c.d': [1, 2]})
    args = train.parse_args([cfg, '--resume', 'train_cfg.max_iters=3'])
    assert (args.resume, args.cfg_options) == ('auto', {'train_cfg.max_iters': 3})
    odd = tmp_path / 'lr=0.1.pth'
    odd.write_bytes(b'')
    assert train.parse_args([cfg, '--resume', str(odd)]).resume == str(odd)
    with pytest.raises(SystemExit):
        train.parse_args([cfg, '--resume', 'a=1', 'stray'])
    assert 'unrecognized arguments: stray' in capsys.readouterr().err


def test_resume_command_keeps_the_runs_own_arguments(tmp_path, capsys):
    ckpt = tmp_path / 'iter_4.pth'
    ckpt.write_bytes(b'')
    cases = {
        ('c.py', '--resume-if-any', '--work-dir', 'w d'): "c.py --work-dir 'w d' --resume",
        ('c.py', '--resume', str(ckpt), '--amp'): 'c.py --amp --resume',
        ('c.py', '--resume', 'a=1', 'b=2'): 'c.py --resume a=1 b=2',
        ('c.py', '--cfg-options', 'a=1', '--force-work-dir'): 'c.py --cfg-options a=1 --resume',
    }
    for argv, expected in cases.items():
        args = train.parse_args(list(argv))
        assert train.resume_command(args, argv) == f'python tools/train.py {expected}'
    capsys.readouterr()


def test_check_data_flags(capsys):
    cfg = 'configs/seg/synthetic_linear.py'
    assert train.parse_args([cfg, '--check-data']).check_data == 'full'
    assert train.parse_args([cfg, '--no-check-data']).check_data == 'off'
    assert train.parse_args([cfg]).check_data is None  # the runner's default ('quick')
    with pytest.raises(SystemExit):
        train.parse_args([cfg, '--check-data', '--no-check-data'])
    capsys.readouterr()


def test_test_tool_loads_strictly(trained, configs, tmp_path):
    """tools/test.py builds densedino's runner: a checkpoint of another head is refused."""
    wd, _ = trained
    proc = run_tool('test.py', configs['short'], wd / 'iter_2.pth', '--work-dir', tmp_path,
                    '--cfg-options', 'model.decode_head.num_classes=5')
    assert proc.returncode == 1
    line = last_line(proc.stderr)
    assert line.startswith('error: CheckpointError: ') and 'iter_2.pth' in line, line


# ------------------------------------------------------------------ config loading

def test_config_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('a = 1\nb = dict(x=\n')
    with pytest.raises(SystemExit, match=f'^error: config {bad}, line 2: .*never closed'):
        _cli.load_config(train.parse_args([str(bad)]))
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['bad.py']\nc = 2\n")
    with pytest.raises(SystemExit, match=f'^error: config {bad}, line 2: '):
        _cli.load_config(train.parse_args([str(child)]))


def _load(config, *options):
    return _cli.load_config(train.parse_args([config, '--cfg-options', *options]))


def test_max_iters_override_moves_the_schedules(capsys):
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = _load('configs/pretrain/synthetic_vits.py', 'train_cfg.max_iters=3')
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 30), (30, 300), (0, 3)]
    assert cfg.train_cfg.max_iters == cfg.max_iters == 3
    assert cfg.default_hooks.checkpoint.interval == 3
    assert capsys.readouterr().err.strip() == (
        'max_iters 300 -> 3: set param_scheduler[2].end, default_hooks.checkpoint.interval to 3; '
        'left as is: param_scheduler[1] (begins at 30)')
    # the schedules build, and the weight decay cosine (0.04 -> 0.4) spans the 3 steps: the
    # third step (k = 2 of 3) uses 0.4 - 0.36 (1 + cos(2 pi / 3)) / 2
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, weight_decay=0.04)
    scheds = [PARAM_SCHEDULERS.build(dict(s, optimizer=opt)) for s in cfg.param_scheduler]
    for _ in range(2):
        for s in scheds:
            s.step()
    assert opt.param_groups[0]['weight_decay'] == pytest.approx(0.4 - 0.36 * 0.25)

    cfg = _load('configs/pretrain/synthetic_vits.py', 'max_iters=3')  # the file's variable
    assert cfg.train_cfg.max_iters == 3 and cfg.param_scheduler[2].end == 3

    cfg = _load('configs/seg/synthetic_linear.py', 'train_cfg.max_iters=100')
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 50), (50, 100)]
    assert cfg.train_cfg.val_interval == 100
    assert cfg.default_hooks.checkpoint.interval == 50
    cfg = _load('configs/seg/synthetic_linear.py', 'train_cfg.max_iters=3')
    assert (cfg.train_cfg.val_interval, cfg.default_hooks.checkpoint.interval) == (3, 3)
    assert cfg.param_scheduler[1].end == 300
    capsys.readouterr()


def test_quick_starts_checkpoint_every_50_iterations():
    for path in ('configs/seg/synthetic_linear.py', 'configs/depth/synthetic_linear.py',
                 'configs/pretrain/synthetic_vits.py'):
        ckpt = Config.fromfile(path).default_hooks.checkpoint
        assert (ckpt.interval, ckpt.max_keep_ckpts) == (50, 2), path


# ----------------------------------------------------------------- one-line errors

class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_a_pickle_with_code_is_refused_as_such(tmp_path):
    marker = tmp_path / 'ran'
    evil = tmp_path / 'evil.pth'
    torch.save({'w': torch.zeros(2), 'x': _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError) as e:
        read_file(str(evil))
    msg = str(e.value)
    assert msg.startswith(f'checkpoint {evil} contains code or objects that are not allowed')
    assert 'will not be loaded' in msg and '\n' not in msg
    assert 'weights_only' not in msg and 'corrupt' not in msg
    assert not marker.exists()

    good = tmp_path / 'good.pth'
    torch.save({'w': torch.zeros(100)}, good)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=f'^cannot read checkpoint {cut}: .*corrupt or '
                                              'partial download'):
        read_file(str(cut))


class _BrokenLabels(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise DatasetError('label file x.png: value 200 outside [0, 150]')


def test_dataloader_worker_error_is_one_line_with_the_traceback_in_the_log(tmp_path, capsys):
    from mmengine.logging import MMLogger
    log_file = tmp_path / 'run.log'
    logger = MMLogger.get_instance('test_cli_reliability', log_file=str(log_file))

    def main(args):
        list(torch.utils.data.DataLoader(_BrokenLabels(), num_workers=1))

    try:
        with pytest.raises(SystemExit) as e:
            _cli.run._report_errors(main, train.parse_args(['configs/seg/synthetic_linear.py']))
    finally:
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
    assert e.value.code == 1
    out = capsys.readouterr()
    assert out.err == ('error: DatasetError: label file x.png: value 200 outside [0, 150] (run '
                       'with --debug for the traceback)\n')
    assert 'Traceback' not in out.out
    logged = log_file.read_text()
    assert 'Caught DatasetError in DataLoader worker process 0' in logged
    assert 'in __getitem__' in logged and 'Traceback (most recent call last)' in logged
