"""No learning: the local-contrast score a user tries first, as a query strategy.

``max |image − gaussian_filter(image, sigma)|``: the largest deviation of an image from its
blurred self. Instant, and a strong baseline on real data that a learned ranking must beat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from sid4ds._core.validation import check_float, check_n_instances
from sid4ds.datasets.pool import as_pool
from sid4ds.ranking.selection import content_keys, select_top, tie_keys

__all__ = ["local_contrast_sampling", "local_contrast_scores"]


def local_contrast_scores(X: Any, sigma: float = 2.0) -> np.ndarray:
    """No-learning defect score: the largest deviation of an image from its blurred self.

    ``max |image − gaussian_filter(image, sigma)|`` over the pixels and channels of each
    image (the blur is spatial only): what a user tries first, and the baseline a learned
    ranking has to beat.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images; or a memmap, image paths, a torch Dataset or an ImagePool (read in chunks).
    sigma : float, default=2.0
        Standard deviation of the Gaussian blur, in pixels.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64
        Higher means a stronger local anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import local_contrast_scores
    >>> images = np.full((2, 1, 16, 16), 0.5, dtype=np.float32)
    >>> images[1, 0, 7:9, 7:9] = 1.0
    >>> scores = local_contrast_scores(images)
    >>> scores.shape, bool(scores[1] > scores[0]), round(float(scores[0]), 6)  # flat: ~0
    ((2,), True, 0.0)
    """
    images = as_pool(X, name="X")
    sigma = check_float(sigma, "sigma", low=0.0, include_low=False)
    scores = np.empty(len(images), dtype=np.float64)
    chunk = max(1, 2**22 // int(np.prod(images.image_shape)))  # bounded temporaries
    for rows, part in images.iter_chunks(chunk):
        part = part.astype(np.float64)
        deviation = np.abs(part - gaussian_filter(part, (0, 0, sigma, sigma), mode="reflect"))
        scores[rows] = deviation.reshape(len(part), -1).max(axis=1)
    return scores


def local_contrast_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """modAL query strategy: the pool images with the largest :func:`local_contrast_scores`.

    Needs no model, so it also works as a cold start. Leaves the scores of the whole pool in
    ``learner.sid4ds_state`` (see :mod:`sid4ds.ranking.selection`), like the sid4ds strategies.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        Not used, except to keep the pool scores.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K; more than the pool returns the whole pool.
    sigma : float, default=2.0
        Blur of :func:`local_contrast_scores`.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest score first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import local_contrast_sampling
    >>> class Learner:  # anything that accepts attributes
    ...     pass
    >>> pool = np.full((5, 1, 16, 16), 0.5, dtype=np.float32)
    >>> pool[3, 0, 4, 4] = 1.0
    >>> indices, scores = local_contrast_sampling(Learner(), pool, n_instances=2)
    >>> int(indices[0]), len(indices)
    (3, 2)
    """
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    return select_top(learner, local_contrast_scores(images, sigma=sigma),
                      tie_keys(content_keys(images)), n_instances)

