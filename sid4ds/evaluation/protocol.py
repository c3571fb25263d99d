"""The paper's protocol (§4–5): every strategy labels the same pool, round by round.

:func:`run_benchmark` holds out a test split, runs SID4DS (:func:`~sid4ds.run_sid4ds`) and
every baseline (:func:`run_baseline`) on the rest, and turns what they did into the records
of :mod:`sid4ds.evaluation.records`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import draw_seed, make_rng, seed_if_unset
from sid4ds._core.validation import check_float, check_images, check_int, check_masks
from sid4ds.baselines import (
    RotationPretextScorer,
    coreset_sampling,
    entropy_sampling,
    learning_loss_sampling,
    local_contrast_sampling,
    local_contrast_scores,
    margin_sampling,
    pt4al_sampling,
    random_sampling,
    suggestive_annotation_sampling,
)
from sid4ds.engine.loop import LabelledRound, label_rounds, run_sid4ds
from sid4ds.engine.rounds import labels_per_round
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.evaluation.iou import iou_records
from sid4ds.evaluation.records import (
    RANKINGS,
    cold_start_records,
    labeled_records,
    selection_records,
)
from sid4ds.metrics import defective_rows
from sid4ds.modal.learner import DefectActiveLearner
from sid4ds.ranking.selection import content_keys, query_state, rank_pool

__all__ = [
    "COLD_START_BATCH",
    "DEFAULT_STRATEGIES",
    "SID4DS_VARIANTS",
    "check_protocol",
    "STRATEGIES",
    "BenchmarkResult",
    "StrategyRun",
    "run_baseline",
    "run_benchmark",
    "pool_and_test",
    "split_held_out",
]

#: The SID4DS strategies of the benchmark and how each scores (``run_sid4ds``'s ``region``
#: and ``fusion``): ``sid4ds_threshold`` takes the paper's regions, ``sid4ds_fused`` fuses
#: E_sdr with S's probability; both are ablations of the default.
SID4DS_VARIANTS: dict[str, dict[str, Any]] = {
    "sid4ds": {"region": "adaptive", "fusion": None},
    "sid4ds_threshold": {"region": "threshold", "fusion": None},
    "sid4ds_fused": {"region": "adaptive", "fusion": "rank"},
}

#: Strategy names, in the order the tables list them.
STRATEGIES = ("sid4ds", "sid4ds_threshold", "sid4ds_fused", "random", "entropy", "margin",
              "coreset", "pt4al", "sa", "learning_loss", "local_contrast")
#: The strategies run when none are named (the SID4DS ablations are run when asked for).
DEFAULT_STRATEGIES = tuple(name for name in STRATEGIES
                           if name == "sid4ds" or name not in SID4DS_VARIANTS)


#: How each baseline picks its first batch: "random" = the seeded random batch shared by the
#: strategies that need a trained segmenter; "own" = the strategy's own query (no model).
COLD_START_BATCH = {"random": "random", "entropy": "random", "margin": "random",
                    "coreset": "random", "pt4al": "own", "sa": "random",
                    "learning_loss": "random", "local_contrast": "own"}


def split_held_out(
    is_defective: Any, test_share: float, random_state: Any = None, groups: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split the data into a pool and a held-out test set, stratified by defective/normal.

    ``round(test_share · n)`` source groups of each class (defective: a group with a
    defective image; normal) go to the test set, drawn at random; the rest is the pool. A
    group (the images cut from one source image, say) is never split between the two, so
    no test image has a sibling in the pool. Without ``groups`` every image is its own
    group, and the sizes depend on the counts only.

    Parameters
    ----------
    is_defective : array-like of shape (n_samples,), bool
        Which images have a defect.
    test_share : float in [0, 1)
        Share held out; 0 keeps every image in the pool.
    random_state : int, numpy Generator or None, default=None
        Seeds the draw.
    groups : array-like of shape (n_samples,), optional
        The source group of each image.

    Returns
    -------
    pool : ndarray of shape (n_pool,), int64
        Indices of the pool images, ascending.
    test : ndarray of shape (n_samples - n_pool,), int64
        Indices of the test images, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.evaluation import split_held_out
    >>> is_defective = np.array([True] * 10 + [False] * 90)
    >>> pool, test = split_held_out(is_defective, 0.2, random_state=0)
    >>> len(pool), len(test), int(is_defective[test].sum())
    (80, 20, 2)
    """
    labels = np.asarray(is_defective, dtype=bool)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(
            f"is_defective must have shape (n_samples,) with n_samples >= 1; got shape "
            f"{labels.shape}"
        )
    test_share = check_float(test_share, "test_share", low=0.0, high=1.0, include_high=False)
    if groups is None:
        group_of = np.arange(len(labels))
    else:
        group_of = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        if group_of.shape != labels.shape:
            raise ValueError(f"groups has {len(group_of)} entries for {len(labels)} images; "
                             f"pass one group per image")
    n_groups = int(group_of.max()) + 1
    group_defective = np.zeros(n_groups, dtype=bool)
    np.logical_or.at(group_defective, group_of, labels)
    rng = make_rng(random_state)
    test_groups = []
    for value in (True, False):
        members = np.flatnonzero(group_defective == value)
        n_test = int(round(test_share * len(members)))
        test_groups.append(rng.permutation(members)[:n_test])
    test = np.flatnonzero(np.isin(group_of, np.concatenate(test_groups))).astype(np.int64)
    pool = np.setdiff1d(np.arange(len(labels)), test).astype(np.int64)
    if len(pool) == 0:
        raise ValueError(
            f"test_share={test_share} leaves no image in the pool; pass a smaller test_share"
        )
    return pool, test


def pool_and_test(
    is_defective: Any, test_share: float, random_state: Any = None, groups: Any = None,
    test_only: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's pool and test set for one seed: :func:`split_held_out` of the images
    that may enter the pool, plus the ``test_only`` images in the test set.

    Parameters
    ----------
    is_defective : array-like of shape (n_samples,), bool
        Which images have a defect.
    test_share : float in [0, 1)
        Share of the eligible images held out.
    random_state : int, numpy Generator or None, default=None
        Seeds the draw.
    groups : array-like of shape (n_samples,), optional
        The source group of each image.
    test_only : array-like of shape (n_samples,), bool, optional
        Images that are never in the pool but always in the test set.

    Returns
    -------
    pool : ndarray of shape (n_pool,), int64
        Indices of the pool images, ascending.
    test : ndarray of shape (n_samples - n_pool,), int64
        Indices of the test images (the test-only ones included), ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.evaluation import pool_and_test
    >>> is_defective = np.array([True] * 12 + [False] * 90)
    >>> test_only = np.arange(102) < 2
    >>> pool, test = pool_and_test(is_defective, 0.2, random_state=0, test_only=test_only)
    >>> len(pool), len(test), bool(np.isin([0, 1], test).all())
    (80, 22, True)
    """
    labels = np.asarray(is_defective, dtype=bool)
    extra = (np.zeros(len(labels), dtype=bool) if test_only is None
             else np.asarray(test_only, dtype=bool))
    if extra.shape != labels.shape:
        raise ValueError(f"test_only has shape {extra.shape}; expected one flag per image, "
                         f"({len(labels)},)")
    eligible = np.flatnonzero(~extra)
    pool, test = split_held_out(labels[eligible], test_share, random_state=random_state,
                                groups=None if groups is None
                                else np.asarray(groups)[eligible])
    return (eligible[pool],
            np.sort(np.concatenate([eligible[test], np.flatnonzero(extra)])).astype(np.int64))


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


def _run_sid4ds_strategy(
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
    fusion: str | None = None,
) -> StrategyRun:
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


def _timing_records(run: StrategyRun) -> list[dict[str, Any]]:
    return [{"seed": run.seed, "strategy": run.strategy, "round": round_index,
             "stage": "cold_start" if round_index == 0 else "iterative",
             "selection_seconds": phases["selection"], "training_seconds": phases["training"],
             "seconds": phases["selection"] + phases["training"]}
            for round_index, phases in enumerate(run.seconds)]


@dataclass
class BenchmarkResult:
    """Records of every part, one dict per row of its tidy CSV.

    Attributes
    ----------
    cold_start, selection, timing, iou : list of dict
        Keys :data:`COLD_START_COLUMNS`, :data:`SELECTION_COLUMNS`, :data:`TIMING_COLUMNS`,
        :data:`IOU_COLUMNS`; ``iou`` is empty when the IoU part was not run.
    labeled : list of dict
        Keys :data:`LABELED_COLUMNS`: every image each strategy labelled, in order.
    runs : list of StrategyRun
        Selection histories and timings of every strategy and seed.
    strategies : list of str
        The strategies run, in table order.
    info : dict
        Sizes: ``n_pool``, ``n_test``, ``n_label`` (K), ``n_defective_pool``,
        ``n_defective_test`` (per seed, as lists).
    """

    cold_start: list[dict[str, Any]] = field(default_factory=list)
    selection: list[dict[str, Any]] = field(default_factory=list)
    timing: list[dict[str, Any]] = field(default_factory=list)
    iou: list[dict[str, Any]] = field(default_factory=list)
    labeled: list[dict[str, Any]] = field(default_factory=list)
    runs: list[StrategyRun] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _check_strategies(strategies: Sequence[str]) -> list[str]:
    if isinstance(strategies, str):
        strategies = [strategies]
    chosen = list(dict.fromkeys(strategies))
    unknown = [name for name in chosen if name not in STRATEGIES]
    if unknown or not chosen:
        raise ValueError(
            f"strategies must be a non-empty list of {', '.join(STRATEGIES)}; got "
            f"{list(strategies)!r}"
        )
    return chosen


def check_protocol(
    n_rounds: int, label_share: float, test_share: float, iou: bool,
    iou_shares: Sequence[float],
) -> tuple[float, list[float]]:
    """Validated ``test_share`` and sorted ``iou_shares``; raise if IoU cannot be run."""
    test_share = check_float(test_share, "test_share", low=0.0, high=1.0, include_high=False)
    shares = sorted({check_float(share, "iou_shares", low=0.0, high=1.0, include_low=False)
                     for share in iou_shares})
    if iou:
        if test_share == 0:
            raise ValueError(
                "iou=True scores on held-out images but test_share=0 holds none out; pass "
                "test_share=0.2 (--test-share 0.2)"
            )
        reached = (n_rounds + 1) * label_share
        too_far = [share for share in shares if share > reached + 1e-9]
        if too_far:
            raise ValueError(
                f"iou_shares {too_far} exceed the {reached:.0%} of the pool that "
                f"{n_rounds} rounds (--rounds) of label_share={label_share} (--label-share) "
                f"label; pass more rounds or smaller iou_shares (--iou-shares)"
            )
    return test_share, shares


def run_benchmark(
    X: Any,
    masks: Any,
    *,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    n_rounds: int = 2,
    label_share: float = 0.1,
    seeds: Sequence[int] = (0, 1, 2),
    test_share: float = 0.2,
    segmenter: SegmentationLearner | None = None,
    scorer: ReconstructionScorer | None = None,
    pretext: RotationPretextScorer | None = None,
    expected_defect_ratio: float = 0.05,
    n_batches: int = 10,
    iou: bool = False,
    iou_shares: Sequence[float] = (0.1, 0.2, 0.3),
    groups: Any = None,
    test_only: Any = None,
    progress: bool = False,
    on_seed: Callable[[BenchmarkResult], None] | None = None,
) -> BenchmarkResult:
    """Run parts (a)–(d) of the benchmark (and (c) with ``iou=True``) on one data set.

    For every seed: a stratified ``test_share`` of the images is held out (seeded, never
    labelled), K = ``round(label_share · n_pool)``; every strategy labels the cold-start
    batch and ``n_rounds`` more batches of the pool; the cold-start rankings are cut into
    ``n_batches`` batches. With ``iou``, a fresh segmentation learner is trained on the
    first ``share · n_pool`` images each strategy labelled, for each of ``iou_shares``, and
    on the whole pool, and scored (defect IoU pooled over pixels) on the held-out images.
    The seed seeds the split, the random cold start and every model whose ``random_state``
    is None, so all strategies start from the same S initialisation.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images.
    masks : array-like of shape (n_samples, height, width)
        Their true defect masks (the labeller).
    strategies : sequence of str, default=DEFAULT_STRATEGIES
        Any of :data:`STRATEGIES` (the default is every one but the ablation
        ``sid4ds_threshold``).
    n_rounds : int, default=2
        Rounds after the cold start.
    label_share : float in (0, 1], default=0.1
        K as a share of the pool.
    seeds : sequence of int, default=(0, 1, 2)
        One run per seed; the tables average over them.
    test_share : float in [0, 1), default=0.2
        Held-out share; needs to be > 0 with ``iou``.
    segmenter : SegmentationLearner, optional
        Configuration of S (cloned). Default ``SegmentationLearner()``.
    scorer : ReconstructionScorer, optional
        Configuration of SID4DS's M and G (cloned). Default ``ReconstructionScorer()``.
    pretext : RotationPretextScorer, optional
        Configuration of PT4AL's rotation model (cloned). Default: sized like S, with M's
        epochs.
    expected_defect_ratio : float, default=0.05
        SID4DS's number of fake normals per round, ``V = K · (1 − ratio)``.
    n_batches : int, default=10
        Batches of the cold-start rankings.
    iou : bool, default=False
        Run part (c), the most expensive.
    iou_shares : sequence of float, default=(0.1, 0.2, 0.3)
        Labelled shares of the pool to train on; none may exceed
        ``(n_rounds + 1) · label_share``. A share that is a multiple of ``label_share``
        trains on exactly that many rounds of labels.
    groups : array-like of shape (n_samples,), optional
        Source group of each image: the held-out split never cuts a group.
    test_only : array-like of shape (n_samples,), bool, optional
        Images that are never in the pool but always in the test set (e.g. defective
        images that a 5%-defective subset left out), so that the IoU is measured on enough
        defects to tell strategies apart.
    progress : bool, default=False
        Show a tqdm progress bar.
    on_seed : callable, optional
        Called with the result so far after each seed (e.g. to save it, so a long run
        that is stopped keeps the seeds it finished).

    Returns
    -------
    result : BenchmarkResult

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.evaluation import run_benchmark
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.1,
    ...                               random_state=0)
    >>> result = run_benchmark(X, masks, strategies=["random", "local_contrast"], n_rounds=1,
    ...                        seeds=[0], segmenter=SegmentationLearner(base_channels=4,
    ...                                                                 depth=2, max_epochs=1))
    >>> result.info["n_pool"], result.info["n_label"], len(result.selection)
    (32, 3, 4)
    >>> sorted({record["ranking"] for record in result.cold_start})
    ['local_contrast', 'random']
    """
    images = check_images(X, name="X")
    truth = check_masks(masks, name="masks", n_samples=len(images), height=images.shape[2],
                        width=images.shape[3])
    chosen = _check_strategies(strategies)
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    label_share = check_float(label_share, "label_share", low=0.0, high=1.0,
                              include_low=False)
    seeds = [check_int(seed, "seeds", minimum=0) for seed in seeds]
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, e.g. [0]")
    test_share, shares = check_protocol(n_rounds, label_share, test_share, iou, iou_shares)
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    expected_defect_ratio = check_float(expected_defect_ratio, "expected_defect_ratio", low=0.0,
                                        high=1.0)
    segmenter = SegmentationLearner() if segmenter is None else segmenter
    scorer = ReconstructionScorer() if scorer is None else scorer
    if pretext is None:
        pretext = RotationPretextScorer(base_channels=segmenter.base_channels,
                                        depth=segmenter.depth, dilation=segmenter.dilation,
                                        max_epochs=scorer.max_epochs, device=segmenter.device)
    is_defective = defective_rows(truth)
    result = BenchmarkResult(strategies=chosen)
    info: dict[str, Any] = {"n_defective_pool": [], "n_defective_test": []}

    from tqdm.std import tqdm

    n_iou = len(seeds) * (len(chosen) * len(shares) + 1) if iou else 0
    total = len(seeds) * len(chosen) * (n_rounds + 1) + n_iou
    with tqdm(total=total, disable=not progress, desc="benchmark", unit="step") as bar:
        for seed in seeds:
            pool, test = pool_and_test(is_defective, test_share, random_state=seed,
                                       groups=groups, test_only=test_only)
            if n_batches > len(pool):
                raise ValueError(
                    f"n_batches={n_batches} is more than the {len(pool)} pool images; pass a "
                    f"smaller n_batches (--n-batches)"
                )
            X_pool, masks_pool, defective_pool = images[pool], truth[pool], is_defective[pool]
            n_label = labels_per_round(label_share, len(pool))
            info.update(n_pool=len(pool), n_test=len(test), n_label=n_label)
            info["n_defective_pool"].append(int(defective_pool.sum()))
            info["n_defective_test"].append(int(is_defective[test].sum()))

            def oracle(indices: np.ndarray, masks_pool: np.ndarray = masks_pool) -> np.ndarray:
                return masks_pool[indices]

            random_scores = make_rng((seed, 1)).random(len(pool))
            rankings: dict[str, np.ndarray] = {
                "random": random_scores, "local_contrast": local_contrast_scores(X_pool)}
            first_random, _ = rank_pool(random_scores, n_label)
            runs = []
            for strategy in chosen:
                bar.set_description(f"seed {seed}: {strategy}")
                if strategy in SID4DS_VARIANTS:
                    run = _run_sid4ds_strategy(
                        X_pool, oracle, n_rounds=n_rounds, n_label=n_label,
                        segmenter=segmenter, scorer=scorer,
                        expected_defect_ratio=expected_defect_ratio, random_state=seed,
                        **SID4DS_VARIANTS[strategy])
                    run.strategy = strategy
                    bar.update(n_rounds + 1)
                else:
                    run = run_baseline(
                        X_pool, oracle, strategy, n_rounds=n_rounds, n_label=n_label,
                        segmenter=segmenter, pretext=pretext, random_state=seed,
                        first_batch=(first_random if COLD_START_BATCH[strategy] == "random"
                                     else None),
                        on_round=lambda _round: bar.update(1))
                runs.append(run)
                rankings.update(run.cold_start_scores)
                result.selection += selection_records(run.history, defective_pool,
                                                      strategy=strategy, seed=seed)
                result.labeled += labeled_records(run.history, pool, defective_pool,
                                                  strategy=strategy, seed=seed)
                result.timing += _timing_records(run)
            ordered = {name: rankings[name] for name in RANKINGS if name in rankings}
            result.cold_start += cold_start_records(ordered, defective_pool, n_batches=n_batches,
                                                    tie_keys=content_keys(X_pool), seed=seed)
            result.runs += runs
            if iou:
                bar.set_description(f"seed {seed}: IoU")
                result.iou += iou_records(
                    {run.strategy: run.history for run in runs}, images, truth, pool, test,
                    shares, segmenter, seed=seed, n_label=n_label, label_share=label_share,
                    on_training=lambda: bar.update(1))
            result.info = info
            if on_seed is not None:
                on_seed(result)
    return result
