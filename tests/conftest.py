"""Shared fixtures: tiny nets (width 4, depth 2) and 16 px images, all seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

TINY_NET = {"base_channels": 4, "depth": 2}


class ImagesDataset(torch.utils.data.Dataset):
    """Items are (image tensor, label), as many torchvision-style datasets give."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return torch.from_numpy(self.images[index]), 0


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture
def square_defects() -> tuple[np.ndarray, np.ndarray]:
    """24 noisy 16 px images; the first 8 carry a bright 4x4 square marked in the mask."""
    rng = np.random.default_rng(0)
    images = (0.4 + 0.1 * rng.standard_normal((24, 1, 16, 16))).clip(0, 1).astype(np.float32)
    masks = np.zeros((24, 16, 16), dtype=np.uint8)
    for index in range(8):
        row, col = rng.integers(0, 12, size=2)
        masks[index, row : row + 4, col : col + 4] = 1
        images[index, 0, row : row + 4, col : col + 4] = 0.95
    return images, masks
