"""Visualisation: segmentation overlays with a legend, depth maps with a colour bar."""
from .depth import (DepthLocalVisualizer, RangeSmoother, colorize_depth, depth_panel, depth_range,
                    draw_colorbar, stack_rows)
from .overlay import (blend_labels, classes_present, default_palette, draw_legend, draw_overlay,
                      legend_width)

__all__ = ['blend_labels', 'classes_present', 'default_palette', 'draw_legend', 'draw_overlay',
           'legend_width', 'DepthLocalVisualizer', 'RangeSmoother', 'colorize_depth',
           'depth_panel', 'depth_range', 'draw_colorbar', 'stack_rows']
