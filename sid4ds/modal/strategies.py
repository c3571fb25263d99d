"""modAL query strategies of SID4DS: thin adapters over the round engine.

A query strategy is ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)``:
``indices`` of the chosen pool images, best first, and their scores. modAL's
``ActiveLearner.query`` calls it and returns ``(indices, X_pool[indices])``.

Each strategy runs one round of :class:`sid4ds.engine.rounds.SID4DSRounds`, the round that
``run_sid4ds`` and a labelling session run, on the pool it is given:

- :func:`sid4ds_sampling` picks the stage by itself, as Algorithm 1 does: the cold start
  (E_msmr) until the learner's labelled set holds a defective and a normal image, the
  iterative stage (E_sdr) from then on. No manual switch;
- :func:`msmr_sampling` always runs the cold start, :func:`sdr_sampling` always the
  iterative stage.

The engine, and so the learners M and G and the scores they gave, live in one place on the
modAL learner: ``learner.sid4ds_state.engine`` (see :func:`learner_engine`). M is trained
on the first pool it is needed for and kept; G is made from M and trained once on the
learner's labelled set, X_L ∪ X_FN (:func:`sid4ds.engine.rounds.training_set`: on a
:class:`~sid4ds.DefectActiveLearner` the fake normals of its last query, on a plain modAL
learner ``X_training``/``y_training``); S is the learner's estimator, trained by the
learner's ``teach`` (never by the strategy). ``scorer=`` gives M (or G, for
:func:`sdr_sampling`) explicitly. Every score is kept per image by the models that computed
it, so an unchanged M never scores an image twice, and images with equal scores are
ordered by their cold-start E_msmr, then by content (:mod:`sid4ds.ranking.selection`).

The round's scores of the whole pool are left in the learner's state
(``learner.sid4ds_state.pool_scores``, ``learner.pool_scores_`` on a DefectActiveLearner),
and the round itself (``learner.sid4ds_state.last_round``), whose fake normals a
DefectActiveLearner keeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds._core.random import borrow_seed
from sid4ds._core.validation import check_n_instances
from sid4ds.datasets.pool import ImagePool, as_pool
from sid4ds.engine.rounds import SID4DSRounds, round_stage
from sid4ds.estimators.base import is_fitted
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.ranking.selection import estimator_of, query_state, record_pool_scores

__all__ = ["default_msmr_scorer", "learner_engine", "msmr_sampling", "sdr_sampling",
           "sid4ds_sampling"]


def learner_engine(learner: Any) -> SID4DSRounds:
    """The round engine of a modAL learner (``learner.sid4ds_state.engine``), made on first use.

    A new engine holds the learner's estimator as S and a default
    :class:`~sid4ds.ReconstructionScorer` as M, seeded from the estimator's int
    ``random_state`` (:func:`sid4ds._core.random.borrow_seed`). Set
    ``learner.sid4ds_state.engine = None`` to start afresh (a new M and G, no kept scores).

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)

    Returns
    -------
    engine : SID4DSRounds

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import SegmentationLearner, sid4ds_sampling
    >>> from sid4ds.modal.strategies import learner_engine
    >>> learner = ActiveLearner(SegmentationLearner(random_state=3),
    ...                         query_strategy=sid4ds_sampling)
    >>> engine = learner_engine(learner)
    >>> engine is learner_engine(learner), engine.msmr_scorer.random_state
    (True, 3)
    """
    state = query_state(learner)
    if state.engine is None:
        state.engine = SID4DSRounds(estimator_of(learner), default_msmr_scorer(learner))
    return state.engine


def default_msmr_scorer(learner: Any) -> ReconstructionScorer:
    """A default M for a learner: seeded from its estimator's int ``random_state``."""
    return ReconstructionScorer(random_state=borrow_seed(learner))


def _labelled_set(learner: Any, pool: ImagePool) -> tuple[np.ndarray, np.ndarray]:
    """X_L ∪ X_FN of the learner: its own ``training_data()``, or X_training/y_training."""
    if getattr(learner, "X_training", None) is None:
        _, height, width = pool.image_shape
        return pool[np.empty(0, np.int64)], np.zeros((0, height, width), np.uint8)
    if callable(getattr(learner, "training_data", None)):
        return learner.training_data()
    return np.asarray(learner.X_training), np.asarray(learner.y_training)


def _query(learner: Any, X_pool: Any, n_instances: int, stage: str | None, *,
           scorer: ReconstructionScorer | None = None,
           sdr_scorer: ReconstructionScorer | None = None, region: str = "adaptive",
           region_share: float = 0.01, fusion: str | None = "rank",
           n_jobs: int | None = None, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """One round of the learner's engine on ``X_pool``; the strategies' common body."""
    images = as_pool(X_pool, name="X_pool")
    n_instances = check_n_instances(n_instances, len(images))
    state = query_state(learner)
    engine = learner_engine(learner)
    engine.segmenter = estimator_of(learner)
    if scorer is not None:
        engine.msmr_scorer = scorer
    if sdr_scorer is not None:
        engine.sdr_scorer = sdr_scorer
    engine.region, engine.region_share, engine.n_jobs = region, region_share, n_jobs
    engine.fusion = fusion  # checked with the other settings when the round starts
    engine.n_normal = getattr(learner, "n_normal", "auto")
    engine.expected_defect_ratio = getattr(learner, "expected_defect_ratio", 0.05)
    X_train, y_train = _labelled_set(learner, images)
    round_index = state.n_queries
    if (stage or round_stage(y_train)[0]) == "iterative":
        if not is_fitted(engine.segmenter):
            raise ValueError(
                f"{strategy} needs a fitted segmentation learner to predict pseudolabels; "
                f"teach the learner some labelled images first (or start with "
                f"msmr_sampling)")
        G = engine.sdr_scorer
        if len(X_train) == 0 and not (is_fitted(G) and G.fit_mode_ == "label_guided"):
            raise ValueError(
                f"{strategy} needs labelled images to train the label-guided scorer: the "
                f"learner has no X_training/y_training; teach it first or pass a fitted "
                f"scorer=")
        engine.trained_for["S"] = round_index  # S is the learner's: teach trains it
    result = engine.run_round(images, np.arange(len(images)), X_train, y_train, round_index,
                              n_instances, stage=stage)
    state.n_queries += 1
    state.last_round = result
    record_pool_scores(learner, result.scores)
    return result.selected, result.scores[result.selected]


def sid4ds_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    scorer: ReconstructionScorer | None = None,
    region: str = "adaptive",
    region_share: float = 0.01,
    fusion: str | None = "rank",
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SID4DS's query, either stage: E_msmr until a defect is labelled, then E_sdr.

    Algorithm 1 in one strategy: while the learner's labelled set X_L ∪ X_FN lacks a
    defective or a normal image, the cold start ranks by E_msmr (M trained on the first pool
    it sees, no labels needed); from then on the iterative stage ranks by E_sdr (the
    learner's fitted S marks suspected defects, G reconstructs them), fused by rank with
    S's mean probability unless ``fusion=None``. The round says its stage and why in
    ``learner.sid4ds_state.last_round``.

    Parameters
    ----------
    learner : modAL ActiveLearner or DefectActiveLearner
        Its ``estimator`` is S (a :class:`~sid4ds.SegmentationLearner`), trained by
        ``teach``.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool (read
        in chunks).
    n_instances : int, default=1
        K; more than the pool returns the whole pool; < 1 is an error.
    scorer : ReconstructionScorer, optional
        A configured (unfitted) or fitted self-supervised M; it replaces the kept one.
    region, region_share
        How S's probabilities become E_sdr's regions (see :func:`sid4ds.sdr_scores`).
    fusion : {"rank", None}, default="rank"
        The iterative score: E_sdr fused with S's mean probability by rank, or E_sdr alone
        (None, the paper's; see :func:`sid4ds.sdr_scores`).
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; ``None`` uses the models' own
        ``n_jobs``. The selection is the same for every value.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest score first.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their E_msmr, fused rank shares in (0, 1], or E_sdr (``fusion=None``).

    Examples
    --------
    >>> from sid4ds import DefectActiveLearner, ReconstructionScorer, SegmentationLearner
    >>> from sid4ds import sid4ds_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = DefectActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_steps=2, random_state=0),
    ...     query_strategy=sid4ds_sampling)
    >>> learner.msmr_scorer = ReconstructionScorer(base_channels=4, depth=2, patch_size=4,
    ...                                            n_blocks=4, max_epochs=1, random_state=0)
    >>> indices, X_query = learner.query(X, n_instances=8)
    >>> learner.sid4ds_state.last_round.stage
    'cold_start'
    >>> learner.teach(X_query, masks[indices])
    >>> rest = [row for row in range(len(X)) if row not in indices]
    >>> _ = learner.query(X[rest], n_instances=8)
    >>> learner.sid4ds_state.last_round.stage
    'iterative'
    """
    return _query(learner, X_pool, n_instances, None, scorer=scorer, region=region,
                  region_share=region_share, fusion=fusion, n_jobs=n_jobs,
                  strategy="sid4ds_sampling")


def msmr_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    scorer: ReconstructionScorer | None = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cold-start query: the images with the largest E_msmr (paper §3.1.3).

    Needs no labels. The self-supervised reconstruction learner M is ``scorer`` when given,
    else the one kept in the learner's engine (:func:`learner_engine`); an unfitted M is
    fitted on ``X_pool`` once and kept.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        The active learner; its estimator is not used.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool (read
        in chunks; an unfitted M then trains on batches read as they are drawn).
    n_instances : int, default=1
        K; more than the pool returns the whole pool; < 1 is an error.
    scorer : ReconstructionScorer, optional
        A configured (unfitted) or fitted self-supervised M; it replaces the kept one.
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; ``None`` uses M's ``n_jobs``. The
        selection is the same for every value.

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
    return _query(learner, X_pool, n_instances, "cold_start", scorer=scorer, n_jobs=n_jobs,
                  strategy="msmr_sampling")


def sdr_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    scorer: ReconstructionScorer | None = None,
    region: str = "adaptive",
    region_share: float = 0.01,
    fusion: str | None = "rank",
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterative-stage query: the images ranked first by E_sdr (paper §3.3) and S.

    By default E_sdr is fused by rank with S's mean probability
    (:func:`sid4ds.ranking.scores.fuse_ranks`); ``fusion=None`` ranks by E_sdr alone, as
    the paper does.

    The learner's fitted segmentation learner predicts pseudolabels for the pool; the
    label-guided reconstruction learner G measures the reconstruction error inside them. G
    is ``scorer`` when given, else the one kept in the learner's engine, else made from the
    engine's M (trained on the pool first if it is not yet) and trained once on the
    learner's labelled set; it is reused in later rounds, as the paper does (§4.2).

    With the paper's ``region="threshold"``, E_sdr is 0 for every image in which S predicts
    no defect pixel. Ties are ordered by the image's E_msmr when M scored it, then by a hash
    of its pixels.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner`.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    scorer : ReconstructionScorer, optional
        A fitted label-guided G, or a configured one to fit on the labelled set; it
        replaces the kept one.
    region, region_share
        How S's probabilities become E_sdr's regions (see :func:`sid4ds.sdr_scores`).
    fusion : {"rank", None}, default="rank"
        The iterative score: E_sdr fused with S's mean probability by rank, or E_sdr alone
        (None, the paper's; see :func:`sid4ds.sdr_scores`).
    n_jobs : int or None, default=None
        joblib workers that score chunks of the pool; ``None`` uses the models' own
        ``n_jobs``. The selection is the same for every value.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest score first.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their scores from :func:`~sid4ds.sdr_scores`: the fused rank shares in (0, 1]; with
        ``fusion=None`` E_sdr, and with the adaptive rule values in [-1, 0) for images in
        which S marks no pixel.

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
    return _query(learner, X_pool, n_instances, "iterative", sdr_scorer=scorer, region=region,
                  region_share=region_share, fusion=fusion, n_jobs=n_jobs,
                  strategy="sdr_sampling")
