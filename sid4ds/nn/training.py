"""The training recipe of the sid4ds learners: how long, which images, how fast.

The one training loop (:meth:`sid4ds.estimators.base.TorchEstimator._train`) asks this module three
things:

- **how many optimiser steps** a fit takes (:func:`n_training_steps`): a budget of
  ``max_steps`` whatever the size of the training set, so a fit on 100 images trains as long
  as one on 1000; or ``max_epochs`` passes over it (the paper's recipe);
- **which images go into each batch** (:func:`batch_indices`): uniform shuffling, epoch by
  epoch, or defect-aware batches of which a set share (``defect_share``) are defective
  images, which a training set of a few defective and many normal images needs;
- **the learning rate of each step** (:func:`learning_rate`): constant, one-cycle (linear
  warm-up, then cosine decay), cosine, or the paper's step schedule, each from a peak rate
  that is either given or, with ``lr="auto"``, follows the fit's length and batch
  (:func:`auto_learning_rate`).

An "epoch" is ``ceil(n_samples / batch_size)`` steps in every case; the history records one
entry per epoch, and ``best_window`` counts epochs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = ["AUTO_LR", "LR_SCHEDULES", "auto_learning_rate", "batch_indices", "images_seen",
           "learning_rate", "n_training_steps", "peak_learning_rate", "steps_per_epoch"]

#: The learning-rate schedules of :func:`learning_rate`.
LR_SCHEDULES = ("constant", "onecycle", "cosine", "multistep")
# The paper's step schedule: ×0.1 after these shares of the epochs (30, 60, 90 of 120).
_MULTISTEP_SHARES = (0.25, 0.5, 0.75)
# One-cycle: the warm-up starts at lr / 25 and the decay ends at lr / 1e4.
_ONECYCLE_START, _ONECYCLE_END = 1 / 25, 1e-4


#: The rule of ``lr="auto"`` (:func:`auto_learning_rate`): the peak rate of a fit of
#: ``steps`` optimiser steps of ``batch`` images, and the largest rate it gives (at that batch).
AUTO_LR = {"rate": 1e-3, "steps": 1000, "batch": 16, "max_rate": 3e-3}


def auto_learning_rate(n_steps: int, batch_size: int) -> float:
    """The peak learning rate of ``lr="auto"`` for a fit of ``n_steps`` steps.

    ``1e-3 · min(3, sqrt(1000 / n_steps)) · sqrt(batch_size / 16)``: 1e-3 for the default
    fit of S (1000 steps of 16 images), higher for shorter fits (up to 3e-3 from 111 steps
    down), lower for longer ones, and with the square root of the batch (AdamW's rule for
    the noise of a larger batch). A short fit must move the weights far in few steps; a
    long one on a textured surface settles better at a lower rate. ``docs/method.md``
    (*The training recipe of S*) has the measurements behind it.

    Parameters
    ----------
    n_steps : int
        Optimiser steps of the fit (``max_steps``, or ``max_epochs`` epochs).
    batch_size : int
        Images per step.

    Returns
    -------
    lr : float

    Examples
    --------
    >>> from sid4ds.nn.training import auto_learning_rate
    >>> [round(auto_learning_rate(steps, 16), 5) for steps in (50, 250, 1000, 4000)]
    [0.003, 0.002, 0.001, 0.0005]
    >>> round(auto_learning_rate(1000, 64), 5)
    0.002
    """
    rule = AUTO_LR
    scale = min(rule["max_rate"] / rule["rate"], math.sqrt(rule["steps"] / max(1, n_steps)))
    return rule["rate"] * scale * math.sqrt(batch_size / rule["batch"])


def peak_learning_rate(lr: float | str, n_steps: int, batch_size: int) -> float:
    """``lr`` itself, or with ``"auto"`` the rule of :func:`auto_learning_rate`.

    Examples
    --------
    >>> from sid4ds.nn.training import peak_learning_rate
    >>> peak_learning_rate(0.01, 1000, 16), peak_learning_rate("auto", 1000, 16)
    (0.01, 0.001)
    """
    if isinstance(lr, str):
        return auto_learning_rate(n_steps, batch_size)
    return float(lr)


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Optimiser steps in one pass over ``n_samples`` images: ``ceil(n / batch_size)``."""
    return max(1, math.ceil(n_samples / batch_size))


def n_training_steps(n_samples: int, batch_size: int, max_epochs: int | None,
                     max_steps: int | None) -> int:
    """The optimiser steps of one fit: ``max_steps``, else ``max_epochs`` epochs.

    Examples
    --------
    >>> from sid4ds.nn.training import n_training_steps
    >>> n_training_steps(100, 16, max_epochs=None, max_steps=800)
    800
    >>> n_training_steps(100, 16, max_epochs=30, max_steps=None)
    210
    """
    if max_steps is not None:
        return int(max_steps)
    return int(max_epochs) * steps_per_epoch(n_samples, batch_size)


def images_seen(n_samples: int, batch_size: int, n_steps: int, *, uniform: bool) -> int:
    """Images a fit of ``n_steps`` steps draws (:func:`batch_indices`): full batches, except
    that uniform shuffling cuts the last batch of every epoch short.

    Examples
    --------
    >>> from sid4ds.nn.training import images_seen
    >>> images_seen(50, 16, 8, uniform=True), images_seen(50, 16, 8, uniform=False)
    (100, 128)
    """
    if not uniform:
        return int(n_steps) * int(batch_size)
    per_epoch = steps_per_epoch(n_samples, batch_size)
    full, rest = divmod(int(n_steps), per_epoch)
    return full * int(n_samples) + min(rest * int(batch_size), int(n_samples))


def learning_rate(step: int, n_steps: int, base: float, schedule: str, *,
                  warmup: float = 0.1, epoch_steps: int = 1) -> float:
    """The learning rate of ``step`` (0-based) in a fit of ``n_steps`` steps.

    Parameters
    ----------
    step, n_steps : int
        The step and the length of the fit.
    base : float
        The peak (and, for ``"constant"``, the only) learning rate.
    schedule : {"constant", "onecycle", "cosine", "multistep"}
        ``"onecycle"``: linear warm-up from ``base / 25`` over the first ``warmup`` share of
        the steps, then cosine decay to ``base / 1e4``. ``"cosine"``: cosine decay from
        ``base`` to 0. ``"multistep"``: the paper's schedule, ``base`` ×0.1 after 25%, 50%
        and 75% of the epochs (epoch ``e`` is steps ``e·epoch_steps`` onwards).
    warmup : float, default=0.1
        Share of the steps spent warming up (``"onecycle"`` only).
    epoch_steps : int, default=1
        Steps per epoch (``"multistep"`` only).

    Returns
    -------
    lr : float

    Examples
    --------
    >>> from sid4ds.nn.training import learning_rate
    >>> [round(learning_rate(step, 100, 1.0, "onecycle"), 3) for step in (0, 10, 55, 99)]
    [0.04, 1.0, 0.491, 0.0]
    """
    if schedule == "constant":
        return float(base)
    if schedule == "multistep":
        n_epochs = math.ceil(n_steps / epoch_steps)
        epoch = step // epoch_steps
        passed = sum(epoch >= round(n_epochs * share) for share in _MULTISTEP_SHARES)
        return float(base) * 0.1**passed
    if schedule == "cosine":
        return float(base) * 0.5 * (1.0 + math.cos(math.pi * step / max(1, n_steps)))
    warm_steps = max(1, int(round(warmup * n_steps)))
    if step < warm_steps:
        fraction = step / warm_steps
        return float(base) * (_ONECYCLE_START + (1.0 - _ONECYCLE_START) * fraction)
    progress = (step - warm_steps) / max(1, n_steps - 1 - warm_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return float(base) * (_ONECYCLE_END + (1.0 - _ONECYCLE_END) * cosine)


def _cycle(rng: np.random.Generator, indices: np.ndarray) -> Iterator[int]:
    """Endless draws from ``indices``: one shuffled pass after another."""
    while True:
        yield from rng.permutation(indices).tolist()


def batch_indices(rng: np.random.Generator, n_samples: int, batch_size: int,
                  defective: np.ndarray | None = None,
                  defect_share: float = 0.0) -> Iterator[list[np.ndarray]]:
    """The batches of the training, one epoch (a list of index arrays) at a time.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws every order; the estimator's own generator.
    n_samples, batch_size : int
        Training images and batch size.
    defective : ndarray of shape (n_samples,), bool, optional
        Which training images show a defect.
    defect_share : float, default=0.0
        Least share of each batch drawn from the defective images: when the defective
        images are rarer than that, each batch holds ``defect_share`` of them (the rest
        normal ones), each set gone through in shuffled passes. 0, a training set without
        a defective or without a normal image, or one in which defective images already
        make up ``defect_share`` or more, gives uniform shuffling: each epoch one
        permutation of all images cut into batches (the last one smaller). Rare defects
        are drawn more often; common ones are never drawn less often than they occur.

    Yields
    ------
    epoch : list of ndarray of int
        ``steps_per_epoch`` batches of training indices.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.nn.training import batch_indices
    >>> defective = np.arange(20) < 2
    >>> epochs = batch_indices(np.random.default_rng(0), 20, 4, defective, defect_share=0.5)
    >>> [int(defective[batch].sum()) for batch in next(epochs)]
    [2, 2, 2, 2, 2]
    """
    n_steps = steps_per_epoch(n_samples, batch_size)
    if defective is not None and defect_share > 0:
        defective = np.asarray(defective, dtype=bool)
        defect_rows, normal_rows = np.flatnonzero(defective), np.flatnonzero(~defective)
        if len(defect_rows) and len(normal_rows) and len(defect_rows) < defect_share * n_samples:
            n_defective = min(batch_size - 1, max(1, int(round(defect_share * batch_size))))
            defects, normals = _cycle(rng, defect_rows), _cycle(rng, normal_rows)
            while True:
                yield [np.array([next(defects) for _ in range(n_defective)]
                                + [next(normals) for _ in range(batch_size - n_defective)],
                                dtype=np.int64)
                       for _ in range(n_steps)]
    while True:
        order = rng.permutation(n_samples)
        yield [order[start : start + batch_size] for start in range(0, n_samples, batch_size)]
