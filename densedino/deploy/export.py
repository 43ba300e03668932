"""Export a whole densedino segmentation or depth model to ONNX, and check the result.

``ExportModule`` turns a built model (``EncoderDecoder`` or ``DinoDepthEstimator``, e.g. from
``densedino.apis.init_model``) into one graph: normalisation, backbone, head, the depth clamp,
and the resize to the input size. ``export_onnx`` writes it with PyTorch's dynamo exporter,
checks it with onnx's checker and compares ONNX Runtime against PyTorch.
"""
import ast
import json
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Largest max|ONNX Runtime - PyTorch| / max|PyTorch| that ``export_onnx`` accepts (fp32).
RTOL = 1e-3
#: Output names of the graph, per task.
OUTPUTS = {'seg': ['logits', 'labels'], 'depth': ['depth']}
INPUT_NAME = 'image'


class ExportError(RuntimeError):
    """A model that cannot be exported, or an export that does not match PyTorch (one line)."""


class ExportModule(nn.Module):
    """A densedino model as one image -> prediction function, for export.

    Input: ``image`` (B, 3, H, W) float32 **RGB** in 0-255 (whatever channel order the model's
    data preprocessor expects: a ``bgr_to_rgb`` model gets the RGB image as is, a model
    normalised in BGR order gets the channels swapped inside the graph). Inside: the data
    preprocessor's mean/std, the backbone's centre padding to the patch size (zeros after
    normalisation), backbone, head, then (as the model's ``test_step``, ``mode='whole'``):

    * segmentation: ``logits`` (B, C, H, W) resized (bilinear) to the input size and
      ``labels`` (B, H, W) int64 (argmax; for one class, sigmoid > the head's threshold);
    * depth: ``depth`` (B, 1, H, W): metres clamped to ``[min_depth, max_depth]`` at the head's
      resolution (metric heads) or disparity (relative heads), resized to the input size;
      averaged with the flipped input when the model's ``test_cfg.flip`` is set.

    Raises:
        ExportError: sliding-window inference (``test_cfg.mode='slide'``: set it to 'whole'),
            test-time padding in the data preprocessor, or a model without a backbone / head.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for part in ('backbone', 'decode_head', 'data_preprocessor'):
            if not hasattr(model, part):
                raise ExportError(f'{type(model).__name__} has no {part}: export takes a '
                                  'densedino EncoderDecoder or DinoDepthEstimator')
        test_cfg = getattr(model, 'test_cfg', None) or {}
        if test_cfg.get('mode', 'whole') != 'whole':
            raise ExportError(f"test_cfg.mode={test_cfg.get('mode')!r}: export runs whole-image "
                              "inference; set model.test_cfg.mode='whole'")
        dp = model.data_preprocessor
        if getattr(dp, 'test_cfg', None):
            raise ExportError(f'the data preprocessor pads test images ({dict(dp.test_cfg)}); '
                              'export does not')
        self.backbone, self.head = model.backbone, model.decode_head
        self.task = 'depth' if hasattr(self.head, 'clamp') and hasattr(self.head, 'relative') \
            else 'seg'
        self.patch_size = int(getattr(self.backbone, 'patch_size', 1))
        self.flip = bool(test_cfg.get('flip', False)) and self.task == 'depth'
        self.align_corners = bool(self.head.align_corners)
        # the data preprocessor swaps channels of the BGR pipeline images: the model wants RGB
        self.swap_rgb = not getattr(dp, 'channel_conversion', False)
        self.register_buffer('mean', dp.mean.detach().float().reshape(1, -1, 1, 1).clone())
        self.register_buffer('std', dp.std.detach().float().reshape(1, -1, 1, 1).clone())

    def forward(self, image: torch.Tensor):
        x = image.flip(1) if self.swap_rgb else image
        x = (x - self.mean) / self.std
        size = image.shape[-2:]
        out = self._predict(x, size)
        if self.flip:
            out = (out + self._predict(x.flip(-1), size).flip(-1)) / 2
        if self.task == 'depth':
            return out
        if out.shape[1] == 1:
            labels = (out.sigmoid() > self.head.threshold).long()[:, 0]
        else:
            labels = out.argmax(dim=1)
        return out, labels

    def _predict(self, x: torch.Tensor, size) -> torch.Tensor:
        """Normalised (B, 3, H, W) -> head output resized to ``size``."""
        p = self.patch_size
        # (H + p - 1) // p * p - H: the padding as the backbone's centre pad, written so that the
        # exporter can prove the padded size a multiple of p for every symbolic H
        ph = (x.shape[-2] + p - 1) // p * p - x.shape[-2]
        pw = (x.shape[-1] + p - 1) // p * p - x.shape[-1]
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        out = self.head(self.backbone(x))
        if self.task == 'depth':
            out = self.head.clamp(out)
        return F.interpolate(out, size=size, mode='bilinear', align_corners=self.align_corners)


def model_metadata(model: nn.Module, module: ExportModule) -> Dict[str, str]:
    """What ``OnnxModel`` needs besides the graph (ONNX ``metadata_props``, strings)."""
    cfg = getattr(model, 'cfg', None) or {}
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline') or []
    text = repr([dict(t) for t in pipeline])
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ExportError('the test pipeline holds values that are not plain Python literals '
                          f'({text[:80]}...); name transforms by type strings') from None
    meta = dict(model.dataset_meta or {}) if getattr(model, 'dataset_meta', None) else {}
    head = module.head
    info = {
        'densedino.task': module.task,
        'densedino.classes': json.dumps(list(meta.get('classes', ()))),
        'densedino.palette': json.dumps([list(map(int, c)) for c in meta.get('palette') or []]),
        'densedino.patch_size': str(module.patch_size),
        'densedino.test_pipeline': text,
        'densedino.align_corners': json.dumps(module.align_corners),
        'densedino.input': 'image (B, 3, H, W) float32 RGB 0-255',
    }
    if module.task == 'seg':
        info['densedino.threshold'] = json.dumps(float(getattr(head, 'threshold', None) or 0.3))
    if module.task == 'depth':
        info['densedino.relative'] = json.dumps(bool(head.relative))
        info['densedino.depth_range'] = json.dumps([head.min_depth, head.max_depth])
    return info


@dataclass
class ExportReport:
    """What ``export_onnx`` did: the file, the checker's verdict, and per compared input
    (B, 3, H, W) the max |ONNX Runtime - PyTorch| (``max_diffs``) and that over max|PyTorch|
    (``rel_diffs``), for logits (segmentation) or depth."""
    path: str
    checker: str
    shapes: List[Tuple[int, int, int, int]] = field(default_factory=list)
    max_diffs: List[float] = field(default_factory=list)
    rel_diffs: List[float] = field(default_factory=list)
    seconds: float = 0.0


def compare_sizes(height: int, width: int, patch: int, dynamic: bool
                  ) -> List[Tuple[int, int, int, int]]:
    """The three inputs ``export_onnx`` compares: the export size and, with ``dynamic``, two
    other non-square multiples of the patch size (batch 1 and 2); else three at the export size."""
    if not dynamic:
        return [(1, 3, height, width)] * 3
    a = (height + patch, width + 3 * patch)
    b = (height + 3 * patch, max(2 * patch, width - patch))
    sizes = [(h, w + patch) if h == w else (h, w) for h, w in (a, b)]
    return [(1, 3, height, width), (1, 3, *sizes[0]), (2, 3, *sizes[1])]


def export_onnx(model: nn.Module, path: str, *, height: int, width: int, dynamic: bool = False,
                opset: int = 18, log=None) -> ExportReport:
    """Export ``model`` (see ``ExportModule``) to ``path``, check it, compare with PyTorch.

    Args:
        model: A built densedino segmentation or depth model (``init_model``).
        path: The .onnx file to write.
        height, width: The example input size (multiples of the patch size).
        dynamic: Batch, height and width dynamic; else a fixed (1, 3, height, width) input.
        opset: ONNX opset.
        log: Called with progress lines (e.g. ``print``), or None.

    Returns:
        An ``ExportReport``.

    Raises:
        ExportError: a size that is not a multiple of the patch size, a model that cannot be
            exported, or ONNX Runtime off PyTorch by more than ``RTOL`` (names the input size).
    """
    log = log or (lambda line: None)
    start = time.time()
    module = ExportModule(model).eval()
    p = module.patch_size
    if height % p or width % p or height < p or width < p:
        raise ExportError(f'export size {height}x{width} is not a multiple of the patch size {p}')
    log(f'exporting {module.task} model at {height}x{width} '
        f'({"dynamic batch, height and width" if dynamic else "fixed size"}), opset {opset}')
    multiple = _export_graph(module, path, height, width, dynamic, opset)
    if dynamic and multiple > 1:
        log(f'the graph takes heights and widths that are multiples of {multiple} (the model '
            'branches on the token grid)')
    metadata = {**model_metadata(model, module), 'densedino.size_multiple': str(multiple),
                'densedino.export_size': json.dumps([height, width])}
    checker = check_and_annotate(path, metadata)
    log(f'onnx checker: {checker}')
    report = ExportReport(path=path, checker=checker)
    session = _session(path)
    for shape in compare_sizes(height, width, max(p, multiple), dynamic):
        diff, rel = compare_with_torch(module, session, shape, seed=len(report.shapes))
        report.shapes.append(shape)
        report.max_diffs.append(diff)
        report.rel_diffs.append(rel)
        log(f'ONNX Runtime vs PyTorch at {_size(shape)}: max difference {diff:.3g} '
            f'(relative {rel:.3g})')
        if not rel <= RTOL:
            raise ExportError(f'ONNX Runtime differs from PyTorch at {_size(shape)}: max '
                              f'difference {diff:.3g} (relative {rel:.3g} > {RTOL:g})')
    report.seconds = time.time() - start
    return report


def _size(shape: Sequence[int]) -> str:
    return f'{shape[0]}x{shape[1]}x{shape[2]}x{shape[3]}'


def _export_graph(module: ExportModule, path: str, height: int, width: int, dynamic: bool,
                  opset: int) -> int:
    """``torch.export`` (a dimension the code would fix is an error, not a silently static
    graph), then ``torch.onnx.export`` of the program; returns the multiple that the input's
    height and width must be (0: fixed size).

    Dynamic: batch 2 in the example (a dimension traced at size 1 would be fixed); height and
    width any size from p + 1 (the graph pads as the backbone does), else, for code that
    branches on the token grid (the DPT head's fusion of odd grids), multiples of p, then of
    2p (an even grid)."""
    import warnings
    p = module.patch_size
    example = torch.rand(2 if dynamic else 1, 3, height, width) * 255
    steps = [(1, p + 1), (p, 2 * p), (2 * p, 2 * p)] if dynamic else [(0, 0)]
    steps = [(m, low) for m, low in steps if m <= 1 or (height % m == 0 and width % m == 0)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for i, (multiple, low) in enumerate(steps):
            try:
                program = torch.export.export(module, (example,), strict=False,
                                              dynamic_shapes=_dynamic_shapes(multiple, low))
                _probe(program, module, _probe_shapes(height, width, p, multiple))
                break
            except Exception as e:  # noqa: BLE001 - the exporter's errors run to pages
                if i + 1 == len(steps):
                    raise ExportError(f'export failed: {type(e).__name__}: '
                                      f'{" ".join(str(e).split())[:300]}') from e
        try:
            torch.onnx.export(program, (example,), path, dynamo=True, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=OUTPUTS[module.task],
                              external_data=False, verbose=False)
        except Exception as e:  # noqa: BLE001
            raise ExportError(f'ONNX conversion failed: {type(e).__name__}: '
                              f'{" ".join(str(e).split())[:300]}') from e
    return multiple


def _probe_shapes(height: int, width: int, patch: int, multiple: int) -> list:
    """Inputs on which an exported program must still equal the module: other token grids
    (both parities) and, for a graph of any size, sizes that are no multiple of the patch."""
    if not multiple:
        return []
    shapes = compare_sizes(height, width, max(patch, multiple), True)[1:]
    if multiple == 1:
        shapes.append((1, 3, height + patch + 1, width + 2 * patch - 1))
    return shapes


def _probe(program, module: ExportModule, shapes) -> None:
    """Run the exported program against the module (exported code may hold asserts or fixed
    branches for the example's grid that torch.export did not refuse)."""
    run = program.module()
    for shape in shapes:
        image = torch.rand(*shape) * 255
        got, ref = run(image), module(image)
        got, ref = (got, ref) if isinstance(ref, tuple) else ((got,), (ref,))
        if got[0].shape != ref[0].shape or not torch.allclose(got[0], ref[0], rtol=1e-4,
                                                                atol=1e-4 * ref[0].abs().max()):
            raise ExportError(f'the exported program differs from the model at {_size(shape)}')


def _dynamic_shapes(multiple: int, low: int) -> Optional[dict]:
    """torch.export's dynamic_shapes: None for a fixed size; else batch 1-1024 and height and
    width from ``low`` to 8192, multiples of ``multiple``."""
    if not multiple:
        return None
    dim = torch.export.Dim
    if multiple == 1:
        h, w = dim('height', min=low, max=8192), dim('width', min=low, max=8192)
    else:
        h = multiple * dim('grid_h', min=low // multiple, max=8192 // multiple)
        w = multiple * dim('grid_w', min=low // multiple, max=8192 // multiple)
    return {INPUT_NAME: {0: dim('batch', min=1, max=1024), 2: h, 3: w}}


def check_and_annotate(path: str, metadata: Dict[str, str]) -> str:
    """Write ``metadata`` into the model's ``metadata_props`` and run ``onnx.checker``
    (full check, with shape inference); returns 'ok'."""
    import onnx
    model = onnx.load(path)
    known = {p.key for p in model.metadata_props}
    for key, value in metadata.items():
        if key in known:
            continue
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, path)
    try:
        onnx.checker.check_model(path, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ExportError(f'onnx checker rejects {path}: {" ".join(str(e).split())[:300]}') \
            from None
    return 'ok'


def _session(path: str):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def compare_with_torch(module: ExportModule, session, shape: Sequence[int], *,
                       seed: int = 0) -> Tuple[float, float]:
    """(max |ORT - PyTorch|, that / max|PyTorch|) on a random 0-255 input of ``shape``, for the
    first output (logits or depth). Segmentation labels must agree wherever the two best
    PyTorch logits are further apart than the difference (else ExportError)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(*shape, generator=generator) * 255
    with torch.no_grad():
        ref = module(image)
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    got = session.run(None, {INPUT_NAME: image.numpy()})
    diff = float(np.abs(got[0] - ref[0]).max())
    rel = diff / max(float(np.abs(ref[0]).max()), 1e-12)
    if len(ref) == 2 and ref[0].shape[1] > 1:
        top2 = np.sort(ref[0], axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * diff
        if np.any((got[1] != ref[1]) & clear):
            raise ExportError(f'ONNX Runtime labels differ from PyTorch at {_size(shape)} '
                              'where the logits are not tied')
    return diff, rel
