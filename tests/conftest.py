"""Shared test settings: deterministic, single-threaded-friendly, never touching a hub."""
import os

import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU (tests/test_cuda.py)')


def pytest_collection_modifyitems(config, items):
    """Skip ``cuda`` tests without a GPU. ``DENSEDINO_CUDA_TEST_DEVICE=cpu`` runs their code on
    the CPU instead (CPU against CPU: it checks the tests themselves, not the GPU path)."""
    if torch.cuda.is_available() or os.environ.get('DENSEDINO_CUDA_TEST_DEVICE') == 'cpu':
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)
