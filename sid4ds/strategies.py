"""modAL query strategies of SID4DS and the pure ranking functions beneath them.

A query strategy is ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)``:
``indices`` of the chosen pool images, best first, and their scores. modAL's
``ActiveLearner.query`` calls it and returns ``(indices, X_pool[indices])``.

Where the strategies find their reconstruction scorer (the same rule for both):

1. ``scorer=`` passed to the strategy (or through ``learner.query(..., scorer=...)``);
2. otherwise the scorer kept on the learner from an earlier call, ``learner.msmr_scorer``
   for :func:`msmr_sampling` and ``learner.sdr_scorer`` for :func:`sdr_sampling`;
3. otherwise a default :class:`~sid4ds.ReconstructionScorer`.

An unfitted scorer is fitted on first use (``msmr_sampling``: self-supervised on the pool;
``sdr_sampling``: label-guided on the learner's labelled images, starting from
``learner.msmr_scorer`` when there is one, as the paper starts G from M) and the fitted
scorer is kept on the learner under that name, so it is trained once, not per query.
Assign ``learner.msmr_scorer = None`` (or ``learner.sdr_scorer = None``) to make the next
call train a fresh one.

Pools may be in-memory arrays, memmaps, sequences of image paths or torch Datasets (see
:mod:`sid4ds.pool`); scoring reads them in chunks and keeps one score per image. The
``n_jobs`` keyword of the strategies spreads the chunks over joblib workers (or a Dask
cluster under ``joblib.parallel_config(backend="dask")``) with the same result.

Each sid4ds strategy also leaves the scores of the whole pool in ``learner.pool_scores_``
(and the tie-break keys it used in ``learner.pool_keys_``);
:class:`~sid4ds.DefectActiveLearner` reads them to pick the fake normals.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
from typing import Any

import numpy as np

from sid4ds._validation import check_int, check_n_instances
from sid4ds.pool import ImagePool, as_pool, chunk_size_for
from sid4ds.reconstruction import ReconstructionScorer
from sid4ds.segmentation import SegmentationLearner

__all__ = [
    "content_keys",
    "msmr_sampling",
    "msmr_scores",
    "rank_pool",
    "sdr_sampling",
    "sdr_scores",
]


# ---------------------------------------------------------------------- pure functions
def content_keys(X: Any) -> np.ndarray:
    """A reproducible key per image, computed from its pixels alone.

    Used to break score ties: the same image gets the same key wherever it sits in the pool,
    so permuting the pool permutes the selection.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...), or an ImagePool
        Images; a pool is read in chunks and hashed as the float32 images the networks see.

    Returns
    -------
    keys : ndarray of shape (n_samples,), uint64

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.strategies import content_keys
    >>> images = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> bool(content_keys(images)[1] == content_keys(images[::-1])[1])
    True
    """
    if isinstance(X, ImagePool):
        return np.concatenate([content_keys(images)
                               for _, images in X.iter_chunks(chunk_size_for(X, 1))])
    array = np.ascontiguousarray(X)
    return np.array(
        [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
         for row in array],
        dtype=np.uint64,
    )


def rank_pool(
    scores: Any, n_instances: int, n_normal: int = 0, tie_keys: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n_instances`` and bottom-``n_normal`` of a score vector (Algorithm 1, lines 3–4).

    Parameters
    ----------
    scores : array-like of shape (n_pool,)
        Higher is more informative. NaN is not allowed.
    n_instances : int
        K, how many to select for labelling (capped at the pool size).
    n_normal : int, default=0
        V, how many of the lowest-scored remaining images become fake normals (capped at
        what is left after the top K).
    tie_keys : array-like of shape (n_pool,) or sequence of them, optional
        Sort keys for equal scores, the first deciding first (larger first among the top,
        smaller first among the bottom); e.g. :func:`content_keys`. Without them ties go to
        the lower index.

    Returns
    -------
    top : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices in descending score order.
    bottom : ndarray of shape (min(n_normal, n_pool - len(top)),), int64
        Pool indices in ascending score order; disjoint from ``top``.

    Examples
    --------
    >>> from sid4ds.strategies import rank_pool
    >>> rank_pool([0.1, 0.9, 0.5, 0.2], n_instances=2, n_normal=1)
    (array([1, 2]), array([0]))
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be 1-D; got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN; a strategy must score every pool image")
    n_top = check_n_instances(n_instances, len(values))
    n_normal = check_int(n_normal, "n_normal", minimum=0)
    if tie_keys is None:
        key_list = [-np.arange(len(values), dtype=np.float64)]  # lower index wins ties
    elif isinstance(tie_keys, (list, tuple)):
        key_list = [np.asarray(keys) for keys in tie_keys]
    else:
        key_list = [np.asarray(tie_keys)]
    for keys in key_list:
        if keys.shape != values.shape:
            raise ValueError(
                f"tie_keys has shape {keys.shape} but scores has shape {values.shape}"
            )
    # lexsort: the last key is primary; sort descending by (score, key 1, key 2, ...)
    descending = np.lexsort((*reversed(key_list), values))[::-1]
    top = descending[:n_top].astype(np.int64)
    remaining = descending[n_top:][::-1]  # ascending score
    bottom = remaining[: min(n_normal, len(remaining))].astype(np.int64)
    return top, bottom


def msmr_scores(
    scorer: ReconstructionScorer, X_pool: Any, *, n_jobs: int | None = None
) -> np.ndarray:
    """E_msmr of every pool image with a fitted self-supervised scorer (eq. 3).

    Parameters
    ----------
    scorer : ReconstructionScorer
        Fitted.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Or a memmap, image paths, a torch Dataset or an ImagePool (read in chunks).
    n_jobs : int or None, default=None
        joblib workers for the chunks; ``None`` uses ``scorer.n_jobs``.

    Returns
    -------
    scores : ndarray of shape (n_pool,)

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer, msmr_scores
    >>> from sid4ds.datasets import make_defect_images
    >>> X, _ = make_defect_images(n_samples=8, image_size=16, random_state=0)
    >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=1, random_state=0).fit(X)
    >>> msmr_scores(M, X).shape
    (8,)
    """
    scorer._check_fitted()
    pool = scorer._as_pool(X_pool, name="X_pool")
    return scorer._map_pool(scorer._msmr_of, pool, copies=scorer.n_blocks,
                            n_jobs=scorer.n_jobs if n_jobs is None else n_jobs,
                            description="E_msmr")


def _sdr_of(segmenter: SegmentationLearner, scorer: ReconstructionScorer,
            images: np.ndarray) -> np.ndarray:
    """E_sdr of one chunk: S's pseudolabels of the chunk are G's regions."""
    predict = getattr(segmenter, "_predict_of", segmenter.predict)
    return scorer._region_errors(images, np.asarray(predict(images), dtype=np.uint8))


def sdr_scores(
    segmenter: SegmentationLearner,
    scorer: ReconstructionScorer,
    X_pool: Any,
    *,
    n_jobs: int | None = None,
) -> np.ndarray:
    """E_sdr of every pool image (eq. 8–9).

    The segmentation learner's pseudolabels (probability ≥ its ``threshold``, 0.5 by
    default) are the regions where the label-guided scorer's reconstruction error counts.

    Parameters
    ----------
    segmenter : SegmentationLearner
        Fitted segmentation learner S.
    scorer : ReconstructionScorer
        Fitted label-guided scorer G.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Or a memmap, image paths, a torch Dataset or an ImagePool. Pseudolabels are
        computed chunk by chunk and never held for the whole pool.
    n_jobs : int or None, default=None
        joblib workers for the chunks; ``None`` uses ``scorer.n_jobs``.

    Returns
    -------
    scores : ndarray of shape (n_pool,)
        0 for images in which S predicts no defect pixel.

    Examples
    --------
    >>> import copy
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner, sdr_scores
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=8, image_size=16, defect_ratio=0.5,
    ...                               random_state=0)
    >>> S = SegmentationLearner(base_channels=4, depth=2, max_epochs=1,
    ...                         random_state=0).fit(X, masks)
    >>> G = ReconstructionScorer(base_channels=4, depth=2, max_epochs=1,
    ...                          random_state=0).fit(X, masks)
    >>> sdr_scores(S, G, X).shape
    (8,)
    """
    scorer._check_fitted()
    pool = scorer._as_pool(X_pool, name="X_pool")
    _, height, width = pool.image_shape
    batch_size = scorer._batch_size_for(height, width)
    if isinstance(segmenter, SegmentationLearner):
        segmenter._check_fitted()
        segmenter._as_pool(pool, name="X_pool")
        # chunks are multiples of both networks' batches, so n_jobs cannot change a batch
        batch_size = math.lcm(batch_size, segmenter._batch_size_for(height, width))
    return scorer._map_pool(functools.partial(_sdr_of, segmenter, scorer), pool,
                            n_jobs=scorer.n_jobs if n_jobs is None else n_jobs,
                            batch_size=batch_size, description="E_sdr")


# ---------------------------------------------------------------------- strategies
def _segmenter_of(learner: Any) -> Any:
    return getattr(learner, "estimator", learner)


def _seed_of(learner: Any) -> Any:
    """The learner's estimator's ``random_state``, so default scorers are seeded alike."""
    return getattr(_segmenter_of(learner), "random_state", None)


def _select(
    learner: Any,
    scores: np.ndarray,
    keys: np.ndarray,
    n_instances: int,
    first_tie_keys: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    tie_keys = keys if first_tie_keys is None else [first_tie_keys, keys]
    learner.pool_scores_ = scores
    learner.pool_keys_ = tie_keys
    top, _ = rank_pool(scores, n_instances, tie_keys=tie_keys)
    return top, scores[top]


def _is_fitted(scorer: ReconstructionScorer) -> bool:
    return getattr(scorer, "module_", None) is not None


def msmr_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    scorer: ReconstructionScorer | None = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cold-start query: the images with the largest E_msmr (paper §3.1.3).

    Needs no labels. The self-supervised reconstruction scorer M is found as the module
    docstring says (``scorer=``, then ``learner.msmr_scorer``, then a default one) and, if
    unfitted, fitted on ``X_pool`` once and kept as ``learner.msmr_scorer``.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        The active learner; its estimator is not used.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool (read
        in chunks; an unfitted scorer then trains on batches read as they are drawn).
    n_instances : int, default=1
        K; more than the pool returns the whole pool; < 1 is an error.
    scorer : ReconstructionScorer, optional
        A configured (unfitted) or fitted self-supervised scorer.
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; ``None`` uses the scorer's
        ``n_jobs``. The selection is the same for every value.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest E_msmr first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their E_msmr.

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner, msmr_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=32, image_size=16, random_state=0)
    >>> learner = ActiveLearner(estimator=SegmentationLearner(base_channels=4, depth=2),
    ...                         query_strategy=msmr_sampling)
    >>> scorer = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                               max_epochs=1, random_state=0)
    >>> indices, X_query = learner.query(X, n_instances=4, scorer=scorer)
    >>> indices.shape, X_query.shape
    ((4,), (4, 1, 16, 16))
    """
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    if scorer is None:
        scorer = getattr(learner, "msmr_scorer", None)
    if scorer is None:
        scorer = ReconstructionScorer(random_state=_seed_of(learner))
    if not _is_fitted(scorer):
        scorer.fit(images)
    learner.msmr_scorer = scorer
    scores, keys = msmr_scores(scorer, images, n_jobs=n_jobs), content_keys(images)
    remembered = getattr(learner, "msmr_scores_by_key_", None) or {}
    remembered.update(zip(keys.tolist(), scores.tolist(), strict=True))
    learner.msmr_scores_by_key_ = remembered
    return _select(learner, scores, keys, n_instances)


def sdr_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    scorer: ReconstructionScorer | None = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterative-stage query: the images with the largest E_sdr (paper §3.3).

    The learner's fitted segmentation learner predicts pseudolabels for the pool; the
    label-guided reconstruction scorer G measures the reconstruction error inside them. G is
    found as the module docstring says (``scorer=``, then ``learner.sdr_scorer``, then a
    default) and, if unfitted, fitted once on the learner's labelled images
    (``learner.X_training``, ``learner.y_training``), starting from ``learner.msmr_scorer``
    when there is one; it is kept as ``learner.sdr_scorer`` and reused in later rounds, as
    the paper does (§4.2).

    E_sdr is 0 for every image in which S predicts no defect pixel. Such ties are ordered
    by the image's E_msmr when an earlier :func:`msmr_sampling` on this learner scored it
    (kept in ``learner.msmr_scores_by_key_``), then by a hash of its pixels.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner`.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    scorer : ReconstructionScorer, optional
        A fitted label-guided scorer, or a configured one to fit.
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; ``None`` uses the scorer's
        ``n_jobs``. The selection is the same for every value.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest E_sdr first.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their E_sdr.

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, ReconstructionScorer, SegmentationLearner
    >>> from sid4ds import sdr_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=32, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = DefectActiveLearner(
    ...     estimator=SegmentationLearner(base_channels=4, depth=2, max_epochs=1,
    ...                                   random_state=0),
    ...     query_strategy=sdr_sampling, X_training=X[:16], y_training=masks[:16])
    >>> scorer = ReconstructionScorer(base_channels=4, depth=2, max_epochs=1, random_state=0)
    >>> indices, X_query = learner.query(X[16:], n_instances=4, scorer=scorer)
    >>> len(indices)
    4
    """
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    segmenter = _segmenter_of(learner)
    if getattr(segmenter, "module_", None) is None:
        raise ValueError(
            "sdr_sampling needs a fitted segmentation learner to predict pseudolabels; "
            "teach the learner some labelled images first (or start with msmr_sampling)"
        )
    if scorer is None:
        scorer = getattr(learner, "sdr_scorer", None)
    if scorer is None:
        pretrained = getattr(learner, "msmr_scorer", None)
        if pretrained is not None and _is_fitted(pretrained):
            scorer = copy.deepcopy(pretrained).set_params(warm_start=True)
        else:
            scorer = ReconstructionScorer(random_state=_seed_of(learner))
    if not _is_fitted(scorer) or getattr(scorer, "fit_mode_", None) != "label_guided":
        X_labeled = getattr(learner, "X_training", None)
        y_labeled = getattr(learner, "y_training", None)
        if X_labeled is None or y_labeled is None:
            raise ValueError(
                "sdr_sampling needs labelled images to train the label-guided scorer: the "
                "learner has no X_training/y_training; teach it first or pass a fitted "
                "scorer="
            )
        scorer.fit(X_labeled, y_labeled)
    learner.sdr_scorer = scorer
    keys = content_keys(images)
    remembered = getattr(learner, "msmr_scores_by_key_", None) or {}
    msmr_ties = np.array([remembered.get(key, -np.inf) for key in keys.tolist()])
    return _select(learner, sdr_scores(segmenter, scorer, images, n_jobs=n_jobs), keys,
                   n_instances, first_tie_keys=msmr_ties)
