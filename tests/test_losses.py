"""The fused upsampled cross-entropy equals mmseg's upsample + CrossEntropyLoss + accuracy."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import densedino  # noqa: F401
from densedino.models.heads import LinearSegHead
from densedino.models.losses import interp_weights, upsampled_cross_entropy


def check_fused_against_reference(x, labels, align_corners):
    """``upsampled_cross_entropy`` of ``x`` (a leaf) equals interpolate + cross-entropy in the
    loss, the gradient, the count of correct pixels and of valid ones (255 ignored); returns
    ``(loss, gradient)`` for further checks (tests/test_cuda.py compares them with the CPU)."""
    size = labels.shape[-2:]
    total, correct, n_valid = upsampled_cross_entropy(x, labels, align_corners=align_corners,
                                                      chunk_elems=5 * size[1] * 3)
    total.backward()
    ours, x.grad = x.grad.clone(), None
    up = F.interpolate(x, size=size, mode='bilinear', align_corners=align_corners)
    ref = F.cross_entropy(up, labels, ignore_index=255, reduction='sum')
    ref.backward()
    torch.testing.assert_close(total, ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours, x.grad, rtol=1e-4, atol=1e-5)
    valid = labels != 255
    assert int(correct) == int(((up.argmax(1) == labels) & valid).sum())
    assert int(n_valid) == int(valid.sum())
    return total, ours


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('size', [(64, 80), (50, 37), (7, 9)])
def test_matches_interpolate_then_cross_entropy(align_corners, size):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 11, dtype=torch.float64).float().requires_grad_()
    labels = torch.randint(0, 5, (2, *size))
    labels[0, :3] = 255
    check_fused_against_reference(x, labels, align_corners)


def test_interp_weights_reproduce_torch():
    x = torch.randn(1, 1, 13, 1)
    for ac in (False, True):
        i0, i1, w0, w1 = interp_weights(40, 13, ac, x.device)
        ours = w0 * x[0, 0, i0, 0] + w1 * x[0, 0, i1, 0]
        ref = F.interpolate(x, size=(40, 1), mode='bilinear', align_corners=ac)[0, 0, :, 0]
        torch.testing.assert_close(ours, ref)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r'expected logits \(B, C, h, w\)'):
        upsampled_cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, 4, 4, dtype=torch.long))


@pytest.mark.parametrize('avg_non_ignore', [False, True])
def test_head_loss_equals_mmseg_path(avg_non_ignore):
    torch.manual_seed(0)
    loss_cfg = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.7,
                    avg_non_ignore=avg_non_ignore)
    head = LinearSegHead([8], num_classes=4, loss_decode=loss_cfg)
    logits = torch.randn(2, 4, 6, 7, requires_grad=True)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        lab = torch.randint(0, 4, (1, 30, 33))
        lab[:, :4] = 255
        s.gt_sem_seg = PixelData(data=lab)
        samples.append(s)
    fused = head.loss_by_feat(logits, samples)
    ref = super(LinearSegHead, head).loss_by_feat(logits, samples)
    assert set(fused) == set(ref) == {'loss_ce', 'acc_seg'}
    torch.testing.assert_close(fused['loss_ce'], ref['loss_ce'], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused['acc_seg'].float(), ref['acc_seg'].float().reshape(()))
    g1, = torch.autograd.grad(fused['loss_ce'], logits)
    g2, = torch.autograd.grad(ref['loss_ce'], logits)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-7)
