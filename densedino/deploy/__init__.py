"""Deployment: export whole segmentation / depth models to ONNX (``export_onnx``) and run them
with ONNX Runtime (``OnnxModel``, which returns what ``densedino.apis.inference_model`` does).
Needs the optional extra ``deploy`` (onnx, onnxruntime, onnxscript)."""
from .export import ExportError, ExportModule, ExportReport, export_onnx
from .runtime import OnnxModel, OnnxRuntimeError, default_providers

__all__ = ['ExportError', 'ExportModule', 'ExportReport', 'export_onnx', 'OnnxModel',
           'OnnxRuntimeError', 'default_providers']
