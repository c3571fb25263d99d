"""Core-set selection (Sener & Savarese 2018): greedy k-center on the segmenter's features."""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds._core.validation import check_features, check_images, check_int, check_n_instances
from sid4ds.baselines.common import fitted_segmenter
from sid4ds.datasets.pool import as_pool
from sid4ds.ranking.selection import content_keys, forget_pool_scores

__all__ = ["coreset_sampling", "greedy_k_center"]


def _squared_norms(features: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", features, features)


def greedy_k_center(
    features_pool: Any,
    features_labeled: Any = None,
    n_instances: int = 1,
    *,
    chunk_size: int = 1024,
    tie_keys: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center selection (Sener & Savarese 2018, Algorithm 1) in bounded memory.

    Starting from the labelled points as centers, repeatedly pick the pool point farthest
    (Euclidean) from its nearest center and make it a center. Only a running vector of
    each pool point's distance to its nearest center is kept (length ``n_pool``); the
    distances to the labelled points are computed in blocks of at most
    ``chunk_size × chunk_size``, never as an ``n_pool × n_pool`` matrix.

    Parameters
    ----------
    features_pool : array-like of shape (n_pool, n_features)
        Pool feature vectors.
    features_labeled : array-like of shape (n_labeled, n_features), optional
        Initial centers. None or empty: the mean of the pool features is the one initial
        center (the paper starts from an arbitrary point; the mean needs no random draw),
        so the first pick is the pool point farthest from the pool mean.
    n_instances : int, default=1
        K; capped at the pool size.
    chunk_size : int, default=1024
        Block size of the pool-to-labelled distance computation; it does not change the
        result.
    tie_keys : array-like of shape (n_pool,), optional
        Among equally distant points the one with the largest key is picked; without keys,
        the lowest index.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices in the order they were picked.
    distances : ndarray of shape (min(n_instances, n_pool),), float64
        Each pick's distance to its nearest center at the time it was picked; never
        increasing.

    Examples
    --------
    >>> from sid4ds.baselines import greedy_k_center
    >>> pool = [[0.0], [1.0], [5.0], [9.0]]
    >>> indices, distances = greedy_k_center(pool, [[0.0]], n_instances=2)
    >>> indices.tolist(), distances.tolist()
    ([3, 2], [9.0, 4.0])
    """
    pool = check_features(features_pool, "features_pool")
    n_selected = check_n_instances(n_instances, len(pool))
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    if features_labeled is None or len(features_labeled) == 0:
        centers = pool.mean(axis=0, keepdims=True)
    else:
        centers = check_features(features_labeled, "features_labeled")
        if centers.shape[1] != pool.shape[1]:
            raise ValueError(
                f"features_labeled has {centers.shape[1]} features but features_pool has "
                f"{pool.shape[1]}; compute both with the same feature extractor"
            )
    keys = None
    if tie_keys is not None:
        keys = np.asarray(tie_keys)
        if keys.shape != (len(pool),):
            raise ValueError(
                f"tie_keys has shape {keys.shape}; expected one key per pool point, "
                f"shape ({len(pool)},)"
            )
    pool_norms = _squared_norms(pool)
    center_norms = _squared_norms(centers)
    min_squared = np.full(len(pool), np.inf)
    for start in range(0, len(pool), chunk_size):
        rows = slice(start, start + chunk_size)
        for center_start in range(0, len(centers), chunk_size):
            cols = slice(center_start, center_start + chunk_size)
            block = (pool_norms[rows, None] - 2.0 * pool[rows] @ centers[cols].T
                     + center_norms[None, cols])
            np.minimum(min_squared[rows], block.min(axis=1), out=min_squared[rows])
    min_distance = np.sqrt(np.maximum(min_squared, 0.0))
    available = np.ones(len(pool), dtype=bool)
    indices = np.empty(n_selected, dtype=np.int64)
    distances = np.empty(n_selected, dtype=np.float64)
    for step in range(n_selected):
        candidates = np.where(available, min_distance, -np.inf)
        best = candidates.max()
        tied = np.flatnonzero(candidates == best)
        pick = tied[np.argmax(keys[tied])] if keys is not None and len(tied) > 1 else tied[0]
        indices[step], distances[step] = pick, best
        available[pick] = False
        squared = pool_norms - 2.0 * pool @ pool[pick] + pool_norms[pick]
        np.minimum(min_distance, np.sqrt(np.maximum(squared, 0.0)), out=min_distance)
    return indices, distances


def coreset_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, chunk_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Core-set selection: greedy k-center on the segmentation network's features.

    The images are embedded by the learner's fitted segmentation learner
    (:meth:`~sid4ds.SegmentationLearner.transform`: the UNet bottleneck, average-pooled
    over space), and :func:`greedy_k_center` picks pool images that cover the feature space,
    starting from the labelled images (``learner.X_training``) as centers.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner`. Its
        ``X_training``, when present, are the initial centers; without any, the pool mean
        is (see :func:`greedy_k_center`).
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    chunk_size : int, default=1024
        Block size of the distance computation (memory only; same result).

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices in the order picked (farthest first); ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Each pick's feature distance to its nearest center when picked (descending). No
        pool scores are left (``learner.sid4ds_state.pool_scores`` is None): the selection is
        not a ranking of the pool.

    Notes
    -----
    Simplified: the greedy 2-approximation only, without the paper's robust (outlier-
    tolerant) mixed-integer refinement; features are the pooled bottleneck of the
    segmentation UNet instead of a classifier's penultimate layer.

    References
    ----------
    Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
    Approach", ICLR 2018.

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, SegmentationLearner
    >>> from sid4ds.baselines import coreset_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = DefectActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=coreset_sampling, X_training=X[:8], y_training=masks[:8])
    >>> indices, _, distances = learner.query(X[8:], n_instances=3, return_metrics=True)
    >>> len(indices), bool((distances[:-1] >= distances[1:]).all())
    (3, True)
    """
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    segmenter = fitted_segmenter(learner, "coreset_sampling")
    images = segmenter.check_pool(images, name="X_pool")
    features_pool = segmenter.transform(images)
    features_labeled = None
    X_labeled = getattr(learner, "X_training", None)
    if X_labeled is not None:
        labeled = check_images(X_labeled, name="learner.X_training",
                               n_channels=segmenter.n_channels_in_, depth=segmenter.depth)
        features_labeled = segmenter.transform(labeled)
    forget_pool_scores(learner)
    return greedy_k_center(features_pool, features_labeled, n_instances,
                           chunk_size=chunk_size, tie_keys=content_keys(images))

