"""Every input check of sid4ds and its error message, in one place.

Checks never modify what the caller passed: they return new arrays.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from sid4ds.nets import check_divisible

IMAGE_SHAPES = "(n_samples, height, width) or (n_samples, n_channels, height, width)"


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


def make_rng(random_state: Any) -> np.random.Generator:
    """A numpy Generator from ``random_state`` without touching numpy's global state.

    ``None`` draws fresh OS entropy, an int seeds, a RandomState or Generator is drawn from.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise TypeError(
        f"random_state must be None, an int, a numpy RandomState or Generator; got "
        f"{random_state!r}"
    )
