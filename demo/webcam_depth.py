"""Live monocular depth: a camera, a video file or an image folder, frame | depth side by side.

    python demo/webcam_depth.py --source 0 --model dinov2_vits14_nyu_dpt
    python demo/webcam_depth.py --source 0 --config CONFIG --checkpoint CKPT
    python demo/webcam_depth.py --source clip.mp4 --config CONFIG --checkpoint CKPT \\
        --out depth.mp4 --no-show

Each output frame is the input, its depth in colour (near = warm) and a colour bar in metres
("relative" for disparity models such as Depth-Anything-V2's relative one), with the frame rate
drawn in the corner. The colour range is fixed (--vmin/--vmax) or follows the depth of the recent
frames (exponentially smoothed, --smooth). bf16 runs where the hardware has fast bf16 (GPUs, CPUs
with AMX / AVX512-BF16; --precision auto), fp32 elsewhere. Without a display, or with --no-show,
it runs headless; --out writes an .mp4 (or .avi) of the panels. It prints the frame rate reached.
Flip averaging (the evaluation protocol) is off unless --flip: it doubles the model work per frame.
"""
import argparse
import contextlib
import glob
import os
import os.path as osp
import sys
import time
from typing import Iterator, Optional, Tuple

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import display_available, run_cli  # noqa: E402

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
WINDOW = 'densedino depth (q / Esc to quit)'
#: video file extension -> the FourCC of the codec written
VIDEO_CODECS = {'.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.avi': 'MJPG'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Live depth from a camera, video or image folder')
    parser.add_argument('--source', default='0',
                        help='camera index (0, 1 ...), video file, or folder of images '
                             '(default: %(default)s)')
    parser.add_argument('--model', help='a released depth model, e.g. dinov2_vits14_nyu_dpt or '
                        'depth_anything_v2_small (downloaded once; python tools/zoo.py list '
                        '--task depth)')
    parser.add_argument('--config', help='depth model config (or --model)')
    parser.add_argument('--checkpoint', help='trained checkpoint (without: the config\'s weights, '
                        'e.g. a random head: the depth is meaningless)')
    parser.add_argument('--out', help='write the panels as a video (.mp4 or .avi)')
    parser.add_argument('--no-show', dest='show', action='store_false',
                        help='no window (headless); implied when there is no display')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--precision', choices=['auto', 'bf16', 'fp32'], default='auto',
                        help='auto: bf16 on GPUs and AMX / AVX512-BF16 CPUs, else fp32')
    parser.add_argument('--vmin', type=float, help='fixed colour range: nearest depth (m)')
    parser.add_argument('--vmax', type=float, help='fixed colour range: farthest depth (m)')
    parser.add_argument('--smooth', type=float, default=0.9,
                        help='smoothing of the automatic colour range, 0..1 (default: %(default)s)')
    parser.add_argument('--cmap', default='turbo', help='matplotlib colour map (default: turbo)')
    parser.add_argument('--flip', action='store_true',
                        help='average with the mirrored frame (the evaluation protocol; half the '
                        'frame rate)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone (the first frames compile it)')
    parser.add_argument('--max-frames', type=int, default=0, help='stop after N frames (0: all)')
    parser.add_argument('--fps', type=float, default=0.0,
                        help='frame rate of the written video (default: the source\'s, else 10)')
    parser.add_argument('--debug', action='store_true', help='show full tracebacks')
    return parser.parse_args(argv)


@contextlib.contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's own log off (its backends print several ``[ WARN:0@..] ... can't open camera by
    index`` lines when a camera is absent), so that our one-line message is the only one."""
    logging_ = cv2.utils.logging
    level = logging_.getLogLevel()
    logging_.setLogLevel(logging_.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_.setLogLevel(level)


class FrameSource:
    """Frames (BGR uint8) from a camera index, a video file or a folder of images."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.capture: Optional[cv2.VideoCapture] = None
        self.files = None
        if source.isdigit():
            with opencv_quiet():
                self.capture = cv2.VideoCapture(int(source))
            if not self.capture.isOpened():
                raise RuntimeError(f'cannot open camera {source}: no camera at that index, no '
                                   'permission, or it is in use; pass a video file or an image '
                                   'folder with --source')
        elif osp.isdir(source):
            self.files = sorted(f for f in glob.glob(osp.join(source, '*'))
                                if f.lower().endswith(IMAGE_EXTENSIONS))
            if not self.files:
                raise RuntimeError(f'image folder {source} holds no images '
                                   f'({", ".join(IMAGE_EXTENSIONS)})')
        elif osp.isfile(source):
            with opencv_quiet():
                self.capture = cv2.VideoCapture(source)
            if not self.capture.isOpened():
                raise RuntimeError(f'cannot read video {source}: not a video OpenCV can decode')
        else:
            raise RuntimeError(f'--source {source} is neither a camera index, a file nor a folder')

    @property
    def fps(self) -> float:
        """The source's frame rate, or 0 when unknown (cameras often report 0, folders have none)."""
        if self.capture is None:
            return 0.0
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps and np.isfinite(fps) and fps < 1000 else 0.0

    def __iter__(self) -> Iterator[Tuple[str, np.ndarray]]:
        if self.files is not None:
            for path in self.files:
                frame = cv2.imread(path, cv2.IMREAD_COLOR)
                if frame is None:
                    print(f'skipping {path}: not an image, or corrupt', file=sys.stderr)
                    continue
                yield path, frame
            return
        index = 0
        while True:
            ok, frame = self.capture.read()
            if not ok:
                if index == 0:
                    raise RuntimeError(f'{self.source} gave no frame (empty video, or the camera '
                                       'stopped)')
                return
            yield f'frame {index}', frame
            index += 1

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()


class DepthRunner:
    """A depth model from a config and checkpoint, or a released model's name, run on BGR frames.

    Args:
        config: Config file of a depth model, or a released depth model's name (zoo).
        checkpoint: Trained checkpoint, or None.
        device: torch device name.
        precision: 'auto', 'bf16' or 'fp32'.
        flip: Average with the mirrored frame (the configs' evaluation setting); off by default
            for live use, where it doubles the model work per frame.
        compile: ``torch.compile`` the backbone (the first frames pay the compilation; frames of
            a new size compile once more, then run with dynamic shapes).
    """

    def __init__(self, config: str, checkpoint: Optional[str], device: str,
                 precision: str = 'auto', flip: bool = False, compile: bool = False) -> None:
        import torch

        from densedino.apis import InferencePipeline, init_model
        from densedino.models.backbones import bf16_matmul_mode
        from densedino.models.heads import DepthHead
        self.torch = torch
        self.model = init_model(config, checkpoint, device=device)
        head = getattr(self.model, 'decode_head', None)
        if not isinstance(head, DepthHead):
            raise ValueError(f'{config} is not a depth model (its decode_head is '
                             f'{type(head).__name__}, not a depth head)')
        self.relative = head.relative
        self.model.test_cfg.flip = flip
        if compile:
            self.model.backbone.compile_backbone()
        self.pipeline = InferencePipeline(self.model.cfg)
        self.device = torch.device(device)
        if precision == 'auto':
            precision = 'bf16' if bf16_matmul_mode(self.device) == 'native' else 'fp32'
        self.precision = precision

    def _autocast(self):
        if self.precision != 'bf16':
            return contextlib.nullcontext()
        return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) float32 depth (or disparity) for a BGR frame, at the frame's size."""
        data = self.pipeline(frame)
        batch = dict(inputs=[data['inputs']], data_samples=[data['data_samples']])
        with self.torch.no_grad(), self._autocast():
            result = self.model.test_step(batch)[0]
        return result.pred_depth_map.data[0].float().cpu().numpy()


def open_writer(path: str, fps: float, size: Tuple[int, int]) -> cv2.VideoWriter:
    """A video writer for ``path`` (.mp4: mp4v, .avi: MJPG); one-line error if it cannot open."""
    ext = osp.splitext(path)[1].lower()
    codecs = VIDEO_CODECS
    if ext not in codecs:
        raise ValueError(f'--out {path}: use a .mp4, .mov or .avi file name')
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codecs[ext]), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f'cannot write video {path} (codec {codecs[ext]} unavailable)')
    return writer


def draw_fps(panel: np.ndarray, fps: float, precision: str) -> None:
    """Frame rate and precision in the top-left corner (in place, RGB)."""
    text = f'{fps:5.1f} FPS  {precision}'
    scale = max(0.4, panel.shape[0] / 700)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(panel, (0, 0), (w + 12, h + base + 10), (0, 0, 0), -1)
    cv2.putText(panel, text, (6, h + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)


def check_inputs(args: argparse.Namespace) -> None:
    """Everything that can be wrong with the command line, before the model loads (seconds)."""
    if (args.vmin is None) != (args.vmax is None):
        raise ValueError('give both --vmin and --vmax for a fixed colour range, or neither')
    if args.vmin is not None and not args.vmax > args.vmin:
        raise ValueError(f'--vmax ({args.vmax}) must exceed --vmin ({args.vmin})')
    if args.model is not None:
        check_model_name(args.model, args.config or args.checkpoint)
    elif args.config is None:
        raise ValueError('give --model NAME (a released depth model) or --config CONFIG')
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'{what} file {path} does not exist')
    if args.out and osp.splitext(args.out)[1].lower() not in VIDEO_CODECS:
        raise ValueError(f'--out {args.out}: use a .mp4, .mov or .avi file name')


def check_model_name(name: str, also_given: Optional[str]) -> None:
    """``--model`` is a released depth model, and comes without --config / --checkpoint."""
    from densedino.zoo import model_entry
    if also_given:
        raise ValueError('--model brings its config and weights: drop --config and --checkpoint')
    try:
        model_entry(name, 'depth')
    except ValueError as e:
        raise ValueError(f'--model {e}') from None


def report_progress(frames: int, fps: float, started: float, last_report: float) -> float:
    """A line on stderr every 5 s when there is no window to watch; returns the last report's
    time."""
    now = time.perf_counter()
    if now - last_report < 5.0:
        return last_report
    print(f'{frames} frames, {fps:.1f} FPS ({now - started:.0f} s)', file=sys.stderr, flush=True)
    return now


def run(args: argparse.Namespace) -> dict:
    """The loop; returns frames processed, the model's and the loop's frame rates."""
    import torch

    from densedino.visualization import RangeSmoother, depth_panel
    check_inputs(args)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    show = args.show and display_available()
    if args.show and not show:
        print('no display available: running headless', file=sys.stderr)
    source = FrameSource(args.source)
    print(f'loading {args.model or osp.basename(args.checkpoint or args.config)} on {device}...',
          file=sys.stderr, flush=True)
    runner = DepthRunner(args.model or args.config, args.checkpoint, device, args.precision,
                         args.flip, args.compile)
    if args.checkpoint is None and args.model is None:
        print('no --checkpoint: the head is untrained, the depth is meaningless', file=sys.stderr)
    print(f'running on {args.source} ({runner.precision})'
          + ('; q or Esc in the window stops' if show else '; Ctrl-C stops'), file=sys.stderr,
          flush=True)
    smoother = RangeSmoother(momentum=args.smooth)
    writer = None
    frames, model_seconds, fps = 0, 0.0, 0.0
    start = last = reported = time.perf_counter()
    try:
        for _, frame in source:
            t0 = time.perf_counter()
            depth = runner(frame)
            model_seconds += time.perf_counter() - t0
            vmin, vmax = ((args.vmin, args.vmax) if args.vmin is not None
                          else smoother.update(depth))
            panel = depth_panel(np.ascontiguousarray(frame[..., ::-1]), depth, vmin=vmin,
                                vmax=vmax, relative=runner.relative, cmap=args.cmap)
            now = time.perf_counter()
            instant = 1.0 / max(now - last, 1e-6)
            fps = instant if frames == 0 else 0.9 * fps + 0.1 * instant
            last = now
            draw_fps(panel, fps, runner.precision)
            bgr = np.ascontiguousarray(panel[..., ::-1])
            if args.out:
                if writer is None:
                    size = (bgr.shape[1], bgr.shape[0])
                    writer = open_writer(args.out, args.fps or source.fps or 10.0, size)
                if (bgr.shape[1], bgr.shape[0]) != size:  # frames of another size: fit them
                    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
                writer.write(bgr)
            frames += 1
            if not show:
                reported = report_progress(frames, fps, start, reported)
            if show:
                cv2.imshow(WINDOW, bgr)
                if cv2.waitKey(1) & 0xFF in (ord('q'), 27):
                    break
            if args.max_frames and frames >= args.max_frames:
                break
    finally:
        source.close()
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - start
    return dict(frames=frames, model_fps=frames / max(model_seconds, 1e-9),
                loop_fps=frames / max(elapsed, 1e-9), precision=runner.precision, device=device)


def main(args: argparse.Namespace) -> None:
    import densedino  # noqa: F401  (compatibility fixes and registries)
    stats = run(args)
    print(f'{stats["frames"]} frames on {stats["device"]} ({stats["precision"]}): '
          f'{stats["loop_fps"]:.1f} FPS end to end, model {stats["model_fps"]:.1f} FPS'
          + (f'; wrote {args.out}' if args.out and stats['frames'] else ''))


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
