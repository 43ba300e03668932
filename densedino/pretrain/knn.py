"""Weighted k-NN classification of L2-normalised features (the DINO k-NN protocol).

Each test feature votes with its ``k`` most cosine-similar training features; a neighbour of
similarity ``s`` adds ``exp(s / T)`` to its class (``T`` = 0.07, k = 20 in DINO and DINOv2). The
features are the teacher's class tokens. Everything is torch on the features' device; test
features are processed in chunks so the similarity matrix never exceeds ``chunk x N_train``.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor,
                test_features: torch.Tensor, *, k: int = 20, temperature: float = 0.07,
                num_classes: Optional[int] = None, chunk: int = 1024) -> torch.Tensor:
    """Class scores (N_test, C) of a temperature-weighted k-NN vote.

    Args:
        train_features: (N_train, D) features (normalised here).
        train_labels: (N_train,) integer labels in ``[0, num_classes)``.
        test_features: (N_test, D) features (normalised here).
        k: Neighbours per test feature (capped at N_train).
        temperature: Vote weight ``exp(similarity / temperature)``.
        num_classes: Number of classes; default ``max(train_labels) + 1``.
        chunk: Test features per similarity block.

    Returns:
        (N_test, C) summed vote weights; ``argmax(-1)`` is the prediction.

    Raises:
        ValueError: Mismatched shapes, empty inputs, labels out of range, k < 1 or T <= 0.
    """
    labels, num_classes = _checked(train_features, train_labels, test_features, k, temperature,
                                   num_classes)
    return _votes(_neighbours(train_features, test_features, k, chunk), labels, k,
                  temperature, num_classes)


def _checked(train_features: torch.Tensor, train_labels: torch.Tensor,
             test_features: torch.Tensor, k: int, temperature: float,
             num_classes: Optional[int]) -> Tuple[torch.Tensor, int]:
    """Validate the inputs; the labels as long and the number of classes."""
    if train_features.ndim != 2 or test_features.ndim != 2 \
            or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(f'features must be (N, D) with the same D, got '
                         f'{tuple(train_features.shape)} and {tuple(test_features.shape)}')
    if train_labels.shape != (train_features.shape[0],):
        raise ValueError(f'train_labels must be ({train_features.shape[0]},), got '
                         f'{tuple(train_labels.shape)}')
    if train_features.shape[0] == 0:
        raise ValueError('k-NN needs at least one training feature')
    if k < 1 or temperature <= 0:
        raise ValueError(f'need k >= 1 and temperature > 0, got k={k}, temperature={temperature}')
    labels = train_labels.long()
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f'train_labels must be in [0, {num_classes}), got '
                         f'[{int(labels.min())}, {int(labels.max())}]')
    return labels, num_classes


def _neighbours(train_features: torch.Tensor, test_features: torch.Tensor, k: int,
                chunk: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities and indices of the ``k`` nearest training features, best first."""
    train = F.normalize(train_features.float(), dim=1)
    k = min(k, train.shape[0])
    sims, idx = [], []
    for start in range(0, test_features.shape[0], chunk):
        test = F.normalize(test_features[start:start + chunk].float(), dim=1)
        s, i = (test @ train.T).topk(k, dim=1)
        sims.append(s)
        idx.append(i)
    if not sims:
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    return torch.cat(sims), torch.cat(idx)


def _votes(neighbours: Tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor, k: int,
           temperature: float, num_classes: int) -> torch.Tensor:
    """Summed ``exp(sim / T)`` per class over the first ``k`` neighbours."""
    sims, idx = (t[:, :k] for t in neighbours)
    votes = torch.zeros(sims.shape[0], num_classes, device=sims.device)
    return votes.scatter_add_(1, labels.to(idx.device)[idx], (sims / temperature).exp())


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor,
                 test_features: torch.Tensor, test_labels: torch.Tensor, *,
                 ks: Sequence[int] = (10, 20), temperature: float = 0.07) -> Dict[str, float]:
    """Top-1 accuracy (percent) of the weighted vote for each ``k``: ``{'knn_top1_k20': ...}``."""
    if test_labels.shape != (test_features.shape[0],):
        raise ValueError(f'test_labels must be ({test_features.shape[0]},), got '
                         f'{tuple(test_labels.shape)}')
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    labels, _ = _checked(train_features, train_labels, test_features, min(ks), temperature,
                         num_classes)
    # one neighbour search for the largest k; smaller k use its first columns
    neighbours = _neighbours(train_features, test_features, max(ks), chunk=1024)
    out = {}
    for k in ks:
        pred = _votes(neighbours, labels, k, temperature, num_classes).argmax(1)
        correct = (pred.cpu() == test_labels.long().cpu()).float()
        out[f'knn_top1_k{k}'] = 100.0 * correct.mean().item()
    return out
