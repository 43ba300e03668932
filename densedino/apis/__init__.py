"""High-level inference: build a trained segmentor or depth model and run it on images."""
from .inference import (InferenceError, InferencePipeline, inference_model, init_model,
                        model_dataset_meta, resolve_dataset_meta)

__all__ = ['InferenceError', 'InferencePipeline', 'inference_model', 'init_model',
           'model_dataset_meta', 'resolve_dataset_meta']
