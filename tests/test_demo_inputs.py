"""The webcam demo checks its command line before it loads a model, and its message for a missing
camera is the only line on stderr (OpenCV's own warnings silenced)."""
import glob
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/depth/synthetic_linear.py'


def _demo(*args):
    return subprocess.run([sys.executable, 'demo/webcam_depth.py', *args, '--no-show'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(bool(glob.glob('/dev/video*')), reason='this machine has a camera')
def test_missing_camera_is_one_line():
    proc = _demo('--source', '0', '--config', CONFIG)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith('error: RuntimeError: cannot open camera 0') and 'WARN' not in err[0]


@pytest.mark.parametrize('options, expected', [
    (['--checkpoint', 'no/such.pth'], 'FileNotFoundError: checkpoint file no/such.pth does not exist'),
    (['--out', 'depth.gif'], 'ValueError: --out depth.gif: use a .mp4, .mov or .avi file name'),
    (['--vmin', '3', '--vmax', '1'], 'ValueError: --vmax (1.0) must exceed --vmin (3.0)'),
])
def test_command_line_errors_come_before_the_model(tmp_path, options, expected):
    frames = tmp_path / 'frames'
    frames.mkdir()
    proc = _demo('--source', str(frames), '--config', CONFIG, *options)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'error: {expected}'), proc.stderr
    assert 'loading' not in proc.stderr
