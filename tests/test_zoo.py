"""The model zoo: every entry is consistent with its config, and the released files are fetched,
loaded strictly and assembled by name.

Nothing here touches the internet: the local HTTP server of tests/test_hub.py serves generated
files at the official paths (DENSEDINO_WEIGHTS_MIRROR points at it, DENSEDINO_HOME at tmp_path),
and the Hugging Face download is replaced by a stand-in that counts its calls.
"""
import os
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import densedino
from densedino import hub, zoo
from densedino.apis import inference_model
from densedino.hub import DownloadError
from densedino.models import DinoBackbone, load_depth_anything_v2
from densedino.models.backbones.checkpoint import describe_mismatch
from densedino.models.heads import load_head_checkpoint
from densedino.models.heads.checkpoint import split_head
from densedino.models.heads.depth_dpt import DAV2_WIDTHS
from densedino.registry import MODELS
from densedino.zoo.backbones import DINOV2_WIDTH, backbone_rows
from densedino.zoo.models import depth_anything_rows, head_and_model_rows

from .test_hub import OFFICIAL, one_line, server  # noqa: F401 (server: the local HTTP server)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
V2_PATH = '/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth'
HEAD_PATH = '/dinov2/dinov2_vits14/dinov2_vits14_ade20k_linear_head.pth'
DATASET_CLASSES = {'ade20k': 150, 'voc2012': 21}
SIZE_ROW = {'s': 'ViT-S/14', 'b': 'ViT-B/14', 'l': 'ViT-L/14', 'g': 'ViT-g/14'}


@pytest.fixture(scope='module')
def vits_file(tmp_path_factory) -> Path:
    """A real ViT-S/14 state dict (random weights), as dinov2_vits14_pretrain.pth holds."""
    path = tmp_path_factory.mktemp('weights') / 'dinov2_vits14_pretrain.pth'
    torch.manual_seed(3)
    torch.save(densedino.create_backbone('dinov2_vits14').state_dict(), path)
    return path


def serve_file(served, url_path: str, source: Path) -> None:
    """Serve ``source`` at ``url_path`` (linked, not copied: the backbone is ~90 MB)."""
    target = served.root / url_path.lstrip('/')
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)


def seg_head_file(path: Path, channels: int, classes: int) -> Dict[str, torch.Tensor]:
    """A head file in the layout of dinov2_*_{ade20k,voc2012}_*_head.pth (mmseg keys)."""
    sd = {'decode_head.conv_seg.weight': torch.randn(classes, channels, 1, 1) * 0.1,
          'decode_head.conv_seg.bias': torch.randn(classes),
          'decode_head.bn.weight': torch.rand(channels) + 0.5,
          'decode_head.bn.bias': torch.randn(channels),
          'decode_head.bn.running_mean': torch.randn(channels),
          'decode_head.bn.running_var': torch.rand(channels) + 0.5,
          'decode_head.bn.num_batches_tracked': torch.tensor(40000)}
    torch.save({'meta': {'mmseg_version': '0.27.0'}, 'state_dict': sd}, path)
    return sd


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------ the table itself
ROWS = backbone_rows() + head_and_model_rows() + depth_anything_rows()


def test_counts_and_unique_names():
    assert len({e.name for e in ROWS}) == len(ROWS) == len(zoo.ZOO)
    kinds = [e.kind for e in ROWS]
    assert (kinds.count('backbone'), kinds.count('head'), kinds.count('model')) == (24, 40, 49)
    assert len(densedino.list_models()) == 49
    assert len(densedino.list_models('seg')) == 16 and len(densedino.list_models('depth')) == 33
    with pytest.raises(ValueError, match='task must be one of seg, depth'):
        densedino.list_models('detection')


@pytest.mark.parametrize('entry', list(zoo.ZOO.values()), ids=lambda e: e.name)
def test_entry_is_consistent(entry):
    """Licence, URL under the official server (or the Hugging Face repository), file name,
    parts and config agree with the entry's name."""
    assert entry.kind in zoo.KINDS and entry.license in (zoo.APACHE, zoo.CC_BY_NC,
                                                         zoo.DINOV3_LICENSE)
    assert entry.gated == (entry.license == zoo.DINOV3_LICENSE)
    assert entry.arch in densedino.list_backbones()
    if entry.config is not None:
        assert osp.isfile(zoo.config_path(entry))
    if entry.family == 'depth_anything_v2':
        assert entry.url == f'{zoo.HF_BASE}/{entry.hf_repo}/resolve/main/{entry.hf_file}'
        assert entry.hf_file == entry.file_name and entry.loader == 'depth_anything_v2'
        assert (entry.license == zoo.APACHE) == entry.name.endswith('_small')
    elif entry.kind == 'model':
        assert entry.url is None and entry.loader == 'backbone+head'
        assert entry.parts == (entry.arch, f'{entry.name}_head')
        assert [p.kind for p in zoo.files(entry.name)] == ['backbone', 'head']
        assert zoo.get(entry.parts[1]).config == entry.config
    else:
        folder = {'dinov1': f'dino/{entry.file_name[:-4]}', 'dinov3': f'dinov3/{entry.arch}',
                  'dinov3_convnext': f'dinov3/{entry.arch}'}.get(
                      entry.family, f'dinov2/{entry.arch[:len("dinov2_vits14")]}')
        assert entry.url == f'{OFFICIAL}/{folder}/{entry.file_name}'
        assert zoo.find_file(f'x/{entry.file_name}') is entry
    if entry.kind == 'head':
        assert entry.file_name == f'{entry.name}.pth' and entry.name.startswith(entry.arch)
    if entry.family.startswith('dinov3'):
        assert entry.hash_prefix and entry.file_name.endswith(f'-{entry.hash_prefix}.pth')
        assert re.fullmatch(r'facebook/dinov3-[\w-]+-pretrain-(lvd1689m|sat493m)', entry.hf_repo)


def _protocols_row(size: str) -> str:
    text = Path(REPO, 'docs', 'protocols.md').read_text()
    return next(line for line in text.splitlines() if line.startswith(f'| {SIZE_ROW[size]} |'))


@pytest.mark.parametrize('entry', zoo.entries(kind='model', family='dinov2'),
                         ids=lambda e: e.name)
def test_dinov2_figures_are_the_documented_ones(entry):
    """The figure of a DINOv2 model is the one docs/protocols.md section 6.1 gives its size."""
    value = re.search(r' (\d+\.\d+) ', entry.figure).group(1)
    assert f' {value} ' in _protocols_row(entry.arch[len('dinov2_vit')])
    assert ('mIoU' in entry.figure) == (entry.task == 'seg')


# ------------------------------------------------------------- configs on the meta device
def _expected_head_shapes(entry) -> Dict[str, Tuple[int, ...]]:
    """Shapes the released head files have, from the DINOv2 / Depth-Anything-V2 protocols
    (docs/protocols.md sections 3-4), independently of how densedino builds the heads."""
    if entry.family == 'depth_anything_v2':
        width = DINOV2_WIDTH[entry.arch[len('dinov2_vit')]]
        return {'reassemble_blocks.projects.0.conv.weight': (DAV2_WIDTHS[width][1][0], width,
                                                             1, 1)}
    width = DINOV2_WIDTH[entry.arch[len('dinov2_vit')]]
    dataset, protocol = entry.name.split('_')[2:4]
    blocks = 4 if protocol in ('ms', 'linear4') else 1
    if entry.task == 'seg':
        return {'conv_seg.weight': (DATASET_CLASSES[dataset], blocks * width, 1, 1)}
    if protocol == 'dpt':
        return {'reassemble_blocks.projects.0.conv.weight': (width // 8, width, 1, 1),
                'reassemble_blocks.readout_projects.0.0.weight': (width, 2 * width)}
    return {'conv_depth.weight': (256, 2 * blocks * width, 1, 1)}  # patch map + class token


@pytest.mark.parametrize('entry', zoo.entries(kind='model'), ids=lambda e: e.name)
def test_complete_model_config_builds_and_fits_its_head(entry):
    """Each complete model's config (with its overrides) builds on the meta device with the
    entry's backbone, and a head file of the released layout fits it key for key."""
    cfg = Config.fromfile(zoo.config_path(entry))
    cfg.merge_from_dict(dict(entry.cfg_options))
    cfg.model.backbone.update(pretrained=False, checkpoint=None)
    with DefaultScope.overwrite_default_scope('densedino'), torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.arch == entry.arch
    head = model.decode_head.state_dict()
    for key, shape in _expected_head_shapes(entry).items():
        assert tuple(head[key].shape) == shape, key
    if entry.loader == 'backbone+head':  # the layout load_head_checkpoint reads
        released = {f'decode_head.{k}': torch.empty(v.shape, device='meta')
                    for k, v in head.items()}
        found, others, layout = split_head(released)
        assert layout == 'mmseg' and not others and describe_mismatch(found, head) == ''


# ------------------------------------------------------------------ pretrained backbones
def test_create_backbone_pretrained_downloads_caches_and_goes_offline(server, vits_file,
                                                                      capfd, tmp_path,
                                                                      monkeypatch):
    serve_file(server, V2_PATH, vits_file)
    expected = torch.load(vits_file, weights_only=True)
    model = densedino.create_backbone('dinov2_vits14', pretrained=True)
    assert model.state_dict().keys() == expected.keys()
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    assert 'dinov2_vits14: license: Apache-2.0' in capfd.readouterr().err
    assert server.requests == [V2_PATH]

    server.stop()  # from the cache now, with no server
    again = densedino.create_backbone('dinov2_vits14', pretrained=True)
    assert torch.equal(again.blocks[11].mlp.fc2.weight, expected['blocks.11.mlp.fc2.weight'])
    assert 'license' not in capfd.readouterr().err

    monkeypatch.setenv('DENSEDINO_OFFLINE', '1')
    monkeypatch.setenv('DENSEDINO_HOME', str(tmp_path / 'empty'))
    with pytest.raises(DownloadError) as err:
        densedino.create_backbone('dinov2_vits14', pretrained=True)
    assert one_line(err).startswith('cannot get dinov2_vits14: it is not in the cache and '
                                    'DENSEDINO_OFFLINE=1 forbids downloading')


def test_a_downloaded_file_is_read_like_a_local_one(server, tmp_path):
    """Weights-only unpickling and strict loading apply to downloads too."""
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))
    bad = tmp_path / 'code.pth'
    torch.save({'cls_token': Evil()}, bad)  # code that would run on unpickling
    serve_file(server, V2_PATH, bad)
    with pytest.raises(densedino.CheckpointError, match=r'dinov2_vits14_pretrain\.pth contains '
                       r'code or objects that are not allowed in a weights file \(print\)'):
        densedino.create_backbone('dinov2_vits14', pretrained=True)
    small = tmp_path / 'small.pth'
    torch.save(densedino.create_backbone('dinov2_vits14', depth=2).state_dict(), small)
    serve_file(server, '/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth', small)
    with pytest.raises(densedino.CheckpointError, match='does not fit dinov2_vitb14'):
        densedino.create_backbone('dinov2_vitb14', pretrained=True, depth=2)


def test_pretrained_and_checkpoint_are_exclusive_and_names_checked():
    with pytest.raises(ValueError) as err:
        DinoBackbone('dinov2_vits14', checkpoint='mine.pth', pretrained=True)
    assert 'model.backbone.pretrained=False' in one_line(err)
    with pytest.raises(ValueError, match='is a head, not a backbone.*dinov2_vits14_nyu_dpt'):
        densedino.create_backbone('dinov2_vits14_nyu_dpt_head', pretrained=True)
    with pytest.raises(KeyError, match='did you mean dinov2_vits14'):
        densedino.create_backbone('dinov2_vits41', pretrained=True)


def test_gated_dinov3_without_access_says_how_to_request_it(server, monkeypatch):
    _no_hugging_face_token(monkeypatch)
    with pytest.raises(DownloadError) as err:
        densedino.create_backbone('dinov3_vits16', pretrained=True)
    message = one_line(err)
    assert 'HTTP 404' in message and zoo.DINOV3_LICENSE_PAGE in message
    assert 'set DINOV3_WEIGHTS_URL to the download URL' in message
    assert 'Hugging Face repository and log in (HF_TOKEN' in message


def _no_hugging_face_token(monkeypatch) -> None:
    monkeypatch.delenv('HF_TOKEN', raising=False)
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, 'get_token', lambda: None)


def test_gated_dinov3_from_hugging_face_with_a_token(server, monkeypatch, tmp_path):
    """Without the e-mailed URL but logged in to Hugging Face: the transformers repository's
    weights, read by the Hugging Face converter, and nothing asked of Meta's server."""
    transformers = pytest.importorskip('transformers')
    cfg = transformers.DINOv3ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        patch_size=16, num_register_tokens=4, rope_theta=100.0, layer_norm_eps=1e-5,
        layerscale_value=1e-5, image_size=64)
    torch.manual_seed(0)
    transformers.DINOv3ViTModel(cfg).save_pretrained(tmp_path / 'hf', safe_serialization=True)
    asked = []

    def fake_fetch_hf(repo_id, filename, *, revision=None, license=None):
        asked.append((repo_id, filename))
        return str(tmp_path / 'hf' / filename)
    monkeypatch.setenv('HF_TOKEN', 'hf_test')
    monkeypatch.setattr(hub, 'fetch_hf', fake_fetch_hf)
    tiny = dict(embed_dim=32, depth=2, num_heads=2)
    ours = densedino.create_backbone('dinov3_vits16', pretrained=True, **tiny)
    assert asked == [('facebook/dinov3-vits16-pretrain-lvd1689m', 'model.safetensors')]
    assert server.requests == []
    by_hand = densedino.create_backbone('dinov3_vits16', checkpoint=str(tmp_path / 'hf'), **tiny)
    assert_same_weights(ours, by_hand)
    monkeypatch.setenv('DINOV3_WEIGHTS_URL', server.url + '/dinov3')  # the e-mailed URL wins
    with pytest.raises(DownloadError, match='HTTP 404'):
        densedino.create_backbone('dinov3_vits16', pretrained=True, **tiny)


# ------------------------------------------------------------------ complete models
def test_init_model_by_name_equals_the_model_built_by_hand(server, vits_file, tmp_path):
    serve_file(server, V2_PATH, vits_file)
    head = tmp_path / 'dinov2_vits14_ade20k_linear_head.pth'
    seg_head_file(head, 384, 150)
    serve_file(server, HEAD_PATH, head)
    model = densedino.init_model('dinov2_vits14_ade20k_linear', device='cpu')
    assert sorted(server.requests) == sorted([V2_PATH, HEAD_PATH])
    assert model.dataset_meta['classes'][:2] == ('wall', 'building')

    cfg = Config.fromfile(osp.join(REPO, 'configs/seg/ade20k_linear.py'))
    cfg.model.backbone.update(pretrained=False, checkpoint=str(vits_file))
    with DefaultScope.overwrite_default_scope('densedino'):
        by_hand = MODELS.build(cfg.model)
    load_head_checkpoint(by_hand, str(head))
    by_hand.cfg = cfg
    by_hand.eval()
    assert_same_weights(model, by_hand)
    image = np.random.default_rng(0).integers(0, 256, (28, 42, 3), dtype=np.uint8)
    ours, theirs = inference_model(model, image), inference_model(by_hand, image)
    assert torch.equal(ours.seg_logits.data, theirs.seg_logits.data)


def test_init_model_refuses_what_is_not_a_complete_model():
    with pytest.raises(densedino.apis.InferenceError, match='is a backbone.*pretrained=True'):
        densedino.init_model('dinov2_vits14')
    with pytest.raises(densedino.apis.InferenceError, match='brings its own weights'):
        densedino.init_model('dinov2_vits14_nyu_dpt', checkpoint='iter_100.pth')
    with pytest.raises(densedino.apis.InferenceError,
                       match='neither a config file nor a zoo model name; did you mean '
                             'dinov2_vits14_nyu_dpt'):
        densedino.init_model('dinov2_vits14_nyu_dtp')


_DAV2_OFFICIAL = [  # densedino decode_head names -> the official release's depth_head names
    (r'reassemble_blocks\.projects\.(\d)\.conv\.', r'projects.\1.'),
    (r'reassemble_blocks\.resize_layers\.(\d)\.', r'resize_layers.\1.'),
    (r'convs\.(\d)\.conv\.', lambda m: f'scratch.layer{int(m[1]) + 1}_rn.'),
    (r'fusion_blocks\.(\d)\.project\.conv\.',
     lambda m: f'scratch.refinenet{4 - int(m[1])}.out_conv.'),
    (r'fusion_blocks\.(\d)\.res_conv_unit(\d)\.conv(\d)\.conv\.',
     lambda m: f'scratch.refinenet{4 - int(m[1])}.resConfUnit{m[2]}.conv{m[3]}.'),
    (r'conv_depth\.head\.0\.', 'scratch.output_conv1.'),
    (r'conv_depth\.head\.2\.', 'scratch.output_conv2.0.'),
    (r'conv_depth\.head\.4\.', 'scratch.output_conv2.2.'),
]


def _dav2_official_file(model: torch.nn.Module, path: Path) -> None:
    """``model``'s weights in the layout of depth_anything_v2_vits.pth (test-side inverse)."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith('backbone.model.'):
            out['pretrained.' + key[len('backbone.model.'):]] = value
            continue
        name = key[len('decode_head.'):]
        for pattern, repl in _DAV2_OFFICIAL:
            new, hits = re.subn('^' + pattern, repl, name)
            if hits:
                out['depth_head.' + new] = value
                break
        else:
            raise AssertionError(f'no official name for {key}')
    torch.save(out, path)


def test_depth_anything_by_name_from_hugging_face_and_from_the_cache(server, tmp_path,
                                                                    monkeypatch):
    """init_model('depth_anything_v2_small'): the file comes through hub.fetch_hf (the stand-in
    here); tools/zoo.py download --dir copies it into a densedino home, used from then on."""
    tiny = {'model.backbone.arch_overrides': dict(depth=4)}
    cfg = Config.fromfile(osp.join(REPO, 'configs/depth/depth_anything_v2_vits_relative.py'))
    cfg.merge_from_dict(tiny)
    with DefaultScope.overwrite_default_scope('densedino'):
        reference = MODELS.build(cfg.model)
    for p in reference.parameters():
        p.data.normal_(0, 0.02)
    source = tmp_path / 'depth_anything_v2_vits.pth'
    _dav2_official_file(reference, source)
    calls = []

    def fake_fetch_hf(repo_id, filename, *, revision=None, license=None):
        calls.append((repo_id, filename, license))
        return str(source)
    monkeypatch.setattr(hub, 'fetch_hf', fake_fetch_hf)
    model = densedino.init_model('depth_anything_v2_small', cfg_options=tiny)
    assert calls == [('depth-anything/Depth-Anything-V2-Small', 'depth_anything_v2_vits.pth',
                      'Apache-2.0')]
    with DefaultScope.overwrite_default_scope('densedino'):
        by_hand = MODELS.build(cfg.model)
    load_depth_anything_v2(by_hand, str(source))
    assert_same_weights(model, by_hand)
    assert_same_weights(model, reference)  # and the file held the reference's weights
    assert model.dataset_meta['classes'] == ('depth',)

    import tools.zoo as tool
    tool.main(tool.parse_args(['download', 'depth_anything_v2_small', '--dir',
                               str(tmp_path / 'offline')]))
    cached = tmp_path / 'offline' / 'checkpoints' / 'depth_anything_v2_vits.pth'
    assert cached.read_bytes() == source.read_bytes() and len(calls) == 2
    monkeypatch.setenv('DENSEDINO_HOME', str(tmp_path / 'offline'))
    assert zoo.fetch('depth_anything_v2_small') == str(cached) and len(calls) == 2


# ------------------------------------------------------------------ tools/zoo.py and docs
def test_zoo_tool_list_and_info(capsys):
    import tools.zoo as tool
    tool.main(tool.parse_args(['list', '--task', 'depth', '--kind', 'model']))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['name', 'kind', 'task', 'figure', 'licence']
    row = next(line for line in lines if line.startswith('dinov2_vitg14_kitti_dpt '))
    assert 'KITTI DPT RMSE 2.11 (DINOv2 Table 11)' in row and row.endswith('Apache-2.0')
    assert any(line.startswith('depth_anything_v2_large ') and line.endswith('CC-BY-NC-4.0')
               for line in lines)
    assert lines[-1].startswith('33 entries')

    tool.main(tool.parse_args(['info', 'dinov2_vitl14_voc2012_ms']))
    out = capsys.readouterr().out
    for field in ('name:         dinov2_vitl14_voc2012_ms', 'kind:         model',
                  'cfg_options:  model.backbone.arch=dinov2_vitl14',
                  'figure:       VOC 2012 linear +ms 86.0 mIoU',
                  'config used:  configs/seg/voc12_linear_ms.py with model.backbone.arch='
                  'dinov2_vitl14',
                  "use:          densedino.init_model('dinov2_vitl14_voc2012_ms')",
                  'licence:      Apache-2.0'):
        assert field in out, field
    assert out.count('\nfile:         https://') == 2
    assert 'dinov2_vitl14_voc2012_ms_head.pth (not in the cache)' in out

    tool.main(tool.parse_args(['info', 'dinov3_vith16plus']))
    out = capsys.readouterr().out
    assert 'hash_prefix:  7c1da9a5' in out and 'DINOv3 License' in out and 'gated' in out


def test_zoo_tool_download_into_a_folder_for_an_offline_machine(server, vits_file, tmp_path,
                                                                capfd, monkeypatch):
    serve_file(server, V2_PATH, vits_file)
    head = tmp_path / 'head.pth'
    seg_head_file(head, 384, 150)
    serve_file(server, HEAD_PATH, head)
    target = tmp_path / 'carry'
    proc = subprocess.run(
        [sys.executable, 'tools/zoo.py', 'download', 'dinov2_vits14_ade20k_linear',
         'dinov2_vits14', '--dir', str(target)], cwd=REPO, capture_output=True, text=True,
        timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count('license: Apache-2.0') == 2  # one line per file, on download
    assert sorted(os.listdir(target / 'checkpoints')) == [
        'dinov2_vits14_ade20k_linear_head.pth', 'dinov2_vits14_ade20k_linear_head.pth.sha256',
        'dinov2_vits14_pretrain.pth', 'dinov2_vits14_pretrain.pth.sha256']
    assert proc.stdout.splitlines()[-1].endswith(f'set DENSEDINO_HOME={target} and '
                                                 'DENSEDINO_OFFLINE=1')
    server.stop()
    monkeypatch.setenv('DENSEDINO_HOME', str(target))
    monkeypatch.setenv('DENSEDINO_OFFLINE', '1')
    assert zoo.fetch('dinov2_vits14_ade20k_linear_head') == str(
        target / 'checkpoints' / 'dinov2_vits14_ade20k_linear_head.pth')
    assert not (tmp_path / 'home').exists()  # the cache itself was not touched


def test_docs_list_the_current_zoo():
    """docs/zoo.md holds the tables render_markdown() writes (python tools/zoo.py list
    --markdown): the page cannot drift from the table."""
    text = Path(REPO, 'docs', 'zoo.md').read_text()
    assert zoo.render_markdown() in text, ('docs/zoo.md is stale: paste the output of '
                                           'python tools/zoo.py list --markdown')
    for name in ('depth_anything_v2_metric_indoor_large', 'dinov3_convnext_large'):
        assert f'`{name}`' in text
