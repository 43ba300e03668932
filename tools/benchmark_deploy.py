"""Benchmark the deployment paths of a depth model side by side, and INT8's accuracy.

Per head (ViT-S/14 + linear depth: configs/depth/nyu_linear.py; + DPT: configs/depth/nyu_dpt.py;
random weights) and input size, in one process, interleaved call by call (``densedino.benchmark``):
images/s and latency (median, p90) of

* ``torch_fp32``: PyTorch eager, the exported function itself (``densedino.deploy.ExportModule``:
  normalisation, backbone, head, clamp, resize), fp32;
* ``torch_compile``: the same with the backbone ``torch.compile``'d (``compile_backbone``, as the
  depth demo's --compile);
* ``torch_bf16``: eager under bf16 autocast, only where the CPU has native bf16
  (``bf16_matmul_mode``);
* ``ort_fp32`` / ``ort_int8``: ONNX Runtime (CPU provider) on the fp32 export and on its dynamic
  INT8 quantisation (``quantize_dynamic_int8``); sessions with as many intra-op threads as torch
  and thread spinning off (a spinning pool would steal the cores of the next, interleaved call);

plus each variant's max / mean |depth - torch_fp32| on a synthetic scene, and the depth demo's end
to end frame rate (demo/webcam_depth.py --runtime onnx, headless) on a generated video.

    python tools/benchmark_deploy.py --sizes 224 518 --heads linear dpt --out deploy.json
    python tools/benchmark_deploy.py --accuracy     # INT8 vs fp32 on the synthetic test scenes
    python tools/benchmark_deploy.py --smoke --out smoke.json   # tiny model, seconds

``--accuracy`` exports the quick-start models (configs/depth/synthetic_linear.py and
configs/seg/synthetic_linear.py with their trained checkpoints, default work_dirs/.../iter_300.pth;
random-init without them) and reports RMSE (depth) and mIoU (segmentation) of ONNX fp32 and INT8
on the synthetic test scenes (generator seed 0, scenes 400-499: the test / validation split).
"""
import argparse
import copy
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import warnings
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import run_cli  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
HEADS = {'linear': 'configs/depth/nyu_linear.py', 'dpt': 'configs/depth/nyu_dpt.py'}
TINY = {'model.backbone.arch_overrides': dict(depth=2, embed_dim=32, num_heads=2),
        'model.backbone.out_indices': [0, 1, 1, 1]}
TINY_DPT = {'model.decode_head.post_process_channels': [4, 8, 16, 32],
            'model.decode_head.channels': 16}
VARIANTS = ['torch_fp32', 'torch_compile', 'torch_bf16', 'ort_fp32', 'ort_int8']


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark PyTorch / ONNX Runtime / INT8 depth')
    parser.add_argument('--heads', nargs='+', choices=list(HEADS), default=['linear', 'dpt'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 518],
                        help='square input sizes, multiples of 14 (default: 224 518)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--iters', type=int, default=20, help='timed calls per variant')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--max-seconds', type=float, default=60.0,
                        help='stop timing a case after this many timed seconds (0: no limit)')
    parser.add_argument('--no-compile', dest='compile', action='store_false',
                        help='skip torch_compile (its compilation takes minutes on 2 cores)')
    parser.add_argument('--demo-frames', type=int, default=60,
                        help='frames of the demo run (0: no demo run)')
    parser.add_argument('--accuracy', action='store_true',
                        help='INT8 vs fp32 RMSE / mIoU on the synthetic test scenes instead')
    parser.add_argument('--scenes', type=int, default=100, help='test scenes for --accuracy')
    parser.add_argument('--depth-checkpoint',
                        default='work_dirs/depth/synthetic_linear/iter_300.pth')
    parser.add_argument('--seg-checkpoint', default='work_dirs/seg/synthetic_linear/iter_300.pth')
    parser.add_argument('--per-tensor', action='store_true',
                        help='INT8 with one weight scale per tensor (default: per channel)')
    parser.add_argument('--smoke', action='store_true',
                        help='a tiny ViT at 56 px, 2 timed calls, 4 demo frames (CI)')
    parser.add_argument('--workdir', help='where the .onnx files go (default: a temporary folder)')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    args = parser.parse_args(argv)
    if args.smoke:
        args.heads, args.sizes, args.iters, args.warmup = ['linear'], [56], 2, 1
        args.demo_frames, args.scenes = min(args.demo_frames, 4), min(args.scenes, 4)
    return args


def build(config: str, smoke: bool, checkpoint=None, size=None):
    """A model of ``config`` with random (or ``checkpoint``'s) weights, whole-image test."""
    from densedino.apis import init_model
    opts = {'model.backbone.pretrained': False, 'model.backbone.checkpoint': None,
            'model.test_cfg.mode': 'whole'}
    if smoke:
        opts.update(TINY, **(TINY_DPT if 'dpt' in config else {}))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return init_model(osp.join(REPO, config), checkpoint, device='cpu', cfg_options=opts)


def session(path: str):
    """ONNX Runtime CPU session: torch's thread count, no spinning."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def scene_batch(size: int, batch: int) -> np.ndarray:
    """(B, 3, size, size) float32 RGB 0-255: synthetic scenes resized."""
    import cv2

    from densedino.datasets import SceneGenerator
    gen = SceneGenerator(seed=1)
    images = [cv2.resize(gen.sample(i).image, (size, size), interpolation=cv2.INTER_AREA)
              for i in range(batch)]
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)


def export_pair(model, folder: str, name: str, height: int, width: int, dynamic: bool,
                per_channel: bool) -> Dict[str, str]:
    """fp32 export and its INT8 copy; their paths."""
    from densedino.deploy import export_onnx, quantize_dynamic_int8
    fp32, int8 = osp.join(folder, f'{name}.onnx'), osp.join(folder, f'{name}_int8.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export_onnx(model, fp32, height=height, width=width, dynamic=dynamic)
    quantize_dynamic_int8(fp32, int8, per_channel=per_channel)
    return {'fp32': fp32, 'int8': int8}


def variants(model, files: Dict[str, str], want_compile: bool) -> Dict:
    """name -> a function of one (B, 3, H, W) float32 array returning the depth (numpy)."""
    from densedino.deploy import ExportModule
    from densedino.models.backbones import bf16_matmul_mode
    eager = ExportModule(model).eval()

    def torch_fn(module, bf16=False):
        def call(x):
            with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                return module(torch.from_numpy(x)).float().numpy()
        return call

    def ort_fn(path):
        sess = session(path)
        return lambda x: sess.run(None, {'image': x})[0]
    fns = {'torch_fp32': torch_fn(eager)}
    if want_compile:
        compiled = copy.deepcopy(model)
        compiled.backbone.compile_backbone()
        fns['torch_compile'] = torch_fn(ExportModule(compiled).eval())
    if bf16_matmul_mode(torch.device('cpu')) == 'native':
        fns['torch_bf16'] = torch_fn(eager, bf16=True)
    fns['ort_fp32'], fns['ort_int8'] = ort_fn(files['fp32']), ort_fn(files['int8'])
    return fns


def bench_case(args: argparse.Namespace, head: str, size: int, folder: str) -> Dict:
    """One head at one size: every variant's speed and difference from torch_fp32."""
    from densedino.benchmark import log, run_interleaved, summarize
    model = build(HEADS[head], args.smoke)
    log(f'{head} {size}: exporting')
    files = export_pair(model, folder, f'{head}_{size}', size, size, False, not args.per_tensor)
    x = scene_batch(size, args.batch)
    fns = variants(model, files, args.compile)
    result = run_interleaved({k: (lambda f=f: f(x)) for k, f in fns.items()}, args.iters,
                             args.warmup, max_seconds=args.max_seconds)
    ref = result.last['torch_fp32']
    rows = {}
    for name in fns:
        diff = np.abs(result.last[name] - ref)
        rows[name] = {**summarize(result.times[name], args.batch),
                      'max_abs_diff_m': float(diff.max()), 'mean_abs_diff_m': float(diff.mean())}
    base = rows['torch_fp32']['images_per_s']
    for row in rows.values():
        row['speedup_vs_eager'] = row['images_per_s'] / base
    return {'head': head, 'size': size, 'batch': args.batch, 'files': files, 'variants': rows}


def write_video(path: str, frames: int, height: int = 240, width: int = 320) -> None:
    """A synthetic .mp4 of ``frames`` generated scenes (BGR, 10 FPS)."""
    import cv2

    from densedino.datasets import SceneConfig, SceneGenerator
    gen = SceneGenerator(SceneConfig(image_size=(height, width)), seed=2)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (width, height))
    for i in range(frames):
        writer.write(np.ascontiguousarray(gen.sample(i).image[..., ::-1]))
    writer.release()


DEMO_LINE = re.compile(r'(\d+) frames .*: ([\d.]+) FPS end to end, model ([\d.]+) FPS; latency '
                       r'capture to display (\d+) ms median, (\d+) ms p90')


def demo_fps(onnx_path: str, video: str, size: int, frames: int) -> Dict:
    """The depth demo, headless on ``video`` with --runtime onnx: its printed figures."""
    cmd = [sys.executable, osp.join(REPO, 'demo', 'webcam_depth.py'), '--source', video,
           '--runtime', 'onnx', '--onnx', onnx_path, '--size', str(size), str(size), '--no-show',
           '--max-frames', str(frames)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    match = DEMO_LINE.search(proc.stdout)
    if proc.returncode or not match:
        raise RuntimeError(f'the demo failed: {(proc.stderr or proc.stdout).strip()[-300:]}')
    n, fps, model_fps, med, p90 = match.groups()
    return {'frames': int(n), 'fps': float(fps), 'model_fps': float(model_fps),
            'latency_median_ms': float(med), 'latency_p90_ms': float(p90),
            'command': ' '.join(osp.relpath(c, REPO) if c.startswith(REPO) else c
                                for c in cmd[1:])}


def scene_metrics(onnx_path: str, task: str, scenes) -> Dict:
    """Depth RMSE (m, the mean of per-scene RMSEs) or segmentation mIoU (%, over the classes
    present, background included: the ADE20K-layout files store class + 1, which the config's
    reduce_zero_label undoes) of an export on ``scenes``; with the predictions."""
    from densedino.deploy import OnnxModel
    model = OnnxModel(onnx_path, providers=['CPUExecutionProvider'])
    preds, rmses = [], []
    classes = len(model.dataset_meta['classes'])
    confusion = np.zeros((classes, classes), np.int64)
    for scene in scenes:
        sample = model(np.ascontiguousarray(scene.image[..., ::-1]))
        if task == 'depth':
            pred = sample.pred_depth_map.data[0].numpy()
            rmses.append(float(np.sqrt(np.mean((pred - scene.depth) ** 2))))
        else:
            pred = sample.pred_sem_seg.data[0].numpy().astype(np.int64)
            gt = scene.seg.astype(np.int64)  # written + 1, then reduce_zero_label: as is
            keep = gt < classes
            confusion += np.bincount(gt[keep] * classes + pred[keep],
                                     minlength=classes ** 2).reshape(classes, classes)
        preds.append(pred)
    if task == 'depth':
        return {'rmse_m': float(np.mean(rmses)), 'preds': preds}
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    present = confusion.sum(1) > 0
    iou = np.diag(confusion)[present] / np.maximum(union[present], 1)
    return {'miou_pct': 100.0 * float(iou.mean()), 'preds': preds}


def accuracy(args: argparse.Namespace, folder: str) -> List[Dict]:
    """fp32 vs INT8 ONNX on the synthetic test scenes, for the quick-start depth and seg models.
    """
    from densedino.benchmark import log
    from densedino.datasets import SceneGenerator
    gen = SceneGenerator(seed=0)
    scenes = [gen.sample(400 + i) for i in range(args.scenes)]
    rows = []
    for task, config, ckpt in (('depth', 'configs/depth/synthetic_linear.py',
                                args.depth_checkpoint),
                               ('seg', 'configs/seg/synthetic_linear.py', args.seg_checkpoint)):
        ckpt = ckpt if ckpt and osp.isfile(ckpt) and not args.smoke else None
        log(f'{task}: exporting {config} ({ckpt or "random init"})')
        files = export_pair(build(config, args.smoke, ckpt), folder, f'synthetic_{task}', 224,
                            224, True, not args.per_tensor)
        fp32, int8 = (scene_metrics(files[k], task, scenes) for k in ('fp32', 'int8'))
        metric = 'rmse_m' if task == 'depth' else 'miou_pct'
        a, b = np.stack(fp32.pop('preds')), np.stack(int8.pop('preds'))
        row = {'task': task, 'config': config, 'checkpoint': ckpt, 'scenes': len(scenes),
               'metric': metric, 'fp32': fp32[metric], 'int8': int8[metric],
               'change': int8[metric] - fp32[metric]}
        if task == 'depth':
            row.update(max_abs_diff_m=float(np.abs(a - b).max()),
                       mean_abs_diff_m=float(np.abs(a - b).mean()))
        else:
            row['label_agreement_pct'] = 100.0 * float((a == b).mean())
        rows.append(row)
    return rows


def run_benchmark(args: argparse.Namespace, folder: str) -> Dict:
    """Every head and size, then the demo on the first linear (else first) export."""
    from densedino.benchmark import print_table
    cases = [bench_case(args, head, size, folder) for head in args.heads for size in args.sizes]
    rows = [[f'{c["head"]} {c["size"]}', name, f'{v["images_per_s"]:.2f}',
             f'{v["latency_median_ms"]:.1f}', f'{v["latency_p90_ms"]:.1f}',
             f'{v["speedup_vs_eager"]:.2f}x', f'{v["max_abs_diff_m"]:.2g}',
             f'{v["mean_abs_diff_m"]:.2g}']
            for c in cases for name, v in c['variants'].items()]
    print_table(['case', 'variant', 'img/s', 'median ms', 'p90 ms', 'vs eager', 'max |d| m',
                 'mean |d| m'], rows, title=f'batch {args.batch}, depth vs torch_fp32')
    demo = {}
    if args.demo_frames:
        case = next((c for c in cases if c['head'] == 'linear'), cases[0])
        video = osp.join(folder, 'scenes.mp4')
        write_video(video, args.demo_frames)
        for kind in ('fp32', 'int8'):
            demo[f'ort_{kind}'] = demo_fps(case['files'][kind], video, case['size'],
                                           args.demo_frames)
        demo['case'] = f'{case["head"]} {case["size"]}'
        print_table(['demo', 'FPS', 'model FPS', 'latency median ms', 'p90 ms'],
                    [[f'{demo["case"]} {k}', v['fps'], v['model_fps'], v['latency_median_ms'],
                      v['latency_p90_ms']] for k, v in demo.items() if k != 'case'],
                    title='demo/webcam_depth.py --runtime onnx, end to end')
    return {'cases': cases, 'demo': demo}


def main(args: argparse.Namespace) -> None:
    from densedino.benchmark import machine_info, print_table, write_json
    if min(args.sizes) < 14 or any(s % 14 for s in args.sizes):
        raise ValueError(f'--sizes must be multiples of 14, got {args.sizes}')
    folder = args.workdir or tempfile.mkdtemp(prefix='densedino_deploy_')
    os.makedirs(folder, exist_ok=True)
    result = {'machine': {**machine_info(torch.device('cpu'), packages=('onnxruntime', 'onnx')),
                          'load_average_before': list(os.getloadavg())},
              'command': 'python tools/benchmark_deploy.py ' + ' '.join(sys.argv[1:]),
              'smoke': args.smoke}
    if args.accuracy:
        result['accuracy'] = accuracy(args, folder)
        print_table(['task', 'scenes', 'metric', 'fp32', 'int8', 'change'],
                    [[r['task'], r['scenes'], r['metric'], f'{r["fp32"]:.4f}',
                      f'{r["int8"]:.4f}', f'{r["change"]:+.4f}'] for r in result['accuracy']],
                    title='ONNX fp32 vs INT8 on the synthetic test scenes')
    else:
        result.update(run_benchmark(args, folder))
    result['machine']['load_average_after'] = list(os.getloadavg())
    if args.out:
        write_json(result, args.out)


if __name__ == '__main__':
    run_cli(main, parse_args())
