"""The benchmark's data: an ``.npz`` file, a folder of images and masks, or generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sid4ds.datasets import load_image_folder, load_npz, make_defect_images

__all__ = ["load_dataset"]


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
    data_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load the benchmark data: an ``.npz`` file, a folder of images and masks, or generated.

    Parameters
    ----------
    npz : str or path-like, optional
        An ``.npz`` file in the layout of :func:`sid4ds.datasets.load_npz`.
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
    data_seed : int, default=0
        Seeds the generated data and the ``defect_fraction`` subset.

    Returns
    -------
    X : ndarray of shape (n_samples, n_channels, height, width), float32
    masks : ndarray of shape (n_samples, height, width), uint8
    description : dict
        What was loaded, for the settings record.

    Examples
    --------
    >>> from sid4ds.benchmark import load_dataset
    >>> X, masks, description = load_dataset(n_samples=20, image_size=16, defect_ratio=0.1)
    >>> X.shape, masks.shape, description["n_defective"]
    ((20, 1, 16, 16), (20, 16, 16), 2)
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
    if npz is not None:
        X, truth, _ = load_npz(npz, image_size=image_size, defect_fraction=defect_fraction,
                               random_state=data_seed)
        if truth is None:
            raise ValueError(
                f"{npz} has no 'masks' array; the benchmark needs the true masks to play the "
                f"labeller"
            )
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
        description = {"source": "image folder", "images": str(images),
                       "masks": str(masks if masks is not None else images),
                       "mask_suffix": mask_suffix}
    else:
        size = 64 if image_size is None else image_size
        X, truth = make_defect_images(n_samples=n_samples, image_size=size,
                                      defect_ratio=defect_ratio, random_state=data_seed)
        description = {"source": "make_defect_images", "n_samples": n_samples,
                       "defect_ratio": defect_ratio}
    is_defective = truth.reshape(len(truth), -1).any(axis=1)
    description.update(data_seed=data_seed, image_size=image_size,
                       n_images=len(X), n_defective=int(is_defective.sum()),
                       image_shape=list(X.shape[1:]))
    return X, truth, description

