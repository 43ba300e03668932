"""Cross-entropy of bilinearly upsampled logits, fused and computed in row chunks.

mmseg's decode heads upsample (B, C, h, w) logits to the label size, take log-softmax and the
loss, and keep every full-resolution intermediate for the backward pass: for ADE20K at 512 x 512
that is several 150 x 512 x 512 tensors per image, and on CPUs the head's loss costs as much as
a small backbone. Bilinear upsampling is separable and linear, so this function upsamples a few
output rows at a time, takes the loss, its gradient and the pixel accuracy while the chunk is
in cache, and folds the gradient straight back to the low-resolution logits. Values equal
``F.cross_entropy(F.interpolate(logits, size, mode='bilinear'), labels, ignore_index)`` (sum
over valid pixels) up to float rounding; memory is O(C h W) instead of O(C H W).
"""
from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor


def interp_weights(out_size: int, in_size: int, align_corners: bool,
                   device: torch.device) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """PyTorch's 1-D bilinear source indices and weights for ``size=``-based resizing.

    Returns:
        (i0, i1, w0, w1): each (out_size,); output position k reads
        ``w0[k] * x[i0[k]] + w1[k] * x[i1[k]]``.
    """
    dst = torch.arange(out_size, device=device, dtype=torch.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * scale
    else:
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).float()
    return i0, i1, 1 - w1, w1


def column_matrix(out_w: int, in_w: int, align_corners: bool, device, dtype) -> Tensor:
    """Dense (out_w, in_w) matrix of the horizontal interpolation."""
    i0, i1, w0, w1 = interp_weights(out_w, in_w, align_corners, device)
    mat = torch.zeros(out_w, in_w, device=device, dtype=dtype)
    rows = torch.arange(out_w, device=device)
    mat.index_put_((rows, i0), w0.to(dtype), accumulate=True)
    mat.index_put_((rows, i1), w1.to(dtype), accumulate=True)
    return mat


class RowChunks(NamedTuple):
    """How to resize (C, h, w) maps to (C, H, W) a few output rows at a time: the horizontal
    interpolation matrix ``cols`` (W, w), and per chunk ``(r0, r1, lo, hi, a_sub)``: output rows
    ``r0:r1`` are ``a_sub @ wide[lo:hi]``, ``a_sub`` (r1 - r0, hi - lo) the vertical weights of
    the source rows they read."""
    cols: Tensor
    chunks: List[Tuple[int, int, int, int, Tensor]]


def row_chunks(in_hw: Sequence[int], out_hw: Sequence[int], channels: int, align_corners: bool,
               chunk_elems: int, device, dtype) -> RowChunks:
    """The plan of a chunked separable bilinear resize (used by the fused losses and heads).
    Chunk bounds are computed on the host, so CUDA runs need no syncs."""
    (h, w), (H, W) = in_hw, out_hw
    cols = column_matrix(W, w, align_corners, device, dtype)
    rows_mat = column_matrix(H, h, align_corners, device, dtype)
    i0, i1, _, _ = interp_weights(H, h, align_corners, torch.device('cpu'))
    i0, i1 = i0.tolist(), i1.tolist()
    rows = max(1, chunk_elems // (channels * W))
    chunks = []
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        lo, hi = i0[r0], i1[r1 - 1] + 1  # source rows this chunk reads
        chunks.append((r0, r1, lo, hi, rows_mat[r0:r1, lo:hi]))
    return RowChunks(cols, chunks)


def resize_columns(x: Tensor, cols: Tensor) -> Tensor:
    """One image's (C, h, w) maps resized horizontally, rows first: (h, C * W), so that a chunk
    of output rows is one small GEMM away."""
    C, h, w = x.shape
    return (x.permute(1, 0, 2).reshape(h * C, w) @ cols.T).view(h, -1)


def fold_columns(grad_wide: Tensor, cols: Tensor, channels: int) -> Tensor:
    """The adjoint of :func:`resize_columns`: (h, C * W) gradients -> (C, h, w)."""
    h = grad_wide.shape[0]
    return (grad_wide.view(h * channels, -1) @ cols).view(h, channels, -1).permute(1, 0, 2)


class _UpsampledCE(torch.autograd.Function):

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, ignore_index: int, align_corners: bool,
                chunk_elems: int):
        B, C, h, w = logits.shape
        H, W = labels.shape[-2:]
        x = logits.detach().float()
        plan = row_chunks((h, w), (H, W), C, align_corners, chunk_elems, x.device, x.dtype)
        need_grad = ctx.needs_input_grad[0]
        grad = torch.zeros_like(x) if need_grad else None
        loss = x.new_zeros(())
        correct = torch.zeros((), dtype=torch.long, device=x.device)
        for b in range(B):
            wide = resize_columns(x[b], plan.cols)
            grad_wide = torch.zeros_like(wide) if need_grad else None
            for r0, r1, lo, hi, a_sub in plan.chunks:
                z = (a_sub @ wide[lo:hi]).view(r1 - r0, C, W)
                lab = labels[b, r0:r1]
                valid = lab != ignore_index
                safe = torch.where(valid, lab, 0).unsqueeze(1)
                zmax = z.amax(dim=1)
                zy = z.gather(1, safe).squeeze(1)
                p = z.sub_(zmax.unsqueeze(1)).exp_()
                denom = p.sum(dim=1)
                loss += ((zmax + denom.log() - zy) * valid).sum()
                # arg-max == label  <=>  the label's logit reaches the maximum
                correct += ((zy >= zmax) & valid).sum()
                if need_grad:
                    p.mul_((valid / denom).unsqueeze(1))
                    p.scatter_add_(1, safe, -valid.unsqueeze(1).to(p.dtype))
                    grad_wide[lo:hi] += a_sub.T @ p.view(r1 - r0, C * W)
            if need_grad:
                grad[b] = fold_columns(grad_wide, plan.cols, C)
        n_valid = (labels != ignore_index).sum()
        if need_grad:
            ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(correct, n_valid)
        return loss, correct, n_valid

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct, _grad_n):
        (grad,) = ctx.saved_tensors
        return (grad * grad_loss).to(grad_loss.dtype), None, None, None, None


def upsampled_cross_entropy(logits: Tensor, labels: Tensor, *, ignore_index: int = 255,
                            align_corners: bool = False, chunk_elems: int = 1 << 20
                            ) -> Tuple[Tensor, Tensor, Tensor]:
    """Summed cross-entropy of ``logits`` bilinearly resized to the labels' size.

    Args:
        logits: (B, C, h, w).
        labels: (B, H, W) int64 class indices; ``ignore_index`` pixels are skipped.
        ignore_index: Label to ignore.
        align_corners: As in ``F.interpolate``.
        chunk_elems: Elements of one (C, rows, W) chunk (rows = chunk_elems // (C W)).

    Returns:
        (loss_sum, n_correct, n_valid): the loss summed over valid pixels (differentiable w.r.t.
        ``logits``), the number of valid pixels whose arg-max equals the label, and the number of
        valid pixels. Computed in fp32 whatever the logits' dtype and under autocast (mixed
        precision keeps losses in fp32).
    """
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f'expected logits (B, C, h, w) and labels (B, H, W), got '
                         f'{tuple(logits.shape)} and {tuple(labels.shape)}')
    with torch.autocast(logits.device.type, enabled=False):  # fp32 throughout, also under --amp
        return _UpsampledCE.apply(logits.float(), labels.long(), ignore_index, align_corners,
                                  chunk_elems)
