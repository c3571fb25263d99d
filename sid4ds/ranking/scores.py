"""The scores of SID4DS, as pure functions of fitted models and images.

- :func:`msmr_scores`: E_msmr (eq. 3) of every pool image with the self-supervised
  reconstruction learner M, the cold-start score;
- :func:`sdr_scores`: E_sdr (eq. 8–9) with the segmentation learner S and the label-guided
  reconstruction learner G, the iterative score; :func:`pseudo_label_regions` says where G's
  error counts and :func:`rank_below_marked` how images S marks nowhere are ranked.

They hold no state and select nothing: the round engine (:mod:`sid4ds.engine.rounds`) trains the
models, calls these functions and ranks by :mod:`sid4ds.ranking.selection`. Pools may be in-memory
arrays, memmaps, sequences of image paths or torch Datasets (see :mod:`sid4ds.datasets.pool`);
scoring reads them in chunks and keeps one score per image. ``n_jobs`` spreads the chunks
over joblib workers (or a Dask cluster under ``joblib.parallel_config(backend="dask")``)
with the same result.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from sid4ds._core.validation import check_choice, check_float
from sid4ds.estimators.base import is_fitted
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows

__all__ = [
    "FUSION_RULES",
    "REGION_RULES",
    "fuse_evidence",
    "fuse_ranks",
    "msmr_evidence",
    "msmr_scores",
    "pseudo_label_regions",
    "rank_below_marked",
    "sdr_evidence",
    "sdr_scores",
]


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


def msmr_evidence(
    scorer: ReconstructionScorer, X_pool: Any, *, n_jobs: int | None = None
) -> np.ndarray:
    """E_msmr and the mean block error of every pool image, from one pass of M.

    Both come from the same ``n_blocks`` masked reconstructions
    (:meth:`~sid4ds.ReconstructionScorer.block_errors`): E_msmr their maximum, the drift
    check's score (:func:`sid4ds.ranking.drift.drift_scores`) their mean. Whoever computes
    one keeps both, so neither is computed twice for an image and an unchanged M.

    Parameters
    ----------
    scorer : ReconstructionScorer
        Fitted.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Or anything :func:`msmr_scores` takes.
    n_jobs : int or None, default=None
        joblib workers for the chunks; ``None`` uses ``scorer.n_jobs``.

    Returns
    -------
    evidence : ndarray of shape (n_pool, 2)
        Column 0: E_msmr (as :func:`msmr_scores`); column 1: the mean block error.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer, msmr_scores
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.ranking.scores import msmr_evidence
    >>> X, _ = make_defect_images(n_samples=8, image_size=16, random_state=0)
    >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=1, random_state=0).fit(X)
    >>> evidence = msmr_evidence(M, X)
    >>> evidence.shape, bool((evidence[:, 0] == msmr_scores(M, X)).all())
    ((8, 2), True)
    """
    pool = _fitted(scorer, "scorer").check_pool(X_pool, name="X_pool")
    evidence = scorer.map_pool(functools.partial(_msmr_chunk, scorer), pool,
                               copies=scorer.n_blocks,
                               n_jobs=scorer.n_jobs if n_jobs is None else n_jobs,
                               description="E_msmr")
    return np.asarray(evidence, dtype=np.float64).reshape(len(pool), 2)


def _msmr_chunk(scorer: ReconstructionScorer, images: np.ndarray) -> np.ndarray:
    errors = scorer.block_errors_chunk(images)
    return np.column_stack([errors.max(axis=1), errors.mean(axis=1)])


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
    >>> from sid4ds.ranking.scores import pseudo_label_regions
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
    >>> from sid4ds.ranking.scores import rank_below_marked
    >>> rank_below_marked([0.01, 0.5, 1.0], [True, False, False]).tolist()
    [0.01, -0.6666666666666667, -0.5]
    """
    values = np.asarray(errors, dtype=np.float64)
    marked = np.asarray(marked, dtype=bool)
    return np.where(marked, values, values / (1.0 + values) - 1.0)


def _sdr_chunk(segmenter: Any, scorer: ReconstructionScorer, rule: str, share: float,
               images: np.ndarray) -> np.ndarray:
    """E_sdr of one chunk and S's mean probability of each image: shape (n, 2).

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


def sdr_evidence(
    segmenter: SegmentationLearner,
    scorer: ReconstructionScorer,
    X_pool: Any,
    *,
    region: str = "adaptive",
    region_share: float = 0.01,
    n_jobs: int | None = None,
) -> np.ndarray:
    """E_sdr of every pool image and S's mean probability over it, in one pass.

    The per-image evidence of the iterative stage, both columns independent of the other
    images (so they can be kept per image): :func:`sdr_scores` returns the first, or the
    two fused by rank (``fusion="rank"``, :func:`fuse_ranks`). Parameters as
    :func:`sdr_scores`.

    Returns
    -------
    evidence : ndarray of shape (n_pool, 2)
        Column 0: E_sdr (as :func:`sdr_scores` with ``fusion=None``); column 1: S's mean
        probability over the image (the expected share of defect pixels).

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.ranking.scores import sdr_evidence
    >>> X, masks = make_defect_images(n_samples=8, image_size=16, defect_ratio=0.5,
    ...                               random_state=0)
    >>> S = SegmentationLearner(base_channels=4, depth=2, max_epochs=1,
    ...                         random_state=0).fit(X, masks)
    >>> G = ReconstructionScorer(base_channels=4, depth=2, max_epochs=1,
    ...                          random_state=0).fit(X, masks)
    >>> sdr_evidence(S, G, X).shape
    (8, 2)
    """
    check_choice(region, "region", REGION_RULES)
    region_share = check_float(region_share, "region_share", low=0.0, high=1.0,
                               include_low=False)
    pool = _fitted(scorer, "scorer").check_pool(X_pool, name="X_pool")
    _, height, width = pool.image_shape
    batch_size = scorer.images_per_batch(height, width)
    if isinstance(segmenter, SegmentationLearner):
        _fitted(segmenter, "segmenter").check_pool(pool, name="X_pool")
        # chunks are multiples of both networks' batches, so n_jobs cannot change a batch
        batch_size = math.lcm(batch_size, segmenter.images_per_batch(height, width))
    evidence = scorer.map_pool(functools.partial(_sdr_chunk, segmenter, scorer, region,
                                                 region_share), pool,
                               n_jobs=scorer.n_jobs if n_jobs is None else n_jobs,
                               batch_size=batch_size, description="E_sdr")
    return np.asarray(evidence, dtype=np.float64).reshape(len(pool), 2)


def sdr_scores(
    segmenter: SegmentationLearner,
    scorer: ReconstructionScorer,
    X_pool: Any,
    *,
    region: str = "adaptive",
    region_share: float = 0.01,
    n_jobs: int | None = None,
    fusion: str | None = None,
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
    n_jobs : int or None, default=None
        joblib workers for the chunks; ``None`` uses ``scorer.n_jobs``.
    fusion : {None, "rank"}, default=None
        None: E_sdr alone (the paper). ``"rank"``: E_sdr fused with S's mean probability
        over the image by :func:`fuse_ranks` (each counts for half of the rank), so that
        S's evidence of a large or faint defect, which changes a reconstruction little,
        counts too. The fused score of an image depends on the other images ranked with it.

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
    check_choice(fusion, "fusion", FUSION_RULES)
    evidence = sdr_evidence(segmenter, scorer, X_pool, region=region,
                            region_share=region_share, n_jobs=n_jobs)
    return fuse_evidence(evidence, fusion)


def fuse_evidence(evidence: np.ndarray, fusion: str | None) -> np.ndarray:
    """The iterative stage's score from :func:`sdr_evidence`: E_sdr, or fused by rank.

    Parameters
    ----------
    evidence : ndarray of shape (n_images, 2)
        E_sdr and S's mean probability of each image.
    fusion : {None, "rank"}

    Returns
    -------
    scores : ndarray of shape (n_images,)
    """
    check_choice(fusion, "fusion", FUSION_RULES)
    if fusion is None:
        return np.asarray(evidence[:, 0], dtype=np.float64)
    return fuse_ranks(evidence[:, 0], evidence[:, 1])


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
    >>> from sid4ds.ranking.scores import fuse_ranks
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
