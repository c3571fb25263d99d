"""Baseline query strategies to compare SID4DS against, adapted to defect segmentation.

Every strategy is ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)`` like
modAL's and like :mod:`sid4ds.strategies`: ``indices`` of the chosen pool images, best
first, and their scores, as numpy arrays. ``learner`` is a modAL ``ActiveLearner`` (or a
:class:`~sid4ds.DefectActiveLearner`) whose ``estimator`` is a
:class:`~sid4ds.SegmentationLearner`; a bare ``SegmentationLearner`` works too.

- :func:`random_sampling`: needs nothing; leaves no pool scores.
- :func:`entropy_sampling`, :func:`margin_sampling`: need a fitted estimator; pool scores:
  pixel entropy / 1 − pixel margin per image.
- :func:`coreset_sampling`: needs a fitted estimator; leaves no pool scores.
- :func:`pt4al_sampling`: needs nothing (uses the estimator once it is fitted); pool
  scores: pretext (rotation) loss. Keeps its pretext model as ``learner.pt4al_model``.
- :func:`suggestive_annotation_sampling`: needs labelled images; pool scores: ensemble
  variance.
- :func:`learning_loss_sampling`: needs a fitted estimator and at least 2 labelled images;
  pool scores: predicted loss.

Strategies that score the whole pool with one "higher is more informative" vector leave it
in ``learner.pool_scores_`` (and the tie-break keys in ``learner.pool_keys_``), so
:class:`~sid4ds.DefectActiveLearner` can take the lowest-scored images as fake normals; the
others remove stale ones, so ``n_normal="auto"`` then picks no fake normals. Top-K rankings
go through :func:`~sid4ds.rank_pool` with :func:`~sid4ds.strategies.content_keys` as the
tie-break, so permuting the pool permutes the selection.

Seeds: ``random_state=None`` takes the learner's estimator's ``random_state`` when it is an
int (as the default scorers of :mod:`sid4ds.strategies` do), else fresh entropy; global
random state (numpy's or torch's) is never touched.

Each strategy has pure functions beneath it (``pixel_entropy``, ``greedy_k_center``,
``max_cover_selection``, ``margin_ranking_loss``, ...) that work on plain arrays.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import xlogy
from sklearn.base import clone
from torch import nn

from sid4ds._torch import TorchEstimator, make_rng
from sid4ds._validation import (
    check_choice,
    check_float,
    check_images,
    check_int,
    check_masks,
    check_n_instances,
)
from sid4ds.nets import check_divisible
from sid4ds.pool import ImagePool, as_pool
from sid4ds.segmentation import SegmentationLearner, soft_dice_loss
from sid4ds.strategies import content_keys, rank_pool

__all__ = [
    "LossPredictionHead",
    "RotationPretextScorer",
    "coreset_sampling",
    "ensemble_uncertainty",
    "entropy_sampling",
    "entropy_scores",
    "fit_loss_prediction_head",
    "greedy_k_center",
    "learning_loss_sampling",
    "margin_ranking_loss",
    "margin_sampling",
    "margin_scores",
    "max_cover_selection",
    "pixel_entropy",
    "pixel_margin",
    "pooled_encoder_features",
    "predict_losses",
    "pt4al_assign_batches",
    "pt4al_sampling",
    "pt4al_split",
    "random_sampling",
    "reduce_per_image",
    "rotation_confidence",
    "segmentation_confidence",
    "segmentation_losses",
    "suggestive_annotation_sampling",
]

REDUCTIONS = ("mean", "foreground")
N_ROTATIONS = 4


# ====================================================================== shared helpers
def _check_probabilities(probabilities: Any, name: str = "probabilities") -> np.ndarray:
    """Probabilities as float64, at least 1-D, finite and in [0, 1]."""
    try:
        values = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a numeric array of probabilities; got "
            f"{type(probabilities).__name__} ({error})"
        ) from error
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


def _check_features(features: Any, name: str) -> np.ndarray:
    """Feature vectors as a finite float64 array of shape (n_samples, n_features)."""
    try:
        values = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a numeric array of shape (n_samples, n_features); got "
            f"{type(features).__name__} ({error})"
        ) from error
    if values.ndim != 2:
        raise ValueError(
            f"{name} must have shape (n_samples, n_features); got shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def _segmenter_of(learner: Any) -> Any:
    return getattr(learner, "estimator", learner)


def _default_seed(learner: Any, random_state: Any) -> Any:
    """``random_state``, else the estimator's int ``random_state``, else None.

    Only an int is borrowed: drawing from the estimator's Generator or RandomState would
    change the estimator's own later draws.
    """
    if random_state is not None:
        return random_state
    seed = getattr(_segmenter_of(learner), "random_state", None)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return int(seed)
    return None


def _fitted_segmenter(learner: Any, strategy: str) -> Any:
    segmenter = _segmenter_of(learner)
    if getattr(segmenter, "module_", None) is None:
        raise ValueError(
            f"{strategy} needs the learner's estimator to be a fitted SegmentationLearner, "
            f"but {type(segmenter).__name__} is not fitted: teach the learner some labelled "
            f"images first (or start with random_sampling, pt4al_sampling or msmr_sampling)"
        )
    return segmenter


def _check_pool_for(segmenter: Any, images: ImagePool) -> ImagePool:
    """Raise, naming X_pool, if the pool does not fit the fitted segmenter."""
    return segmenter._as_pool(images, name="X_pool")


def _labeled_set(learner: Any, strategy: str, minimum: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The learner's labelled images and masks (``X_training``, ``y_training``), validated."""
    X_labeled = getattr(learner, "X_training", None)
    y_labeled = getattr(learner, "y_training", None)
    if X_labeled is None or y_labeled is None:
        raise ValueError(
            f"{strategy} needs labelled images, but the learner has no "
            f"X_training/y_training: teach it at least {minimum} labelled image(s) first"
        )
    images = check_images(X_labeled, name="learner.X_training")
    masks = check_masks(y_labeled, name="learner.y_training", n_samples=len(images),
                        height=images.shape[2], width=images.shape[3])
    if len(images) < minimum:
        raise ValueError(
            f"{strategy} needs at least {minimum} labelled images; the learner has "
            f"{len(images)}: teach it more first"
        )
    return images, masks


def _record_pool_scores(learner: Any, images: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Leave the whole-pool scores for DefectActiveLearner; return the tie-break keys."""
    keys = content_keys(images)
    learner.pool_scores_ = scores
    learner.pool_keys_ = keys
    return keys


def _forget_pool_scores(learner: Any) -> None:
    """Remove stale whole-pool scores of an earlier query (this strategy has none)."""
    state = getattr(learner, "__dict__", {})
    state.pop("pool_scores_", None)
    state.pop("pool_keys_", None)


def _select_top(
    learner: Any, images: np.ndarray, scores: np.ndarray, n_instances: int
) -> tuple[np.ndarray, np.ndarray]:
    keys = _record_pool_scores(learner, images, scores)
    top, _ = rank_pool(scores, n_instances, tie_keys=keys)
    return top, scores[top]


# ====================================================================== random sampling
def random_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, random_state: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick pool images uniformly at random, without replacement.

    Each pool image draws a uniform priority in [0, 1); the ``n_instances`` highest are
    returned. No network is used, so it works before anything is labelled. It leaves no
    ``learner.pool_scores_`` (the priorities say nothing about the images), so
    :class:`~sid4ds.DefectActiveLearner` picks no fake normals with ``n_normal="auto"``.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        Only its estimator's int ``random_state`` is read, when ``random_state`` is None.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K; more than the pool returns the whole pool; < 1 is an error.
    random_state : int, RandomState, Generator or None, default=None
        Seed of the draw. None: the learner's estimator's int ``random_state`` if it has
        one, else fresh entropy. The global random state is not used.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest priority first.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their random priorities (descending).

    References
    ----------
    Passive learning: the baseline every active-learning paper compares against (e.g.
    Settles, "Active Learning Literature Survey", 2009).

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import random_sampling
    >>> class Learner:  # anything that accepts attributes
    ...     pass
    >>> pool = np.random.default_rng(0).random((10, 1, 16, 16))
    >>> first, _ = random_sampling(Learner(), pool, n_instances=3, random_state=0)
    >>> again, _ = random_sampling(Learner(), pool, n_instances=3, random_state=0)
    >>> len(set(first.tolist())), bool((first == again).all())
    (3, True)
    """
    images = as_pool(X_pool, name="X_pool")
    n_selected = check_n_instances(n_instances, len(images))
    rng = make_rng(_default_seed(learner, random_state))
    priorities = rng.random(len(images))
    order = np.argsort(-priorities, kind="stable")[:n_selected].astype(np.int64)
    _forget_pool_scores(learner)
    return order, priorities[order]


# ====================================================================== entropy and margin
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
    p = _check_probabilities(probabilities)
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
    return np.abs(2.0 * _check_probabilities(probabilities) - 1.0)


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
    p = _check_probabilities(probabilities)
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
    p = _check_probabilities(probabilities)
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
    p = _check_probabilities(probabilities)
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
    segmenter = _fitted_segmenter(learner, strategy)
    images = _check_pool_for(segmenter, images)
    threshold = float(getattr(segmenter, "threshold", 0.5))
    # one chunk of probability maps at a time; one score per image is kept
    per_chunk = functools.partial(_uncertainty_of, segmenter, score, reduction, threshold)
    scores = segmenter._map_pool(
        per_chunk, images, n_jobs=segmenter.n_jobs if n_jobs is None else n_jobs)
    return _select_top(learner, images, scores, n_instances)


def _uncertainty_of(segmenter: Any, score: Callable[..., np.ndarray], reduction: str,
                    threshold: float, images: np.ndarray) -> np.ndarray:
    return score(segmenter._proba_of(images), reduction=reduction, threshold=threshold)


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
        ``learner.pool_scores_``.

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
    >>> indices.shape, X_query.shape, learner.pool_scores_.shape
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
        ``learner.pool_scores_``.

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


# ====================================================================== core-set
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
    pool = _check_features(features_pool, "features_pool")
    n_selected = check_n_instances(n_instances, len(pool))
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    if features_labeled is None or len(features_labeled) == 0:
        centers = pool.mean(axis=0, keepdims=True)
    else:
        centers = _check_features(features_labeled, "features_labeled")
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
        ``learner.pool_scores_`` is left: the selection is not a ranking of the pool.

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
    segmenter = _fitted_segmenter(learner, "coreset_sampling")
    images = _check_pool_for(segmenter, images)
    features_pool = segmenter.transform(images)
    features_labeled = None
    X_labeled = getattr(learner, "X_training", None)
    if X_labeled is not None:
        labeled = check_images(X_labeled, name="learner.X_training",
                               n_channels=segmenter.n_channels_in_, depth=segmenter.depth)
        features_labeled = segmenter.transform(labeled)
    _forget_pool_scores(learner)
    return greedy_k_center(features_pool, features_labeled, n_instances,
                           chunk_size=chunk_size, tie_keys=content_keys(images))


# ====================================================================== PT4AL
def _rotations(images: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
    """The 4 rotations of a batch, grouped by shape: [(rotation ids, stacked images)].

    Square images give one group (all 4 rotations in one forward pass, so BatchNorm sees
    every rotation in one batch); other images give two groups (0°/180° and 90°/270°).
    """
    groups: dict[tuple[int, ...], tuple[list[int], list[torch.Tensor]]] = {}
    for rotation in range(N_ROTATIONS):
        rotated = torch.rot90(images, rotation, dims=(2, 3))
        ids, parts = groups.setdefault(tuple(rotated.shape[2:]), ([], []))
        ids.append(rotation)
        parts.append(rotated)
    return [(ids, torch.cat(parts)) for ids, parts in groups.values()]


class RotationPretextScorer(TorchEstimator):
    """Rotation-prediction pretext task (0°, 90°, 180°, 270°) and its per-image loss.

    The pretext model of :func:`pt4al_sampling`. The network is the project's UNet
    (without skip connections) with 4 output maps, one per rotation, averaged over the
    image (global average pooling) into the 4 rotation logits: a fully convolutional
    classifier on the UNet encoder, so devices, seeding and pickling are those of every
    sid4ds learner. It is trained on unlabelled images with cross-entropy over all four
    rotations of each image (AdamW by default, no augmentation).

    Parameters
    ----------
    base_channels : int, default=16
        Channels of the first UNet level.
    depth : int, default=3
        UNet depth; height and width must be divisible by ``2**depth``.
    dilation : int, default=1
        Dilation of the 3×3 convolutions.
    max_epochs : int, default=10
        Training epochs.
    batch_size : int, default=32
        Images per training batch (each becomes 4 rotated copies).
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adamw", "sgd"}, default="adamw"
    momentum : float, default=0.9
        SGD momentum (ignored by AdamW).
    weight_decay : float, default=5e-4
    inference_batch_size : int or None, default=None
        Images (counting rotated copies) per forward pass at inference; None: automatic.
    n_jobs : int or None, default=None
        Workers that score chunks of the pool in parallel through joblib (see
        :class:`~sid4ds.ReconstructionScorer`); results are identical for every value.
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Arithmetic of the forward passes (``torch.autocast`` for bf16/fp16; fp16 needs CUDA).
    device : str or torch.device, default="auto"
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation and shuffling; same value, same model on the CPU.
    verbose : int, default=0

    Attributes
    ----------
    module_ : sid4ds.nets.UNet
        The trained network (4 output channels).
    history_ : list of dict
        One entry per epoch: ``epoch``, ``loss``, ``lr``, ``duration``.
    n_channels_in_ : int
    image_shape_ : tuple of int
    device_ : torch.device

    References
    ----------
    Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by Predicting Image
    Rotations", ICLR 2018; Yi et al., "Using Self-Supervised Pretext Tasks for Active
    Learning", ECCV 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import RotationPretextScorer
    >>> X = np.random.default_rng(0).random((8, 1, 16, 16))
    >>> pretext = RotationPretextScorer(base_channels=4, depth=2, max_epochs=1,
    ...                                 random_state=0).fit(X)
    >>> pretext.score_samples(X).shape, pretext.predict_proba(X).shape
    ((8,), (8, 4, 4))
    """

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        dilation: int = 1,
        max_epochs: int = 10,
        batch_size: int = 32,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        inference_batch_size: int | None = None,
        n_jobs: int | None = None,
        precision: str = "fp32",
        device: Any = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.base_channels = base_channels
        self.depth = depth
        self.dilation = dilation
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.inference_batch_size = inference_batch_size
        self.n_jobs = n_jobs
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _module_kwargs(self) -> dict[str, Any]:
        return {
            "in_channels": self.n_channels_in_,
            "out_channels": N_ROTATIONS,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "dilation": self.dilation,
            "skip_connections": False,
        }

    def _rotation_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (n, 4 true rotations, 4 predicted rotations)."""
        n_images = images.shape[0]
        result = images.new_empty((n_images, N_ROTATIONS, N_ROTATIONS))
        for rotation_ids, batch in _rotations(images):
            logits = self.module_(batch).float().mean(dim=(2, 3))
            result[:, rotation_ids] = logits.reshape(
                len(rotation_ids), n_images, N_ROTATIONS).transpose(0, 1)
        return result

    @staticmethod
    def _losses(log_probabilities: torch.Tensor) -> torch.Tensor:
        """Per-image cross-entropy, averaged over the 4 rotations."""
        return -torch.diagonal(log_probabilities, dim1=1, dim2=2).mean(dim=1)

    def fit(self, X: Any, y: Any = None) -> RotationPretextScorer:
        """Train the rotation classifier on unlabelled images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images, floats in [0, 1] or uint8.
        y : None
            Ignored.

        Returns
        -------
        self : RotationPretextScorer
        """
        self._check_common_params()
        pool = as_pool(X)  # validated once
        try:
            check_divisible(*pool.image_shape[1:], self.depth)
        except ValueError as error:
            raise ValueError(f"X: {error}") from None
        self._initialize(pool.image_shape[0])
        self.image_shape_ = tuple(pool.image_shape[1:])
        if pool.lazy:  # out of core: each batch is read when drawn, same images, same model
            def read(indices: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(pool[indices])
        else:
            images = torch.from_numpy(pool.to_numpy())

            def read(indices: np.ndarray) -> torch.Tensor:
                return images[torch.from_numpy(indices)]

        def batch_loss(indices: np.ndarray, generator: torch.Generator) -> torch.Tensor:
            batch = read(indices).to(self.device_)
            log_probabilities = F.log_softmax(self._rotation_logits(batch), dim=2)
            return self._losses(log_probabilities).mean()

        self._train(len(pool), self.max_epochs, batch_loss, "RotationPretextScorer")
        return self

    def _log_probabilities(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return self._map_pool(self._log_probabilities_of, self._as_pool(X), copies=N_ROTATIONS)

    def _log_probabilities_of(self, images: np.ndarray) -> np.ndarray:
        result = np.empty((len(images), N_ROTATIONS, N_ROTATIONS), dtype=np.float64)
        batch_size = self._batch_size_for(*images.shape[2:], copies=N_ROTATIONS)
        self._prepare_module()
        with torch.inference_mode(), self._autocast():
            for rows, batch in self._iter_batches(images, batch_size):
                # float64 log-softmax: small differences between images are not rounded away
                logits = self._rotation_logits(batch).double()
                result[rows] = F.log_softmax(logits, dim=2).cpu().numpy()
        return result

    def predict_proba(self, X: Any) -> np.ndarray:
        """Predicted rotation probabilities of each rotated copy of each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images.

        Returns
        -------
        probabilities : ndarray of shape (n_samples, 4, 4)
            ``probabilities[i, r, c]``: image ``i`` rotated by ``r``·90° is predicted to be
            rotated by ``c``·90°.
        """
        return np.exp(self._log_probabilities(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """Pretext loss of each image: cross-entropy averaged over its 4 rotations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images.

        Returns
        -------
        losses : ndarray of shape (n_samples,), float64
            Higher is harder (PT4AL queries those first).
        """
        log_probabilities = self._log_probabilities(X)
        return -np.diagonal(log_probabilities, axis1=1, axis2=2).mean(axis=1)


def rotation_confidence(probabilities: Any) -> np.ndarray:
    """Pretext confidence of each image: the mean over its rotations of the top probability.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, 4, 4)
        As returned by :meth:`RotationPretextScorer.predict_proba`.

    Returns
    -------
    confidence : ndarray of shape (n_samples,), float64 in [0.25, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import rotation_confidence
    >>> rotation_confidence(np.stack([np.eye(4), np.full((4, 4), 0.25)])).tolist()
    [1.0, 0.25]
    """
    p = _check_probabilities(probabilities)
    if p.ndim != 3:
        raise ValueError(
            f"probabilities must have shape (n_samples, n_rotations, n_rotations); got "
            f"shape {p.shape}"
        )
    return p.max(axis=2).mean(axis=1)


def segmentation_confidence(probabilities: Any) -> np.ndarray:
    """Segmentation confidence of each image: the mean over pixels of ``max(p, 1 − p)``.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width)
        Defect probabilities.

    Returns
    -------
    confidence : ndarray of shape (n_samples,), float64 in [0.5, 1]

    Examples
    --------
    >>> from sid4ds.baselines import segmentation_confidence
    >>> segmentation_confidence([[[0.5, 0.5]], [[0.0, 0.75]]]).tolist()
    [0.5, 0.875]
    """
    return reduce_per_image(0.5 + 0.5 * pixel_margin(probabilities))


def pt4al_split(
    pretext_losses: Any, n_batches: int = 10, tie_keys: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split a pool into PT4AL batches by pretext loss, hardest first.

    The pool is sorted by loss, highest first (equal losses: larger tie key first, or lower
    index without keys), and cut into ``min(n_batches, n_pool)`` consecutive batches whose
    sizes differ by at most one; batch 0 holds the hardest images.

    Parameters
    ----------
    pretext_losses : array-like of shape (n_pool,)
        Pretext loss of every pool image.
    n_batches : int, default=10
        Number of batches.
    tie_keys : array-like of shape (n_pool,), optional
        Order of equal losses, e.g. :func:`~sid4ds.strategies.content_keys`.

    Returns
    -------
    batches : ndarray of shape (n_pool,), int64
        Batch of every image.
    bounds : ndarray of shape (min(n_batches, n_pool),), float64
        Lowest loss in each batch (non-increasing), to place images that were not in this
        pool with :func:`pt4al_assign_batches`.

    Examples
    --------
    >>> from sid4ds.baselines import pt4al_split
    >>> batches, bounds = pt4al_split([0.1, 0.9, 0.5, 0.7, 0.3, 0.2], n_batches=3)
    >>> batches.tolist(), bounds.tolist()
    ([2, 0, 1, 0, 1, 2], [0.7, 0.3, 0.1])
    """
    losses = np.asarray(pretext_losses, dtype=np.float64)
    if losses.ndim != 1 or len(losses) == 0:
        raise ValueError(
            f"pretext_losses must have shape (n_pool,) with n_pool >= 1; got shape "
            f"{losses.shape}"
        )
    if not np.isfinite(losses).all():
        raise ValueError("pretext_losses contains NaN or infinite values")
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    if tie_keys is None:
        keys = -np.arange(len(losses))
    else:
        keys = np.asarray(tie_keys)
        if keys.shape != losses.shape:
            raise ValueError(
                f"tie_keys has shape {keys.shape} but pretext_losses has shape {losses.shape}"
            )
    descending = np.lexsort((keys, losses))[::-1]
    batches = np.empty(len(losses), dtype=np.int64)
    chunks = np.array_split(descending, min(n_batches, len(losses)))
    for batch, chunk in enumerate(chunks):
        batches[chunk] = batch
    return batches, np.array([losses[chunk].min() for chunk in chunks])


def pt4al_assign_batches(pretext_losses: Any, bounds: Any) -> np.ndarray:
    """Batch of images not seen in the split: the first whose lowest loss is at or below theirs.

    A loss below every bound goes to the last batch.

    Parameters
    ----------
    pretext_losses : array-like of shape (n_pool,)
    bounds : array-like of shape (n_batches,)
        From :func:`pt4al_split` (non-increasing).

    Returns
    -------
    batches : ndarray of shape (n_pool,), int64 in [0, n_batches)

    Examples
    --------
    >>> from sid4ds.baselines import pt4al_assign_batches
    >>> pt4al_assign_batches([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.0], [0.7, 0.3, 0.1]).tolist()
    [2, 0, 1, 0, 1, 2, 2]
    """
    losses = np.asarray(pretext_losses, dtype=np.float64)
    lower = np.asarray(bounds, dtype=np.float64)
    if lower.ndim != 1 or len(lower) == 0 or np.any(np.diff(lower) > 0):
        raise ValueError(
            f"bounds must be a non-empty, non-increasing 1-D array (from pt4al_split); "
            f"got {lower!r}"
        )
    ascending = lower[::-1]
    n_above = len(lower) - np.searchsorted(ascending, losses, side="right")
    return np.minimum(n_above, len(lower) - 1).astype(np.int64)


def pt4al_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    n_batches: int | None = None,
    pt4al_model: RotationPretextScorer | None = None,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """PT4AL: query batch by batch in order of pretext-task loss, least confident first.

    1. A rotation-prediction model (:class:`RotationPretextScorer`) is trained once, on the
       first pool it sees, and kept as ``learner.pt4al_model`` (found like the sid4ds
       scorers: ``pt4al_model=``, else ``learner.pt4al_model``, else a default one sized
       like the learner's estimator and seeded by ``random_state``; assign
       ``learner.pt4al_model = None`` to train a fresh one).
    2. That first pool, sorted by pretext loss (highest first), is split once into
       ``n_batches`` batches of equal size (:func:`pt4al_split`). The batch of every image
       is remembered by its content (:func:`~sid4ds.strategies.content_keys`), so later,
       smaller pools keep their images' batches; images not in that first pool are placed
       by their loss (:func:`pt4al_assign_batches`).
    3. Each query takes the next batch (``learner.pt4al_batch_``, from 0, wrapping around
       after the last; empty batches are skipped) and returns its ``n_instances`` least
       confident images: lowest mean pixel ``max(p, 1 − p)`` of the learner's segmentation
       learner once it is fitted, lowest pretext confidence (:func:`rotation_confidence`)
       before. If the batch holds fewer images, the following batches fill up the query.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        Its estimator, if a fitted :class:`~sid4ds.SegmentationLearner`, gives the
        confidence within a batch.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    n_batches : int, optional
        Number of pretext-loss batches (capped at the first pool's size). None: keep the
        current split, or 10 for a new one; a different number re-splits the pool in hand
        and restarts from batch 0.
    pt4al_model : RotationPretextScorer, optional
        A configured (unfitted) or fitted pretext model.
    random_state : int or None, default=None
        Seed of the default pretext model; None: the learner's estimator's int
        ``random_state``, if any.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices: the current batch's least confident first (then any fill-up from the
        next batches, each least confident first); ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their uncertainty, ``1 −`` confidence (descending within each batch). The pretext
        losses of the whole pool are left in ``learner.pool_scores_`` (the images PT4AL
        would query last are the fake normals of a DefectActiveLearner).

    Notes
    -----
    Simplified from the paper: the pretext task is rotation prediction only, with a small
    fully convolutional UNet classifier trained for a few epochs; the segmentation
    learner's mean pixel confidence replaces the classifier's top-class probability; the
    first query, before any segmentation learner exists, uses the pretext model's own
    confidence; the batch sequence wraps around instead of ending after ``n_batches``
    cycles.

    References
    ----------
    Yi, Seo, Lee, Kim, Lee & Choi, "Using Self-Supervised Pretext Tasks for Active
    Learning" (PT4AL), ECCV 2022.

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.baselines import RotationPretextScorer, pt4al_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, _ = make_defect_images(n_samples=24, image_size=16, random_state=0)
    >>> learner = ActiveLearner(SegmentationLearner(base_channels=4, depth=2),
    ...                         query_strategy=pt4al_sampling)
    >>> pretext = RotationPretextScorer(base_channels=4, depth=2, max_epochs=1,
    ...                                 random_state=0)
    >>> indices, _ = learner.query(X, n_instances=2, n_batches=4, pt4al_model=pretext)
    >>> len(indices), learner.pt4al_batch_, learner.pt4al_model is pretext
    (2, 1, True)
    """
    images = as_pool(X_pool, name="X_pool")
    n_selected = check_n_instances(n_instances, len(images))
    if n_batches is not None:
        n_batches = check_int(n_batches, "n_batches", minimum=1)
    segmenter = _segmenter_of(learner)
    segmenter_fitted = getattr(segmenter, "module_", None) is not None
    if segmenter_fitted:
        images = _check_pool_for(segmenter, images)
    model = pt4al_model if pt4al_model is not None else getattr(learner, "pt4al_model", None)
    if model is None:
        sized_like = {name: getattr(segmenter, name) for name in
                      ("base_channels", "depth", "dilation", "device")
                      if hasattr(segmenter, name)}
        model = RotationPretextScorer(**sized_like,
                                      random_state=_default_seed(learner, random_state))
    if not isinstance(model, RotationPretextScorer):
        raise TypeError(
            f"pt4al_model must be a RotationPretextScorer; got {type(model).__name__}"
        )
    if getattr(model, "module_", None) is None:
        model.fit(images)
    learner.pt4al_model = model
    losses = model.score_samples(images)

    keys = content_keys(images)
    split = getattr(learner, "__dict__", {}).get("_pt4al_split")
    if split is not None and split[0] is model and n_batches is None:
        n_batches = split[1]
    if split is None or split[0] is not model or split[1] != n_batches:
        n_batches = 10 if n_batches is None else n_batches
        batches, bounds = pt4al_split(losses, n_batches, tie_keys=keys)
        known = dict(zip(keys.tolist(), batches.tolist(), strict=True))
        learner._pt4al_split = split = (model, n_batches, bounds, known)
        learner.pt4al_batch_ = 0
    _, _, bounds, known = split
    by_loss = pt4al_assign_batches(losses, bounds)
    batch_of = np.array([known.get(key, fallback)
                         for key, fallback in zip(keys.tolist(), by_loss.tolist(), strict=True)],
                        dtype=np.int64)
    n_split = len(bounds)

    start = int(getattr(learner, "pt4al_batch_", 0)) % n_split
    walk = [(start + step) % n_split for step in range(n_split)]
    needed: list[int] = []
    n_found = 0
    for batch in walk:
        n_members = int(np.count_nonzero(batch_of == batch))
        if n_members:
            needed.append(batch)
            n_found += n_members
        if n_found >= n_selected:
            break
    members = np.flatnonzero(np.isin(batch_of, needed))
    if segmenter_fitted:
        confidence = segmentation_confidence(segmenter.predict_proba(images[members]))
    else:
        confidence = rotation_confidence(model.predict_proba(images[members]))
    uncertainty = 1.0 - confidence
    learner.pool_scores_, learner.pool_keys_ = losses, keys

    indices: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    n_left = n_selected
    for batch in needed:
        in_batch = batch_of[members] == batch
        top, _ = rank_pool(uncertainty[in_batch], n_left, tie_keys=keys[members[in_batch]])
        indices.append(members[in_batch][top])
        scores.append(uncertainty[in_batch][top])
        n_left -= len(top)
        if n_left == 0:
            break
    learner.pt4al_batch_ = (needed[0] + 1) % n_split
    return np.concatenate(indices).astype(np.int64), np.concatenate(scores)


# ====================================================================== suggestive annotation
def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero (cosine similarity 0)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def ensemble_uncertainty(probabilities: Any) -> np.ndarray:
    """Mean over pixels of the variance across models of the defect probability.

    Parameters
    ----------
    probabilities : array-like of shape (n_models, n_samples, height, width)
        Each model's defect probabilities.

    Returns
    -------
    uncertainty : ndarray of shape (n_samples,), float64 in [0, 0.25]

    Examples
    --------
    >>> from sid4ds.baselines import ensemble_uncertainty
    >>> ensemble_uncertainty([[[[0.0, 0.5]], [[0.2, 0.2]]],
    ...                       [[[1.0, 0.5]], [[0.2, 0.2]]]]).tolist()
    [0.125, 0.0]
    """
    p = _check_probabilities(probabilities)
    if p.ndim < 3 or p.shape[0] < 2:
        raise ValueError(
            f"probabilities must have shape (n_models, n_samples, height, width) with "
            f"n_models >= 2; got shape {p.shape}"
        )
    return p.var(axis=0).reshape(p.shape[1], -1).mean(axis=1)


def max_cover_selection(
    candidate_features: Any, pool_features: Any, n_instances: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximum cover (Yang et al. 2017): candidates that best represent the pool.

    Maximises ``F(S) = Σ_{x in pool} max_{s in S} sim(s, x)`` with ``sim`` the cosine
    similarity clipped at 0, adding one candidate at a time (the greedy (1 − 1/e)
    approximation of this facility-location function). A candidate close to the ones
    already picked adds little, so near-duplicates are passed over.

    Parameters
    ----------
    candidate_features : array-like of shape (n_candidates, n_features)
        Features of the candidates (S_c in the paper).
    pool_features : array-like of shape (n_pool, n_features)
        Features of the images to represent (S_u).
    n_instances : int, default=1
        K; capped at the number of candidates.

    Returns
    -------
    positions : ndarray of shape (min(n_instances, n_candidates),), int64
        Rows of ``candidate_features`` in the order picked; ties go to the earlier row.
    gains : ndarray of shape (min(n_instances, n_candidates),), float64
        Each pick's increase of F; never increasing.

    Examples
    --------
    >>> from sid4ds.baselines import max_cover_selection
    >>> candidates = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    >>> pool = [[1.0, 0.0], [1.0, 0.1], [0.1, 1.0]]
    >>> max_cover_selection(candidates, pool, n_instances=2)[0].tolist()
    [0, 2]
    """
    candidates = _check_features(candidate_features, "candidate_features")
    pool = _check_features(pool_features, "pool_features")
    if candidates.shape[1] != pool.shape[1]:
        raise ValueError(
            f"candidate_features has {candidates.shape[1]} features but pool_features has "
            f"{pool.shape[1]}"
        )
    if len(pool) == 0:
        raise ValueError("pool_features is empty: there is nothing to represent")
    n_selected = check_n_instances(n_instances, len(candidates))
    similarity = np.clip(_unit_rows(candidates) @ _unit_rows(pool).T, 0.0, None)
    coverage = np.zeros(len(pool))
    available = np.ones(len(candidates), dtype=bool)
    positions = np.empty(n_selected, dtype=np.int64)
    gains = np.empty(n_selected, dtype=np.float64)
    for step in range(n_selected):
        gain = np.maximum(similarity - coverage, 0.0).sum(axis=1)
        gain[~available] = -np.inf
        pick = int(np.argmax(gain))
        positions[step], gains[step] = pick, gain[pick]
        available[pick] = False
        np.maximum(coverage, similarity[pick], out=coverage)
    return positions, gains


def suggestive_annotation_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    n_models: int = 3,
    n_candidates: int | None = None,
    max_epochs: int | None = None,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Suggestive annotation: uncertain candidates, then those that best cover the pool.

    1. ``n_models`` clones of the learner's :class:`~sid4ds.SegmentationLearner` are
       trained from scratch on bootstrap samples of the labelled images
       (``learner.X_training``, ``learner.y_training``).
    2. Uncertainty of a pool image: the per-pixel variance of the clones' defect
       probabilities, averaged over the image (:func:`ensemble_uncertainty`); the
       ``n_candidates`` most uncertain images are the candidates.
    3. :func:`max_cover_selection` picks ``n_instances`` candidates that best represent the
       whole pool by the cosine similarity of their bottleneck features.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a :class:`~sid4ds.SegmentationLearner` (fitted or not:
        only its parameters are cloned) and it must have labelled images.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    n_models : int, default=3
        Ensemble size (at least 2).
    n_candidates : int, optional
        Candidates kept by uncertainty; default ``2·K``; at least K; capped at the pool.
    max_epochs : int, optional
        Epochs per ensemble member; default the estimator's ``max_epochs``. Lower it to
        keep queries cheap.
    random_state : int or None, default=None
        Seeds the bootstrap samples and the members; None: the learner's estimator's int
        ``random_state``, if any.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices in the order picked.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Each pick's coverage gain (descending). The ensemble uncertainty of the whole pool
        is left in ``learner.pool_scores_``.

    Notes
    -----
    Simplified from the paper: the members are copies of the segmentation learner (not
    the paper's bespoke FCNs) trained for ``max_epochs``; the feature of an image is the
    average-pooled UNet bottleneck of every member, each scaled to unit length and
    concatenated, so its cosine similarity is the members' mean cosine similarity (the
    paper uses the FCNs' encodings); the whole unlabelled pool is the set to represent.

    References
    ----------
    Yang, Zhang, Chen, Zhang & Chen, "Suggestive Annotation: A Deep Active Learning
    Framework for Biomedical Image Segmentation", MICCAI 2017.

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, SegmentationLearner
    >>> from sid4ds.baselines import suggestive_annotation_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = DefectActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=suggestive_annotation_sampling, X_training=X[:8],
    ...     y_training=masks[:8])
    >>> indices, _ = learner.query(X[8:], n_instances=3, n_models=2)
    >>> len(indices), learner.pool_scores_.shape
    (3, (16,))
    """
    images = as_pool(X_pool, name="X_pool")
    n_selected = check_n_instances(n_instances, len(images))
    n_models = check_int(n_models, "n_models", minimum=2)
    if n_candidates is None:
        n_candidates = min(2 * n_selected, len(images))
    else:
        n_candidates = check_int(n_candidates, "n_candidates", minimum=1)
        if n_candidates < n_selected:
            raise ValueError(
                f"n_candidates={n_candidates} is smaller than the {n_selected} images to "
                f"select; pass n_candidates >= n_instances (or leave it None for 2·K)"
            )
        n_candidates = min(n_candidates, len(images))
    if max_epochs is not None:
        max_epochs = check_int(max_epochs, "max_epochs", minimum=1)
    segmenter = _segmenter_of(learner)
    if not isinstance(segmenter, SegmentationLearner):
        raise TypeError(
            f"suggestive_annotation_sampling trains copies of the learner's estimator, which "
            f"must be a SegmentationLearner; got {type(segmenter).__name__}"
        )
    X_labeled, y_labeled = _labeled_set(learner, "suggestive_annotation_sampling")
    if images.image_shape[0] != X_labeled.shape[1]:
        raise ValueError(
            f"X_pool has {images.image_shape[0]} channel(s) but the labelled images have "
            f"{X_labeled.shape[1]}; pass pool images like the labelled ones"
        )
    rng = make_rng(_default_seed(learner, random_state))
    members = []
    for _ in range(n_models):
        rows = rng.integers(0, len(X_labeled), size=len(X_labeled))
        member = clone(segmenter).set_params(
            random_state=int(rng.integers(2**31)), warm_start=False, verbose=0,
            max_epochs=segmenter.max_epochs if max_epochs is None else max_epochs)
        members.append(member.fit(X_labeled[rows], y_labeled[rows]))
    # predict a chunk of the pool with every member at a time: never all maps at once
    uncertainty = np.empty(len(images), dtype=np.float64)
    chunk = max(1, 2**22 // (images.image_shape[1] * images.image_shape[2] * n_models))
    for start in range(0, len(images), chunk):
        rows = slice(start, start + chunk)
        uncertainty[rows] = ensemble_uncertainty(
            np.stack([member.predict_proba(images[rows]) for member in members]))
    features = np.concatenate([_unit_rows(member.transform(images).astype(np.float64))
                               for member in members], axis=1) / np.sqrt(n_models)
    keys = _record_pool_scores(learner, images, uncertainty)
    candidates, _ = rank_pool(uncertainty, n_candidates, tie_keys=keys)
    positions, gains = max_cover_selection(features[candidates], features, n_selected)
    return candidates[positions], gains


# ====================================================================== learning loss
class LossPredictionHead(nn.Module):
    """Loss-prediction module of Yoo & Kweon (2019) on pooled UNet features.

    Each feature level (global-average-pooled encoder level or bottleneck) goes through
    its own ``Linear → ReLU``; the concatenation goes through a final ``Linear`` to one
    scalar, the predicted loss.

    Parameters
    ----------
    level_widths : sequence of int
        Channels of each pooled level, in the order they are concatenated in the input.
    hidden_units : int, default=32
        Units per level.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.baselines import LossPredictionHead
    >>> head = LossPredictionHead([4, 8, 16], hidden_units=8)
    >>> head(torch.zeros(5, 28)).shape
    torch.Size([5])
    """

    def __init__(self, level_widths: Sequence[int], hidden_units: int = 32) -> None:
        super().__init__()
        self.level_widths = [check_int(width, "level_widths", minimum=1)
                             for width in level_widths]
        if not self.level_widths:
            raise ValueError("level_widths is empty; give the width of at least one level")
        hidden_units = check_int(hidden_units, "hidden_units", minimum=1)
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Linear(width, hidden_units), nn.ReLU())
            for width in self.level_widths
        )
        self.output = nn.Linear(hidden_units * len(self.level_widths), 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Map pooled features to predicted losses.

        Parameters
        ----------
        pooled : Tensor of shape (n, sum(level_widths))
            Average-pooled encoder features (see :func:`pooled_encoder_features`).

        Returns
        -------
        losses : Tensor of shape (n,)
        """
        parts = torch.split(pooled, self.level_widths, dim=1)
        hidden = [level(part) for level, part in zip(self.levels, parts, strict=True)]
        return self.output(torch.cat(hidden, dim=1))[:, 0]


def pooled_encoder_features(segmenter: Any, X: Any) -> tuple[np.ndarray, list[int]]:
    """Global-average-pooled features of every UNet encoder level and the bottleneck.

    Parameters
    ----------
    segmenter : SegmentationLearner
        Fitted.
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images.

    Returns
    -------
    features : ndarray of shape (n_samples, sum(level_widths)), float32
        Levels concatenated from the first encoder level to the bottleneck.
    level_widths : list of int
        Channels of each level: ``base_channels · 2**level`` for level 0..depth.
    """
    segmenter._check_fitted()
    widths = [segmenter.base_channels * 2**level for level in range(segmenter.depth + 1)]
    pool = segmenter._as_pool(X)
    return segmenter._map_pool(functools.partial(_pooled_features_of, segmenter, widths),
                               pool), widths


def _pooled_features_of(segmenter: Any, widths: list[int], images: np.ndarray) -> np.ndarray:
    features = np.empty((len(images), sum(widths)), dtype=np.float32)
    module = segmenter.module_
    segmenter._prepare_module()
    with torch.inference_mode(), segmenter._autocast():
        batch_size = segmenter._batch_size_for(*images.shape[2:])
        for rows, batch in segmenter._iter_batches(images, batch_size):
            bottleneck, skips = module._encode_with_skips(batch)
            pooled = [level.mean(dim=(2, 3)) for level in (*skips, bottleneck)]
            features[rows] = torch.cat(pooled, dim=1).float().cpu().numpy()
    return features


def segmentation_losses(segmenter: Any, X: Any, y: Any) -> np.ndarray:
    """Per-image training loss of a fitted SegmentationLearner (eq. 4 of SID4DS).

    ``bce_weight · BCE + dice_weight · Dice`` of each image on its own (the soft Dice
    pooled over that image's pixels only), with the learner's weights.

    Parameters
    ----------
    segmenter : SegmentationLearner
        Fitted.
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images.
    y : array-like of shape (n_samples, height, width)
        Their binary masks.

    Returns
    -------
    losses : ndarray of shape (n_samples,), float64
    """
    segmenter._check_fitted()
    images = check_images(X, n_channels=segmenter.n_channels_in_, depth=segmenter.depth)
    masks = check_masks(y, n_samples=len(images), height=images.shape[2],
                        width=images.shape[3])
    losses = np.empty(len(images), dtype=np.float64)
    masks_t = torch.from_numpy(masks.astype(np.float32))[:, None]
    bce_weight, dice_weight = float(segmenter.bce_weight), float(segmenter.dice_weight)
    segmenter.module_.eval()
    with torch.inference_mode():
        batch_size = segmenter._batch_size_for(*images.shape[2:])
        for rows, batch in segmenter._iter_batches(images, batch_size):
            logits = segmenter.module_(batch).float().cpu()
            batch_masks = masks_t[rows]
            bce = F.binary_cross_entropy_with_logits(logits, batch_masks, reduction="none")
            dice = torch.stack([soft_dice_loss(logits[i : i + 1], batch_masks[i : i + 1])
                                for i in range(len(logits))])
            losses[rows] = (bce_weight * bce.mean(dim=(1, 2, 3))
                            + dice_weight * dice).double().numpy()
    return losses


def margin_ranking_loss(
    predicted: torch.Tensor, target: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Pairwise margin ranking loss of Yoo & Kweon (2019) over all pairs of a batch.

    For every pair ``i < j`` whose targets differ,
    ``max(0, margin − sign(target_i − target_j) · (predicted_i − predicted_j))``, averaged:
    only the order of the targets matters, not their scale.

    Parameters
    ----------
    predicted : Tensor of shape (n,)
        Predicted losses.
    target : Tensor of shape (n,)
        True losses.
    margin : float, default=1.0
        ξ of the paper.

    Returns
    -------
    loss : Tensor of shape ()
        0 (with a gradient) when no pair has different targets.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.baselines import margin_ranking_loss
    >>> target = torch.tensor([0.1, 0.5, 0.9])
    >>> float(margin_ranking_loss(torch.tensor([0.0, 2.0, 4.0]), target))
    0.0
    >>> float(margin_ranking_loss(torch.tensor([1.0, 1.0, 1.0]), target))
    1.0
    """
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(
            f"predicted and target must both have shape (n,); got {tuple(predicted.shape)} "
            f"and {tuple(target.shape)}"
        )
    sign = torch.sign(target[:, None] - target[None, :])
    difference = predicted[:, None] - predicted[None, :]
    upper = torch.ones_like(sign, dtype=torch.bool).triu(diagonal=1)
    pairs = upper & (sign != 0)
    if not bool(pairs.any()):
        return predicted.sum() * 0.0
    return torch.clamp(margin - sign * difference, min=0.0)[pairs].mean()


def fit_loss_prediction_head(
    features: Any,
    target_losses: Any,
    level_widths: Sequence[int],
    *,
    hidden_units: int = 32,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 1e-3,
    margin: float = 1.0,
    random_state: Any = None,
) -> tuple[LossPredictionHead, list[float]]:
    """Train a :class:`LossPredictionHead` with :func:`margin_ranking_loss` (on the CPU).

    Parameters
    ----------
    features : array-like of shape (n_samples, sum(level_widths))
        Pooled features of the labelled images (:func:`pooled_encoder_features`).
    target_losses : array-like of shape (n_samples,)
        Their true losses (:func:`segmentation_losses`).
    level_widths : sequence of int
        Widths of the levels in ``features``.
    hidden_units : int, default=32
    epochs : int, default=100
        Passes over the samples, shuffled each time.
    batch_size : int, default=16
        Samples per batch; every pair in a batch counts.
    lr : float, default=1e-3
        Adam learning rate.
    margin : float, default=1.0
        Ranking margin ξ.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation and shuffling (no global random state is used).

    Returns
    -------
    head : LossPredictionHead
        Trained, in eval mode.
    history : list of float
        Mean ranking loss of each epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import fit_loss_prediction_head, predict_losses
    >>> features = np.random.default_rng(0).random((32, 6))
    >>> head, history = fit_loss_prediction_head(features, features.sum(axis=1), [2, 4],
    ...                                          epochs=20, random_state=0)
    >>> predict_losses(head, features).shape, history[-1] < history[0]
    ((32,), True)
    """
    inputs = _check_features(features, "features")
    targets = np.asarray(target_losses, dtype=np.float64)
    if targets.shape != (len(inputs),) or not np.isfinite(targets).all():
        raise ValueError(
            f"target_losses must hold one finite loss per sample, shape ({len(inputs)},); "
            f"got shape {targets.shape}"
        )
    widths = [check_int(width, "level_widths", minimum=1) for width in level_widths]
    if sum(widths) != inputs.shape[1]:
        raise ValueError(
            f"level_widths sum to {sum(widths)} but features has {inputs.shape[1]} columns"
        )
    if len(inputs) < 2:
        raise ValueError(
            f"the ranking loss needs at least 2 samples; got {len(inputs)}: label more "
            f"images first"
        )
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    lr = check_float(lr, "lr", low=0.0, include_low=False)
    margin = check_float(margin, "margin", low=0.0)
    rng = make_rng(random_state)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        head = LossPredictionHead(widths, hidden_units)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    inputs_t = torch.from_numpy(inputs.astype(np.float32))
    targets_t = torch.from_numpy(targets.astype(np.float32))
    history: list[float] = []
    head.train()
    for _ in range(epochs):
        order = rng.permutation(len(inputs))
        total, n_batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = torch.from_numpy(order[start : start + batch_size])
            if len(rows) < 2:  # a lone sample has no pair
                continue
            loss = margin_ranking_loss(head(inputs_t[rows]), targets_t[rows], margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            n_batches += 1
        history.append(total / n_batches)
    head.eval()
    return head, history


def predict_losses(head: LossPredictionHead, features: Any) -> np.ndarray:
    """Predicted loss of each sample.

    Parameters
    ----------
    head : LossPredictionHead
        Trained (:func:`fit_loss_prediction_head`).
    features : array-like of shape (n_samples, sum(level_widths))

    Returns
    -------
    losses : ndarray of shape (n_samples,), float64
        Higher means a larger expected loss; only the order is meaningful.
    """
    inputs = _check_features(features, "features")
    if inputs.shape[1] != sum(head.level_widths):
        raise ValueError(
            f"features has {inputs.shape[1]} columns but the head expects "
            f"{sum(head.level_widths)}"
        )
    head.eval()
    with torch.inference_mode():
        return head(torch.from_numpy(inputs.astype(np.float32))).double().numpy()


def learning_loss_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    hidden_units: int = 32,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 1e-3,
    margin: float = 1.0,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Learning loss: the pool images with the largest predicted segmentation loss.

    A :class:`LossPredictionHead` reads the global-average-pooled features of every UNet
    encoder level and the bottleneck of the learner's fitted segmentation learner
    (:func:`pooled_encoder_features`). It is trained on the labelled images, with the
    pairwise :func:`margin_ranking_loss`, to order them like their per-image segmentation
    losses (:func:`segmentation_losses`), then predicts the loss of every pool image. The
    trained head is left in ``learner.learning_loss_head_`` and its epoch losses in
    ``learner.learning_loss_history_``; it is retrained on every query, because the
    segmentation learner it reads changes with every ``teach``.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner`, and it
        must have at least 2 labelled images.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    hidden_units, epochs, batch_size, lr, margin
        Training of the head (see :func:`fit_loss_prediction_head`).
    random_state : int or None, default=None
        Seeds the head; None: the learner's estimator's int ``random_state``, if any.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest predicted loss first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their predicted losses (only the order is meaningful). All pool predictions are
        left in ``learner.pool_scores_``.

    Notes
    -----
    Simplified from the paper: the head is trained after the segmentation learner is
    fitted, on its frozen features, instead of jointly with it (the loss gradient does not
    reach the UNet); its targets are the fitted learner's losses on its own training
    images; every pair in a batch is ranked, not only the paper's split-batch pairs.

    References
    ----------
    Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019.

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.baselines import learning_loss_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = ActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=learning_loss_sampling, X_training=X[:8], y_training=masks[:8])
    >>> indices, _ = learner.query(X[8:], n_instances=3, epochs=10)
    >>> len(indices), learner.pool_scores_.shape
    (3, (16,))
    """
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    segmenter = _fitted_segmenter(learner, "learning_loss_sampling")
    images = _check_pool_for(segmenter, images)
    X_labeled, y_labeled = _labeled_set(learner, "learning_loss_sampling", minimum=2)
    X_labeled = check_images(X_labeled, name="learner.X_training",
                             n_channels=segmenter.n_channels_in_, depth=segmenter.depth)
    targets = segmentation_losses(segmenter, X_labeled, y_labeled)
    labeled_features, widths = pooled_encoder_features(segmenter, X_labeled)
    head, history = fit_loss_prediction_head(
        labeled_features, targets, widths, hidden_units=hidden_units, epochs=epochs,
        batch_size=batch_size, lr=lr, margin=margin,
        random_state=_default_seed(learner, random_state))
    learner.learning_loss_head_ = head
    learner.learning_loss_history_ = history
    pool_features, _ = pooled_encoder_features(segmenter, images)
    return _select_top(learner, images, predict_losses(head, pool_features), n_instances)
