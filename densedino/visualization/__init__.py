"""Visualisation: segmentation overlays with a legend, depth maps with a colour bar, and feature
maps (PCA colours, foreground, similarity, CLS attention)."""
from .depth import (DepthLocalVisualizer, RangeSmoother, colorize_depth, depth_panel, depth_range,
                    draw_colorbar, stack_rows)
from ..images import PreparedImage, prepare_image, read_image
from .feature_maps import (PCA, AttentionMaps, PatchFeatures, cls_attention_maps,
                       extract_patch_features, foreground_mask, pca_fit, pca_rgb, query_patch,
                       similarity_map, to_image_grid, top_mass_mask)
from .overlay import (blend_labels, classes_present, default_palette, draw_legend, draw_overlay,
                      legend_width)

__all__ = ['blend_labels', 'classes_present', 'default_palette', 'draw_legend', 'draw_overlay',
           'legend_width', 'DepthLocalVisualizer', 'RangeSmoother', 'colorize_depth',
           'depth_panel', 'depth_range', 'draw_colorbar', 'stack_rows',
           'PCA', 'AttentionMaps', 'PatchFeatures', 'PreparedImage', 'cls_attention_maps',
           'extract_patch_features', 'foreground_mask', 'pca_fit', 'pca_rgb', 'prepare_image',
           'query_patch', 'read_image', 'similarity_map', 'to_image_grid', 'top_mass_mask']
