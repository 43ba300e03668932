"""What a newcomer sees in the first hour: a compact console, and errors that say what to do.

In-process where the behaviour is a function's; subprocesses where it is a real process's (the
time before a config typo is answered, what a training run prints)."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

import pytest

from densedino import cli as _cli
from densedino import zoo
from densedino.cli.options import check_options, constructor_keywords
from densedino.models.backbones import PRESETS
from densedino.models.backbones.checkpoint import CheckpointError, read_file
from tools import doctor, train

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS='1')
SEG = 'configs/seg/synthetic_linear.py'
TINY = ['model.backbone.arch_overrides.depth=4', 'model.backbone.arch_overrides.embed_dim=32',
        'model.backbone.arch_overrides.num_heads=2']


def _load(config, *options):
    return _cli.load_config(train.parse_args([config, '--cfg-options', *options]))


def _refusal(config, *options) -> str:
    with pytest.raises(SystemExit) as e:
        _load(config, *options)
    message = str(e.value.code)
    assert message.startswith('error: --cfg-options ') and '\n' not in message
    assert 'see docs/cli.md' in message  # the rule travels with the error
    return message


# ----------------------------------------------------------------- --cfg-options keys

def test_misspelt_top_level_key_is_refused_with_the_nearest_key():
    message = _refusal(SEG, 'train_dataloder.batch_size=2')
    assert "the config has no top-level key 'train_dataloder'" in message
    assert 'did you mean train_dataloader' in message


def test_misspelt_nested_key_is_refused_with_the_nearest_key():
    message = _refusal(SEG, 'model.decode_head.num_clases=3')
    assert "model.decode_head has no key 'num_clases' (LinearSegHead takes no such keyword)" \
        in message
    assert 'did you mean model.decode_head.num_classes?' in message
    message = _refusal(SEG, 'optim_wrapper.optimizer.lrr=0.1')
    assert 'did you mean optim_wrapper.optimizer.lr?' in message
    assert 'has 2 items, so no index 5' in _refusal(SEG, 'param_scheduler.5.end=3')


def test_an_architecture_option_on_the_backbone_points_at_arch_overrides():
    message = _refusal(SEG, 'model.backbone.drop_path_rate=0.1')
    assert 'go under model.backbone.arch_overrides.drop_path_rate' in message


def test_keywords_the_classes_take_are_accepted_though_absent_from_the_file(capsys):
    cfg = _load(SEG, 'model.backbone.trainable_blocks=1', 'model.backbone.arch_overrides.depth=2',
                'load_strict=False', 'train_dataloader.drop_last=True',
                'optim_wrapper.paramwise_cfg.norm_decay_mult=0.0', 'log_level=WARNING')
    assert cfg.model.backbone.trainable_blocks == 1 and cfg.model.backbone.arch_overrides.depth == 2
    assert cfg.load_strict is False and cfg.train_dataloader.drop_last is True
    # a new type brings its own keywords; a whole new value takes any keys below it
    cfg = _load(SEG, 'optim_wrapper.type=AmpOptimWrapper', 'optim_wrapper.dtype=bfloat16')
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    check_options(cfg, {'model.test_cfg': {}, 'model.test_cfg.anything': 1})
    capsys.readouterr()


def test_kwargs_are_followed_to_the_base_class_they_go_to():
    from densedino.registry import MODELS
    keywords = constructor_keywords(MODELS.get('LinearSegHead'))
    assert {'num_classes', 'in_index', 'channels', 'init_cfg'} <= keywords  # own + BaseDecodeHead
    assert 'kwargs' not in keywords
    assert constructor_keywords(MODELS.get('DinoBackbone')) >= {'arch', 'arch_overrides'}


# ----------------------------------------------------------------- config paths

@pytest.mark.parametrize('tool, extra', [('train', []), ('test', ['x.pth', '--out', 'p.py']),
                                         ('check_dataset', ['--split', 'val'])])
def test_misspelt_config_is_answered_at_once_with_the_right_file(tool, extra):
    """Before densedino (torch, mmseg) is imported: no torch, no mmengine, well under 2 s."""
    argv = [f'tools/{tool}.py', 'configs/seg/ade20k_linaer.py', *extra]
    probe = ("import runpy, sys\n"
             f"sys.argv = {argv!r}\n"
             "try:\n"
             f"    runpy.run_path('tools/{tool}.py', run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    print(e.code, file=sys.stderr)\n"
             "print('torch' in sys.modules, 'mmengine' in sys.modules)\n")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', probe], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.stdout.split() == ['False', 'False'], proc.stderr
    assert proc.stderr.strip() == ('error: config file configs/seg/ade20k_linaer.py does not '
                                   'exist; did you mean configs/seg/ade20k_linear.py or '
                                   'configs/seg/ade20k_linear_ms.py?')
    assert elapsed < 2.0, elapsed


def test_load_config_suggests_configs_too(tmp_path):
    with pytest.raises(SystemExit, match=r'did you mean configs/pretrain/synthetic_vits\.py\?$'):
        _cli.load_config(train.parse_args(['configs/pretrain/synthetic_vit.py']))
    assert _cli.config_error(SEG) is None
    message = _cli.config_error(str(tmp_path / 'zzzz.py'))
    assert message.endswith('(no config has a similar name; the configs are in configs/depth, '
                            'configs/pretrain, configs/seg)')


def test_config_argument_skips_option_values_and_overrides():
    argv = ['--work-dir', 'w.py', '--cfg-options', 'a=b.py', 'configs/x.py']
    assert _cli.paths.config_argument(argv, train.VALUE_OPTIONS) == 'configs/x.py'
    assert _cli.paths.config_argument(['--resume', 'c.py'], train.VALUE_OPTIONS) is None


# ----------------------------------------------------------------- missing weights

def test_missing_released_checkpoint_names_url_and_command(tmp_path):
    path = str(tmp_path / 'checkpoints' / 'dinov2_vits14_pretrain.pth')
    url = 'https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth'
    with pytest.raises(CheckpointError) as e:
        read_file(path)
    message = str(e.value)
    assert message.startswith(f'checkpoint {path} does not exist; it is the DINOv2 ViT-S/14 ')
    assert 'Apache-2.0' in message and '\n' not in message
    assert message.endswith(f'fetch it with: mkdir -p {tmp_path}/checkpoints && curl -L -o '
                            f'{path} {url}')
    with pytest.raises(CheckpointError, match=r'does not exist$'):  # not a released file
        read_file(str(tmp_path / 'mine.pth'))


def test_missing_dinov3_checkpoint_explains_the_gated_download(tmp_path):
    name = 'dinov3_vits16_pretrain_lvd1689m-08c60483.pth'
    with pytest.raises(CheckpointError) as e:
        read_file(str(tmp_path / name))
    assert zoo.DINOV3_LICENSE_PAGE in str(e.value) and 'gated' in str(e.value)


def test_the_zoo_table():
    assert zoo.get('dinov2_vitb14_reg').file_name == 'dinov2_vitb14_reg4_pretrain.pth'
    assert zoo.get('dino_vits8').url == ('https://dl.fbaipublicfiles.com/dino/'
                                         'dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth')
    assert zoo.find_file('some/dir/dinov2_vitg14_pretrain.pth').name == 'dinov2_vitg14'
    assert zoo.find_file('other.pth') is None
    with pytest.raises(KeyError, match='did you mean dinov2_vits14'):
        zoo.get('dinov2_vits41')
    for entry in zoo.ZOO.values():
        assert entry.arch in PRESETS, entry.name  # every file loads into a preset
        assert entry.gated == (entry.license == 'DINOv3 License')
    assert {e.family for e in zoo.entries(kind='backbone')} == {
        'dinov1', 'dinov2', 'dinov2_reg', 'dinov3', 'dinov3_convnext'}


# ----------------------------------------------------------------- the training console

def _train(config, wd, *options, timeout=300):
    proc = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', str(wd),
                           '--cfg-options', *options], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = glob.glob(str(wd / '*' / '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        return proc, f.read()


def test_training_console_is_a_header_and_progress_from_iteration_1(tmp_path):
    wd = tmp_path / 'seg'
    proc, log = _train(SEG, wd, 'train_cfg.max_iters=3', 'train_dataloader.num_workers=0',
                       'train_dataloader.persistent_workers=False', *TINY)
    out = proc.stdout
    for dump in ('Config:', 'System environment', 'Hooks will be executed', 'FileClient'):
        assert dump not in out and dump in log, dump
    assert out.splitlines()[0].endswith(f'densedino: training {SEG}')
    assert f'  work dir  {wd}\n' in out and '  device    cpu (' in out
    assert f'config as run: {wd}{os.sep}synthetic_linear.py' in out
    assert 'of 115.3K parameters trained' in out
    first = next(line for line in out.splitlines() if 'Iter(train)' in line)
    assert 'Iter(train) [1/3]' in first and 'eta: ' in first
    assert len(out.splitlines()) < 35, out  # header, 3 progress lines, validation and its table
    summary = proc.stderr.strip().splitlines()[-3:]
    assert summary[0] == f'finished 3 iterations; work dir {wd}'
    assert summary[1] == f'  last checkpoint {wd}{os.sep}iter_3.pth'
    # mmengine's scalars (what tools/plot_pretrain.py reads) hold every logged iteration
    scalars = glob.glob(str(wd / '*' / 'vis_data' / 'scalars.json'))[0]
    with open(scalars) as f:
        steps = [(json.loads(line)['step'], 'loss' in line) for line in f]
    assert steps == [(1, True), (2, True), (3, True), (3, False)]  # the last: validation


def test_pretraining_console_has_no_per_parameter_warnings(tmp_path):
    wd = tmp_path / 'pre'
    proc, log = _train('configs/pretrain/synthetic_vits.py', wd, 'train_cfg.max_iters=2',
                       'custom_hooks=[]', 'train_dataloader.batch_size=4',
                       'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                       'model.backbone_overrides.depth=2', 'model.backbone_overrides.embed_dim=32',
                       'model.backbone_overrides.num_heads=2')
    for noise in ('requires_grad=False', 'paramwise_options'):
        assert noise not in proc.stdout + proc.stderr and noise in log, noise
    assert 'Iter(train) [1/2]' in proc.stdout


# ----------------------------------------------------------------- doctor

FACTS = dict(cuda=False, gpu=None, bf16_native=False, amx=False, threads=2, cores=2)


@pytest.mark.parametrize('facts, precision', [
    (dict(FACTS, bf16_native=True, amx=True), 'bf16: this CPU has AMX bf16 units; pass --amp'),
    (dict(FACTS, bf16_native=True), 'AVX512-BF16 (no AMX'),
    (FACTS, 'fp32: this CPU has no bf16 units'),
    (dict(FACTS, cuda=True, gpu='H100', bf16_native=True), 'optim_wrapper.dtype=bfloat16'),
])
def test_doctor_advice_names_precision_amp_and_threads(facts, precision):
    lines = doctor.advice_lines(facts)
    assert lines[0] == 'advice for this machine:' and precision in lines[1]
    assert 'nothing to set' in lines[2]
    assert 'export OMP_NUM_THREADS=2' in doctor.advice_lines(dict(facts, threads=8))[2]


def test_doctor_ends_with_advice(capsys):
    doctor.main()
    out = capsys.readouterr().out.splitlines()
    assert out[-3] == 'advice for this machine:'
    assert out[-2].startswith('  precision  ') and out[-1].startswith('  threads    ')
