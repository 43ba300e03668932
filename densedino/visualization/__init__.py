"""Visualisation: segmentation overlays with a legend, depth maps with a colour bar, feature
maps (PCA colours, foreground, similarity, CLS attention), the ``--show-dir`` visualisers, and
the one figure style they all follow (:mod:`.style`)."""
from .depth import (ColorbarLayout, RangeSmoother, colorbar_layout, colorize_depth, depth_panel,
                    depth_range, depth_tiles, draw_colorbar)
from ..images import PreparedImage, prepare_image, read_image
from .feature_maps import (PCA, AttentionMaps, PatchFeatures, cls_attention_maps,
                           extract_patch_features, foreground_mask, pca_fit, pca_rgb, query_patch,
                           similarity_map, to_image_grid, top_mass_mask)
from .overlay import (blend_labels, classes_present, default_palette, draw_legend, draw_overlay,
                      legend_width)
from .style import (DEFAULT_DPI, FONT_PT, MIN_FONT_PT, PANEL_INCHES, CvFont, Ticks, add_colorbar,
                    cv_font, matplotlib_style, nice_ticks, stack_rows, titled_row)
from .visualizers import DepthLocalVisualizer, SegPanelVisualizer, flat_name
from .benchmark_figures import (ConfusionRows, confusion_rows, metric_axis_label, plot_confusion,
                                plot_per_class_iou, plot_suite_bars, worst_classes)

__all__ = ['blend_labels', 'classes_present', 'default_palette', 'draw_legend', 'draw_overlay',
           'legend_width', 'DepthLocalVisualizer', 'SegPanelVisualizer', 'flat_name',
           'RangeSmoother', 'ColorbarLayout', 'colorbar_layout', 'colorize_depth', 'depth_panel',
           'depth_range', 'depth_tiles', 'draw_colorbar', 'stack_rows', 'titled_row',
           'DEFAULT_DPI', 'FONT_PT', 'MIN_FONT_PT', 'PANEL_INCHES', 'CvFont', 'Ticks',
           'add_colorbar', 'cv_font', 'matplotlib_style', 'nice_ticks',
           'PCA', 'AttentionMaps', 'PatchFeatures', 'PreparedImage', 'cls_attention_maps',
           'extract_patch_features', 'foreground_mask', 'pca_fit', 'pca_rgb', 'prepare_image',
           'query_patch', 'read_image', 'similarity_map', 'to_image_grid', 'top_mass_mask',
           'ConfusionRows', 'confusion_rows', 'metric_axis_label', 'plot_confusion',
           'plot_per_class_iou', 'plot_suite_bars', 'worst_classes']
