"""INT8 dynamic quantisation of an exported model (``export_onnx``) with ONNX Runtime's quantiser.

The weights of the linear layers (ONNX ``MatMul`` with a constant weight, and ``Gemm``) are
stored as int8 and their activations quantised to uint8 per call (``quantize_dynamic``): the
ViT's qkv, projection and MLP layers, which hold nearly all of its weights and FLOPs. Attention's
own products (two activations), convolutions (patch embedding, DPT head), normalisation and the
output resize stay fp32. Weights are quantised per output channel by default: one scale per
column keeps the small channels of a layer from rounding to zero under the scale of its largest,
at no run-time cost. On the trained quick-start models it keeps predictions closer to fp32 than
one scale per tensor (``tools/benchmark_deploy.py --accuracy [--per-tensor]``, 100 synthetic test
scenes: mean |depth change| 0.0057 m vs 0.0084 m, segmentation labels 99.66% vs 99.52% equal);
docs/deploy.md has the figures.
"""
import logging
import os
import tempfile
from typing import Dict, Union

import numpy as np

from ..progress import logger_level

#: ``metadata_props`` key marking a quantised file (its value names the scheme).
QUANTIZED_KEY = 'densedino.quantized'


def quantize_dynamic_int8(onnx_in: Union[str, os.PathLike], onnx_out: Union[str, os.PathLike],
                          *, per_channel: bool = True) -> Dict[str, int]:
    """Write ``onnx_out``: ``onnx_in`` with int8 weights for its MatMul / Gemm layers.

    The densedino ``metadata_props`` of ``onnx_in`` are kept (``OnnxModel`` runs the result as
    the fp32 file), plus ``densedino.quantized`` naming the scheme.

    Args:
        onnx_in: An fp32 export (``export_onnx`` / ``tools/export_onnx.py``).
        onnx_out: The .onnx file to write.
        per_channel: One weight scale per output channel (else one per tensor).

    Returns:
        Counts: ``quantized`` (MatMul / Gemm nodes given int8 weights) and ``float`` (those
        left in fp32: products of two activations).

    Raises:
        FileNotFoundError: no ``onnx_in``.
        ValueError: ``onnx_in`` is no densedino export (no ``densedino.task`` metadata).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    onnx_in, onnx_out = os.fspath(onnx_in), os.fspath(onnx_out)
    if not os.path.isfile(onnx_in):
        raise FileNotFoundError(f'ONNX file {onnx_in} does not exist')
    source = onnx.load(onnx_in)
    metadata = {p.key: p.value for p in source.metadata_props}
    if 'densedino.task' not in metadata:
        raise ValueError(f'{onnx_in} is not a densedino export (no densedino.task metadata)')
    folded = fold_weight_transposes(source)
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, 'folded.onnx')
        onnx.save(source, staged)
        # the quantiser's advice to run its pre-processing (done here: the folding) stays off
        with logger_level(logging.getLogger(), logging.ERROR):
            quantize_dynamic(staged, onnx_out, op_types_to_quantize=['MatMul', 'Gemm'],
                             per_channel=per_channel, weight_type=QuantType.QInt8,
                             extra_options={'MatMulConstBOnly': True})
    model = onnx.load(onnx_out)
    metadata[QUANTIZED_KEY] = ('dynamic int8 MatMul/Gemm weights, per '
                               + ('channel' if per_channel else 'tensor'))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, onnx_out)
    ops = [node.op_type for node in model.graph.node]
    return {'quantized': ops.count('MatMulInteger') + ops.count('DynamicQuantizeMatMul'),
            'float': ops.count('MatMul') + ops.count('Gemm'), 'folded_transposes': folded}


def fold_weight_transposes(model) -> int:
    """Replace, in place, every ``Transpose`` of an initializer by the transposed initializer.

    PyTorch's exporter writes ``nn.Linear`` as ``MatMul(x, Transpose(W))``; the quantiser only
    quantises a MatMul whose weight is an initializer. Returns the number of folded nodes."""
    from onnx import numpy_helper
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses: Dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    folded = []
    for node in graph.node:
        if node.op_type != 'Transpose' or node.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == 'perm'), None)
        weight = numpy_helper.to_array(inits[node.input[0]])
        tensor = numpy_helper.from_array(np.transpose(weight, perm), node.output[0])
        graph.initializer.append(tensor)
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
        uses[node.input[0]] -= 1
    for name in [n for n, i in inits.items() if uses.get(n, 0) == 0 and n in uses]:
        graph.initializer.remove(inits[name])
    return len(folded)

