"""SigLoss and GradientLoss: hand-computed values, warm-up, masking, pooling over the batch."""
import math
import uuid

import pytest
import torch
from mmengine.logging import MessageHub

import densedino  # noqa: F401
from densedino.models.losses import GradientLoss, SigLoss
from densedino.models.losses.depth import gradient_terms
from densedino.registry import MODELS


def fresh_hub(**info) -> MessageHub:
    """Make a new current MessageHub (as a runner does) holding ``info``."""
    hub = MessageHub.get_instance(f'test-{uuid.uuid4().hex}')
    for key, value in info.items():
        hub.update_info(key, value)
    return hub


@pytest.fixture(autouse=True)
def _no_runner():
    fresh_hub()  # no 'loop_stage': losses count their own calls


def ramp_case():
    """gt = 1 everywhere, pred = exp([0, 1, 2, 3]): g = log pred - log gt = [0, 1, 2, 3] (eps 0)."""
    gt = torch.ones(1, 1, 2, 2)
    pred = torch.tensor([0.0, 1.0, 2.0, 3.0]).exp().view(1, 1, 2, 2)
    return pred, gt


def random_case(b=2, h=9, w=11, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, 1, h, w, generator=gen) * 9 + 0.5
    pred = torch.rand(b, 1, h, w, generator=gen) * 9 + 0.5
    valid = torch.rand(b, 1, h, w, generator=gen) > 0.3
    return pred, gt, valid


# ----------------------------------------------------------------------------- SigLoss
def test_sigloss_dinov2_hand_value():
    pred, gt = ramp_case()
    # mean(g) = 1.5; unbiased var = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
    # sqrt(5/3 + 0.15 * 1.5^2) = sqrt(1.666667 + 0.3375) = 1.4156859
    loss = SigLoss(eps=0.0)(pred, gt, gt > 0)
    assert loss.item() == pytest.approx(1.4156859, rel=1e-6)
    assert SigLoss(eps=0.0, loss_weight=10)(pred, gt).item() == pytest.approx(14.156859, rel=1e-6)


def test_sigloss_default_eps_is_added_before_the_log():
    # g = [log(1.999 + 1e-3) - log(0.999 + 1e-3), log(1) - log(1)] = [ln 2, 0]
    # mean = ln2 / 2 = 0.3465736; unbiased var = 2 * (ln2 / 2)^2 = 0.2402265
    # sqrt(0.2402265 + 0.15 * 0.1201133) = 0.5081766
    pred = torch.tensor([1.999, 0.999]).view(1, 1, 1, 2)
    gt = torch.full((1, 1, 1, 2), 0.999)
    assert SigLoss()(pred, gt).item() == pytest.approx(0.5081766, rel=1e-5)


def test_sigloss_lambda_variant_hand_value_and_formula():
    pred, gt = ramp_case()
    # mean(g^2) = (0 + 1 + 4 + 9) / 4 = 3.5; 3.5 - 0.5 * 1.5^2 = 2.375; sqrt = 1.5411035
    loss = SigLoss(variant='lambda', eps=0.0)(pred, gt)
    assert loss.item() == pytest.approx(1.5411035, rel=1e-6)
    # lambd = 1: the biased standard deviation of g, sqrt(3.5 - 2.25) = 1.1180340
    assert SigLoss(variant='lambda', lambd=1.0, eps=0.0)(pred, gt).item() == pytest.approx(
        1.1180340, rel=1e-6)
    pred, gt, valid = random_case()
    d = torch.log(pred[valid] + 1e-3) - torch.log(gt[valid] + 1e-3)
    expected = torch.sqrt((d ** 2).mean() - 0.3 * d.mean() ** 2)
    torch.testing.assert_close(SigLoss(variant='lambda', lambd=0.3)(pred, gt, valid), expected)


def test_sigloss_dinov2_matches_torch_var_formula():
    pred, gt, valid = random_case()
    g = torch.log(pred[valid] + 1e-3) - torch.log(gt[valid] + 1e-3)
    expected = torch.sqrt(torch.var(g) + 0.15 * g.mean() ** 2)  # torch.var: unbiased
    torch.testing.assert_close(SigLoss()(pred, gt, valid), expected)


def test_warm_up_follows_the_runner_iteration():
    pred, gt = ramp_case()
    loss = SigLoss(eps=0.0, warm_up=True, warm_iter=100)
    hub = fresh_hub(loop_stage='train', iter=99)
    # warm-up: sqrt(0.15 * 1.5^2) = sqrt(0.3375) = 0.5809475
    for _ in range(3):  # the call counter does not matter while a runner trains
        assert loss(pred, gt).item() == pytest.approx(0.5809475, rel=1e-6)
    hub.update_info('iter', 100)
    assert loss(pred, gt).item() == pytest.approx(1.4156859, rel=1e-6)
    hub.update_info('iter', 5)  # e.g. resumed at iteration 5: back in warm-up
    assert loss(pred, gt).item() == pytest.approx(0.5809475, rel=1e-6)
    assert 'calls' not in loss.state_dict() and not list(loss.state_dict())


def test_warm_up_counts_calls_without_a_running_loop():
    pred, gt = ramp_case()
    fresh_hub(iter=7)  # a finished runner leaves 'iter' but no 'loop_stage'
    loss = SigLoss(eps=0.0, warm_up=True, warm_iter=3)
    values = [loss(pred, gt).item() for _ in range(5)]
    assert values[:3] == pytest.approx([0.5809475] * 3, rel=1e-6)
    assert values[3:] == pytest.approx([1.4156859] * 2, rel=1e-6)
    no_warm = SigLoss(eps=0.0, warm_up=False, warm_iter=3)
    assert no_warm(pred, gt).item() == pytest.approx(1.4156859, rel=1e-6)


@pytest.mark.parametrize('variant', ['dinov2', 'lambda'])
def test_sigloss_ignores_invalid_pixels_and_has_finite_gradients(variant):
    pred, gt, valid = random_case()
    pred.requires_grad_()
    loss = SigLoss(variant=variant)(pred, gt, valid)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[~valid] == 0).all() and (pred.grad[valid] != 0).any()
    pred2, gt2 = pred.detach().clone(), gt.clone()
    pred2[~valid], gt2[~valid] = 123.0, 0.0
    torch.testing.assert_close(SigLoss(variant=variant)(pred2, gt2, valid), loss.detach())


def test_sigloss_perfect_prediction_has_zero_gradient():
    _, gt, valid = random_case()
    pred = gt.clone().requires_grad_()
    loss = SigLoss()(pred, gt, valid)
    loss.backward()
    assert loss.item() < 1e-5
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize('loss_fn', [SigLoss(), SigLoss(variant='lambda'), GradientLoss()])
def test_no_valid_pixel_gives_a_zero_that_keeps_the_graph(loss_fn):
    pred = torch.rand(2, 1, 5, 6).requires_grad_()
    loss = loss_fn(pred, torch.zeros(2, 1, 5, 6), torch.zeros(2, 1, 5, 6, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert (pred.grad == 0).all()


@pytest.mark.parametrize('variant', ['dinov2', 'lambda'])
def test_sigloss_pools_the_batch(variant):
    pred, gt, valid = random_case(b=2)
    batch = SigLoss(variant=variant)(pred, gt, valid)
    # one image made of both images side by side has the same valid pixels
    pooled = SigLoss(variant=variant)(torch.cat([pred[0:1], pred[1:2]], dim=-1),
                                      torch.cat([gt[0:1], gt[1:2]], dim=-1),
                                      torch.cat([valid[0:1], valid[1:2]], dim=-1))
    torch.testing.assert_close(batch, pooled)
    per_image = [SigLoss(variant=variant)(pred[i:i + 1], gt[i:i + 1], valid[i:i + 1])
                 for i in range(2)]
    assert abs(batch.item() - sum(per_image).item() / 2) > 1e-4  # not a mean over images


def test_losses_build_from_the_registry_and_validate_arguments():
    loss = MODELS.build(dict(type='SigLoss', loss_weight=10, warm_up=True, loss_name='loss_sig'))
    assert isinstance(loss, SigLoss) and loss.loss_name == 'loss_sig'
    assert MODELS.build(dict(type='GradientLoss')).loss_name == 'loss_grad'
    assert SigLoss().loss_name == 'loss_depth'
    with pytest.raises(ValueError, match="variant must be one of .* got 'silog'"):
        SigLoss(variant='silog')
    with pytest.raises(ValueError, match='lambd must be in \\[0, 1\\], got 1.5'):
        SigLoss(variant='lambda', lambd=1.5)
    with pytest.raises(ValueError, match="warm_up applies to variant='dinov2' only"):
        SigLoss(variant='lambda', warm_up=True)
    with pytest.raises(ValueError, match="must start with 'loss_'.*'sigloss'"):
        SigLoss(loss_name='sigloss')
    with pytest.raises(ValueError, match='offset must be >= 1, got 0'):
        GradientLoss(offset=0)
    with pytest.raises(ValueError, match=r'pred \(1, 1, 2, 2\) and gt \(1, 1, 2, 3\) differ'):
        SigLoss()(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 3))


# ----------------------------------------------------------------------------- GradientLoss
def test_gradient_loss_hand_value_row_and_column():
    # gt = 1, pred = exp([0, 1, 3]) -> d = [0, 1, 3] (eps 0), all valid
    # stride 1: |1 - 0| + |3 - 1| = 3 over 3 pixels -> 1.0
    # stride 2: d = [0, 3]: |3 - 0| = 3 over 2 pixels -> 1.5
    # strides 4, 8: d = [0], no pair, 1 pixel -> 0
    # total 2.5 (scales are summed)
    d = torch.tensor([0.0, 1.0, 3.0])
    row, col = d.exp().view(1, 1, 1, 3), d.exp().view(1, 1, 3, 1)  # width 1 for the column
    loss = GradientLoss(eps=0.0)
    assert loss(row, torch.ones_like(row)).item() == pytest.approx(2.5, rel=1e-6)
    assert loss(col, torch.ones_like(col)).item() == pytest.approx(2.5, rel=1e-6)
    # middle pixel invalid: stride 1 has no valid pair (0 over 2 pixels); stride 2 still 3 / 2
    valid = torch.tensor([True, False, True]).view(1, 1, 1, 3)
    assert loss(row, torch.ones_like(row), valid).item() == pytest.approx(1.5, rel=1e-6)


def test_gradient_loss_toolbox_geometry_matches_its_formula_on_one_image():
    pred, gt, valid = random_case(b=1, h=13, w=17)
    loss = GradientLoss(strides=(1, 2, 4, 6), offset=2)(pred, gt, valid)
    # the toolbox's 2-D computation, scale by scale
    expected = 0.0
    for s in (1, 2, 4, 6):
        p, t, m = pred[0, 0, ::s, ::s], gt[0, 0, ::s, ::s], valid[0, 0, ::s, ::s].float()
        d = (torch.log(p + 1e-3) - torch.log(t + 1e-3)) * m
        v = (d[:-2, :] - d[2:, :]).abs() * m[:-2, :] * m[2:, :]
        h = (d[:, :-2] - d[:, 2:]).abs() * m[:, :-2] * m[:, 2:]
        expected = expected + (v.sum() + h.sum()) / m.sum()
    torch.testing.assert_close(loss, expected)


def test_gradient_loss_is_zero_for_a_scaled_prediction():
    _, gt, valid = random_case()
    assert GradientLoss(eps=0.0)(2.7 * gt, gt, valid).item() < 1e-5
    assert GradientLoss()(0.5 * gt, gt, valid).item() < 1e-3  # eps breaks exact invariance
    other, _, _ = random_case(seed=1)
    assert GradientLoss()(other, gt, valid).item() > 0.1


def test_gradient_loss_batch_equals_pooled_images_and_ignores_invalid_pixels():
    pred, gt, valid = random_case(b=2, h=8, w=16)
    loss = GradientLoss()
    batch = loss(pred, gt, valid)
    # images side by side with 16 invalid columns between them: at every stride (1, 2, 4, 8)
    # the second image stays aligned and no gradient pair crosses the gap
    gap = torch.zeros(1, 1, 8, 16)
    pooled = loss(torch.cat([pred[0:1], gap + 1, pred[1:2]], dim=-1),
                  torch.cat([gt[0:1], gap, gt[1:2]], dim=-1),
                  torch.cat([valid[0:1], gap.bool(), valid[1:2]], dim=-1))
    torch.testing.assert_close(batch, pooled)
    # the same from the per-image terms: sums and counts add over images before dividing
    sums, counts = gradient_terms(pred, gt, valid, strides=(1, 2, 4, 8), offset=1, eps=1e-3)
    torch.testing.assert_close(batch, (sums.sum(0) / counts.sum(0)).sum())
    pred2, gt2 = pred.clone(), gt.clone()
    pred2[~valid], gt2[~valid] = 50.0, 0.0
    torch.testing.assert_close(loss(pred2, gt2, valid), batch)


def test_gradient_loss_gradients_are_finite_for_batch_size_one():
    pred, gt, valid = random_case(b=1, h=5, w=1)
    pred.requires_grad_()
    loss = GradientLoss(loss_weight=0.5)(pred, gt, valid)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert (pred.grad[~valid] == 0).all()


def test_pooled_losses_are_not_nan_for_one_valid_pixel():
    pred, gt = torch.full((1, 1, 2, 2), 2.0), torch.ones(1, 1, 2, 2)
    valid = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    valid[0, 0, 0, 0] = True
    # one pixel: var = 0, g = log(2.001 / 1.001); sqrt(0.15 g^2) = sqrt(0.15) * g
    g = math.log(2.001 / 1.001)
    assert SigLoss()(pred, gt, valid).item() == pytest.approx(math.sqrt(0.15) * g, rel=1e-5)
    assert GradientLoss()(pred, gt, valid).item() == 0.0
