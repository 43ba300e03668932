"""The weighted k-NN monitor: votes exp(sim / T) over the top-k cosine neighbours."""
import math

import pytest
import torch

from densedino.pretrain.knn import knn_accuracy, knn_predict


def test_votes_are_exp_similarity_over_temperature_hand_case():
    # Training points on the unit circle at 0, 90 and 180 degrees, classes 0, 1, 1.
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[2.0, 2.0]])  # 45 degrees; scale must not matter
    scores = knn_predict(train, labels, test, k=2, temperature=0.5)
    s = math.sqrt(0.5)  # cos 45: the two nearest are at 0 and 90 degrees
    expected = torch.tensor([[math.exp(s / 0.5), math.exp(s / 0.5)]])
    torch.testing.assert_close(scores, expected)
    scores3 = knn_predict(train, labels, test, k=3, temperature=0.5)
    # the point at 180 degrees (cos 135 = -s) adds exp(-s / 0.5) to class 1
    assert scores3[0, 1].item() == pytest.approx(math.exp(s / 0.5) + math.exp(-s / 0.5))


def test_accuracy_on_separable_clusters_and_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 5
    train_labels = torch.arange(4).repeat_interleave(25)
    test_labels = torch.arange(4).repeat_interleave(10)
    train = centres[train_labels] + torch.randn(100, 16, generator=g)
    test = centres[test_labels] + torch.randn(40, 16, generator=g)
    assert knn_accuracy(train, train_labels, test, test_labels)['knn_top1_k20'] == 100.0
    noise = knn_accuracy(torch.randn(100, 16, generator=g), train_labels,
                         torch.randn(40, 16, generator=g), test_labels, ks=(20,))
    assert noise['knn_top1_k20'] < 60.0


def test_chunking_does_not_change_scores():
    g = torch.Generator().manual_seed(1)
    train, test = torch.randn(50, 8, generator=g), torch.randn(33, 8, generator=g)
    labels = torch.randint(0, 5, (50,), generator=g)
    torch.testing.assert_close(knn_predict(train, labels, test, chunk=7),
                               knn_predict(train, labels, test, chunk=1000))


def test_bad_inputs():
    with pytest.raises(ValueError, match='same D'):
        knn_predict(torch.randn(4, 3), torch.zeros(4), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r'train_labels must be \(4,\)'):
        knn_predict(torch.randn(4, 3), torch.zeros(3), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r'in \[0, 2\)'):
        knn_predict(torch.randn(2, 3), torch.tensor([0, 5]), torch.randn(1, 3), num_classes=2)
    with pytest.raises(ValueError, match='k >= 1'):
        knn_predict(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(1, 3), k=0)


def test_accuracy_for_several_k_equals_separate_votes():
    """One neighbour search serves every k: same predictions as a vote per k."""
    g = torch.Generator().manual_seed(2)
    train, test = torch.randn(60, 8, generator=g), torch.randn(25, 8, generator=g)
    train_y = torch.randint(0, 4, (60,), generator=g)
    test_y = torch.randint(0, 4, (25,), generator=g)
    acc = knn_accuracy(train, train_y, test, test_y, ks=(1, 5, 20))
    for k in (1, 5, 20):
        pred = knn_predict(train, train_y, test, k=k, num_classes=4).argmax(1)
        expected = 100.0 * (pred == test_y).float().mean().item()
        assert acc[f'knn_top1_k{k}'] == pytest.approx(expected)
