"""Shared fixtures: tiny nets (width 4, depth 2) and 16 px images, all seeded.

Also the labelling-session helpers the session test modules share: the tiny model settings,
a pool folder of generated images with their true masks, a session on it, and the human who
answers a round with the true masks.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sid4ds.datasets import make_defect_images
from sid4ds.session import LabelingSession

TINY_NET = {"base_channels": 4, "depth": 2}
TINY_SCORER = {"base_channels": 4, "depth": 2, "patch_size": 4, "n_blocks": 4, "max_epochs": 2}
TINY_SEGMENTER = {"base_channels": 4, "depth": 2, "max_epochs": 2}


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
def steady_clock(monkeypatch):
    """Every timed pass takes the same time: the estimate's arithmetic, not this machine's
    load (the suite may share its cores), decides a comparison of two estimates."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(time, "perf_counter", lambda: 0.01 * next(ticks))


@pytest.fixture
def cpu_units(monkeypatch):
    """``cpu_units(True)`` makes torch report AMX tiles on the CPU (what precision="auto"
    asks), ``cpu_units(False)`` none."""

    def report(has_amx: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: has_amx,
                            raising=False)

    return report


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


# ---------------------------------------------------------------------- labelling sessions
def write_pool(folder: Path) -> dict[str, np.ndarray]:
    """40 generated 16 px images as PNGs (partNN.png) in ``folder``; their true masks by
    name."""
    X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.2,
                                  random_state=0)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for index, image in enumerate(X):
        name = f"part{index:02d}"
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / f"{name}.png")
        truth[name] = masks[index]
    return truth


@pytest.fixture(scope="module")
def pool_folder(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """40 generated 16 px images as PNGs (partNN.png) and their true masks by name."""
    folder = tmp_path_factory.mktemp("pool") / "images"
    return folder, write_pool(folder)


def new_session(tmp_path: Path, images, seed: int = 0, **options) -> LabelingSession:
    return LabelingSession.create(tmp_path / "session", images, seed=seed,
                                  scorer_params=TINY_SCORER, segmenter_params=TINY_SEGMENTER,
                                  **options)


def write_masks(folder: Path, names, truth: dict[str, np.ndarray], suffix: str = "") -> Path:
    """The human: a PNG mask (0/255) per name, from the true masks."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(truth[name] * 255).save(folder / f"{name}{suffix}.png")
    return folder


def answer_round(session: LabelingSession, record: dict, truth, folder: Path) -> dict:
    return session.import_masks(write_masks(folder, record["selected"], truth))


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE, from its definition: column-major runs, zeros first.

    A reference written from the format's definition, to check that uncompressed RLE (as
    other tools write it) is still read.
    """
    flat = mask.T.ravel()
    bounds = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], bounds, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def save_gray(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


@pytest.fixture
def asked(tmp_path, pool_folder):
    """A session whose first round asked for 4 images."""
    images, truth = pool_folder
    session = new_session(tmp_path, images)
    return session, session.query(n_label=4), truth


def count_scored(monkeypatch, cls, method: str) -> list[int]:
    """Count the images passed to ``cls.method(images, ...)``, a per-chunk scoring method
    (e.g. ``ReconstructionScorer.msmr_chunk``); the count is the list's one item."""
    scored = [0]
    original = getattr(cls, method)

    def counted(self, images, *args, **kwargs):
        scored[0] += len(images)
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    return scored
