"""What each strategy of the benchmark does with one seed: the loop every baseline runs
(:func:`run_baseline`) and SID4DS through :func:`~sid4ds.run_sid4ds`
(:func:`run_sid4ds_strategy`), each giving a :class:`StrategyRun` (selection history and
timings) that :mod:`sid4ds.evaluation.protocol` turns into records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import draw_seed, make_rng, seed_if_unset
from sid4ds._core.validation import check_images, check_int
from sid4ds.baselines import (
    RotationPretextScorer,
    coreset_sampling,
    entropy_sampling,
    learning_loss_sampling,
    local_contrast_sampling,
    margin_sampling,
    pt4al_sampling,
    random_sampling,
    suggestive_annotation_sampling,
)
from sid4ds.engine.loop import LabelledRound, label_rounds, run_sid4ds
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.modal.learner import DefectActiveLearner
from sid4ds.ranking.selection import query_state

__all__ = ["COLD_START_BATCH", "StrategyRun", "run_baseline", "run_sid4ds_strategy"]


#: How each baseline picks its first batch: "random" = the seeded random batch shared by the
#: strategies that need a trained segmenter; "own" = the strategy's own query (no model).
COLD_START_BATCH = {"random": "random", "entropy": "random", "margin": "random",
                    "coreset": "random", "pt4al": "own", "sa": "random",
                    "learning_loss": "random", "local_contrast": "own"}


@dataclass
class StrategyRun:
    """What one strategy did with one seed.

    Attributes
    ----------
    strategy : str
    seed : int or None
    history : list of ndarray of int
        Pool indices selected in each round, round 0 (the cold start) first.
    seconds : list of dict
        Per round: ``selection`` (choosing the batch, including the training of every model
        the choice needs: M and G of SID4DS, PT4AL's pretext model, SA's ensemble, the loss
        head) and ``training`` (training the segmentation learner S on the labelled set).
    cold_start_scores : dict of str to ndarray of shape (n_pool,)
        The strategy's own cold-start ranking of the whole pool, if it has one
        (``"msmr"`` for SID4DS, ``"pt4al_rotation"`` for PT4AL).
    """

    strategy: str
    seed: int | None = None
    history: list[np.ndarray] = field(default_factory=list)
    seconds: list[dict[str, float]] = field(default_factory=list)
    cold_start_scores: dict[str, np.ndarray] = field(default_factory=dict)


def _baseline_strategy(name: str) -> Callable[..., Any]:
    return {"random": random_sampling, "entropy": entropy_sampling,
            "margin": margin_sampling, "coreset": coreset_sampling, "pt4al": pt4al_sampling,
            "sa": suggestive_annotation_sampling, "learning_loss": learning_loss_sampling,
            "local_contrast": local_contrast_sampling}[name]


def run_baseline(
    X_pool: Any,
    oracle: Callable[[np.ndarray], Any],
    strategy: str,
    *,
    n_rounds: int = 2,
    n_label: int,
    segmenter: SegmentationLearner | None = None,
    first_batch: Any = None,
    pretext: RotationPretextScorer | None = None,
    random_state: int | None = None,
    on_round: Callable[[int], None] | None = None,
) -> StrategyRun:
    """The common active-learning loop of every baseline, with ``oracle`` as the labeller.

    Round 0 labels ``first_batch`` when given (the shared random cold start), otherwise the
    first K of the strategy's own query (PT4AL, local contrast: no model needed). Every
    later round first trains the segmentation learner on all labelled images (from its
    previous weights after the first time, as :func:`~sid4ds.run_sid4ds` does), then queries
    the next K with the strategy; nothing is trained after the last round. The loop is the
    skeleton of every sid4ds loop, :func:`sid4ds.engine.rounds.label_rounds`. No fake normals.

    Parameters
    ----------
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        The unlabelled pool.
    oracle : callable
        ``oracle(indices) -> masks`` of shape (len(indices), height, width).
    strategy : str
        One of :data:`STRATEGIES` other than ``"sid4ds"``.
    n_rounds : int, default=2
        Queries after the cold start.
    n_label : int
        K, images per round.
    segmenter : SegmentationLearner, optional
        Configuration of S (cloned); default ``SegmentationLearner()``.
    first_batch : array-like of int, optional
        Pool indices labelled in round 0.
    pretext : RotationPretextScorer, optional
        Configuration of PT4AL's pretext model (cloned); default sized like S.
    random_state : int, optional
        Seeds S (when its ``random_state`` is None) and the random strategy's draws.
    on_round : callable, optional
        Called with the round number after each round (progress bars).

    Returns
    -------
    run : StrategyRun
        ``cold_start_scores`` holds PT4AL's pretext loss of the whole pool
        (``"pt4al_rotation"``).

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.evaluation import run_baseline
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> run = run_baseline(X, lambda indices: masks[indices], "local_contrast", n_rounds=1,
    ...                    n_label=4, segmenter=SegmentationLearner(base_channels=4, depth=2,
    ...                                                             max_epochs=1),
    ...                    random_state=0)
    >>> [len(batch) for batch in run.history], sorted(run.seconds[0])
    ([4, 4], ['selection', 'training'])
    """
    if strategy not in COLD_START_BATCH:
        raise ValueError(
            f"strategy must be one of {', '.join(repr(s) for s in COLD_START_BATCH)}; got "
            f"{strategy!r} (SID4DS itself runs through run_sid4ds)"
        )
    images = check_images(X_pool, name="X_pool")
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    n_label = check_int(n_label, "n_label", minimum=1)
    if first_batch is not None:
        first = np.asarray(first_batch, dtype=np.int64)
        if first.ndim != 1 or len(np.unique(first)) != len(first) or (
                first.size and (first.min() < 0 or first.max() >= len(images))):
            raise ValueError(
                f"first_batch must hold distinct pool indices in [0, {len(images)}); got "
                f"{first!r}"
            )
    rng = make_rng(random_state)
    model = seed_if_unset(clone(segmenter) if segmenter is not None
                          else SegmentationLearner(), random_state)
    learner = DefectActiveLearner(model, query_strategy=_baseline_strategy(strategy),
                                  n_normal=0, warm_start=True)
    run = StrategyRun(strategy=strategy, seed=random_state)

    def query_kwargs() -> dict[str, Any]:
        if strategy == "random":
            return {"random_state": draw_seed(rng)}
        if strategy == "pt4al" and query_state(learner).pt4al_model is None:
            configured = (clone(pretext) if pretext is not None else RotationPretextScorer(
                base_channels=model.base_channels, depth=model.depth, device=model.device))
            return {"pt4al_model": seed_if_unset(configured, random_state)}
        return {}

    def select(round_index: int, unlabeled: np.ndarray,
               history: list[LabelledRound[float]]) -> tuple[np.ndarray, float]:
        if round_index == 0 and first_batch is not None:
            return first, 0.0
        started = time.perf_counter()
        if history:  # train S on what the last round labelled (from its weights), then query
            learner.teach(images[history[-1].chosen], history[-1].masks)
        training = time.perf_counter() - started
        positions, _ = learner.query(images[unlabeled], n_instances=n_label, **query_kwargs())
        if round_index == 0 and strategy == "pt4al":  # part (a): its ranking of the pool
            run.cold_start_scores["pt4al_rotation"] = (
                query_state(learner).pt4al_model.score_samples(images))
        return unlabeled[np.asarray(positions, dtype=np.int64)], training

    history = label_rounds(
        len(images), tuple(images.shape[2:]), oracle, select, n_rounds=n_rounds,
        on_round=None if on_round is None else lambda labelled: on_round(labelled.round))
    run.history = [labelled.chosen for labelled in history]
    run.seconds = [{"selection": labelled.seconds["selection"] - labelled.info,
                    "training": labelled.info} for labelled in history]
    return run


def run_sid4ds_strategy(
    X_pool: np.ndarray,
    oracle: Callable[[np.ndarray], Any],
    *,
    n_rounds: int,
    n_label: int,
    segmenter: SegmentationLearner,
    scorer: ReconstructionScorer,
    expected_defect_ratio: float,
    random_state: int,
    region: str = "adaptive",
    fusion: str | None = "rank",
) -> StrategyRun:
    """SID4DS (:func:`~sid4ds.run_sid4ds`) as one strategy of the benchmark.

    Parameters
    ----------
    X_pool : ndarray of shape (n_pool, n_channels, height, width)
        The unlabelled pool.
    oracle : callable
        ``oracle(indices) -> masks`` of shape (len(indices), height, width).
    n_rounds : int
        Queries after the cold start.
    n_label : int
        K, images per round.
    segmenter : SegmentationLearner
        Configuration of S (cloned).
    scorer : ReconstructionScorer
        Configuration of M and G (cloned).
    expected_defect_ratio : float
        Sets the number of fake normals per round, ``V = K · (1 − ratio)``.
    random_state : int
        Seeds S and M (those whose ``random_state`` is None) and the run.
    region : {"adaptive", "threshold"}, default="adaptive"
        ``run_sid4ds``'s ``region``.
    fusion : {"rank", None}, default="rank"
        ``run_sid4ds``'s ``fusion``.

    Returns
    -------
    run : StrategyRun
        ``strategy="sid4ds"``; ``seconds`` splits each round into ``training`` (S) and
        ``selection`` (everything else but the oracle); ``cold_start_scores`` holds the
        E_msmr of the whole pool (``"msmr"``).

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer, SegmentationLearner
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.evaluation.runs import run_sid4ds_strategy
    >>> X, masks = make_defect_images(n_samples=16, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> run = run_sid4ds_strategy(
    ...     X, lambda indices: masks[indices], n_rounds=0, n_label=4,
    ...     segmenter=SegmentationLearner(base_channels=4, depth=2, max_steps=2),
    ...     scorer=ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                                 max_epochs=1),
    ...     expected_defect_ratio=0.05, random_state=0)
    >>> [len(batch) for batch in run.history], run.cold_start_scores["msmr"].shape
    ([4], (16,))
    """
    # S and M both take the run's seed (configure_models would draw one each: the
    # benchmark's published runs were made with this rule)
    model = seed_if_unset(clone(segmenter), random_state)
    reconstruction = seed_if_unset(clone(scorer), random_state)
    result = run_sid4ds(X_pool, oracle, n_rounds=n_rounds, n_label=n_label,
                        expected_defect_ratio=expected_defect_ratio, segmenter=model,
                        scorer=reconstruction, random_state=random_state, region=region,
                        fusion=fusion)
    run = StrategyRun(strategy="sid4ds", seed=random_state)
    for record in result.rounds:
        phases = record.seconds
        training = float(phases.get("train_S", 0.0))
        selection = float(sum(phases.values())) - training - float(phases.get("oracle", 0.0))
        run.history.append(np.asarray(record.selected, dtype=np.int64))
        run.seconds.append({"selection": selection, "training": training})
    # the cold-start ranking of the whole pool: the E_msmr of round 0 (every image unlabelled)
    run.cold_start_scores["msmr"] = result.msmr_scores
    return run
