"""Export a whole segmentation or depth model to ONNX and check it against PyTorch.

    python tools/export_onnx.py CONFIG CHECKPOINT --out model.onnx [--dynamic]
    python tools/export_onnx.py --model dinov2_vits14_nyu_linear --out model.onnx \
        [--opset 18] [--dynamic] [--height 224 --width 224]

The graph holds normalisation, backbone, head, the depth clamp and the resize to the input
size; its input is ``image`` (B, 3, H, W) float32 RGB 0-255 (``densedino.deploy.OnnxModel``
runs it on files and BGR arrays like ``inference_model``). With ``--dynamic`` batch, height and
width are dynamic. The file is checked with onnx's checker and ONNX Runtime is compared with
PyTorch on three inputs (the export size and, with ``--dynamic``, two other non-square sizes);
the tool fails (exit code 1) when they differ by more than 1e-3 relative. Sliding-window
configs are exported with whole-image inference (a note says so).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import add_common_args, load_config, note, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export a densedino model to ONNX')
    parser.add_argument('config', nargs='?', help='config file (or --model)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file (e.g. iter_N.pth)')
    parser.add_argument('--model', help='a released model instead of CONFIG CHECKPOINT '
                        '(python tools/zoo.py list)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (default: %(default)s)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--height', type=int, default=224,
                        help='export height, a multiple of the patch size (default: %(default)s)')
    parser.add_argument('--width', type=int, default=224,
                        help='export width, a multiple of the patch size (default: %(default)s)')
    add_common_args(parser)
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace):
    """The model from CONFIG CHECKPOINT (with --cfg-options) or from --model."""
    from densedino.apis import init_model
    if args.model is not None:
        if args.config is not None:
            raise ValueError('--model brings its config and weights: drop CONFIG and CHECKPOINT')
        return init_model(args.model, cfg_options=args.cfg_options or None)
    if args.config is None or args.checkpoint is None:
        raise ValueError('give CONFIG and CHECKPOINT, or --model NAME (a released model)')
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint file {args.checkpoint} does not exist')
    return init_model(load_config(args), args.checkpoint)


def main(args: argparse.Namespace) -> None:
    from densedino.deploy import export_onnx
    if args.height < 1 or args.width < 1 or args.opset < 1:
        raise ValueError(f'--height, --width and --opset must be positive, got {args.height}, '
                         f'{args.width}, {args.opset}')
    print(f'building {args.model or args.config}', flush=True)
    model = build_model(args)
    test_cfg = getattr(model, 'test_cfg', None)
    if test_cfg is not None and test_cfg.get('mode', 'whole') != 'whole':
        note(f"the config tests with mode={test_cfg.get('mode')!r}; exporting whole-image "
             'inference')
        test_cfg['mode'] = 'whole'
    report = export_onnx(model, args.out, height=args.height, width=args.width,
                         dynamic=args.dynamic, opset=args.opset,
                         log=lambda line: print(line, flush=True))
    diffs = ', '.join(f'{"x".join(map(str, s[2:]))} (batch {s[0]}): {d:.3g}'
                      for s, d in zip(report.shapes, report.max_diffs))
    print(f'checker: {report.checker}; max differences: {diffs}')
    print(f'wrote {args.out} in {report.seconds:.1f} s')


if __name__ == '__main__':
    run_cli(main, parse_args())
