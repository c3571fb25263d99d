"""Every input check of sid4ds and its error message, in one place.

Checks never modify what the caller passed: they return new arrays. This module needs numpy
only (no torch), so the loaders and the session can check their input without it.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SHAPES = "(n_samples, height, width) or (n_samples, n_channels, height, width)"

#: A size argument: one int (a square) or a (height, width) pair.
SizeLike = int | tuple[int, int] | Sequence[int]
PathLike = str | os.PathLike[str]


def check_divisible(height: int, width: int, depth: int) -> None:
    """Raise a ValueError if an image cannot pass through a UNet of this depth.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    depth : int
        Number of 2×2 poolings in the encoder; height and width must be divisible by
        ``2**depth``.

    Raises
    ------
    ValueError
        Naming the offending side, the size to pad to, and the largest depth that fits.

    Examples
    --------
    >>> from sid4ds._core.validation import check_divisible
    >>> check_divisible(64, 64, depth=3)
    >>> check_divisible(50, 64, depth=3)
    Traceback (most recent call last):
    ...
    ValueError: image height 50 is not divisible by 2**depth=8; pad to 56 or set depth=1
    """
    factor = 2**depth
    for side_name, side in (("height", height), ("width", width)):
        if side % factor:
            padded = -(-side // factor) * factor
            fitting_depth = 0
            while side % (2 ** (fitting_depth + 1)) == 0 and fitting_depth + 1 <= depth:
                fitting_depth += 1
            hint = f"set depth={fitting_depth}" if fitting_depth > 0 else "resize the images"
            raise ValueError(
                f"image {side_name} {side} is not divisible by 2**depth={factor}; "
                f"pad to {padded} or {hint}"
            )


def _describe_array(array: Any) -> str:
    shape = getattr(array, "shape", None)
    return f"{type(array).__name__} of shape {shape}" if shape is not None else repr(array)


def _as_array(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # pragma: no cover - numpy raises many kinds
        raise TypeError(
            f"{name} must be array-like; got {type(value).__name__} ({error})"
        ) from error
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise TypeError(
            f"{name} must be a numeric array; got {_describe_array(value)} with dtype "
            f"{array.dtype}"
        )
    return array


def check_images(
    X: Any,
    *,
    name: str = "X",
    n_channels: int | None = None,
    depth: int | None = None,
    image_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Validate images and return them as float32 of shape (n, C, H, W) in [0, 1].

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
        Floats in [0, 1], or uint8 (0..255) / uint16 (0..65535) that are rescaled.
    name : str
        Argument name used in error messages.
    n_channels : int, optional
        Required number of channels (the count seen in ``fit``).
    depth : int, optional
        UNet depth: height and width must be divisible by ``2**depth``.
    image_shape : tuple of int, optional
        Required (height, width).
    """
    array = _as_array(X, name)
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim != 4:
        raise ValueError(
            f"{name} must have shape {IMAGE_SHAPES}; got an array with ndim={array.ndim} "
            f"and shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); pass at least one image")
    if 0 in array.shape[1:]:
        raise ValueError(f"{name} has an empty dimension (shape {array.shape})")
    if array.dtype == np.uint8:
        images = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        images = array.astype(np.float32) / 65535.0
    elif array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} has dtype {array.dtype}; expected floats in [0, 1], uint8 or uint16: "
            f"convert with X.astype(np.float32) / X.max()"
        )
    else:
        images = np.array(array, dtype=np.float32, copy=True)
        finite = np.isfinite(images)
        if not finite.all():
            n_bad = int((~finite).sum())
            raise ValueError(
                f"{name} contains {n_bad} NaN or infinite pixel values; expected finite "
                f"values in [0, 1]: fix or drop those images"
            )
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"{name} has values in [{low:.4g}, {high:.4g}]; expected floats in [0, 1] "
                f"(or uint8 images): rescale, e.g. X / 255 for 8-bit data"
            )
    if n_channels is not None and images.shape[1] != n_channels:
        raise ValueError(
            f"{name} has {images.shape[1]} channel(s) but the estimator was fitted on "
            f"{n_channels}; pass images of shape (n_samples, {n_channels}, height, width)"
        )
    if image_shape is not None and tuple(images.shape[2:]) != tuple(image_shape):
        raise ValueError(
            f"{name} has images of size {images.shape[2]}x{images.shape[3]} but "
            f"{image_shape[0]}x{image_shape[1]} was expected"
        )
    if depth is not None:
        try:
            check_divisible(images.shape[2], images.shape[3], depth)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    return images


def check_masks(
    y: Any, *, name: str = "y", n_samples: int, height: int, width: int
) -> np.ndarray:
    """Validate binary masks and return them as uint8 of shape (n_samples, height, width).

    Accepts (n, H, W), (n, 1, H, W) or flattened (n, H·W) masks of 0/1 values (bool too).
    """
    array = _as_array(y, name)
    expected = f"({n_samples}, {height}, {width}) or ({n_samples}, {height * width})"
    if array.shape[:1] != (n_samples,):
        raise ValueError(
            f"{name} has {array.shape[0] if array.ndim else 0} masks for {n_samples} images "
            f"(shape {array.shape}); expected shape {expected}"
        )
    if array.ndim == 2 and array.shape[1] == height * width:
        array = array.reshape(n_samples, height, width)
    elif array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n_samples, height, width):
        raise ValueError(
            f"{name} has shape {array.shape} which does not match the images; expected "
            f"shape {expected}"
        )
    if array.dtype != bool:
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinite values; expected 0 and 1 only")
        values = np.unique(array)
        outside = values[(values != 0) & (values != 1)]
        if outside.size:
            shown = ", ".join(f"{value:g}" for value in outside[:5])
            raise ValueError(
                f"{name} must hold 0 (normal) and 1 (defect) only; got values {shown}"
                f"{' ...' if outside.size > 5 else ''}: threshold it, e.g. (y > 0)"
            )
    return array.astype(np.uint8)


def check_int(value: Any, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as int or raise naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    include_low: bool = True,
    include_high: bool = True,
) -> float:
    """Return ``value`` as float or raise naming the parameter and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    value = float(value)
    too_low = low is not None and (value < low or (value == low and not include_low))
    too_high = high is not None and (value > high or (value == high and not include_high))
    if not np.isfinite(value) or too_low or too_high:
        left = "[" if include_low else "("
        right = "]" if include_high else ")"
        low_text = "-inf" if low is None else low
        high_text = "inf" if high is None else high
        interval = f"{left}{low_text}, {high_text}{right}"
        raise ValueError(f"{name} must be in {interval}; got {value}")
    return value


def check_learning_rate(value: Any, *, auto: bool = False) -> float | str:
    """``lr``: a positive number, or (where ``auto``) the string ``"auto"``, a rule."""
    if auto and isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, str):
        expected = 'a positive number or "auto"' if auto else "a positive number"
        raise ValueError(f"lr must be {expected}; got {value!r}")
    return check_float(value, "lr", low=0.0, include_low=False)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


def check_n_instances(n_instances: Any, n_pool: int) -> int:
    """Validate the number of images a query strategy should return.

    ``n_instances`` must be a positive int; a pool smaller than it returns the whole pool.
    """
    n_instances = check_int(n_instances, "n_instances", minimum=1)
    if n_pool == 0:
        raise ValueError("X_pool is empty: there is nothing left to query")
    return min(n_instances, n_pool)


def check_audit_size(audit_size: Any, n_unlabelled: int, name: str = "audit_size", *,
                     n_batch: int = 0) -> int:
    """Validate the size of a random audit drawn from ``n_unlabelled`` unlabelled images.

    Parameters
    ----------
    audit_size : int
        Images asked for (0 allowed: no audit).
    n_unlabelled : int
        Images the audit is drawn from, without replacement: the unlabelled ones, less a
        ranked batch listed with it.
    name : str, default="audit_size"
        Argument name used in the message (``"--audit"`` on the command line).
    n_batch : int, default=0
        Images of the ranked batch listed with the audit (not in ``n_unlabelled``), named in
        the message.

    Returns
    -------
    audit_size : int

    Examples
    --------
    >>> from sid4ds._core.validation import check_audit_size
    >>> check_audit_size(50, 700)
    50
    >>> check_audit_size(800, 600, name="--audit", n_batch=100)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --audit asks for 800 images but only 600 are unlabelled besides this round's 100 ranked images ...: ask for at most 600
    """  # noqa: E501
    audit_size = check_int(audit_size, name, minimum=0)
    if audit_size > n_unlabelled:
        besides = f" besides this round's {n_batch} ranked images" if n_batch else ""
        raise ValueError(f"{name} asks for {audit_size} images but only {n_unlabelled} are "
                         f"unlabelled{besides} (an audit is drawn from the unlabelled images): "
                         f"ask for at most {n_unlabelled}")
    return audit_size


def check_target_recall(target_recall: Any, name: str = "target_recall") -> float:
    """Validate a recall to certify: a share of the defective images, in (0, 1).

    Examples
    --------
    >>> from sid4ds._core.validation import check_target_recall
    >>> check_target_recall(0.95)
    0.95
    >>> check_target_recall(1.5, name="--target-recall")
    Traceback (most recent call last):
    ...
    ValueError: --target-recall must be in (0.0, 1.0); got 1.5
    """
    return check_float(target_recall, name, low=0.0, high=1.0, include_low=False,
                       include_high=False)


def describe_size(size: tuple[int, int]) -> str:
    """``"HxW (height x width)"`` for messages."""
    return f"{size[0]}x{size[1]} (height x width)"


def check_size(size: SizeLike, argument: str) -> tuple[int, int]:
    """Turn an int or (height, width) pair into a (height, width) tuple of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif (
        isinstance(size, Sequence)
        and not isinstance(size, str)
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(
            f"{argument} must be an int or a (height, width) pair of ints, got {size!r}."
        )
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{argument} must be positive, got {size!r}.")
    return pair


def check_mode(mode: str | None) -> None:
    if mode not in ("L", "RGB", None):
        raise ValueError(
            f"mode must be 'L' (grayscale), 'RGB' (colour) or None (grayscale unless some "
            f"image is in colour), got {mode!r}."
        )


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}.")


def check_folder(folder: PathLike, argument: str) -> Path:
    path = Path(folder)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise ValueError(f"{argument}={str(folder)!r} {what}; pass the folder holding the files.")
    return path


def check_image_arrays(
    X: np.ndarray, masks: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images of shape (n, C, H, W) and, optionally, their masks (n, H, W); any dtype."""
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(
            f"X must have shape (n_samples, n_channels, height, width), got shape {X.shape}."
        )
    if masks is not None:
        masks = np.asarray(masks)
        expected = (X.shape[0], X.shape[2], X.shape[3])
        if masks.shape != expected:
            raise ValueError(
                f"masks must have shape (n_samples, height, width) = {expected} to match X of "
                f"shape {X.shape}, got shape {masks.shape}."
            )
    return X, masks


def _float_array(value: Any, name: str, expected: str) -> np.ndarray:
    """``value`` as float64, or a TypeError naming ``name`` and what was ``expected``."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be {expected}; got {type(value).__name__} ({error})"
                        ) from error


def check_probabilities(probabilities: Any, name: str = "probabilities") -> np.ndarray:
    """Probabilities as float64, at least 1-D, finite and in [0, 1]; raise naming ``name``."""
    values = _float_array(probabilities, name, "a numeric array of probabilities")
    if values.ndim == 0:
        raise ValueError(f"{name} must be an array of probabilities; got a scalar")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values; expected values in [0, 1]")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise ValueError(
            f"{name} has values in [{values.min():.4g}, {values.max():.4g}]; expected "
            f"probabilities in [0, 1] (apply a sigmoid to logits first)"
        )
    return values


def check_features(features: Any, name: str) -> np.ndarray:
    """Feature vectors as a finite float64 array of shape (n_samples, n_features)."""
    values = _float_array(features, name, "a numeric array of shape (n_samples, n_features)")
    if values.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n_samples, n_features); got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def check_groups(groups: Any, n_samples: int, name: str = "groups") -> np.ndarray | None:
    """One source group per image (e.g. the file a tile was cut from), or None.

    Returns ``np.asarray(groups)`` of shape (n_samples,), or None when ``groups`` is None;
    raises naming ``name`` when there is not one group per image.
    """
    if groups is None:
        return None
    values = np.asarray(groups)
    if values.shape != (n_samples,):
        count = f"{len(values)} entries" if values.ndim == 1 else f"shape {values.shape}"
        raise ValueError(f"{name} has {count} for {n_samples} images; pass one group per "
                         f"image, shape ({n_samples},)")
    return values


def check_weights(weights: Any, n_samples: int, name: str) -> np.ndarray | None:
    """One finite weight >= 0 per image as float64, or None; raise naming ``name``."""
    if weights is None:
        return None
    try:
        values = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, one weight per image; got "
                         f"{_describe_array(weights)}") from None
    if values.shape != (n_samples,):
        raise ValueError(f"{name} has shape {values.shape}; expected one weight per image, "
                         f"({n_samples},)")
    if not np.isfinite(values).all() or (values < 0).any():
        bad = values[~(np.isfinite(values) & (values >= 0))][0]
        raise ValueError(f"{name} must be finite and >= 0 (the number of images each one "
                         f"stands for); got {bad}")
    return values


def check_flags(flags: Any, n_samples: int, name: str) -> np.ndarray:
    """One bool flag per image, all False when ``flags`` is None; raise naming ``name``."""
    if flags is None:
        return np.zeros(n_samples, dtype=bool)
    values = np.asarray(flags, dtype=bool)
    if values.shape != (n_samples,):
        raise ValueError(f"{name} has shape {values.shape}; expected one flag per image, "
                         f"({n_samples},)")
    return values
