"""Visualisation: segmentation overlays with a legend of the classes present."""
from .overlay import (blend_labels, classes_present, default_palette, draw_legend, draw_overlay,
                      legend_width)

__all__ = ['blend_labels', 'classes_present', 'default_palette', 'draw_legend', 'draw_overlay',
           'legend_width']
