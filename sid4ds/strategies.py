"""modAL query strategies of SID4DS and the pure ranking functions beneath them.

A query strategy is ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)``:
``indices`` of the chosen pool images, best first, and their scores. modAL's
``ActiveLearner.query`` calls it and returns ``(indices, X_pool[indices])``.

Where the strategies find their reconstruction scorer (the same rule for both):

1. ``scorer=`` passed to the strategy (or through ``learner.query(..., scorer=...)``);
2. otherwise the scorer kept on the learner from an earlier call, in the learner's
   :class:`~sid4ds.selection.QueryState` (``learner.sid4ds_state.msmr_scorer`` for
   :func:`msmr_sampling`, ``.sdr_scorer`` for :func:`sdr_sampling`; a
   :class:`~sid4ds.DefectActiveLearner` also shows them as ``learner.msmr_scorer`` and
   ``learner.sdr_scorer``);
3. otherwise a default :class:`~sid4ds.ReconstructionScorer`.

An unfitted scorer is fitted on first use (``msmr_sampling``: self-supervised on the pool;
``sdr_sampling``: label-guided on the learner's labelled images, starting from
the learner's M when there is one, as the paper starts G from M) and the fitted scorer is
kept in the learner's state, so it is trained once, not per query. Set it to None there
(``learner.sid4ds_state.msmr_scorer = None``) to make the next call train a fresh one.

Pools may be in-memory arrays, memmaps, sequences of image paths or torch Datasets (see
:mod:`sid4ds.pool`); scoring reads them in chunks and keeps one score per image. The
``n_jobs`` keyword of the strategies spreads the chunks over joblib workers (or a Dask
cluster under ``joblib.parallel_config(backend="dask")``) with the same result.

Each sid4ds strategy also leaves the scores of the whole pool in the learner's state
(:func:`~sid4ds.selection.select_top`); :class:`~sid4ds.DefectActiveLearner` reads them to
pick the fake normals. Ties are broken by the one rule of :mod:`sid4ds.selection`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from sid4ds._random import borrow_seed
from sid4ds._torch import is_fitted
from sid4ds._validation import check_choice, check_float, check_n_instances
from sid4ds.metrics import defective_rows
from sid4ds.pool import as_pool
from sid4ds.reconstruction import ReconstructionScorer
from sid4ds.segmentation import SegmentationLearner
from sid4ds.selection import (
    content_keys,
    estimator_of,
    query_state,
    rank_pool,
    select_top,
    tie_keys,
)

__all__ = [
    "FUSION_RULES",
    "REGION_RULES",
    "content_keys",
    "fuse_ranks",
    "msmr_sampling",
    "msmr_scores",
    "pseudo_label_regions",
    "rank_below_marked",
    "rank_pool",
    "sdr_sampling",
    "sdr_scores",
]  # content_keys and rank_pool live in sid4ds.selection


# ---------------------------------------------------------------------- scores
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
    pool = _fitted(scorer, "scorer").check_pool(X_pool, name="X_pool")
    return scorer.map_pool(scorer.msmr_chunk, pool, copies=scorer.n_blocks,
                            n_jobs=scorer.n_jobs if n_jobs is None else n_jobs,
                            description="E_msmr")


def _fitted(estimator: Any, name: str) -> Any:
    if not is_fitted(estimator):
        raise ValueError(f"{name} ({type(estimator).__name__}) is not fitted; fit it first")
    return estimator


#: How S's output becomes E_sdr's regions (:func:`pseudo_label_regions`).
REGION_RULES = ("adaptive", "threshold")


def pseudo_label_regions(probabilities: Any, *, threshold: float = 0.5,
                         rule: str = "adaptive", share: float = 0.01) -> np.ndarray:
    """The suspected-defect regions of E_sdr from S's defect probabilities.

    ``"threshold"`` is the paper's eq. 9: the pixels whose probability reaches
    ``threshold``. ``"adaptive"`` keeps those and, in an image where no pixel reaches it,
    takes its ``share`` most probable pixels (at least one), so that a weak S — one that
    marks nothing yet, as after the first round — still points G at its best guess, and
    E_sdr still ranks those images instead of tying them all at 0.

    Parameters
    ----------
    probabilities : array-like of shape (n_images, height, width)
        S's defect probabilities.
    threshold : float, default=0.5
        S's threshold.
    rule : {"adaptive", "threshold"}, default="adaptive"
    share : float, default=0.01
        Share of an image's pixels taken when none reaches ``threshold`` (adaptive only).

    Returns
    -------
    regions : ndarray of shape (n_images, height, width), uint8 in {0, 1}

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.strategies import pseudo_label_regions
    >>> weak = np.array([[[0.1, 0.3], [0.2, 0.1]]])
    >>> int(pseudo_label_regions(weak, rule="threshold").sum())
    0
    >>> pseudo_label_regions(weak).tolist()  # S marks nothing: its most probable pixel
    [[[0, 1], [0, 0]]]
    """
    return _regions_and_marked(probabilities, threshold, rule, share)[0]


def _regions_and_marked(probabilities: Any, threshold: float, rule: str,
                        share: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pseudo_label_regions`, and whether S marks each image (any pixel ≥ threshold)."""
    values = np.asarray(probabilities, dtype=np.float32)
    regions = values >= threshold
    flat = values.reshape(len(values), -1)
    marked = defective_rows(regions)
    if rule == "adaptive" and not marked.all():
        empty = ~marked
        n_top = max(1, int(round(share * flat.shape[1])))
        # the n_top-th largest value of each empty image; ties beyond it are kept too
        cut = -np.partition(-flat[empty], n_top - 1, axis=1)[:, n_top - 1 : n_top]
        regions.reshape(len(values), -1)[empty] = flat[empty] >= cut
    return regions.astype(np.uint8), marked


def rank_below_marked(errors: Any, marked: Any) -> np.ndarray:
    """Order the images S marks above the ones it does not, each group by its E_sdr.

    The adaptive rule's fallback regions (an image's most probable pixels where S marks
    none) are a guess, and G's error inside a guess on a normal image can exceed its error
    inside a small region S did mark on a defective one. So an unmarked image's error
    ``e ≥ 0`` becomes ``e / (1 + e) - 1``, in [-1, 0): below every marked image (whose
    E_sdr is ≥ 0, unchanged) and in the same order among the unmarked.

    Parameters
    ----------
    errors : array-like of shape (n_images,)
        E_sdr, each ≥ 0.
    marked : array-like of bool, shape (n_images,)
        Whether S marks at least one pixel (probability ≥ its threshold) in the image.

    Returns
    -------
    scores : ndarray of shape (n_images,), float64

    Examples
    --------
    >>> from sid4ds.strategies import rank_below_marked
    >>> rank_below_marked([0.01, 0.5, 1.0], [True, False, False]).tolist()
    [0.01, -0.6666666666666667, -0.5]
    """
    values = np.asarray(errors, dtype=np.float64)
    marked = np.asarray(marked, dtype=bool)
    return np.where(marked, values, values / (1.0 + values) - 1.0)


#: How the iterative stage's score uses S's own probability (``fusion`` of
#: :func:`sdr_scores`): None, E_sdr alone (the paper's eq. 8); ``"rank"``, E_sdr fused with
#: S's mean probability by rank (:func:`fuse_ranks`).
FUSION_RULES = (None, "rank")


def fuse_ranks(esdr: Any, evidence: Any, *, weight: float = 0.5) -> np.ndarray:
    """Rank fusion of E_sdr with S's own evidence: the weighted mean of their rank shares.

    Each score becomes its rank among the images, as a share in (0, 1] (equal scores share
    their mean rank), and the two shares are averaged: ``(1 − weight) · rank(E_sdr) / n +
    weight · rank(evidence) / n``. Ranks make the two commensurable whatever their scales
    (G's squared error, S's probability), and an image must rank high by both to rank
    first: a region S is sure of that G reconstructs as normal, or a G error where S sees
    nothing, counts for half.

    Parameters
    ----------
    esdr : array-like of shape (n_images,)
        E_sdr (:func:`sdr_scores` with ``fusion=None``).
    evidence : array-like of shape (n_images,)
        S's evidence of a defect in each image: in :func:`sdr_scores`, its mean
        probability (the expected share of defect pixels).
    weight : float in [0, 1], default=0.5
        Weight of S's evidence; 0 gives E_sdr's order, 1 S's.

    Returns
    -------
    scores : ndarray of shape (n_images,), float64 in (0, 1]

    Examples
    --------
    >>> from sid4ds.strategies import fuse_ranks
    >>> # image 0: the largest G error, where S sees nothing; image 1: both fairly high
    >>> fuse_ranks([0.30, 0.25, 0.10, 0.0], [0.00, 0.05, 0.20, 0.01]).tolist()
    [0.625, 0.75, 0.75, 0.375]
    """
    from scipy.stats import rankdata

    weight = check_float(weight, "weight", low=0.0, high=1.0)
    first = np.asarray(esdr, dtype=np.float64)
    second = np.asarray(evidence, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"esdr and evidence must be 1-d arrays of one score per image; got "
                         f"shapes {first.shape} and {second.shape}")
    n = max(1, len(first))
    return (1.0 - weight) * rankdata(first) / n + weight * rankdata(second) / n


def _sdr_chunk(segmenter: Any, scorer: ReconstructionScorer, rule: str, share: float,
               images: np.ndarray) -> np.ndarray:
    """E_sdr of one chunk, and S's mean probability of each image: shape (n, 2).

    S's pseudolabels of the chunk are G's regions."""
    if not hasattr(segmenter, "predict_proba_chunk"):
        # any segmenter with predict: its masks, as the paper's rule has them
        regions = np.asarray(segmenter.predict(images), dtype=np.uint8)
        errors = scorer.region_errors_chunk(images, regions)
        return np.stack([errors, regions.reshape(len(regions), -1).mean(axis=1)], axis=1)
    probabilities = segmenter.predict_proba_chunk(images)
    regions, marked = _regions_and_marked(probabilities, float(segmenter.threshold), rule,
                                          share)
    errors = scorer.region_errors_chunk(images, regions)
    if rule == "adaptive":
        errors = rank_below_marked(errors, marked)
    return np.stack([errors, probabilities.reshape(len(images), -1).mean(axis=1)], axis=1)


def sdr_scores(
    segmenter: SegmentationLearner,
    scorer: ReconstructionScorer,
    X_pool: Any,
    *,
    region: str = "adaptive",
    region_share: float = 0.01,
    fusion: str | None = None,
    n_jobs: int | None = None,
) -> np.ndarray:
    """E_sdr of every pool image (eq. 8–9), alone or fused with S's own probability.

    The segmentation learner's pseudolabels (:func:`pseudo_label_regions`: probability ≥
    its ``threshold``, and with the ``"adaptive"`` rule its most probable pixels where none
    reaches it) are the regions where the label-guided scorer's reconstruction error counts.
    With the adaptive rule the images S marks rank above the ones it does not
    (:func:`rank_below_marked`): the fallback regions order the unmarked images among
    themselves and never outrank a region S marked.

    Parameters
    ----------
    segmenter : SegmentationLearner
        Fitted segmentation learner S.
    scorer : ReconstructionScorer
        Fitted label-guided scorer G.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Or a memmap, image paths, a torch Dataset or an ImagePool. Pseudolabels are
        computed chunk by chunk and never held for the whole pool.
    region : {"adaptive", "threshold"}, default="adaptive"
        How S's probabilities become regions (:func:`pseudo_label_regions`);
        ``"threshold"`` is the paper's eq. 9.
    region_share : float, default=0.01
        The share of pixels of the adaptive rule.
    fusion : {None, "rank"}, default=None
        None: E_sdr alone (the paper). ``"rank"``: E_sdr fused with S's mean probability
        over the image by :func:`fuse_ranks` (each counts for half of the rank), so that
        S's evidence of a large or faint defect, which changes a reconstruction little,
        counts too.
    n_jobs : int or None, default=None
        joblib workers for the chunks; ``None`` uses ``scorer.n_jobs``.

    Returns
    -------
    scores : ndarray of shape (n_pool,)
        With ``fusion=None``, E_sdr (≥ 0) of the images in which S predicts a defect
        pixel; the others score 0 with ``region="threshold"``, and with ``"adaptive"``
        in [-1, 0), ordered by E_sdr inside their most probable pixels. With
        ``fusion="rank"``, the fused rank shares in (0, 1] (:func:`fuse_ranks`).

    Examples
    --------
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
    check_choice(region, "region", REGION_RULES)
    check_choice(fusion, "fusion", FUSION_RULES)
    region_share = check_float(region_share, "region_share", low=0.0, high=1.0,
                               include_low=False)
    pool = _fitted(scorer, "scorer").check_pool(X_pool, name="X_pool")
    _, height, width = pool.image_shape
    batch_size = scorer.images_per_batch(height, width)
    if isinstance(segmenter, SegmentationLearner):
        _fitted(segmenter, "segmenter").check_pool(pool, name="X_pool")
        # chunks are multiples of both networks' batches, so n_jobs cannot change a batch
        batch_size = math.lcm(batch_size, segmenter.images_per_batch(height, width))
    both = scorer.map_pool(functools.partial(_sdr_chunk, segmenter, scorer, region,
                                             region_share), pool,
                           n_jobs=scorer.n_jobs if n_jobs is None else n_jobs,
                           batch_size=batch_size, description="E_sdr")
    if fusion is None:
        return both[:, 0]
    return fuse_ranks(both[:, 0], both[:, 1])


# ---------------------------------------------------------------------- strategies
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
    docstring says (``scorer=``, then the learner's state, then a default one) and, if
    unfitted, fitted on ``X_pool`` once and kept in ``learner.sid4ds_state.msmr_scorer``.

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
    state = query_state(learner)
    if scorer is None:
        scorer = state.msmr_scorer
    if scorer is None:
        scorer = ReconstructionScorer(random_state=borrow_seed(learner))
    if not is_fitted(scorer):
        scorer.fit(images)
    state.msmr_scorer = scorer
    scores, keys = msmr_scores(scorer, images, n_jobs=n_jobs), content_keys(images)
    state.msmr_by_key.update(zip(keys.tolist(), scores.tolist(), strict=True))
    return select_top(learner, scores, tie_keys(keys), n_instances)


def sdr_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    scorer: ReconstructionScorer | None = None,
    region: str = "adaptive",
    region_share: float = 0.01,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterative-stage query: the images with the largest E_sdr (paper §3.3).

    The learner's fitted segmentation learner predicts pseudolabels for the pool; the
    label-guided reconstruction scorer G measures the reconstruction error inside them. G is
    found as the module docstring says (``scorer=``, then the learner's state, then a
    default) and, if unfitted, fitted once on the learner's labelled images
    (``learner.X_training``, ``learner.y_training``), starting from the learner's M when
    there is one; it is kept in ``learner.sid4ds_state.sdr_scorer`` and reused in later
    rounds, as the paper does (§4.2).

    With the paper's ``region="threshold"``, E_sdr is 0 for every image in which S predicts
    no defect pixel. Ties are ordered by the image's E_msmr when an earlier
    :func:`msmr_sampling` on this learner scored it (kept in
    ``learner.sid4ds_state.msmr_by_key``), then by a hash of its pixels.

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
    region, region_share
        How S's probabilities become E_sdr's regions (see :func:`sdr_scores`).
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; ``None`` uses the scorer's
        ``n_jobs``. The selection is the same for every value.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest E_sdr first.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their scores from :func:`sdr_scores`: E_sdr, and with the adaptive rule values in
        [-1, 0) for images in which S marks no pixel.

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
    segmenter = estimator_of(learner)
    if not is_fitted(segmenter):
        raise ValueError(
            "sdr_sampling needs a fitted segmentation learner to predict pseudolabels; "
            "teach the learner some labelled images first (or start with msmr_sampling)"
        )
    state = query_state(learner)
    if scorer is None:
        scorer = state.sdr_scorer
    if scorer is None:
        pretrained = state.msmr_scorer
        if pretrained is not None and is_fitted(pretrained):
            scorer = pretrained.guided_copy()
        else:
            scorer = ReconstructionScorer(random_state=borrow_seed(learner))
    if not is_fitted(scorer) or getattr(scorer, "fit_mode_", None) != "label_guided":
        X_labeled = getattr(learner, "X_training", None)
        y_labeled = getattr(learner, "y_training", None)
        if X_labeled is None or y_labeled is None:
            raise ValueError(
                "sdr_sampling needs labelled images to train the label-guided scorer: the "
                "learner has no X_training/y_training; teach it first or pass a fitted "
                "scorer="
            )
        scorer.fit(X_labeled, y_labeled)
    state.sdr_scorer = scorer
    keys = content_keys(images)
    msmr = np.array([state.msmr_by_key.get(key, np.nan) for key in keys.tolist()])
    scores = sdr_scores(segmenter, scorer, images, region=region, region_share=region_share,
                        n_jobs=n_jobs)
    return select_top(learner, scores, tie_keys(keys, msmr=msmr), n_instances)
