"""The paper's protocol (§4–5): every strategy labels the same pool, round by round.

:func:`run_benchmark` holds out a test split, runs SID4DS (:func:`~sid4ds.run_sid4ds`) and
every baseline (:func:`run_baseline`) on the rest, and turns what they did into the records
of :mod:`sid4ds.evaluation.records`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_float, check_images, check_int, check_masks
from sid4ds.baselines import RotationPretextScorer, local_contrast_scores
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
from sid4ds.evaluation.runs import COLD_START_BATCH, StrategyRun, run_baseline, run_sid4ds_strategy
from sid4ds.evaluation.split import pool_and_test, split_held_out
from sid4ds.metrics import defective_rows
from sid4ds.ranking.selection import content_keys, rank_pool

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
#: and ``fusion``): ``sid4ds`` is the default (E_sdr fused with S's probability);
#: ``sid4ds_esdr`` ranks by E_sdr alone (the default of 0.2 and before: runs 12 and 13 name it
#: ``sid4ds``), ``sid4ds_threshold`` by E_sdr alone with the paper's regions; both are
#: ablations of the default.
SID4DS_VARIANTS: dict[str, dict[str, Any]] = {
    "sid4ds": {"region": "adaptive", "fusion": "rank"},
    "sid4ds_esdr": {"region": "adaptive", "fusion": None},
    "sid4ds_threshold": {"region": "threshold", "fusion": None},
}

#: Strategy names, in the order the tables list them.
STRATEGIES = ("sid4ds", "sid4ds_esdr", "sid4ds_threshold", "random", "entropy", "margin",
              "coreset", "pt4al", "sa", "learning_loss", "local_contrast")
#: The strategies run when none are named (the SID4DS ablations are run when asked for).
DEFAULT_STRATEGIES = tuple(name for name in STRATEGIES
                           if name == "sid4ds" or name not in SID4DS_VARIANTS)


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
                    run = run_sid4ds_strategy(
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
