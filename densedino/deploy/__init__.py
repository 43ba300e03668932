"""Deployment: export whole segmentation / depth models to ONNX (``export_onnx``) and run them
with ONNX Runtime (``OnnxModel``, which returns what ``densedino.apis.inference_model`` does);
``quantize_dynamic_int8`` writes an INT8 copy.
Needs the optional extra ``deploy`` (onnx, onnxruntime, onnxscript)."""
from .export import ExportError, ExportModule, ExportReport, export_onnx
from .quantize import quantize_dynamic_int8
from .runtime import OnnxModel, OnnxRuntimeError, default_providers

__all__ = ['ExportError', 'ExportModule', 'ExportReport', 'export_onnx', 'OnnxModel',
           'OnnxRuntimeError', 'default_providers', 'quantize_dynamic_int8']
