"""Uncertainty sampling for segmentation: pixel entropy and margin, averaged per image."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import xlogy

from sid4ds._core.validation import (
    check_choice,
    check_float,
    check_n_instances,
    check_probabilities,
)
from sid4ds.baselines.common import fitted_segmenter
from sid4ds.datasets.pool import as_pool
from sid4ds.ranking.selection import content_keys, select_top, tie_keys

__all__ = [
    "REDUCTIONS",
    "entropy_sampling",
    "entropy_scores",
    "margin_sampling",
    "margin_scores",
    "pixel_entropy",
    "pixel_margin",
    "reduce_per_image",
]


#: How pixel scores become one score per image (:func:`reduce_per_image`).
REDUCTIONS = ("mean", "foreground")


def pixel_entropy(probabilities: Any) -> np.ndarray:
    """Binary entropy of each pixel's defect probability, in bits.

    ``H(p) = −p·log2(p) − (1 − p)·log2(1 − p)``, with ``0·log 0 = 0``: 1 at p = 0.5 and 0
    at p ∈ {0, 1}.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width) (any shape works)
        Defect probabilities in [0, 1].

    Returns
    -------
    entropy : ndarray of the same shape, float64 in [0, 1]

    Examples
    --------
    >>> from sid4ds.baselines import pixel_entropy
    >>> pixel_entropy([0.0, 0.5, 1.0]).tolist()
    [0.0, 1.0, 0.0]
    """
    p = check_probabilities(probabilities)
    q = 1.0 - p
    return 0.0 - (xlogy(p, p) + xlogy(q, q)) / np.log(2.0)  # 0.0 - 0.0: no -0.0


def pixel_margin(probabilities: Any) -> np.ndarray:
    """Margin between the two classes of each pixel, ``|p − (1 − p)| = |2p − 1|``.

    0 at p = 0.5 (most uncertain), 1 at p ∈ {0, 1}.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width) (any shape works)
        Defect probabilities in [0, 1].

    Returns
    -------
    margin : ndarray of the same shape, float64 in [0, 1]

    Examples
    --------
    >>> from sid4ds.baselines import pixel_margin
    >>> pixel_margin([0.0, 0.25, 0.5, 1.0]).tolist()
    [1.0, 0.5, 0.0, 1.0]
    """
    return np.abs(2.0 * check_probabilities(probabilities) - 1.0)


def reduce_per_image(
    pixel_scores: Any,
    probabilities: Any = None,
    *,
    reduction: str = "mean",
    threshold: float = 0.5,
) -> np.ndarray:
    """Average pixel scores per image, over all pixels or over the predicted foreground.

    Parameters
    ----------
    pixel_scores : array-like of shape (n_samples, height, width)
        A score per pixel (any trailing shape works: everything after the first axis is one
        image).
    probabilities : array-like of the same shape, optional
        Defect probabilities; required by ``reduction="foreground"``.
    reduction : {"mean", "foreground"}, default="mean"
        ``"mean"``: over all pixels. ``"foreground"``: over the pixels predicted as defect
        (probability ≥ ``threshold``); an image without any scores 0.
    threshold : float, default=0.5
        Foreground threshold.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import reduce_per_image
    >>> probabilities = np.array([[[0.9, 0.1], [0.1, 0.1]], [[0.1, 0.1], [0.1, 0.1]]])
    >>> scores = np.array([[[4.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    >>> reduce_per_image(scores, probabilities, reduction="mean").tolist()
    [1.75, 1.0]
    >>> reduce_per_image(scores, probabilities, reduction="foreground").tolist()
    [4.0, 0.0]
    """
    check_choice(reduction, "reduction", REDUCTIONS)
    threshold = check_float(threshold, "threshold", low=0.0, high=1.0)
    values = np.asarray(pixel_scores, dtype=np.float64)
    if values.ndim < 2 or values.shape[0] == 0:
        raise ValueError(
            f"pixel_scores must have shape (n_samples, height, width) with n_samples >= 1; "
            f"got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("pixel_scores contains NaN or infinite values")
    values = values.reshape(len(values), -1)
    if reduction == "mean":
        return values.mean(axis=1)
    if probabilities is None:
        raise ValueError(
            "reduction='foreground' needs probabilities= (the defect probability of each "
            "pixel) to find the foreground"
        )
    p = check_probabilities(probabilities)
    if p.size != values.size or len(p) != len(values):
        raise ValueError(
            f"probabilities has shape {p.shape} but pixel_scores has shape "
            f"{np.shape(pixel_scores)}; pass one probability per pixel score"
        )
    foreground = p.reshape(len(values), -1) >= threshold
    counts = foreground.sum(axis=1)
    totals = np.where(foreground, values, 0.0).sum(axis=1)
    return np.divide(totals, counts, out=np.zeros(len(values)), where=counts > 0)


def entropy_scores(
    probabilities: Any, *, reduction: str = "mean", threshold: float = 0.5
) -> np.ndarray:
    """Per-image entropy score: :func:`pixel_entropy` reduced by :func:`reduce_per_image`.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width)
        Defect probabilities.
    reduction : {"mean", "foreground"}, default="mean"
    threshold : float, default=0.5
        Foreground threshold for ``reduction="foreground"``.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64 in [0, 1]
        Higher is more uncertain.

    Examples
    --------
    >>> from sid4ds.baselines import entropy_scores
    >>> entropy_scores([[[0.5, 0.5]], [[0.0, 1.0]]]).tolist()
    [1.0, 0.0]
    """
    p = check_probabilities(probabilities)
    return reduce_per_image(pixel_entropy(p), p, reduction=reduction, threshold=threshold)


def margin_scores(
    probabilities: Any, *, reduction: str = "mean", threshold: float = 0.5
) -> np.ndarray:
    """Per-image margin uncertainty: ``1 − pixel_margin`` reduced by :func:`reduce_per_image`.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width)
        Defect probabilities.
    reduction : {"mean", "foreground"}, default="mean"
    threshold : float, default=0.5
        Foreground threshold for ``reduction="foreground"``.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64 in [0, 1]
        ``1 −`` the mean margin; higher is more uncertain. An image without foreground
        scores 0 under ``"foreground"``.

    Examples
    --------
    >>> from sid4ds.baselines import margin_scores
    >>> margin_scores([[[0.5, 0.75]], [[0.0, 1.0]]]).tolist()
    [0.75, 0.0]
    """
    p = check_probabilities(probabilities)
    return reduce_per_image(1.0 - pixel_margin(p), p, reduction=reduction, threshold=threshold)


def _uncertainty_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int,
    reduction: str,
    score: Callable[..., np.ndarray],
    strategy: str,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    check_choice(reduction, "reduction", REDUCTIONS)
    segmenter = fitted_segmenter(learner, strategy)
    images = segmenter.check_pool(images, name="X_pool")
    threshold = float(getattr(segmenter, "threshold", 0.5))
    # one chunk of probability maps at a time; one score per image is kept
    per_chunk = functools.partial(_uncertainty_of, segmenter, score, reduction, threshold)
    scores = segmenter.map_pool(
        per_chunk, images, n_jobs=segmenter.n_jobs if n_jobs is None else n_jobs)
    return select_top(learner, scores, tie_keys(content_keys(images)), n_instances)


def _uncertainty_of(segmenter: Any, score: Callable[..., np.ndarray], reduction: str,
                    threshold: float, images: np.ndarray) -> np.ndarray:
    return score(segmenter.predict_proba_chunk(images), reduction=reduction, threshold=threshold)


def entropy_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, reduction: str = "mean",
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pool images whose predicted defect masks are most uncertain by pixel entropy.

    The learner's fitted segmentation learner predicts every pixel's defect probability;
    an image scores the mean :func:`pixel_entropy` over all its pixels
    (``reduction="mean"``) or over its predicted defect pixels (``"foreground"``; an image
    with none scores 0).

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner` (its
        ``threshold`` defines the foreground).
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    reduction : {"mean", "foreground"}, default="mean"
        How pixel entropies become an image score.
    n_jobs : int or None, default=None
        joblib workers that predict chunks of the pool; ``None`` uses the segmentation
        learner's ``n_jobs``. Only one chunk's probability maps are held per worker.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest score first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their scores, in bits (0 to 1). All pool scores are left in
        ``learner.sid4ds_state.pool_scores``.

    Notes
    -----
    Simplified for segmentation: the classification criterion (entropy of the class
    posterior) is applied to each pixel's binary defect posterior and averaged per image,
    the usual adaptation for segmentation (e.g. Mackowiak et al., 2018, who also use
    cost-aware regions; here the unit is the whole image).

    References
    ----------
    Shannon, "A mathematical theory of communication", 1948; Settles, "Active Learning
    Literature Survey", 2009 (uncertainty sampling).

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.baselines import entropy_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = ActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=entropy_sampling, X_training=X[:8], y_training=masks[:8])
    >>> indices, X_query = learner.query(X[8:], n_instances=3, reduction="foreground")
    >>> indices.shape, X_query.shape, learner.sid4ds_state.pool_scores.shape
    ((3,), (3, 1, 16, 16), (16,))
    """
    return _uncertainty_sampling(learner, X_pool, n_instances, reduction, entropy_scores,
                                 "entropy_sampling", n_jobs)


def margin_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, reduction: str = "mean",
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The pool images whose predicted defect masks have the smallest class margin.

    The pixel margin of a binary segmentation is ``|p − (1 − p)|``; an image scores
    ``1 −`` its mean margin over all pixels (``reduction="mean"``) or over its predicted
    defect pixels (``"foreground"``; an image with none scores 0), so higher is more
    uncertain.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner`.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    reduction : {"mean", "foreground"}, default="mean"
        How pixel margins become an image score.
    n_jobs : int or None, default=None
        joblib workers that predict chunks of the pool; ``None`` uses the segmentation
        learner's ``n_jobs``.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest score (smallest margin) first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their ``1 − margin`` scores (0 to 1). All pool scores are left in
        ``learner.sid4ds_state.pool_scores``.

    Notes
    -----
    Simplified for segmentation: margin sampling compares the two most probable classes;
    with one defect class per pixel that is ``|2p − 1|``, averaged per image.

    References
    ----------
    Scheffer, Decomain & Wrobel, "Active hidden Markov models for information extraction",
    IDA 2001 (margin sampling).

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, SegmentationLearner
    >>> from sid4ds.baselines import margin_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = DefectActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=margin_sampling, X_training=X[:8], y_training=masks[:8],
    ...     n_normal=2)
    >>> indices, X_query, fake_normals = learner.query(X[8:], n_instances=3,
    ...                                                return_fake_normals=True)
    >>> len(indices), len(fake_normals), bool(set(indices) & set(fake_normals))
    (3, 2, False)
    """
    return _uncertainty_sampling(learner, X_pool, n_instances, reduction, margin_scores,
                                 "margin_sampling", n_jobs)

