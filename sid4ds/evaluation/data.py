"""The benchmark's data: an ``.npz`` file, a folder of images and masks, or generated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_int
from sid4ds.datasets import load_image_folder, load_npz, make_defect_images
from sid4ds.metrics import defective_rows

__all__ = ["BenchmarkData", "load_dataset", "load_run_data"]


@dataclass
class BenchmarkData:
    """The images of a benchmark, their true masks, and how the test set may be held out.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_channels, height, width), float32
    masks : ndarray of shape (n_samples, height, width), uint8
    description : dict
        What was loaded, for the settings record.
    groups : ndarray of shape (n_samples,) or None
        Source group of each image (``group`` of an npz file), kept whole by the split.
    test_only : ndarray of shape (n_samples,), bool
        Extra defective images that are only ever held out (never in the pool).
    """

    X: np.ndarray
    masks: np.ndarray
    description: dict[str, Any]
    groups: np.ndarray | None = None
    test_only: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def load_dataset(
    *,
    npz: str | Path | None = None,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    mask_suffix: str = "",
    image_size: int | None = None,
    defect_fraction: float | None = None,
    n_samples: int = 1000,
    defect_ratio: float = 0.05,
    test_defective: int = 0,
    data_seed: int = 0,
) -> BenchmarkData:
    """Load the benchmark data: an ``.npz`` file, a folder of images and masks, or generated.

    Parameters
    ----------
    npz : str or path-like, optional
        An ``.npz`` file in the layout of :func:`sid4ds.datasets.load_npz`; its ``group``
        key, when present, gives the source groups.
    images : str or path-like, optional
        A folder of images (:func:`sid4ds.datasets.load_image_folder`).
    masks : str or path-like, optional
        Their masks' folder (with ``images``); without it the masks are looked for in
        ``images`` by ``mask_suffix``.
    mask_suffix : str, default=""
        Ending of mask names to ignore when matching them to images.
    image_size : int, optional
        Resize the loaded images to this side; the side of generated images (default 64).
    defect_fraction : float, optional
        With ``npz``: keep every normal image and a seeded subset of the defective ones so
        that they make up this share.
    n_samples, defect_ratio : int, float
        Generated data (neither ``npz`` nor ``images``): :func:`make_defect_images`.
    test_defective : int, default=0
        Defective images to add that are only ever held out (``test_only``), so that the
        IoU is measured on enough defects: generated afresh (another seed), or, with
        ``defect_fraction``, drawn from the defective images the subset left out (all of
        them when fewer). A folder of images gets none.
    data_seed : int, default=0
        Seeds the generated data, the ``defect_fraction`` subset and the extra test images.

    Returns
    -------
    data : BenchmarkData

    Examples
    --------
    >>> from sid4ds.evaluation import load_dataset
    >>> data = load_dataset(n_samples=20, image_size=16, defect_ratio=0.1, test_defective=5)
    >>> data.X.shape, int(data.test_only.sum()), data.description["n_defective"]
    ((25, 1, 16, 16), 5, 7)
    """
    if npz is not None and images is not None:
        raise ValueError("pass either npz (--npz) or images (--images), not both")
    if defect_fraction is not None and npz is None:
        raise ValueError(
            "defect_fraction (--defect-fraction) subsets an npz file; pass npz (--npz) too, or "
            "defect_ratio (--defect-ratio) for generated data"
        )
    if masks is not None and images is None:
        raise ValueError("masks (--masks) needs images (--images): the folder of the images")
    test_defective = check_int(test_defective, "test_defective", minimum=0)
    groups = None
    if npz is not None:
        X, truth, names = load_npz(npz, image_size=image_size)
        if truth is None:
            raise ValueError(
                f"{npz} has no 'masks' array; the benchmark needs the true masks to play the "
                f"labeller"
            )
        with np.load(npz, allow_pickle=False) as data:
            if "group" in data.files:
                groups = np.asarray(data["group"]).astype(str)
        keep = np.ones(len(X), dtype=bool)
        test_only = np.zeros(len(X), dtype=bool)
        if defect_fraction is not None:
            _, _, subset = load_npz(npz, defect_fraction=defect_fraction,
                                    random_state=data_seed)
            keep = np.isin(np.asarray(names), np.asarray(subset))
            left_out = np.flatnonzero(~keep)  # defective images the subset did not take
            chosen = make_rng((data_seed, 2)).permutation(left_out)[:test_defective]
            test_only[chosen] = True
            keep |= test_only
        X, truth, test_only = X[keep], truth[keep], test_only[keep]
        groups = None if groups is None else groups[keep]
        description = {"source": "npz", "path": str(npz), "defect_fraction": defect_fraction}
    elif images is not None:
        if masks is None and not mask_suffix:
            raise ValueError(
                "the benchmark needs the true masks to play the labeller: pass masks (--masks "
                "DIR), or mask_suffix (--mask-suffix) when they lie beside the images"
            )
        X, truth, _ = load_image_folder(images, masks if masks is not None else images,
                                        image_size=image_size, mask_suffix=mask_suffix)
        if truth is None:
            raise ValueError(f"no masks found for the images in {images}")
        test_only = np.zeros(len(X), dtype=bool)
        description = {"source": "image folder", "images": str(images),
                       "masks": str(masks if masks is not None else images),
                       "mask_suffix": mask_suffix}
    else:
        size = 64 if image_size is None else image_size
        X, truth = make_defect_images(n_samples=n_samples, image_size=size,
                                      defect_ratio=defect_ratio, random_state=data_seed)
        test_only = np.zeros(len(X), dtype=bool)
        if test_defective:
            X_extra, truth_extra = make_defect_images(
                n_samples=test_defective, image_size=size, defect_ratio=1.0,
                random_state=(data_seed, 1))
            X, truth = np.concatenate([X, X_extra]), np.concatenate([truth, truth_extra])
            test_only = np.concatenate([test_only, np.ones(test_defective, dtype=bool)])
        description = {"source": "make_defect_images", "n_samples": n_samples,
                       "defect_ratio": defect_ratio}
    is_defective = defective_rows(truth)
    description.update(data_seed=data_seed, image_size=image_size,
                       n_images=len(X), n_defective=int(is_defective.sum()),
                       n_test_only=int(test_only.sum()), image_shape=list(X.shape[1:]))
    return BenchmarkData(X=X, masks=truth, description=description, groups=groups,
                         test_only=test_only)


#: The arguments of a benchmark run that say which images it loaded.
DATA_ARGUMENTS = ("npz", "images", "masks", "mask_suffix", "image_size", "defect_fraction",
                  "n_samples", "defect_ratio", "data_seed", "test_defective", "iou")


def load_run_data(arguments: Mapping[str, Any]) -> BenchmarkData:
    """The images a benchmark run with these arguments loads.

    One rule for ``python -m sid4ds.evaluation`` and for training S again on a finished
    run's labels (:func:`~sid4ds.evaluation.retrain_folder`): the ``test_defective`` extra
    held-out images are loaded only when the run measures the IoU.

    Parameters
    ----------
    arguments : mapping
        The run's options by their long names (``vars(args)`` of the command line, or the
        ``"arguments"`` of its ``settings.json``); needs every key of
        :data:`DATA_ARGUMENTS`.

    Returns
    -------
    data : BenchmarkData

    Examples
    --------
    >>> from sid4ds.evaluation import load_run_data
    >>> arguments = dict(npz=None, images=None, masks=None, mask_suffix="", image_size=16,
    ...                  defect_fraction=None, n_samples=20, defect_ratio=0.1, data_seed=0,
    ...                  test_defective=5, iou=False)
    >>> len(load_run_data(arguments).X), len(load_run_data({**arguments, "iou": True}).X)
    (20, 25)
    """
    missing = [name for name in DATA_ARGUMENTS if name not in arguments]
    if missing:
        raise ValueError(
            f"the run's arguments lack {missing}; pass the \"arguments\" of a settings.json "
            f"that python -m sid4ds.evaluation wrote"
        )
    return load_dataset(
        npz=arguments["npz"], images=arguments["images"], masks=arguments["masks"],
        mask_suffix=arguments["mask_suffix"], image_size=arguments["image_size"],
        defect_fraction=arguments["defect_fraction"], n_samples=arguments["n_samples"],
        defect_ratio=arguments["defect_ratio"],
        test_defective=arguments["test_defective"] if arguments["iou"] else 0,
        data_seed=arguments["data_seed"])
