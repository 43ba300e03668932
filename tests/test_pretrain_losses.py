"""DINOHead and the pretraining losses against hand-computed cases and the published formulas."""
import math

import pytest
import torch
import torch.nn.functional as F

from densedino.pretrain import (DINOHead, DINOLoss, GramLoss, KoLeoLoss,
                                downsample_gram_teacher_features, iBOTPatchLoss,
                                masked_patch_weights, sinkhorn_knopp)

# ---------------------------------------------------------------- DINO loss


def _reference_dino(student, teacher_probs, temp=0.1):
    terms = []
    for t, p in enumerate(teacher_probs):
        for s, logits in enumerate(student):
            if s == t:
                continue
            for b in range(logits.shape[0]):
                q = torch.softmax(logits[b].double() / temp, dim=-1)
                terms.append(-(p[b].double() * q.log()).sum())
    return torch.stack(terms).mean()


def test_dino_loss_matches_double_loop():
    k, b = 7, 3
    student = [torch.randn(b, k) for _ in range(5)]  # 2 global + 3 local
    teacher = [torch.softmax(torch.randn(b, k), -1) for _ in range(2)]
    loss = DINOLoss(k)(student, teacher)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), _reference_dino(student, teacher), rtol=1e-5,
                               atol=1e-6)


def test_dino_loss_term_count_and_uniform_value():
    k, b = 16, 2
    loss_fn = DINOLoss(k)
    student = [torch.zeros(b, k) for _ in range(10)]
    teacher = [torch.softmax(torch.randn(b, k), -1) for _ in range(2)]
    torch.testing.assert_close(loss_fn(student, teacher), torch.tensor(math.log(k)))
    # one local view differs: it appears in 2 of the 18 terms, the other 16 are log(K)
    student[5] = torch.randn(b, k) * 3
    reference = (loss_fn.cross_entropy(student[5], teacher[0]).mean()
                 + loss_fn.cross_entropy(student[5], teacher[1]).mean() + 16 * math.log(k)) / 18
    torch.testing.assert_close(loss_fn(student, teacher), reference)


def test_dino_loss_fp16_inputs_computed_in_fp32():
    student = [torch.randn(2, 8).half() for _ in range(3)]
    teacher = [torch.softmax(torch.randn(2, 8), -1).half() for _ in range(2)]
    assert DINOLoss(8)(student, teacher).dtype == torch.float32


def test_dino_loss_rejects_single_view():
    with pytest.raises(ValueError, match='need >= 2 student views'):
        DINOLoss(4)([torch.zeros(1, 4)], [torch.ones(1, 4) / 4])


def _dinov2_official_dino(global_logits, local_logits, teacher_probs, temp=0.1):
    """DINOv2's training-code arithmetic for 2 global crops: the local loss sums the batch-mean
    cross-entropy over (local student, teacher) pairs; the global loss is the batch mean over the
    2B rows of the global student against the swapped teacher targets, times 2; both are divided
    by (n_global - 1) n_global + max(n_local n_global, 1)."""
    n_global, n_local = 2, len(local_logits)
    divisor = (n_global - 1) * n_global + max(n_local * n_global, 1)

    def ce(logits, probs):  # (B,) cross-entropy of softmax(logits / temp) against probs
        return -(probs.double() * torch.log_softmax(logits.double() / temp, dim=-1)).sum(-1)

    local = sum(ce(s, t).mean() for s in local_logits for t in teacher_probs)
    swapped = torch.cat([teacher_probs[1], teacher_probs[0]])
    global_ = ce(torch.cat(global_logits), swapped).mean() * 2
    return (local + global_) / divisor


@pytest.mark.parametrize('n_local', [0, 8])
def test_dino_loss_normalisation_matches_dinov2_with_and_without_local_crops(n_local):
    k, b = 11, 3
    gen = torch.Generator().manual_seed(n_local)
    global_logits = [torch.randn(b, k, generator=gen) for _ in range(2)]
    local_logits = [torch.randn(b, k, generator=gen) for _ in range(n_local)]
    teacher = [torch.softmax(torch.randn(b, k, generator=gen), -1) for _ in range(2)]
    student = [x.clone().requires_grad_(True) for x in global_logits + local_logits]
    loss = DINOLoss(k)(student, teacher)
    ref_student = [x.double().requires_grad_(True) for x in global_logits + local_logits]
    ref = _dinov2_official_dino(ref_student[:2], ref_student[2:], teacher)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    loss.backward()
    ref.backward()
    for got, want in zip(student, ref_student):
        torch.testing.assert_close(got.grad.double(), want.grad, rtol=1e-4, atol=1e-7)
    # the mean over pairs: the same with local crops, 3/2 of DINOv2's value without
    pairs = DINOLoss(k, normalization='pairs')(student, teacher).double()
    torch.testing.assert_close(pairs, ref * (1.5 if n_local == 0 else 1.0), rtol=1e-5, atol=1e-6)


def test_dino_loss_normalisation_option_is_checked():
    assert DINOLoss(4).normalization == 'dinov2'
    with pytest.raises(ValueError, match="normalization must be one of .*got 'mean'"):
        DINOLoss(4, normalization='mean')


def test_center_ema_and_centered_softmax():
    loss_fn = DINOLoss(3, center_momentum=0.9)
    assert 'center' in loss_fn.state_dict()
    t1 = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    t2 = torch.tensor([[0.0, 0.0, 6.0], [0.0, 0.0, 2.0]])
    loss_fn.update_center([t1, t2])  # pooled mean (1, 1, 3) -> 0.1 x mean
    torch.testing.assert_close(loss_fn.center, torch.tensor([[0.1, 0.1, 0.3]]))
    loss_fn.update_center(torch.tensor([[1.0, 1.0, 1.0]]))
    torch.testing.assert_close(loss_fn.center, torch.tensor([[0.19, 0.19, 0.37]]))
    logits = torch.randn(4, 3)
    expected = torch.softmax((logits - loss_fn.center) / 0.04, -1)
    torch.testing.assert_close(loss_fn.softmax_center_teacher(logits, 0.04), expected)


def test_center_survives_state_dict_round_trip():
    a, b = DINOLoss(5), DINOLoss(5)
    a.update_center(torch.randn(3, 5))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.center, b.center)


# ---------------------------------------------------------------- Sinkhorn-Knopp


def test_sinkhorn_columns_are_distributions_and_rows_equipartitioned():
    b, k = 6, 10
    logits = torch.randn(b, k)
    q = DINOLoss(k).sinkhorn_knopp_teacher(logits, teacher_temp=1.0, n_iterations=3)
    assert q.shape == (b, k) and q.dtype == torch.float32 and (q >= 0).all()
    torch.testing.assert_close(q.sum(dim=1), torch.ones(b))
    # after enough iterations every prototype gets the same total mass B / K
    q = sinkhorn_knopp(logits, teacher_temp=1.0, n_iterations=100)
    torch.testing.assert_close(q.sum(dim=0), torch.full((k,), b / k), atol=1e-4, rtol=0)
    # 3 iterations already bring the prototype masses close to B / K
    q3 = sinkhorn_knopp(logits, teacher_temp=1.0, n_iterations=3)
    assert (q3.sum(dim=0) - b / k).abs().max() < 0.05


def test_sinkhorn_shift_invariant_and_stable_at_low_temperature():
    logits = torch.randn(4, 12)
    q = sinkhorn_knopp(logits, 0.07)
    torch.testing.assert_close(sinkhorn_knopp(logits + 3.0, 0.07), q)
    # exp(1000 / 0.04) overflows without the max shift
    assert torch.isfinite(sinkhorn_knopp(logits + 1000.0, 0.04)).all()


def test_sinkhorn_one_iteration_by_hand_and_argument_errors():
    logits = torch.randn(3, 4)
    q = torch.exp(logits / 0.5).t()
    q = q / q.sum(dim=1, keepdim=True)  # every prototype the same mass
    expected = (q / q.sum(dim=0, keepdim=True)).t()  # every sample a distribution
    torch.testing.assert_close(sinkhorn_knopp(logits, 0.5, n_iterations=1), expected)
    with pytest.raises(ValueError, match='n_iterations must be >= 1, got 0'):
        sinkhorn_knopp(logits, 0.5, n_iterations=0)
    with pytest.raises(ValueError, match='teacher_temp must be > 0, got 0'):
        sinkhorn_knopp(logits, 0)


# ---------------------------------------------------------------- iBOT


def test_ibot_weights_each_masked_image_equally():
    masks = torch.zeros(3, 4, dtype=torch.bool)
    masks[0, 2] = True           # image 0: 1 masked patch
    masks[1, [0, 1, 3]] = True   # image 1: 3 masked patches; image 2 unmasked
    torch.testing.assert_close(masked_patch_weights(masks),
                               torch.tensor([1.0, 1 / 3, 1 / 3, 1 / 3]))
    k = 5
    loss_fn = iBOTPatchLoss(k)
    student = torch.randn(4, k)
    teacher = torch.softmax(torch.randn(4, k), -1)
    ce = -(teacher * F.log_softmax(student / 0.1, -1)).sum(-1)
    expected = (ce[0] + ce[1:].mean()) / 3  # divided by all 3 images, masked or not
    torch.testing.assert_close(loss_fn.forward_masked(student, teacher, masks), expected)
    torch.testing.assert_close(loss_fn(student, teacher, masks, n_images=6), expected / 2)


def test_ibot_one_patch_image_counts_as_much_as_three_patch_image():
    masks = torch.tensor([[True, False, False, False], [True, True, True, False]])
    k = 4
    teacher = torch.softmax(torch.randn(1, k), -1).expand(4, k)
    student = torch.randn(1, k).expand(4, k)  # same CE c at every masked patch
    c = -(teacher[0] * F.log_softmax(student[0] / 0.1, -1)).sum()
    torch.testing.assert_close(iBOTPatchLoss(k).forward_masked(student, teacher, masks), c)


def test_ibot_padded_rows_and_shape_errors():
    masks = torch.tensor([[True, True, False], [False, False, False]])
    k = 3
    student, teacher = torch.randn(5, k), torch.softmax(torch.randn(5, k), -1)
    weights = torch.cat([masked_patch_weights(masks), torch.zeros(3)])
    loss_fn = iBOTPatchLoss(k)
    padded = loss_fn.forward_masked(student, teacher, masks, 2, weights)
    torch.testing.assert_close(padded, loss_fn.forward_masked(student[:2], teacher[:2], masks))
    with pytest.raises(ValueError, match='5 logit rows but 2'):
        loss_fn.forward_masked(student, teacher, masks)


def test_ibot_center_is_per_prototype():
    loss_fn = iBOTPatchLoss(4, center_momentum=0.5)
    loss_fn.update_center(torch.tensor([[2.0, 0.0, 0.0, 4.0]]))
    torch.testing.assert_close(loss_fn.center, torch.tensor([[1.0, 0.0, 0.0, 2.0]]))


def test_a_batch_without_masked_patches_keeps_the_ibot_center():
    """No patch masked in the whole batch (likely with a few images per process): the center
    stays as it was; 0 / 0 used to make it NaN, and every later iBOT loss with it."""
    loss_fn = iBOTPatchLoss(4, center_momentum=0.5)
    loss_fn.update_center(torch.tensor([[2.0, 0.0, 0.0, 4.0]]))
    loss_fn.update_center(torch.zeros(0, 4))
    torch.testing.assert_close(loss_fn.center, torch.tensor([[1.0, 0.0, 0.0, 2.0]]))


# ---------------------------------------------------------------- KoLeo


def test_koleo_square_on_unit_circle_and_scale_invariance():
    angles = torch.tensor([0.0, 0.5, 1.0, 1.5]) * math.pi
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    expected = torch.tensor(-math.log(math.sqrt(2) + 1e-8))
    loss_fn = KoLeoLoss()
    torch.testing.assert_close(loss_fn(x), expected)
    torch.testing.assert_close(loss_fn(x * 7.5), expected)


def test_koleo_hand_case_and_crop_sum():
    # points at 0, 60 and 180 degrees: nearest distances 1, 1 and sqrt(3)
    angles = torch.tensor([0.0, 60.0, 180.0]) * math.pi / 180
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    expected = -(2 * math.log(1 + 1e-8) + math.log(math.sqrt(3) + 1e-8)) / 3
    loss_fn = KoLeoLoss()
    torch.testing.assert_close(loss_fn(x), torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(loss_fn(torch.stack([x, x])), torch.tensor(2 * expected))


def test_koleo_gradient_finite_with_duplicates():
    x = torch.randn(4, 8)
    x[1] = x[0]
    x.requires_grad_(True)
    KoLeoLoss()(x).backward()
    assert torch.isfinite(x.grad).all()


def _official_koleo(x, eps=1e-8):
    """DINOv2's KoLeo on (B, D), in the dtype of x: L2-normalise (norm clamped at eps), nearest
    neighbour = largest dot product with the diagonal filled with -1 (first index on ties),
    distance = torch's pairwise distance ||x_i - x_nn + eps|| (eps added to every coordinate),
    loss = -mean log(distance + eps)."""
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(eps)
    dots = (x @ x.t()).detach()
    dots.fill_diagonal_(-1.0)
    nearest = dots.argmax(dim=1)
    distances = (x - x[nearest] + eps).pow(2).sum(-1).sqrt()
    return -(distances + eps).log().mean()


def _koleo_batch(case: str) -> torch.Tensor:
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    if case == 'two duplicate pairs':
        x[1], x[3] = x[0], x[2]
    elif case == 'a triplicate and a pair':
        x[1], x[2], x[4] = x[0], x[0], x[3]
    else:  # scaled copies: powers of two, so normalising gives the same vector exactly
        x[1], x[5] = 4.0 * x[0], 0.25 * x[4]
    return x


@pytest.mark.parametrize('case', ['two duplicate pairs', 'a triplicate and a pair',
                                  'scaled copies'])
def test_koleo_duplicates_and_scaled_copies_match_the_official_distance(case):
    x = _koleo_batch(case)
    # duplicates sit eps sqrt(D) apart, not 0: the value is set by that distance
    ours = x.clone().requires_grad_(True)
    loss = KoLeoLoss()(ours)
    loss.backward()
    ref32 = x.clone().requires_grad_(True)  # the official arithmetic, fp32
    ref = _official_koleo(ref32)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(ours.grad, ref32.grad, rtol=1e-5, atol=1e-6)
    x64 = x.double().requires_grad_(True)  # the same formula in exact-ish arithmetic
    ref64 = _official_koleo(x64)
    ref64.backward()
    torch.testing.assert_close(loss.double(), ref64, rtol=1e-6, atol=0)
    # rows without a copy match the exact gradient too; on rows with copies the +-1/distance
    # contributions (~1e7) cancel, in fp32 as in the official code, leaving rounding
    plain = torch.tensor([not any(torch.equal(F.normalize(x[i], dim=0), F.normalize(x[j], dim=0))
                                  for j in range(len(x)) if j != i) for i in range(len(x))])
    assert plain.sum() >= 3
    torch.testing.assert_close(ours.grad[plain].double(), x64.grad[plain], rtol=1e-4, atol=1e-7)


def test_koleo_of_a_vector_and_its_copy_by_hand():
    # both nearest distances are ||(1e-8, ..., 1e-8)|| = 1e-8 sqrt(D), not 0
    x = torch.tensor([[3.0, -1.0, 2.0, 0.5]]).repeat(2, 1)
    expected = -math.log(1e-8 * math.sqrt(4) + 1e-8)  # 17.32 (distance 0 would give 18.42)
    torch.testing.assert_close(KoLeoLoss()(x), torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(KoLeoLoss()(x * torch.tensor([[1.0], [8.0]])),
                               torch.tensor(expected, dtype=torch.float32))


# ---------------------------------------------------------------- Gram


def test_gram_loss_zero_for_same_features_up_to_scale():
    feats = torch.randn(2, 6, 8)
    scale = torch.rand(2, 6, 1) + 0.5
    assert GramLoss()(feats, feats * scale).item() < 1e-10


def test_gram_loss_hand_value():
    s = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # orthogonal: G = I
    t = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # parallel: G = all ones
    # the two off-diagonal entries differ by 1 -> mean over 4 entries = 0.5
    student = s.clone().requires_grad_(True)
    loss = GramLoss()(student, t)
    torch.testing.assert_close(loss, torch.tensor(0.5))
    loss.backward()
    assert student.grad is not None


def _gram_reference(student, teacher, batch_gram, remove_negatives):
    """MSE of Gram matrices of L2-normalised patches: per image (B, N, N), or one (B N, B N)
    matrix over the batch; negative similarities set to 0 in both when removed."""
    s = student / student.norm(dim=-1, keepdim=True)
    t = teacher / teacher.norm(dim=-1, keepdim=True)
    if batch_gram:
        s, t = s.reshape(1, -1, s.shape[-1]), t.reshape(1, -1, t.shape[-1])
    gs, gt = s @ s.transpose(1, 2), t @ t.transpose(1, 2)
    if remove_negatives:
        gs, gt = torch.where(gs < 0, 0.0, gs), torch.where(gt < 0, 0.0, gt)
    return ((gs - gt) ** 2).mean()


@pytest.mark.parametrize('batch_gram', [False, True])
@pytest.mark.parametrize('remove_negatives', [False, True])
def test_gram_loss_options_match_the_formula(batch_gram, remove_negatives):
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(3, 5, 6, generator=gen)
    teacher = torch.randn(3, 5, 4, generator=gen)
    ours = student.clone().requires_grad_(True)
    loss = GramLoss(batch_gram=batch_gram, remove_negatives=remove_negatives)(ours, teacher)
    ref_student = student.double().requires_grad_(True)
    ref = _gram_reference(ref_student, teacher.double(), batch_gram, remove_negatives)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(ours.grad.double(), ref_student.grad, rtol=1e-4, atol=1e-7)


def test_gram_loss_options_change_what_is_compared():
    # two images, one patch pair each, identical within an image, opposite across images
    s = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[-1.0, 0.0], [-1.0, 0.0]]])
    t = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    # per image both Gram matrices are all ones: nothing to anchor
    assert GramLoss()(s, t).item() == 0.0
    # over the batch the student's cross-image block is -1, the teacher's +1: 8 of 16 entries
    # differ by 2 -> 8 * 4 / 16 = 2; with negatives removed they differ by 1 -> 0.5
    assert GramLoss(batch_gram=True)(s, t).item() == pytest.approx(2.0)
    assert GramLoss(batch_gram=True, remove_negatives=True)(s, t).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="batch_gram must be a bool, got 'yes'"):
        GramLoss(batch_gram='yes')


def test_gram_teacher_downsampling():
    feats = torch.randn(2, 8, 12, 5)
    out = downsample_gram_teacher_features(feats, (4, 6))
    assert out.shape == (2, 24, 5)
    const = torch.ones(1, 6, 4, 3) * torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(downsample_gram_teacher_features(const, (3, 2)),
                               torch.tensor([1.0, 2.0, 3.0]).expand(1, 6, 3))


# ---------------------------------------------------------------- DINOHead


def test_dino_head_shapes_norms_and_freezing():
    head = DINOHead(32, 64, hidden_dim=48, bottleneck_dim=16)
    x = torch.randn(3, 5, 32)
    out = head(x)
    assert out.shape == (3, 5, 64)
    assert out.abs().max() <= 1 + 1e-5  # cosine similarities
    assert head(x, no_last_layer=True).shape == (3, 5, 16)
    norms = head.last_layer.normalized_weight().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(64))
    out.sum().backward()
    assert head.last_layer.weight.grad is not None
    head.cancel_last_layer_gradients()
    assert all(p.grad is None for p in head.last_layer.parameters())
    assert all(p.grad is not None for p in head.mlp.parameters())
    weight = head.last_layer.weight.detach().clone()
    torch.optim.AdamW(head.parameters(), lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(head.last_layer.weight, weight)


def test_dino_head_default_layout_and_bn_option():
    head = DINOHead(24, 128, use_bn=True, n_layers=3)
    linears = [m for m in head.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(24, 2048), (2048, 2048),
                                                                   (2048, 256)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.mlp) == 2
    assert all(m.bias.abs().sum() == 0 for m in linears)
    assert head(torch.randn(4, 24)).shape == (4, 128)
    plain = DINOHead(8, 10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    assert isinstance(plain.last_layer, torch.nn.Linear) and plain.last_layer.bias is None


def test_dino_head_loads_official_weight_norm_keys():
    head = DINOHead(8, 10, hidden_dim=8, bottleneck_dim=4)
    state = head.state_dict()
    v = state.pop('last_layer.weight') * 3
    state['last_layer.weight_v'] = v
    state['last_layer.weight_g'] = torch.ones(10, 1)
    head.load_state_dict(state)
    torch.testing.assert_close(head.last_layer.weight, v)
    state['last_layer.weight_v'] = v
    state['last_layer.weight_g'] = torch.full((10, 1), 2.0)
    with pytest.raises(ValueError, match='must be all ones'):
        head.load_state_dict(state)
    # a trained g (DINOv2) loads into a plain last layer as the effective weight g v / |v|
    plain = DINOHead(8, 10, hidden_dim=8, bottleneck_dim=4, norm_last_layer=False)
    state['last_layer.weight_v'] = v
    state['last_layer.weight_g'] = torch.full((10, 1), 2.0)
    plain.load_state_dict(state)
    torch.testing.assert_close(plain.last_layer.weight, 2.0 * v / v.norm(dim=1, keepdim=True))


def test_dino_head_rejects_bad_sizes():
    with pytest.raises(ValueError, match='n_layers must be >= 1, got 0'):
        DINOHead(8, 10, n_layers=0)
