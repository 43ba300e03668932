"""High-level inference: build a trained segmentor and run it on images."""
from .inference import (InferenceError, InferencePipeline, inference_model, init_model,
                        resolve_dataset_meta)

__all__ = ['InferenceError', 'InferencePipeline', 'inference_model', 'init_model',
           'resolve_dataset_meta']
