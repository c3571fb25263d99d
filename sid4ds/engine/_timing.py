"""Time in a round: each phase's wall time, and the estimates the round says aloud.

A part of :class:`sid4ds.engine.rounds.SID4DSRounds`: :func:`timed` records how long a
phase took (a round's ``seconds``); :func:`estimate_note` turns the models' measured
warm-up (``estimate_seconds``) into the ``" (about 3.2 min here, ...)"`` of a progress
message; :func:`format_duration` writes a duration the way every message of sid4ds does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sid4ds.datasets.pool import ImagePool

__all__ = ["estimate_note", "format_duration", "timed"]


def timed(seconds: dict[str, float], phase: str, work: Callable[[], Any]) -> Any:
    """Run ``work()``, record its wall time as ``seconds[phase]`` and return its result."""
    started = time.perf_counter()
    result = work()
    seconds[phase] = time.perf_counter() - started
    return result


def estimate_note(models: Any, n_images: int, images: Any, *, train: bool,
                  copies: int = 1) -> str:
    """``" (about 3.2 min here, from a short warm-up)"``, or ``""`` when a model can't tell.

    ``models`` is one model or a tuple of models that each pass over the images;
    ``images`` an :class:`~sid4ds.datasets.pool.ImagePool` or an array (for their shape).
    """
    models = models if isinstance(models, tuple) else (models,)
    if not all(hasattr(model, "estimate_seconds") for model in models):
        return ""
    shape = (images.image_shape if isinstance(images, ImagePool)
             else tuple(np.asarray(images).shape[1:]))
    seconds = sum(model.estimate_seconds(n_images, shape, train=train, copies=copies)
                  for model in models)
    return f" (about {format_duration(seconds)} here, from a short warm-up)"


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"3.2 min"`` or ``"1.5 h"``.

    Parameters
    ----------
    seconds : float
        A duration.

    Returns
    -------
    text : str

    Examples
    --------
    >>> from sid4ds.engine.rounds import format_duration
    >>> format_duration(40.2), format_duration(190), format_duration(5400)
    ('40 s', '3.2 min', '1.5 h')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400 - 1:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
