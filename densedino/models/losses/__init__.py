"""Losses, one per file."""
from .depth import GradientLoss, SigLoss
from .upsampled_ce import (RowChunks, column_matrix, fold_columns, interp_weights,
                           resize_columns, row_chunks, upsampled_cross_entropy)

__all__ = ['GradientLoss', 'SigLoss', 'RowChunks', 'column_matrix', 'fold_columns',
           'interp_weights', 'resize_columns', 'row_chunks', 'upsampled_cross_entropy']
