"""What :class:`~sid4ds.DefectActiveLearner` is given: images, or modAL's own data.

A part of :mod:`sid4ds.modal.learner`, the plumbing that keeps the learner modAL-compatible:
:func:`is_images` decides which path a call takes (the rule is in the learner's class
docstring); images and masks are checked with sid4ds's checks (:func:`check_labeled`);
other data are checked, stacked and fitted as ``modAL.models.ActiveLearner`` does, on
current scikit-learn and pandas (:func:`check_modal`, :func:`stack_training`,
:func:`fit_modal`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from modAL.utils.data import data_vstack, retrieve_rows
from sklearn.utils import check_X_y
from torch.utils.data import Dataset

from sid4ds._core.validation import check_images, check_masks
from sid4ds.datasets.pool import ImagePool

__all__ = ["IMAGE_SUFFIXES", "check_kind", "check_labeled", "check_modal", "describe",
           "fit_modal", "is_images", "stack_training"]

#: Suffixes of str items that make a sequence of image paths.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def is_images(X: Any) -> bool:
    """Whether ``X`` takes the image path (see ``DefectActiveLearner``) or modAL's."""
    if X is None or sp.issparse(X) or isinstance(X, (str, bytes, os.PathLike)):
        return False
    if isinstance(X, ImagePool):
        return True
    if isinstance(X, Dataset):
        return True
    if isinstance(X, Sequence) and len(X) and all(
        isinstance(item, os.PathLike)
        or (isinstance(item, str) and item.lower().endswith(IMAGE_SUFFIXES))
        for item in X
    ):
        return True
    if isinstance(X, (list, tuple)):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError):  # ragged or not array-like: not images
            return False
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) not in (3, 4):
        return False
    if hasattr(X, "detach") and hasattr(X, "is_complex"):  # a torch tensor
        return not X.is_complex()
    try:
        dtype = np.dtype(X.dtype)
    except TypeError:
        return False
    return bool(np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_))


def describe(X: Any) -> str:
    """``"ndarray of shape (4, 3)"``, ``"list of length 2"``: ``X`` in an error message."""
    shape = getattr(X, "shape", None)
    if shape is None and isinstance(X, (list, tuple)):
        return f"{type(X).__name__} of length {len(X)}"
    return f"{type(X).__name__} of shape {tuple(shape) if shape is not None else '?'}"


def check_kind(X: Any, images: bool, X_training: Any) -> None:
    """One learner keeps either images or other data: say so before mixing them."""
    if X_training is None or is_images(X_training) == images:
        return
    held = "images" if not images else "non-image data"
    raise ValueError(
        f"X ({describe(X)}) is {'images' if images else 'not image-shaped'} but the "
        f"learner's training data are {held} ({describe(X_training)}); a "
        f"DefectActiveLearner keeps images and other data apart: use a second learner, "
        f"or fit() to replace the training data"
    )


def check_labeled(X: Any, y: Any, X_training: np.ndarray | None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, C, H, W) float32 and masks (n, H, W) uint8, like ``X_training`` if any."""
    check_kind(X, True, X_training)
    channels = None if X_training is None else X_training.shape[1]
    shape = None if channels is None else X_training.shape[2:]
    images = check_images(X, n_channels=channels, image_shape=shape)
    y_ndim = getattr(y, "ndim", None)
    if y_ndim is None and isinstance(y, (list, tuple)):
        try:
            y_ndim = np.asarray(y).ndim
        except (ValueError, TypeError):  # ragged: check_masks says what is wrong
            y_ndim = None
    if y_ndim in (0, 1):
        raise ValueError(
            f"X holds images ({describe(images)}), so y must be their pixel masks "
            f"of shape ({len(images)}, {images.shape[2]}, {images.shape[3]}); got "
            f"{describe(y)}. DefectActiveLearner treats 3-D and 4-D numeric X "
            f"as images: for one label per image use modAL's ActiveLearner, or pass X "
            f"flattened to 2-D (X.reshape(len(X), -1))"
        )
    masks = check_masks(y, n_samples=len(images), height=images.shape[2],
                        width=images.shape[3])
    return images, masks


def check_modal(X: Any, y: Any, force_all_finite: Any) -> None:
    """modAL's ``check_X_y`` call, with scikit-learn's current finiteness keyword."""
    check_X_y(X, y, accept_sparse=True, ensure_2d=False, allow_nd=True, multi_output=True,
              dtype=None, ensure_all_finite=force_all_finite)


def _stack_rows(old: Any, new: Any) -> Any:
    """modAL's ``data_vstack`` of two blocks, with pandas objects joined by ``pd.concat``.

    modAL-python 0.4.2.1 stacks data frames with ``DataFrame.append``, which pandas 2
    removed; ``pd.concat`` gives what it gave: the rows of both, indices kept, and a Series
    added to a data frame as one row (labelled by its name).
    """
    if isinstance(old, pd.DataFrame) and isinstance(new, pd.Series):
        new = new.to_frame().T
    if isinstance(old, (pd.DataFrame, pd.Series)):
        return pd.concat([old, new])
    return data_vstack((old, new))


def stack_training(X_training: Any, y_training: Any, X: Any, y: Any) -> tuple[Any, Any]:
    """modAL data ``X``/``y`` added below the training data (``X``/``y`` when there is none)."""
    if X_training is None:
        return X, y
    try:
        return _stack_rows(X_training, X), _stack_rows(y_training, y)
    except ValueError as error:
        raise ValueError("the dimensions of the new training data and label must agree "
                         "with the training data and labels provided so far") from error


def fit_modal(estimator: Any, X: Any, y: Any, bootstrap: bool, rng: np.random.Generator,
              **fit_kwargs: Any) -> None:
    """Fit the estimator as modAL does (always ``fit``), bootstrapping from ``rng``."""
    if bootstrap:
        n_rows = X.shape[0] if hasattr(X, "shape") else len(X)
        rows = rng.integers(0, n_rows, size=n_rows)
        X, y = retrieve_rows(X, rows), retrieve_rows(y, rows)
    estimator.fit(X, y, **fit_kwargs)
