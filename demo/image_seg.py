"""Segment one image with a trained or released model and write a colour overlay with a legend.

    python demo/image_seg.py IMG --model dinov2_vits14_ade20k_linear --out overlay.png
    python demo/image_seg.py IMG CONFIG CHECKPOINT --out overlay.png [--device cpu]
        [--opacity 0.5] [--no-legend] [--show]
    python demo/image_seg.py IMG --runtime onnx --onnx seg.onnx --out overlay.png

``--model`` names a released segmentation model (``densedino.list_models('seg')``): its backbone
and head are downloaded once into the cache and assembled on load.

The overlay has the image's height; the legend of the classes present (largest first) is
appended on the right, so the width is the image's plus the legend's (exactly the image's size
with --no-legend). Class colours are the dataset's palette (``model.dataset_meta['palette']``:
the checkpoint's, else the config dataset's), so a class has the colour ``tools/test.py
--show-dir`` gives it. With ``--runtime onnx`` the model is an exported file (``tools/export_onnx.py``,
``--onnx``) run by ONNX Runtime (``densedino.deploy.OnnxModel``; ``pip install -e .[deploy]``),
its classes and palette read from the file. Works headless: --show only opens a window where a display is available.
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Tuple

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import display_available, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Segment an image and write a colour overlay')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', nargs='?', help='config file (or --model)')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file (e.g. work_dirs/.../iter_N.pth)')
    parser.add_argument('--model', help='a released segmentation model instead of CONFIG '
                        'CHECKPOINT, e.g. dinov2_vits14_ade20k_linear (python tools/zoo.py list '
                        '--task seg)')
    parser.add_argument('--runtime', choices=['torch', 'onnx'], default='torch',
                        help='torch: CONFIG CHECKPOINT or --model; onnx: the exported file --onnx '
                        'on ONNX Runtime (default: %(default)s)')
    parser.add_argument('--onnx', help='exported model (tools/export_onnx.py), with --runtime onnx')
    parser.add_argument('--out', default='overlay.png', help='output image (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='torch device (default: %(default)s)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='weight of the class colours, 0..1 (default: %(default)s)')
    parser.add_argument('--no-legend', dest='legend', action='store_false',
                        help='no legend panel: the overlay has the image size exactly')
    parser.add_argument('--show', action='store_true', help='also show it in a window')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> np.ndarray:
    """Everything that can be wrong with the command line, before the model loads (seconds).

    Returns:
        The image, RGB.
    """
    from densedino.images import read_image
    if not 0.0 <= args.opacity <= 1.0:
        raise ValueError(f'--opacity must be in [0, 1], got {args.opacity}')
    image = read_image(args.img)
    if args.runtime == 'onnx':
        check_onnx(args)
    elif args.onnx is not None:
        raise ValueError('--onnx runs with --runtime onnx')
    elif args.model is not None:
        check_model_name(args)
    else:
        if args.config is None or args.checkpoint is None:
            raise ValueError('give CONFIG and CHECKPOINT, or --model NAME (a released model)')
        for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{what} file {path} does not exist')
    if not cv2.haveImageWriter(args.out):
        raise ValueError(f'--out {args.out}: use an image extension such as .png or .jpg')
    return image


def check_onnx(args: argparse.Namespace) -> None:
    """``--runtime onnx``: an existing --onnx file, no CONFIG / CHECKPOINT / --model, ONNX
    Runtime installed."""
    import importlib.util
    if args.onnx is None:
        raise ValueError('--runtime onnx needs --onnx model.onnx (tools/export_onnx.py writes it)')
    if args.model or args.config or args.checkpoint:
        raise ValueError('--runtime onnx runs the --onnx file: drop CONFIG, CHECKPOINT and --model')
    if not osp.isfile(args.onnx):
        raise FileNotFoundError(f'ONNX file {args.onnx} does not exist')
    if importlib.util.find_spec('onnxruntime') is None:
        raise ImportError('--runtime onnx needs ONNX Runtime: pip install -e .[deploy]')


def check_model_name(args: argparse.Namespace) -> None:
    """``--model`` is a released segmentation model, and comes without CONFIG / CHECKPOINT."""
    from densedino.zoo import model_entry
    if args.config is not None:
        raise ValueError('--model brings its config and weights: drop CONFIG and CHECKPOINT')
    try:
        model_entry(args.model, 'seg')
    except ValueError as e:
        raise ValueError(f'--model {e}') from None


def segment(args: argparse.Namespace, image: np.ndarray) -> Tuple[np.ndarray, float, float]:
    """Run the model on ``image`` (RGB, read from ``args.img``).

    Returns:
        The overlay (RGB), and the seconds taken to load the model and to segment.
    """
    from densedino.apis import inference_model, init_model
    from densedino.visualization import draw_overlay
    start = time.perf_counter()
    onnx = args.runtime == 'onnx'
    name = osp.basename(args.onnx) if onnx else args.model or osp.basename(args.checkpoint)
    print(f'loading {name} on {"ONNX Runtime" if onnx else args.device}...', file=sys.stderr)
    if onnx:
        from densedino.deploy import OnnxModel
        model = OnnxModel(args.onnx)
        if model.task != 'seg':
            raise ValueError(f'{args.onnx} is a {model.task} model, not a segmentation model')
    else:
        model = init_model(args.model or args.config, args.checkpoint, device=args.device)
    loaded = time.perf_counter()
    result = model(args.img) if onnx else inference_model(model, args.img)
    done = time.perf_counter()
    labels = result.pred_sem_seg.data[0].cpu().numpy()
    meta = model.dataset_meta
    overlay = draw_overlay(image, labels, meta['classes'], meta['palette'], opacity=args.opacity,
                           legend=args.legend)
    return overlay, loaded - start, done - loaded


def write_image(path: str, rgb: np.ndarray) -> None:
    """Write an RGB image; one-line error if OpenCV cannot."""
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    try:
        ok = cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1]))
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f'cannot write {path} (use an image extension such as .png or .jpg)')


def show(rgb: np.ndarray, title: str) -> None:
    """Show in a window where there is a display; otherwise say so and go on."""
    if not display_available():
        print('--show: no display available, not showing', file=sys.stderr)
        return
    try:
        cv2.imshow(title, rgb[..., ::-1])
        cv2.waitKey(0)
        cv2.destroyAllWindows()
    except cv2.error as e:
        print(f'--show: cannot open a window ({" ".join(str(e).split())[:100]})',
              file=sys.stderr)


def main(args: argparse.Namespace) -> None:
    import densedino  # noqa: F401  (compatibility fixes and registries)
    image = check_inputs(args)
    overlay, load_s, infer_s = segment(args, image)
    write_image(args.out, overlay)
    h, w = overlay.shape[:2]
    print(f'wrote {args.out} ({w}x{h}); model loaded in {load_s:.2f} s, image segmented in '
          f'{infer_s:.2f} s')
    if args.show:
        show(overlay, osp.basename(args.img))


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
