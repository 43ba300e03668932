"""The dinov2_vits14 suite with its released heads served from a local HTTP server.

Random weights in the released layouts (tests/served_weights.py) are served at the official
paths; ``DENSEDINO_WEIGHTS_MIRROR`` points the zoo at the server and ``DENSEDINO_HOME`` at an
empty cache. ``tools/benchmark_suite.py`` (without ``--train``) then fetches each entry's
backbone and head, assembles the model and evaluates it on fixture datasets in the ADE20K,
Pascal VOC 2012, NYU-Depth-v2 and KITTI Eigen layouts; each entry's figure must equal what
``tools/test.py`` reports for the same config, data and released model (joined into one
checkpoint by ``tools/convert_checkpoint.py``), and results.json must name each file it used by
its sha256. Nothing but 127.0.0.1 is contacted.

The +ms entries (``--tta``: five scales up to 3x, each flipped) are left out: on a CPU they
would take minutes for two images.
"""
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
from glob import glob

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from densedino import hub, zoo
from tools import benchmark_suite

from .depth_fixtures import write_kitti_split, write_nyu_split
from .seg_fixtures import write_ade20k_folder
from .served_weights import LocalServer, url_path, write_release

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SUITE, ARCH = 'dinov2_vits14', 'dinov2_vits14'
# every dataset, and the three head kinds: seg BNHead, linear depth, DPT depth
ENTRIES = ('ade20k_linear', 'voc2012_linear', 'nyu_linear', 'nyu_dpt', 'kitti_linear')
#: Where the configs read their test data, below --data-root (the config's data/<x>).
DATA = {'ade20k': 'ade/ADEChallengeData2016', 'voc2012': 'VOCdevkit/VOC2012', 'nyu': 'nyu',
        'kitti': 'kitti'}


def voc_palette() -> list:
    """Pascal VOC's colour map (the palette of its SegmentationClass PNGs)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def write_voc_folder(root: str, *, num_train: int = 1, num_val: int = 2, size=(60, 80),
                     seed: int = 1) -> str:
    """VOCdevkit/VOC2012 layout: JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette PNG
    of class indices, 255 on object boundaries), ImageSets/Segmentation/{train,val}.txt."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 255, size=(6, 3))
    data_root = osp.join(root, 'VOCdevkit', 'VOC2012')
    for folder in ('JPEGImages', 'SegmentationClass', osp.join('ImageSets', 'Segmentation')):
        os.makedirs(osp.join(data_root, folder), exist_ok=True)
    for split, first, n in (('train', 0, num_train), ('val', num_train, num_val)):
        ids = [f'2007_{first + i:06d}' for i in range(n)]
        for image_id in ids:
            label = np.zeros(size, np.uint8)
            for _ in range(3):
                cls = int(rng.integers(1, 6))
                y, x = rng.integers(1, size[0] - 16), rng.integers(1, size[1] - 16)
                h, w = rng.integers(10, 16, size=2)
                label[y:y + h, x:x + w] = 255  # the boundary VOC marks as ignored
                label[y + 1:y + h - 1, x + 1:x + w - 1] = cls
            image = colours[np.where(label == 255, 0, label)] + rng.normal(0, 8, (*size, 3))
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
                osp.join(data_root, 'JPEGImages', image_id + '.jpg'))
            png = Image.fromarray(label, mode='P')
            png.putpalette(voc_palette())
            png.save(osp.join(data_root, 'SegmentationClass', image_id + '.png'))
        with open(osp.join(data_root, 'ImageSets', 'Segmentation', f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{i}\n' for i in ids))
    return data_root


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    """Two test images per dataset at the sizes the protocols need (NYU's Eigen crop is defined
    on 480x640, KITTI's KB crop cuts 352x1216 out of 375x1242); KITTI has a third test line
    without ground truth, skipped as the official split's 45 are."""
    root = str(tmp_path_factory.mktemp('data'))
    write_ade20k_folder(osp.join(root, 'ade'), num_train=1, num_val=2)
    write_voc_folder(root)
    write_nyu_split(root, num_train=1, num_test=2, size=(480, 640))
    write_kitti_split(root, num_train=1, num_test=3, size=(375, 1242), no_gt_lines=1)
    return root


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """The released files of the entries (random weights), served at their official paths:
    ``(server, {zoo file entry name: served path})``."""
    root = str(tmp_path_factory.mktemp('served'))
    files = write_release(root, [f'{ARCH}_{name}' for name in ENTRIES])
    server = LocalServer(root)
    yield server, files
    server.stop()


def file_sha256(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def entry_of(name: str) -> dict:
    entries, _ = benchmark_suite.load_suite(SUITE)
    return next(e for e in entries if e['name'] == name)


def start(args: list, log: str, env: dict) -> tuple:
    """A tool run from the repository root, its output going to ``log``; returns
    ``(process, log)``."""
    with open(log, 'w') as out:
        return subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, text=True, env=env), log


def finish(run: tuple) -> str:
    """Wait for a run of :func:`start`; its output (the run must succeed)."""
    process, log = run
    code = process.wait(timeout=600)
    with open(log) as f:
        output = f.read()
    assert code == 0, output[-4000:]
    return output


def start_tools_test(name: str, served_files: dict, data_root: str, work: str) -> tuple:
    """``tools/test.py`` on the entry, as a user runs it: the entry's config, the served backbone
    and head joined by ``tools/convert_checkpoint.py``, ``--cfg-options`` pointing at the
    fixture data and switching the config's own backbone weights off; with no mirror and
    offline, so nothing can be fetched."""
    import tools.convert_checkpoint as convert
    entry = entry_of(name)
    backbone, head = (served_files[e.name] for e in zoo.files(entry['zoo']))
    config = osp.join(REPO, entry['config'])
    checkpoint = osp.join(work, 'model.pth')
    convert.main(convert.parse_args([config, '--backbone', backbone, '--head', head,
                                     '--out', checkpoint]))
    folder = DATA[name.split('_')[0]]
    assert Config.fromfile(config).test_dataloader.dataset.data_root == osp.join('data', folder)
    options = [f'test_dataloader.dataset.data_root={osp.join(data_root, folder)}',
               'model.backbone.pretrained=False', 'model.backbone.checkpoint=None']
    options += [f'{k}={v}' for k, v in entry['cfg_options'].items()]
    env = {k: v for k, v in os.environ.items() if k != hub.MIRROR_ENV}
    env.update({hub.OFFLINE_ENV: '1', hub.HOME_ENV: osp.join(work, 'empty_home')})
    return start(['tools/test.py', config, checkpoint, '--work-dir', osp.join(work, 'test'),
                  '--cfg-options', *options], osp.join(work, 'test.log'), env)


def logged_metrics(work: str) -> dict:
    """The metrics tools/test.py logged (mmengine's ``<work-dir>/<time>/<time>.json``)."""
    [log] = glob(osp.join(work, 'test', '*', '*.json'))
    with open(log) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def runs(served, data_root, tmp_path_factory):
    """The suite on the served files, then tools/test.py on each entry (run one at a time:
    side by side, the runs slow each other down on a small CPU more than they gain). Returns ``(results.json,
    suite output, cache folder, {entry: tools/test.py's logged metrics})``."""
    server, files = served
    work = str(tmp_path_factory.mktemp('suite'))
    home = str(tmp_path_factory.mktemp('home'))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(hub.MIRROR_ENV, server.url)
        mp.setenv(hub.HOME_ENV, home)
        for name in (hub.OFFLINE_ENV, hub.DINOV3_GATE.env):
            mp.delenv(name, raising=False)
        suite = start(['tools/benchmark_suite.py', '--suite', SUITE, '--only', *ENTRIES,
                       '--work-dir', work, '--data-root', data_root],
                      osp.join(work, 'suite.log'), dict(os.environ))
    output = finish(suite)
    references = {name: str(tmp_path_factory.mktemp(name)) for name in ENTRIES}
    for name, reference in references.items():
        finish(start_tools_test(name, files, data_root, reference))
    with open(osp.join(work, benchmark_suite.RESULTS_JSON)) as f:
        results = json.load(f)
    return results, output, home, {n: logged_metrics(ref) for n, ref in references.items()}


@pytest.mark.parametrize('name', ENTRIES)
def test_entry_figure_equals_tools_test(runs, name):
    results, _, _, reference = runs
    record = results['entries'][name]
    assert record['status'] == 'done', record
    assert record['zoo'] == f'{ARCH}_{name}' and not record['tta']
    metric = record['metric']
    assert record['value'] == record['metrics'][metric]
    logged = reference[name]
    ours = {k: v for k, v in logged.items() if k in record['metrics']}
    assert set(ours) == set(record['metrics']), (sorted(logged), sorted(record['metrics']))
    for key, value in record['metrics'].items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    if metric == 'mIoU':  # the random heads favour the fixture's classes: not all-wrong
        assert 0 < record['value'] < 100
    else:
        assert record['value'] > 0


def test_results_record_the_served_files_by_sha256(runs, served):
    """Each entry's files are the served backbone and head, from the cache, by their sha256;
    each file crossed the wire once (the backbone is shared by all five entries)."""
    results, _, home, _ = runs
    server, files = served
    for name in ENTRIES:
        expected = {osp.join(home, 'checkpoints', e.file_name): file_sha256(files[e.name])
                    for e in zoo.files(f'{ARCH}_{name}')}
        assert results['entries'][name]['files'] == expected, name
    served_paths = sorted('/' + url_path(zoo.get(n)) for n in files)
    assert sorted(server.requests) == served_paths
    assert len(served_paths) == len(ENTRIES) + 1


def test_figures_depend_on_the_served_heads(runs):
    """Different released heads give different figures (the weights are not degenerate), and
    the table lists every entry against its published target."""
    results, output, _, _ = runs
    values = [results['entries'][n]['value'] for n in ENTRIES]
    assert len(set(values)) == len(values), values
    for name in ENTRIES:
        assert results['entries'][name]['target'] == entry_of(name)['target']
        assert f'| {name} | {results["entries"][name]["metric"]} |' in output
