"""Batched, chunked inference of the sid4ds estimators (the chunk-level interface).

A part of :class:`sid4ds.estimators.base.TorchEstimator` (a mixin): pools checked against the
fitted network, chunks mapped serially or on joblib/Dask workers, forward passes in the
estimator's precision. See :mod:`sid4ds.estimators.base` for the interface.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sid4ds._core.device import autocast, inputs_per_forward
from sid4ds._core.validation import (
    check_divisible,
)
from sid4ds.datasets.pool import ImagePool, as_pool, map_chunks

__all__ = ["ChunkedInference"]


class ChunkedInference:
    """Batched, chunked inference (a part of ``TorchEstimator``)."""

    # ------------------------------------------------------------------ inference
    def _inputs_per_forward(self, height: int, width: int) -> int:
        if self.inference_batch_size is not None:
            return int(self.inference_batch_size)
        return inputs_per_forward(height, width, self.device_)

    def images_per_batch(self, height: int, width: int, copies: int = 1) -> int:
        """Images per inference forward pass when each becomes ``copies`` network inputs.

        ``inference_batch_size`` when set, else about 64k pixels per pass on a CPU (64 times
        more on a GPU), divided by ``copies``; never fewer than one.

        Parameters
        ----------
        height, width : int
            Size of one image, in pixels.
        copies : int, default=1
            Network inputs made of each image (e.g. M's masked copies).

        Returns
        -------
        int
            Images per forward pass, at least 1.
        """
        return max(1, self._inputs_per_forward(height, width) // copies)

    def _autocast(self, training: bool = False) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward passes of inference (or of a training step) when
        ``precision`` asks for it."""
        return autocast(self.precision, self.device_, training=training)

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inference forward pass in the estimator's precision; float32 output."""
        if self.device_.type == "cuda":
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            outputs = self.module_(inputs)
        return outputs.float()

    def check_pool(self, X: Any, name: str = "X") -> ImagePool:
        """``X`` as a pool whose images fit the fitted network (channels, divisibility).

        Parameters
        ----------
        X : array-like, np.memmap, sequence of image paths, torch Dataset or ImagePool
            Images of shape (n_samples, n_channels, height, width) or (n_samples, height,
            width) once read.
        name : str, default="X"
            Argument name used in error messages.

        Returns
        -------
        pool : ImagePool
            In-memory arrays are validated once here; lazy pools chunk by chunk when read.
        """
        pool = as_pool(X, name=name)
        channels, height, width = pool.image_shape
        if channels != self.n_channels_in_:
            raise ValueError(
                f"{name} has {channels} channel(s) but the estimator was fitted on "
                f"{self.n_channels_in_}; pass images of shape (n_samples, "
                f"{self.n_channels_in_}, height, width)"
            )
        try:
            check_divisible(height, width, self.depth)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        return pool

    def map_pool(
        self,
        function: Callable[[np.ndarray], np.ndarray],
        pool: ImagePool,
        copies: int = 1,
        n_jobs: Any = "estimator",
        extras: tuple[np.ndarray, ...] = (),
        batch_size: int | None = None,
        description: str = "scoring",
    ) -> np.ndarray:
        """``function(images)`` over ``pool`` in chunks (``self.n_jobs`` workers), joined.

        Parameters
        ----------
        function : callable
            A chunk function, e.g. a ``*_chunk`` method (see the module docstring): it gets
            validated float32 images of shape (k, C, H, W) (and the chunk's rows of each
            array in ``extras``) and returns an array with one row per image. It must be
            picklable for ``n_jobs`` other than 1.
        pool : ImagePool
            From :meth:`check_pool`.
        copies : int, default=1
            Network inputs per image (e.g. ``n_blocks`` masked copies): sizes the batches.
        n_jobs : int, None or "estimator", default="estimator"
            joblib workers; ``"estimator"`` uses the estimator's ``n_jobs``.
        extras : tuple of ndarray of shape (n_samples, ...), default=()
            Per-image arrays passed to ``function`` chunk by chunk.
        batch_size : int, optional
            Images per batch of ``function``; chunk sizes are multiples of it. Default
            :meth:`images_per_batch`.
        description : str, default="scoring"
            Name of the progress bar shown with ``verbose``.

        Returns
        -------
        results : ndarray
            The chunks' results concatenated along the first axis; they do not depend on
            ``n_jobs``.
        """
        _, height, width = pool.image_shape
        jobs = self.n_jobs if n_jobs == "estimator" else n_jobs
        if batch_size is None:
            batch_size = self.images_per_batch(height, width, copies)
        parts = map_chunks(function, pool, batch_size=batch_size, n_jobs=jobs, extras=extras,
                           progress=f"{type(self).__name__}: {description}" if self.verbose
                           else None)
        return np.concatenate(parts, axis=0)

    def _prepare_module(self) -> None:
        """Put the module in eval mode, channels_last on CUDA."""
        self.module_.eval()
        if self.device_.type == "cuda":
            self.module_.to(memory_format=torch.channels_last)

    def _iter_batches(
        self, images: np.ndarray, batch_size: int
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Yield (slice, tensor on device) over ``images`` of shape (n, C, H, W)."""
        pin = self.device_.type == "cuda"
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            if pin:
                chunk = chunk.pin_memory()
            yield slice(start, start + len(chunk)), chunk.to(self.device_, non_blocking=pin)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "module_")
        if self.module_ is None:  # pragma: no cover - guarded by __setstate__
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")

