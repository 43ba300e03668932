"""Live monocular depth: a camera, a video file or an image folder, frame | depth side by side.

    python demo/webcam_depth.py --source 0 --model dinov2_vits14_nyu_dpt
    python demo/webcam_depth.py --source 0 --config CONFIG --checkpoint CKPT
    python demo/webcam_depth.py --source clip.mp4 --config CONFIG --checkpoint CKPT \\
        --out depth.mp4 --no-show
    python demo/webcam_depth.py --source 0 --runtime onnx --onnx depth.onnx --size 224 224

Each output frame is the input, its depth in colour (near = warm) and a colour bar in metres
("relative" for disparity models such as Depth-Anything-V2's relative one), with the frame rate
drawn in the corner. The colour range is fixed (--vmin/--vmax) or follows the depth of the recent
frames (exponentially smoothed, --smooth). bf16 runs where the hardware has fast bf16 (GPUs, CPUs
with AMX / AVX512-BF16; --precision auto), fp32 elsewhere. Without a display, or with --no-show,
it runs headless; --out writes an .mp4 (or .avi) of the panels. It prints the frame rate reached.
Flip averaging (the evaluation protocol) is off unless --flip: it doubles the model work per frame.

With ``--runtime onnx`` the model is an exported file (``tools/export_onnx.py``; ``--onnx``) run by
ONNX Runtime (``densedino.deploy.OnnxModel``; needs ``pip install -e .[deploy]``); a file exported
for one size gets its frames resized to that size. ``--size H W`` (or ``--size N``, the short
side) resizes the frames before inference.

Capture, inference and drawing overlap: a capture thread reads frames into a queue of two, and an
inference thread hands depth maps to the main thread, which draws, writes and shows them. From a
camera, a frame that waits while a newer one arrives is dropped, so the output never lags behind
the camera; from a video file or a folder every frame is processed (and written). At the end it
prints the frame rate and the capture-to-display latency (median and p90).
"""
import argparse
import contextlib
import glob
import os
import os.path as osp
import queue
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from densedino.cli import display_available, run_cli  # noqa: E402

#: frames waiting between capture and inference, and between inference and drawing
QUEUE_SIZE = 2

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
    parser.add_argument('--config', help='depth model config (or --model, or --runtime onnx)')
    parser.add_argument('--checkpoint', help='trained checkpoint (without: the config\'s weights, '
                        'e.g. a random head: the depth is meaningless)')
    parser.add_argument('--runtime', choices=['torch', 'onnx'], default='torch',
                        help='torch: the model from --model / --config; onnx: the exported file '
                        '--onnx on ONNX Runtime (default: %(default)s)')
    parser.add_argument('--onnx', help='exported model (tools/export_onnx.py), with --runtime onnx')
    parser.add_argument('--size', type=int, nargs='+', metavar='N',
                        help='resize frames before inference: H W, or N for the short side')
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
    def live(self) -> bool:
        """A camera (frames come at its pace; stale ones may be dropped), not a file or folder."""
        return self.source.isdigit()

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


class OnnxDepthRunner:
    """An exported depth model (``tools/export_onnx.py``) on ONNX Runtime, run on BGR frames.

    Args:
        path: The .onnx file.

    Attributes:
        relative: Disparity output; ``precision``: 'onnx'; ``fixed_size``: (H, W) of a file
        exported for one size (frames are resized to it), else None; ``multiple``: what frame
        sides must be a multiple of.
    """

    def __init__(self, path: str) -> None:
        import onnxruntime as ort

        from densedino.deploy import OnnxModel
        self.model = OnnxModel(path)
        # ONNX Runtime's worker threads spin between calls by default: here they would take the
        # cores from the capture and drawing threads, so the session is made again without
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.model.session = ort.InferenceSession(path, options,
                                                  providers=self.model.session.get_providers())
        if self.model.task != 'depth':
            raise ValueError(f'{path} is a {self.model.task} model, not a depth model')
        self.relative = self.model.relative
        self.precision = 'onnx int8' if 'densedino.quantized' in self.model.metadata else 'onnx'
        self.fixed_size = tuple(self.model.export_size) if self.model.size_multiple == 0 else None
        self.multiple = max(1, self.model.size_multiple)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) float32 depth (or disparity) for a BGR frame, at the frame's size."""
        return self.model(frame).pred_depth_map.data[0].numpy()


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
    if args.size is not None and (len(args.size) not in (1, 2) or min(args.size) < 1):
        raise ValueError(f'--size takes H W or N (the short side), positive; got {args.size}')
    if args.runtime == 'onnx':
        check_onnx(args)
    elif args.onnx is not None:
        raise ValueError('--onnx runs with --runtime onnx')
    elif args.model is not None:
        check_model_name(args.model, args.config or args.checkpoint)
    elif args.config is None:
        raise ValueError('give --model NAME (a released depth model) or --config CONFIG')
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'{what} file {path} does not exist')
    if args.out and osp.splitext(args.out)[1].lower() not in VIDEO_CODECS:
        raise ValueError(f'--out {args.out}: use a .mp4, .mov or .avi file name')


def check_onnx(args: argparse.Namespace) -> None:
    """``--runtime onnx``: an existing --onnx file, no PyTorch model options, ONNX Runtime."""
    if args.onnx is None:
        raise ValueError('--runtime onnx needs --onnx model.onnx (tools/export_onnx.py writes it)')
    if args.model or args.config or args.checkpoint or args.compile:
        raise ValueError('--runtime onnx runs the --onnx file: drop --model, --config, '
                         '--checkpoint and --compile')
    if not osp.isfile(args.onnx):
        raise FileNotFoundError(f'ONNX file {args.onnx} does not exist')
    import importlib.util
    if importlib.util.find_spec('onnxruntime') is None:
        raise ImportError('--runtime onnx needs ONNX Runtime: pip install -e .[deploy]')


def frame_size(shape: Tuple[int, ...], size: Optional[List[int]], multiple: int = 1,
               fixed: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """(H, W) the model gets for a frame of ``shape``: ``fixed`` (a model exported for one
    size), else ``size`` (H W, or N for the short side, keeping the aspect ratio) or the frame's
    own size, rounded to ``multiple``."""
    if fixed is not None:
        return fixed
    h, w = shape[:2]
    if size and len(size) == 2:
        h, w = size
    elif size:
        scale = size[0] / min(h, w)
        h, w = round(h * scale), round(w * scale)
    return (max(multiple, round(h / multiple) * multiple),
            max(multiple, round(w / multiple) * multiple))


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


def put(q: queue.Queue, item, stop: threading.Event, drop_stale: bool = False,
        dropped: Optional[list] = None) -> bool:
    """Put ``item`` on ``q``, waiting while it is full; with ``drop_stale`` the oldest waiting
    item is dropped instead (appended to ``dropped``). False once ``stop`` is set."""
    while not stop.is_set():
        if drop_stale:
            try:
                q.put_nowait(item)
                return True
            except queue.Full:
                try:
                    stale = q.get_nowait()
                    if dropped is not None:
                        dropped.append(stale[0])
                except queue.Empty:
                    pass
                continue
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def capture(source: FrameSource, out: queue.Queue, stop: threading.Event, dropped: list) -> None:
    """Thread: (capture time, frame) items on ``out``, then None (the end) or the exception
    that stopped the source. A live camera's stale frames are dropped; a file's never."""
    try:
        for _, frame in source:
            if not put(out, (time.perf_counter(), frame), stop, source.live, dropped):
                return
    except BaseException as e:  # noqa: BLE001 - handed to the main thread
        put(out, e, stop)
        return
    put(out, None, stop)


def infer(runner: Callable, resize: Callable, inp: queue.Queue, out: queue.Queue,
          stop: threading.Event) -> None:
    """Thread: (capture time, resized frame, depth, model seconds) for each item of ``inp``;
    the end (None) and exceptions are passed on."""
    while not stop.is_set():
        try:
            item = inp.get(timeout=0.1)
        except queue.Empty:
            continue
        if item is not None and not isinstance(item, BaseException):
            try:
                frame = resize(item[1])
                t0 = time.perf_counter()
                depth = runner(frame)
                item = (item[0], frame, depth, time.perf_counter() - t0)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                item = e
        if not put(out, item, stop) or item is None or isinstance(item, BaseException):
            return


def load_runner(args: argparse.Namespace, device: str):
    """The depth runner of ``--runtime`` (says what it loads on stderr)."""
    name = args.onnx if args.runtime == 'onnx' else (args.model or args.checkpoint or args.config)
    print(f'loading {osp.basename(name)} on {"ONNX Runtime" if args.runtime == "onnx" else device}'
          '...', file=sys.stderr, flush=True)
    if args.runtime == 'onnx':
        runner = OnnxDepthRunner(args.onnx)
        if runner.fixed_size and args.size and len(args.size) == 2 \
                and tuple(args.size) != runner.fixed_size:
            raise ValueError(f'--size {args.size[0]} {args.size[1]}: {args.onnx} was exported for '
                             f'{runner.fixed_size[0]}x{runner.fixed_size[1]} only (export with '
                             '--dynamic for other sizes)')
        return runner
    runner = DepthRunner(args.model or args.config, args.checkpoint, device, args.precision,
                         args.flip, args.compile)
    runner.fixed_size, runner.multiple = None, 1
    if args.checkpoint is None and args.model is None:
        print('no --checkpoint: the head is untrained, the depth is meaningless', file=sys.stderr)
    return runner


def resizer(args: argparse.Namespace, runner) -> Callable[[np.ndarray], np.ndarray]:
    """Frame -> the frame at ``frame_size`` (the same array when no resize is needed)."""
    def resize(frame: np.ndarray) -> np.ndarray:
        h, w = frame_size(frame.shape, args.size, runner.multiple, runner.fixed_size)
        if (h, w) == frame.shape[:2]:
            return frame
        shrink = h * w < frame.shape[0] * frame.shape[1]
        return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink
                          else cv2.INTER_LINEAR)
    return resize


def run(args: argparse.Namespace) -> dict:
    """Capture and inference threads feeding the drawing loop; returns frames processed and
    dropped, the model's and the loop's frame rates and the capture-to-display latency."""
    import torch
    check_inputs(args)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    show = args.show and display_available()
    if args.show and not show:
        print('no display available: running headless', file=sys.stderr)
    source = FrameSource(args.source)
    stop, dropped = threading.Event(), []
    threads = []
    try:
        runner = load_runner(args, device)
        print(f'running on {args.source} ({runner.precision})'
              + ('; q or Esc in the window stops' if show else '; Ctrl-C stops'), file=sys.stderr,
              flush=True)
        frames_q, depth_q = queue.Queue(QUEUE_SIZE), queue.Queue(QUEUE_SIZE)
        threads = [threading.Thread(target=capture, args=(source, frames_q, stop, dropped),
                                    daemon=True),
                   threading.Thread(target=infer, args=(runner, resizer(args, runner), frames_q,
                                                        depth_q, stop), daemon=True)]
        for thread in threads:
            thread.start()
        stats = display_loop(args, runner, depth_q, show, source.fps)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        source.close()
    stats.update(dropped=len(dropped), precision=runner.precision,
                 device='onnxruntime' if args.runtime == 'onnx' else device)
    return stats


def display_loop(args: argparse.Namespace, runner, results: queue.Queue, show: bool,
                 source_fps: float) -> dict:
    """Draw, write and show the inference thread's results until the end, q / Esc or
    --max-frames; returns the frame counts, rates and latencies."""
    from densedino.benchmark import percentile
    from densedino.visualization import RangeSmoother
    smoother = RangeSmoother(momentum=args.smooth)
    writer, size = None, None
    frames, model_seconds, fps, latencies = 0, 0.0, 0.0, []
    start = last = reported = time.perf_counter()
    try:
        while True:
            item = results.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            captured, frame, depth, seconds = item
            model_seconds += seconds
            now = time.perf_counter()
            instant = 1.0 / max(now - last, 1e-6)
            fps, last = (instant if frames == 0 else 0.9 * fps + 0.1 * instant), now
            bgr = draw(args, runner, smoother, frame, depth, fps)
            if args.out:
                if writer is None:
                    size = (bgr.shape[1], bgr.shape[0])
                    writer = open_writer(args.out, args.fps or source_fps or 10.0, size)
                if (bgr.shape[1], bgr.shape[0]) != size:  # frames of another size: fit them
                    bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
                writer.write(bgr)
            frames += 1
            quit_key = False
            if show:
                cv2.imshow(WINDOW, bgr)
                quit_key = cv2.waitKey(1) & 0xFF in (ord('q'), 27)
            else:
                reported = report_progress(frames, fps, start, reported)
            latencies.append(time.perf_counter() - captured)
            if quit_key or (args.max_frames and frames >= args.max_frames):
                break
    finally:
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    elapsed = time.perf_counter() - start
    ms = [1e3 * t for t in latencies] or [0.0]
    return dict(frames=frames, model_fps=frames / max(model_seconds, 1e-9),
                loop_fps=frames / max(elapsed, 1e-9), latency_median_ms=percentile(ms, 0.5),
                latency_p90_ms=percentile(ms, 0.9))


def draw(args: argparse.Namespace, runner, smoother, frame: np.ndarray, depth: np.ndarray,
         fps: float) -> np.ndarray:
    """The BGR panel: frame | depth in colour | colour bar, with the frame rate drawn."""
    from densedino.visualization import depth_panel
    vmin, vmax = (args.vmin, args.vmax) if args.vmin is not None else smoother.update(depth)
    panel = depth_panel(np.ascontiguousarray(frame[..., ::-1]), depth, vmin=vmin, vmax=vmax,
                        relative=runner.relative, cmap=args.cmap)
    draw_fps(panel, fps, runner.precision)
    return np.ascontiguousarray(panel[..., ::-1])


def main(args: argparse.Namespace) -> None:
    import densedino  # noqa: F401  (compatibility fixes and registries)
    stats = run(args)
    print(f'{stats["frames"]} frames on {stats["device"]} ({stats["precision"]}): '
          f'{stats["loop_fps"]:.1f} FPS end to end, model {stats["model_fps"]:.1f} FPS; latency '
          f'capture to display {stats["latency_median_ms"]:.0f} ms median, '
          f'{stats["latency_p90_ms"]:.0f} ms p90'
          + (f'; {stats["dropped"]} stale frames dropped' if stats['dropped'] else '')
          + (f'; wrote {args.out}' if args.out and stats['frames'] else ''))


if __name__ == '__main__':
    a = parse_args()
    run_cli(main, a)
