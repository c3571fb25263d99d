"""Benchmark SID4DS against the baselines with the paper's protocol (§4–5).

``python -m sid4ds.benchmark`` (or ``sid4ds benchmark``) runs, on generated images, an
``.npz`` file or a folder of images and masks, for every strategy and seed:

(a) **cold start** (paper Fig. 12): each cold-start ranking of the pool (E_msmr of SID4DS,
    PT4AL's rotation loss, random, and the no-learning local-contrast score
    ``max |image − gaussian_filter(image, 2)|``) cut into 10 batches; defective images per
    batch;
(b) **selection** (Fig. 13): the share of all defective pool images labelled after each
    round, with K = ``label_share`` of the pool per round;
(c) **segmentation IoU** (Table 5, optional): a fresh :class:`~sid4ds.SegmentationLearner`
    trained on the images each strategy had labelled at 10%, 20%, 30% of the pool, and on the
    whole pool, scored on a held-out split;
(d) **wall time per round** (Table 3).

It prints markdown tables (mean ± std over seeds), writes one tidy CSV per part, a
``settings.json`` with every setting used, and PNG plots when matplotlib is installed.

SID4DS runs through :func:`~sid4ds.run_sid4ds`. Every baseline runs through one loop
(:func:`run_baseline`): the first batch by the strategy's cold-start behaviour (the shared
seeded random batch for strategies that need a trained segmenter; PT4AL its pretext ranking;
local contrast its score), then, each round, train the segmentation learner on the labelled
set (from its previous weights) and query the next K with the strategy.

The functions that turn rankings and selection histories into records
(:func:`batch_defect_counts`, :func:`cold_start_records`, :func:`cumulative_defect_share`,
:func:`selection_records`, :func:`labeled_prefix`, :func:`aggregate`) are pure.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.base import clone

from sid4ds._validation import check_float, check_images, check_int, check_masks
from sid4ds.active import DefectActiveLearner, run_sid4ds
from sid4ds.baselines import (
    RotationPretextScorer,
    _select_top,
    coreset_sampling,
    entropy_sampling,
    learning_loss_sampling,
    margin_sampling,
    pt4al_sampling,
    random_sampling,
    suggestive_annotation_sampling,
)
from sid4ds.cli import add_network_arguments
from sid4ds.cli import positive_int as _positive
from sid4ds.pool import as_pool
from sid4ds.reconstruction import ReconstructionScorer
from sid4ds.segmentation import SegmentationLearner, defect_iou
from sid4ds.strategies import content_keys, rank_pool

__all__ = [
    "COLD_START_COLUMNS",
    "IOU_COLUMNS",
    "SELECTION_COLUMNS",
    "STRATEGIES",
    "TIMING_COLUMNS",
    "BenchmarkResult",
    "StrategyRun",
    "add_arguments",
    "aggregate",
    "batch_defect_counts",
    "build_parser",
    "cold_start_records",
    "cumulative_defect_share",
    "format_mean_std",
    "format_tables",
    "labeled_prefix",
    "load_dataset",
    "local_contrast_sampling",
    "local_contrast_scores",
    "main",
    "markdown_table",
    "plot_results",
    "run_baseline",
    "run_benchmark",
    "run_from_args",
    "selection_records",
    "split_held_out",
    "write_csvs",
]

#: Strategy names, in the order the tables list them.
STRATEGIES = ("sid4ds", "random", "entropy", "margin", "coreset", "pt4al", "sa",
              "learning_loss", "local_contrast")

# How each baseline picks its first batch: "random" = the seeded random batch shared by the
# strategies that need a trained segmenter; "own" = the strategy's own query (no model needed).
_COLD_START = {"random": "random", "entropy": "random", "margin": "random", "coreset": "random",
               "pt4al": "own", "sa": "random", "learning_loss": "random",
               "local_contrast": "own"}

# Cold-start rankings of part (a), in table order: "msmr" comes with the sid4ds strategy,
# "pt4al_rotation" with pt4al; random and local contrast cost nothing and are always shown.
_RANKINGS = ("msmr", "pt4al_rotation", "random", "local_contrast")
_RANKING_TITLES = {"msmr": "E_msmr (sid4ds)", "pt4al_rotation": "rotation loss (pt4al)",
                   "random": "random", "local_contrast": "local contrast (no learning)"}

#: Columns of the tidy CSV of each part.
COLD_START_COLUMNS = ("seed", "ranking", "batch", "n_images", "n_defective",
                      "share_of_defective", "cumulative_share")
SELECTION_COLUMNS = ("seed", "strategy", "round", "stage", "n_selected", "n_labeled",
                     "labeled_share", "n_defective_selected", "cumulative_defective",
                     "n_defective_pool", "cumulative_share")
TIMING_COLUMNS = ("seed", "strategy", "round", "stage", "selection_seconds",
                  "training_seconds", "seconds")
IOU_COLUMNS = ("seed", "strategy", "labeled_share", "n_labeled", "n_defective_labeled",
               "n_test", "n_defective_test", "iou")

WHOLE_POOL = "whole pool"  # the strategy name of the IoU rows trained on every pool image


# ====================================================================== pure functions
def local_contrast_scores(X: Any, sigma: float = 2.0) -> np.ndarray:
    """No-learning defect score: the largest deviation of an image from its blurred self.

    ``max |image − gaussian_filter(image, sigma)|`` over the pixels and channels of each
    image (the blur is spatial only): what a user tries first, and the baseline a learned
    ranking has to beat.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images; or a memmap, image paths, a torch Dataset or an ImagePool (read in chunks).
    sigma : float, default=2.0
        Standard deviation of the Gaussian blur, in pixels.

    Returns
    -------
    scores : ndarray of shape (n_samples,), float64
        Higher means a stronger local anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.benchmark import local_contrast_scores
    >>> images = np.full((2, 1, 16, 16), 0.5, dtype=np.float32)
    >>> images[1, 0, 7:9, 7:9] = 1.0
    >>> scores = local_contrast_scores(images)
    >>> scores.shape, bool(scores[1] > scores[0]), float(scores[0])
    ((2,), True, 0.0)
    """
    images = as_pool(X, name="X")
    sigma = check_float(sigma, "sigma", low=0.0, include_low=False)
    scores = np.empty(len(images), dtype=np.float64)
    chunk = max(1, 2**22 // int(np.prod(images.image_shape)))  # bounded temporaries
    for rows, part in images.iter_chunks(chunk):
        part = part.astype(np.float64)
        deviation = np.abs(part - gaussian_filter(part, (0, 0, sigma, sigma), mode="reflect"))
        scores[rows] = deviation.reshape(len(part), -1).max(axis=1)
    return scores


def local_contrast_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, sigma: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """modAL query strategy: the pool images with the largest :func:`local_contrast_scores`.

    Needs no model, so it also works as a cold start. Leaves the scores of the whole pool in
    ``learner.pool_scores_`` (and the tie-break keys in ``learner.pool_keys_``), like the
    sid4ds strategies.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        Not used, except to keep the pool scores.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K; more than the pool returns the whole pool.
    sigma : float, default=2.0
        Blur of :func:`local_contrast_scores`.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest score first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.benchmark import local_contrast_sampling
    >>> class Learner:  # anything that accepts attributes
    ...     pass
    >>> pool = np.full((5, 1, 16, 16), 0.5, dtype=np.float32)
    >>> pool[3, 0, 4, 4] = 1.0
    >>> indices, scores = local_contrast_sampling(Learner(), pool, n_instances=2)
    >>> int(indices[0]), len(indices)
    (3, 2)
    """
    images = as_pool(X_pool, name="X_pool")
    return _select_top(learner, images, local_contrast_scores(images, sigma=sigma),
                       n_instances)


def split_held_out(
    is_defective: Any, test_share: float, random_state: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split the data into a pool and a held-out test set, stratified by defective/normal.

    ``round(test_share · n)`` images of each class (defective, normal) go to the test set,
    drawn at random; the rest is the pool. The sizes depend on the counts only, so every
    seed gives pools and test sets of the same size.

    Parameters
    ----------
    is_defective : array-like of shape (n_samples,), bool
        Which images have a defect.
    test_share : float in [0, 1)
        Share held out; 0 keeps every image in the pool.
    random_state : int, numpy Generator or None, default=None
        Seeds the draw.

    Returns
    -------
    pool : ndarray of shape (n_pool,), int64
        Indices of the pool images, ascending.
    test : ndarray of shape (n_samples - n_pool,), int64
        Indices of the test images, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.benchmark import split_held_out
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
    rng = np.random.default_rng(random_state)
    test_parts = []
    for value in (True, False):
        members = np.flatnonzero(labels == value)
        n_test = int(round(test_share * len(members)))
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts)).astype(np.int64)
    pool = np.setdiff1d(np.arange(len(labels)), test).astype(np.int64)
    if len(pool) == 0:
        raise ValueError(
            f"test_share={test_share} leaves no image in the pool; pass a smaller test_share"
        )
    return pool, test


def batch_defect_counts(
    scores: Any, is_defective: Any, n_batches: int = 10, tie_keys: Any = None
) -> np.ndarray:
    """Defective images in each of ``n_batches`` consecutive batches of a ranking (Fig. 12).

    The pool is sorted by score, highest first (ties: larger tie key first, or lower index
    without keys), and cut into ``n_batches`` batches whose sizes differ by at most one
    (batch 0 holds the highest scores).

    Parameters
    ----------
    scores : array-like of shape (n_pool,)
        Cold-start score of every pool image; higher is ranked first.
    is_defective : array-like of shape (n_pool,), bool
        Which pool images have a defect.
    n_batches : int, default=10
        Number of batches; at most ``n_pool``.
    tie_keys : array-like of shape (n_pool,), optional
        Order of equal scores (see :func:`~sid4ds.rank_pool`).

    Returns
    -------
    counts : ndarray of shape (n_batches,), int64
        Defective images per batch; they sum to ``is_defective.sum()``.

    Examples
    --------
    >>> from sid4ds.benchmark import batch_defect_counts
    >>> scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    >>> batch_defect_counts(scores, [1, 0, 1, 0, 0, 1], n_batches=3).tolist()
    [1, 1, 1]
    >>> batch_defect_counts(scores, [1, 1, 0, 0, 0, 0], n_batches=3).tolist()
    [2, 0, 0]
    """
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_defective).astype(bool)
    if values.ndim != 1 or labels.shape != values.shape:
        raise ValueError(
            f"scores and is_defective must both have shape (n_pool,); got {values.shape} "
            f"and {labels.shape}"
        )
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    if n_batches > len(values):
        raise ValueError(
            f"n_batches={n_batches} is more than the {len(values)} pool images; pass "
            f"n_batches <= {len(values)}"
        )
    order, _ = rank_pool(values, len(values), tie_keys=tie_keys)
    return np.array([int(labels[part].sum()) for part in np.array_split(order, n_batches)],
                    dtype=np.int64)


def cold_start_records(
    rankings: Mapping[str, Any],
    is_defective: Any,
    *,
    n_batches: int = 10,
    tie_keys: Any = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Part (a) records: defective images per batch of every cold-start ranking.

    Parameters
    ----------
    rankings : mapping of str to array-like of shape (n_pool,)
        Cold-start scores of the pool by ranking name.
    is_defective : array-like of shape (n_pool,), bool
    n_batches : int, default=10
    tie_keys : array-like of shape (n_pool,), optional
        Order of equal scores.
    seed : int, optional
        Stored in every record.

    Returns
    -------
    records : list of dict
        One per ranking and batch, with the keys :data:`COLD_START_COLUMNS`; ``batch`` counts
        from 1, ``share_of_defective`` and ``cumulative_share`` are shares of all defective
        pool images (NaN when the pool has none).

    Examples
    --------
    >>> from sid4ds.benchmark import cold_start_records
    >>> records = cold_start_records({"toy": [0.9, 0.1, 0.5, 0.3]}, [1, 0, 0, 1], n_batches=2)
    >>> [(r["batch"], r["n_defective"], r["cumulative_share"]) for r in records]
    [(1, 1, 0.5), (2, 1, 1.0)]
    """
    labels = np.asarray(is_defective).astype(bool)
    n_total = int(labels.sum())
    records = []
    for name, scores in rankings.items():
        counts = batch_defect_counts(scores, labels, n_batches, tie_keys=tie_keys)
        sizes = [len(part) for part in np.array_split(np.arange(len(labels)), n_batches)]
        found = 0
        for batch, (count, size) in enumerate(zip(counts.tolist(), sizes, strict=True)):
            found += count
            records.append({
                "seed": seed, "ranking": name, "batch": batch + 1, "n_images": size,
                "n_defective": count,
                "share_of_defective": count / n_total if n_total else float("nan"),
                "cumulative_share": found / n_total if n_total else float("nan"),
            })
    return records


def cumulative_defect_share(history: Sequence[Any], is_defective: Any) -> np.ndarray:
    """Share of all defective pool images labelled after each round (Fig. 13).

    Parameters
    ----------
    history : sequence of array-like of int
        Pool indices selected in each round, round 0 first.
    is_defective : array-like of shape (n_pool,), bool

    Returns
    -------
    shares : ndarray of shape (len(history),), float64
        Non-decreasing, in [0, 1]; NaN when the pool has no defective image. An index
        selected twice counts once.

    Examples
    --------
    >>> from sid4ds.benchmark import cumulative_defect_share
    >>> cumulative_defect_share([[0, 1], [2, 3]], [1, 0, 0, 1]).tolist()
    [0.5, 1.0]
    """
    labels = np.asarray(is_defective).astype(bool)
    n_total = int(labels.sum())
    seen = np.zeros(len(labels), dtype=bool)
    shares = np.empty(len(history), dtype=np.float64)
    for round_index, selected in enumerate(history):
        indices = np.asarray(selected, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(labels)):
            raise ValueError(
                f"history[{round_index}] holds indices outside the pool of {len(labels)} "
                f"images"
            )
        seen[indices] = True
        shares[round_index] = (labels & seen).sum() / n_total if n_total else np.nan
    return shares


def selection_records(
    history: Sequence[Any],
    is_defective: Any,
    *,
    strategy: str,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Part (b) records: what a strategy labelled round by round.

    Parameters
    ----------
    history : sequence of array-like of int
        Pool indices selected in each round, round 0 (the cold start) first.
    is_defective : array-like of shape (n_pool,), bool
    strategy : str
        Stored in every record.
    seed : int, optional
        Stored in every record.

    Returns
    -------
    records : list of dict
        One per round with the keys :data:`SELECTION_COLUMNS`.

    Examples
    --------
    >>> from sid4ds.benchmark import selection_records
    >>> records = selection_records([[0, 1], [2, 3]], [1, 0, 0, 1], strategy="toy")
    >>> [(r["round"], r["n_labeled"], r["cumulative_share"]) for r in records]
    [(0, 2, 0.5), (1, 4, 1.0)]
    """
    labels = np.asarray(is_defective).astype(bool)
    shares = cumulative_defect_share(history, labels)
    n_total = int(labels.sum())
    records = []
    n_labeled = found = 0
    for round_index, selected in enumerate(history):
        indices = np.asarray(selected, dtype=np.int64)
        n_labeled += len(indices)
        n_found = int(labels[indices].sum())
        found += n_found
        records.append({
            "seed": seed, "strategy": strategy, "round": round_index,
            "stage": "cold_start" if round_index == 0 else "iterative",
            "n_selected": len(indices), "n_labeled": n_labeled,
            "labeled_share": n_labeled / len(labels), "n_defective_selected": n_found,
            "cumulative_defective": found, "n_defective_pool": n_total,
            "cumulative_share": float(shares[round_index]),
        })
    return records


def labeled_prefix(history: Sequence[Any], n_labeled: int) -> np.ndarray | None:
    """The first ``n_labeled`` images a strategy labelled, in labelling order.

    Parameters
    ----------
    history : sequence of array-like of int
        Pool indices selected in each round.
    n_labeled : int
        How many.

    Returns
    -------
    indices : ndarray of shape (n_labeled,), int64, or None
        None when the strategy labelled fewer images.

    Examples
    --------
    >>> from sid4ds.benchmark import labeled_prefix
    >>> labeled_prefix([[4, 2], [0, 1]], 3).tolist()
    [4, 2, 0]
    >>> labeled_prefix([[4, 2]], 3) is None
    True
    """
    n_labeled = check_int(n_labeled, "n_labeled", minimum=1)
    order = (np.concatenate([np.asarray(part, dtype=np.int64) for part in history])
             if len(history) else np.empty(0, np.int64))
    if len(order) < n_labeled:
        return None
    return order[:n_labeled]


def aggregate(
    records: Iterable[Mapping[str, Any]], group_by: Sequence[str], value: str
) -> list[dict[str, Any]]:
    """Mean, standard deviation and count of ``value`` in each group of records.

    The standard deviation is the sample one (``ddof=1``, the spread over seeds); it is NaN
    for a group of one. NaN values are left out.

    Parameters
    ----------
    records : iterable of mapping
        E.g. the tidy records of one part.
    group_by : sequence of str
        Keys whose values define a group (e.g. ``("strategy", "round")``).
    value : str
        Key of the numbers to summarise.

    Returns
    -------
    summary : list of dict
        One per group, in order of first appearance: the ``group_by`` keys plus ``mean``,
        ``std`` and ``n``.

    Examples
    --------
    >>> from sid4ds.benchmark import aggregate
    >>> records = [{"strategy": "a", "seed": 0, "share": 0.5},
    ...            {"strategy": "a", "seed": 1, "share": 0.7},
    ...            {"strategy": "b", "seed": 0, "share": 0.2}]
    >>> [(row["strategy"], round(row["mean"], 3), round(row["std"], 3), row["n"])
    ...  for row in aggregate(records, ["strategy"], "share")]
    [('a', 0.6, 0.141, 2), ('b', 0.2, nan, 1)]
    """
    groups: dict[tuple[Any, ...], list[float]] = {}
    for record in records:
        key = tuple(record[name] for name in group_by)
        number = float(record[value])
        groups.setdefault(key, [])
        if not np.isnan(number):
            groups[key].append(number)
    summary = []
    for key, numbers in groups.items():
        values = np.asarray(numbers, dtype=np.float64)
        mean = float(values.mean()) if len(values) else float("nan")
        std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        summary.append({**dict(zip(group_by, key, strict=True)), "mean": mean, "std": std,
                        "n": len(values)})
    return summary


def format_mean_std(mean: float, std: float, digits: int = 2, percent: bool = False) -> str:
    """``"mean ± std"`` for a table cell; the mean alone when ``std`` is NaN (one seed).

    Examples
    --------
    >>> from sid4ds.benchmark import format_mean_std
    >>> format_mean_std(0.5123, 0.0312), format_mean_std(0.5, float("nan"), percent=True)
    ('0.51 ± 0.03', '50%')
    >>> format_mean_std(0.5, 0.1, percent=True)
    '50% ± 10%'
    """
    if np.isnan(mean):
        return "–"
    if percent:
        text = f"{100 * mean:.{max(digits - 2, 0)}f}%"
        return text if np.isnan(std) else f"{text} ± {100 * std:.{max(digits - 2, 0)}f}%"
    text = f"{mean:.{digits}f}"
    return text if np.isnan(std) else f"{text} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table.

    Examples
    --------
    >>> from sid4ds.benchmark import markdown_table
    >>> print(markdown_table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(str(cell) for cell in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ====================================================================== running strategies
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
    first K of the strategy's own query (PT4AL, local contrast: no model needed). Every round
    then trains the segmentation learner on all labelled images (from its previous weights
    after the first round, as :func:`~sid4ds.run_sid4ds` does) and, while rounds are left,
    queries the next K with the strategy. No fake normals.

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
    >>> from sid4ds.benchmark import run_baseline
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
    if strategy not in _COLD_START:
        raise ValueError(
            f"strategy must be one of {', '.join(repr(s) for s in _COLD_START)}; got "
            f"{strategy!r} (SID4DS itself runs through run_sid4ds)"
        )
    images = check_images(X_pool, name="X_pool")
    n_rounds = check_int(n_rounds, "n_rounds", minimum=0)
    n_label = check_int(n_label, "n_label", minimum=1)
    if not callable(oracle):
        raise TypeError(f"oracle must be callable as oracle(indices) -> masks; got {oracle!r}")
    rng = np.random.default_rng(random_state)
    model = clone(segmenter) if segmenter is not None else SegmentationLearner()
    if model.get_params()["random_state"] is None:
        model.set_params(random_state=random_state)
    query_strategy = _baseline_strategy(strategy)
    learner = DefectActiveLearner(model, query_strategy=query_strategy, n_normal=0,
                                  warm_start=True)
    run = StrategyRun(strategy=strategy, seed=random_state)
    unlabeled = np.arange(len(images))
    height, width = images.shape[2:]

    def query_kwargs() -> dict[str, Any]:
        if strategy == "random":
            return {"random_state": int(rng.integers(2**31))}
        if strategy == "pt4al" and getattr(learner, "pt4al_model", None) is None:
            configured = (clone(pretext) if pretext is not None else RotationPretextScorer(
                base_channels=model.base_channels, depth=model.depth, device=model.device))
            if configured.get_params()["random_state"] is None:
                configured.set_params(random_state=random_state)
            return {"pt4al_model": configured}
        return {}

    for round_index in range(n_rounds + 1):
        if len(unlabeled) == 0:
            break
        started = time.perf_counter()
        if round_index == 0 and first_batch is not None:
            chosen = np.asarray(first_batch, dtype=np.int64)
            if chosen.ndim != 1 or len(np.unique(chosen)) != len(chosen) or (
                    chosen.size and (chosen.min() < 0 or chosen.max() >= len(images))):
                raise ValueError(
                    f"first_batch must hold distinct pool indices in [0, {len(images)}); got "
                    f"{chosen!r}"
                )
        else:
            positions, _ = learner.query(images[unlabeled], n_instances=n_label,
                                         **query_kwargs())
            chosen = unlabeled[np.asarray(positions, dtype=np.int64)]
        selection_seconds = time.perf_counter() - started
        if round_index == 0 and strategy == "pt4al":  # part (a): its ranking of the pool
            run.cold_start_scores["pt4al_rotation"] = learner.pt4al_model.score_samples(images)
        masks = check_masks(oracle(chosen.copy()), name="oracle(indices)",
                            n_samples=len(chosen), height=height, width=width)
        started = time.perf_counter()
        learner.teach(images[chosen], masks)
        training_seconds = time.perf_counter() - started
        run.history.append(chosen)
        run.seconds.append({"selection": selection_seconds, "training": training_seconds})
        unlabeled = np.setdiff1d(unlabeled, chosen)
        if on_round is not None:
            on_round(round_index)
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
) -> StrategyRun:
    model = clone(segmenter)
    if model.get_params()["random_state"] is None:
        model.set_params(random_state=random_state)
    reconstruction = clone(scorer)
    if reconstruction.get_params()["random_state"] is None:
        reconstruction.set_params(random_state=random_state)
    result = run_sid4ds(X_pool, oracle, n_rounds=n_rounds, n_label=n_label,
                        expected_defect_ratio=expected_defect_ratio, segmenter=model,
                        scorer=reconstruction, random_state=random_state)
    run = StrategyRun(strategy="sid4ds", seed=random_state)
    for record in result.rounds:
        phases = record["seconds"]
        training = float(phases.get("train_S", 0.0))
        selection = float(sum(phases.values())) - training - float(phases.get("oracle", 0.0))
        run.history.append(np.asarray(record["selected"], dtype=np.int64))
        run.seconds.append({"selection": selection, "training": training})
    # the cold-start ranking of the whole pool by the M that run_sid4ds trained
    run.cold_start_scores["msmr"] = result.msmr_scorer.score_samples(X_pool)
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


def _check_protocol(
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
    strategies: Sequence[str] = STRATEGIES,
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
    strategies : sequence of str, default=STRATEGIES
        Any of :data:`STRATEGIES`.
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
        ``(n_rounds + 1) · label_share``.
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
    >>> from sid4ds.benchmark import run_benchmark
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
    test_share, shares = _check_protocol(n_rounds, label_share, test_share, iou, iou_shares)
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    expected_defect_ratio = check_float(expected_defect_ratio, "expected_defect_ratio", low=0.0,
                                        high=1.0)
    segmenter = SegmentationLearner() if segmenter is None else segmenter
    scorer = ReconstructionScorer() if scorer is None else scorer
    if pretext is None:
        pretext = RotationPretextScorer(base_channels=segmenter.base_channels,
                                        depth=segmenter.depth, dilation=segmenter.dilation,
                                        max_epochs=scorer.max_epochs, device=segmenter.device)
    is_defective = truth.reshape(len(truth), -1).any(axis=1)
    result = BenchmarkResult(strategies=chosen)
    info: dict[str, Any] = {"n_defective_pool": [], "n_defective_test": []}

    from tqdm.std import tqdm

    n_iou = len(seeds) * (len(chosen) * len(shares) + 1) if iou else 0
    total = len(seeds) * len(chosen) * (n_rounds + 1) + n_iou
    with tqdm(total=total, disable=not progress, desc="benchmark", unit="step") as bar:
        for seed in seeds:
            pool, test = split_held_out(is_defective, test_share, random_state=seed)
            if n_batches > len(pool):
                raise ValueError(
                    f"n_batches={n_batches} is more than the {len(pool)} pool images; pass a "
                    f"smaller n_batches (--n-batches)"
                )
            X_pool, masks_pool, defective_pool = images[pool], truth[pool], is_defective[pool]
            n_label = max(1, int(round(label_share * len(pool))))
            info.update(n_pool=len(pool), n_test=len(test), n_label=n_label)
            info["n_defective_pool"].append(int(defective_pool.sum()))
            info["n_defective_test"].append(int(is_defective[test].sum()))

            def oracle(indices: np.ndarray, masks_pool: np.ndarray = masks_pool) -> np.ndarray:
                return masks_pool[indices]

            random_scores = np.random.default_rng([seed, 1]).random(len(pool))
            rankings: dict[str, np.ndarray] = {
                "random": random_scores, "local_contrast": local_contrast_scores(X_pool)}
            first_random, _ = rank_pool(random_scores, n_label)
            runs = []
            for strategy in chosen:
                bar.set_description(f"seed {seed}: {strategy}")
                if strategy == "sid4ds":
                    run = _run_sid4ds_strategy(
                        X_pool, oracle, n_rounds=n_rounds, n_label=n_label,
                        segmenter=segmenter, scorer=scorer,
                        expected_defect_ratio=expected_defect_ratio, random_state=seed)
                    bar.update(n_rounds + 1)
                else:
                    run = run_baseline(
                        X_pool, oracle, strategy, n_rounds=n_rounds, n_label=n_label,
                        segmenter=segmenter, pretext=pretext, random_state=seed,
                        first_batch=first_random if _COLD_START[strategy] == "random" else None,
                        on_round=lambda _round: bar.update(1))
                runs.append(run)
                rankings.update(run.cold_start_scores)
                result.selection += selection_records(run.history, defective_pool,
                                                      strategy=strategy, seed=seed)
                result.timing += _timing_records(run)
            ordered = {name: rankings[name] for name in _RANKINGS if name in rankings}
            result.cold_start += cold_start_records(ordered, defective_pool, n_batches=n_batches,
                                                    tie_keys=content_keys(X_pool), seed=seed)
            result.runs += runs
            if iou:
                bar.set_description(f"seed {seed}: IoU")
                result.iou += _iou_records(
                    runs, images, truth, pool, test, shares, segmenter, seed,
                    on_training=lambda: bar.update(1))
            result.info = info
            if on_seed is not None:
                on_seed(result)
    return result


def _iou_records(
    runs: Sequence[StrategyRun],
    images: np.ndarray,
    truth: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    shares: Sequence[float],
    segmenter: SegmentationLearner,
    seed: int,
    on_training: Callable[[], None],
) -> list[dict[str, Any]]:
    """Part (c): train a fresh S on each labelled prefix, score it on the test images."""
    X_pool, masks_pool = images[pool], truth[pool]
    X_test, masks_test = images[test], truth[test]
    defective_pool = masks_pool.reshape(len(pool), -1).any(axis=1)
    n_defective_test = int(masks_test.reshape(len(test), -1).any(axis=1).sum())
    if n_defective_test == 0:
        warnings.warn(
            "the held-out images hold no defective image, so the IoU only says whether S "
            "predicts defects where there are none; hold out more (--test-share)",
            UserWarning, stacklevel=3)
    scored: dict[tuple[int, ...], float] = {}  # the same training set gives the same S

    def score(indices: np.ndarray) -> float:
        key = tuple(sorted(indices.tolist()))
        if key not in scored:
            model = clone(segmenter).set_params(warm_start=False)
            if model.get_params()["random_state"] is None:
                model.set_params(random_state=seed)
            model.fit(X_pool[indices], masks_pool[indices])
            scored[key] = defect_iou(masks_test, model.predict(X_test))
        on_training()
        return scored[key]

    def record(strategy: str, share: float, indices: np.ndarray) -> dict[str, Any]:
        return {"seed": seed, "strategy": strategy, "labeled_share": share,
                "n_labeled": len(indices),
                "n_defective_labeled": int(defective_pool[indices].sum()),
                "n_test": len(test), "n_defective_test": n_defective_test,
                "iou": score(indices)}

    records = []
    for run in runs:
        for share in shares:
            indices = labeled_prefix(run.history, max(1, int(round(share * len(pool)))))
            if indices is None:  # the pool ran out before this share: nothing to train on
                on_training()
                continue
            records.append(record(run.strategy, share, indices))
    records.append(record(WHOLE_POOL, 1.0, np.arange(len(pool))))
    return records


# ====================================================================== reporting
def format_tables(result: BenchmarkResult, label_share: float | None = None) -> str:
    """The markdown tables of every part, averaged over seeds (mean ± sample std).

    Parameters
    ----------
    result : BenchmarkResult
    label_share : float, optional
        Shown in the selection table's column names.

    Returns
    -------
    text : str
        Headed markdown tables, separated by blank lines.
    """
    n_seeds = len({record["seed"] for record in result.selection}) or 1
    spread = f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "1 seed"
    sections = []

    # (a) cold start
    if result.cold_start:
        summary = aggregate(result.cold_start, ("ranking", "batch"), "n_defective")
        batches = sorted({row["batch"] for row in summary})
        shares = {(row["ranking"], row["batch"]): row for row in
                  aggregate(result.cold_start, ("ranking", "batch"), "cumulative_share")}
        top = min(3, batches[-1])
        rows = []
        for ranking in dict.fromkeys(row["ranking"] for row in summary):
            cells = [format_mean_std(row["mean"], row["std"], 1)
                     for row in summary if row["ranking"] == ranking]
            first = shares[(ranking, top)]
            rows.append([_RANKING_TITLES.get(ranking, ranking), *cells,
                         format_mean_std(first["mean"], first["std"], 2, percent=True)])
        sections.append(
            f"## (a) Cold start: defective images per batch of the ranking ({spread})\n\n"
            + markdown_table(["ranking", *[f"batch {b}" for b in batches],
                              f"share in first {top}"], rows))

    # (b) selection
    if result.selection:
        summary = aggregate(result.selection, ("strategy", "round"), "cumulative_share")
        rounds = sorted({row["round"] for row in summary})
        header = ["strategy"] + [
            f"round {r}" + (f" ({(r + 1) * label_share:.0%})" if label_share else "")
            for r in rounds]
        rows = []
        for strategy in result.strategies:
            by_round = {row["round"]: row for row in summary if row["strategy"] == strategy}
            rows.append([strategy] + [
                format_mean_std(by_round[r]["mean"], by_round[r]["std"], 2, percent=True)
                if r in by_round else "–" for r in rounds])
        sections.append(
            "## (b) Selection: share of all defective pool images labelled after each round "
            f"({spread})\n\n" + markdown_table(header, rows))

    # (c) IoU
    if result.iou:
        summary = aggregate(result.iou, ("strategy", "labeled_share"), "iou")
        labeled_shares = sorted({row["labeled_share"] for row in summary
                                 if row["strategy"] != WHOLE_POOL})
        cell = {(row["strategy"], row["labeled_share"]): row for row in summary}
        rows = []
        for share in labeled_shares:
            rows.append([f"{share:.0%}"] + [
                format_mean_std(cell[s, share]["mean"], cell[s, share]["std"], 3)
                if (s, share) in cell else "–" for s in result.strategies])
        whole = cell.get((WHOLE_POOL, 1.0))
        if whole is not None:
            text = format_mean_std(whole["mean"], whole["std"], 3)
            rows.append(["100% (whole pool)"] + [text] * len(result.strategies))
        sections.append(
            "## (c) Segmentation IoU on the held-out images after training on the labelled "
            f"share ({spread})\n\n" + markdown_table(["labelled", *result.strategies], rows))

    # (d) timing
    if result.timing:
        per_seed: dict[tuple[str, Any], dict[str, list[float]]] = {}
        for record in result.timing:
            entry = per_seed.setdefault((record["strategy"], record["seed"]),
                                        {"cold": [], "later": [], "selection": [],
                                         "total": []})
            entry["cold" if record["round"] == 0 else "later"].append(record["seconds"])
            if record["round"] > 0:
                entry["selection"].append(record["selection_seconds"])
            entry["total"].append(record["seconds"])
        flat = [{"strategy": strategy, "cold": sum(entry["cold"]),
                 "later": np.mean(entry["later"]) if entry["later"] else float("nan"),
                 "selection": (np.mean(entry["selection"]) if entry["selection"]
                               else float("nan")),
                 "total": sum(entry["total"])}
                for (strategy, _seed), entry in per_seed.items()]
        columns = {name: {row["strategy"]: row for row in aggregate(flat, ["strategy"], name)}
                   for name in ("cold", "later", "selection", "total")}
        rows = [[strategy] + [format_mean_std(columns[name][strategy]["mean"],
                                              columns[name][strategy]["std"], 1)
                              for name in ("cold", "later", "selection", "total")]
                for strategy in result.strategies if strategy in columns["total"]]
        sections.append(
            f"## (d) Wall time per round in seconds ({spread})\n\n"
            + markdown_table(["strategy", "cold start round", "later round (mean)",
                              "of which selection", "all rounds"], rows))
    return "\n\n".join(sections)


def write_csvs(result: BenchmarkResult, out: str | Path) -> list[Path]:
    """Write one tidy CSV per part into ``out``: cold_start, selection, timing (and iou).

    Parameters
    ----------
    result : BenchmarkResult
    out : str or path-like
        Folder; created when missing.

    Returns
    -------
    paths : list of Path
        The files written.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    parts = [("cold_start.csv", COLD_START_COLUMNS, result.cold_start),
             ("selection.csv", SELECTION_COLUMNS, result.selection),
             ("timing.csv", TIMING_COLUMNS, result.timing)]
    if result.iou:
        parts.append(("iou.csv", IOU_COLUMNS, result.iou))
    paths = []
    for name, columns, records in parts:
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns))
            writer.writeheader()
            writer.writerows(records)
        paths.append(path)
    return paths


def plot_results(
    result: BenchmarkResult, out: str | Path, label_share: float | None = None
) -> list[Path]:
    """Write PNG plots of every part into ``out`` (needs matplotlib).

    ``cold_start.png`` (defective images per batch, Fig. 12), ``selection.png`` (share of
    defects found against the labelled share, Fig. 13, with the best possible curve),
    ``timing.png`` (seconds per round, Table 3) and, with IoU records, ``iou.png`` (Table 5).
    Error bars and bands are ± one standard deviation over seeds.

    Parameters
    ----------
    result : BenchmarkResult
    out : str or path-like
        Folder; created when missing.
    label_share : float, optional
        K as a share of the pool: the selection plot's x axis (default: from the records).

    Returns
    -------
    paths : list of Path

    Raises
    ------
    ImportError
        When matplotlib is not installed (it is not a dependency of sid4ds).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "the plots need matplotlib, which is not installed (it is not a dependency of "
            "sid4ds): pip install matplotlib; the CSV files hold every number"
        ) from error
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(figure: Figure, name: str) -> None:
        FigureCanvasAgg(figure)
        figure.tight_layout()
        figure.savefig(folder / name, dpi=120)
        paths.append(folder / name)

    def error(means: Sequence[float], stds: Sequence[float]) -> np.ndarray | None:
        """Error bars of ± one std, cut at 0; None with one seed (no spread)."""
        spread = np.asarray(stds, dtype=np.float64)
        if np.isnan(spread).all():
            return None
        spread = np.nan_to_num(spread)
        return np.stack([np.minimum(spread, np.asarray(means, dtype=np.float64)), spread])

    if result.cold_start:
        summary = aggregate(result.cold_start, ("ranking", "batch"), "n_defective")
        rankings = list(dict.fromkeys(row["ranking"] for row in summary))
        figure = Figure(figsize=(8, 4))
        axes = figure.add_subplot()
        width = 0.8 / len(rankings)
        for position, ranking in enumerate(rankings):
            rows = [row for row in summary if row["ranking"] == ranking]
            batches = np.array([row["batch"] for row in rows], dtype=np.float64)
            means = [row["mean"] for row in rows]
            axes.bar(batches - 0.4 + width * (position + 0.5), means, width,
                     yerr=error(means, [row["std"] for row in rows]), capsize=2,
                     label=_RANKING_TITLES.get(ranking, ranking))
        axes.set(xlabel="batch of the cold-start ranking", ylabel="defective images",
                 title="(a) Cold start")
        axes.set_xticks(sorted({row["batch"] for row in summary}))
        axes.legend()
        save(figure, "cold_start.png")

    if result.selection:
        summary = aggregate(result.selection, ("strategy", "round"), "cumulative_share")
        labeled = {(row["strategy"], row["round"]): row["mean"] for row in
                   aggregate(result.selection, ("strategy", "round"), "labeled_share")}
        figure = Figure(figsize=(6, 4.5))
        axes = figure.add_subplot()
        for strategy in result.strategies:
            rows = [row for row in summary if row["strategy"] == strategy]
            x = np.array([labeled[strategy, row["round"]] for row in rows])
            mean = np.array([row["mean"] for row in rows])
            std = np.nan_to_num(np.array([row["std"] for row in rows], dtype=np.float64))
            (line,) = axes.plot(x, mean, marker="o", label=strategy)
            if std.any():
                axes.fill_between(x, np.maximum(mean - std, 0.0), np.minimum(mean + std, 1.0),
                                  color=line.get_color(), alpha=0.15)
        first = result.selection[0]
        n_pool = first["n_labeled"] / first["labeled_share"]
        n_defective = np.mean([record["n_defective_pool"] for record in result.selection])
        reach = max(record["labeled_share"] for record in result.selection)
        x = np.linspace(0.0, reach, 100)
        if n_defective:
            axes.plot(x, np.minimum(1.0, x * n_pool / n_defective), "k--", lw=1,
                      label="best possible")
        axes.plot(x, x, "k:", lw=1, label="expected at random")
        axes.set(xlabel="labelled share of the pool", ylabel="share of defective images found",
                 ylim=(0, 1.02), title="(b) Selection")
        axes.legend(fontsize="small")
        save(figure, "selection.png")

    if result.iou:
        summary = aggregate(result.iou, ("strategy", "labeled_share"), "iou")
        figure = Figure(figsize=(6, 4.5))
        axes = figure.add_subplot()
        for strategy in result.strategies:
            rows = [row for row in summary if row["strategy"] == strategy]
            if rows:
                means = [row["mean"] for row in rows]
                axes.errorbar([row["labeled_share"] for row in rows], means,
                              yerr=error(means, [row["std"] for row in rows]), marker="o",
                              capsize=2, label=strategy)
        whole = [row for row in summary if row["strategy"] == WHOLE_POOL]
        if whole:
            axes.axhline(whole[0]["mean"], color="k", ls="--", lw=1, label="whole pool")
        axes.set(xlabel="labelled share of the pool", ylabel="defect IoU on held-out images",
                 title="(c) Segmentation IoU")
        axes.legend(fontsize="small")
        save(figure, "iou.png")

    if result.timing:
        summary = aggregate(result.timing, ("strategy", "stage"), "seconds")
        figure = Figure(figsize=(7, 4))
        axes = figure.add_subplot()
        positions = np.arange(len(result.strategies), dtype=np.float64)
        for offset, stage in ((-0.2, "cold_start"), (0.2, "iterative")):
            rows = {row["strategy"]: row for row in summary if row["stage"] == stage}
            means = [rows[s]["mean"] if s in rows else 0.0 for s in result.strategies]
            stds = [rows[s]["std"] if s in rows else float("nan") for s in result.strategies]
            axes.bar(positions + offset, means, 0.4, yerr=error(means, stds), capsize=2,
                     label=stage.replace("_", " ") + " round")
        axes.set_xticks(positions, result.strategies, rotation=30, ha="right")
        axes.set(ylabel="seconds per round", title="(d) Wall time")
        axes.legend()
        save(figure, "timing.png")
    return paths


# ====================================================================== data and command line
def load_dataset(
    *,
    npz: str | Path | None = None,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    mask_suffix: str = "",
    image_size: int | None = None,
    defect_fraction: float | None = None,
    n_samples: int = 1000,
    defect_ratio: float = 0.05,
    data_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Load the benchmark data: an ``.npz`` file, a folder of images and masks, or generated.

    Parameters
    ----------
    npz : str or path-like, optional
        An ``.npz`` file in the layout of :func:`sid4ds.datasets.load_npz`.
    images : str or path-like, optional
        A folder of images (:func:`sid4ds.datasets.load_image_folder`).
    masks : str or path-like, optional
        Their masks' folder (with ``images``); without it the masks are looked for in
        ``images`` by ``mask_suffix``.
    mask_suffix : str, default=""
        Ending of mask names to ignore when matching them to images.
    image_size : int, optional
        Resize the loaded images to this side; the side of generated images (default 64).
    defect_fraction : float, optional
        With ``npz``: keep every normal image and a seeded subset of the defective ones so
        that they make up this share.
    n_samples, defect_ratio : int, float
        Generated data (neither ``npz`` nor ``images``): :func:`make_defect_images`.
    data_seed : int, default=0
        Seeds the generated data and the ``defect_fraction`` subset.

    Returns
    -------
    X : ndarray of shape (n_samples, n_channels, height, width), float32
    masks : ndarray of shape (n_samples, height, width), uint8
    description : dict
        What was loaded, for the settings record.

    Examples
    --------
    >>> from sid4ds.benchmark import load_dataset
    >>> X, masks, description = load_dataset(n_samples=20, image_size=16, defect_ratio=0.1)
    >>> X.shape, masks.shape, description["n_defective"]
    ((20, 1, 16, 16), (20, 16, 16), 2)
    """
    from sid4ds._loaders import load_image_folder, load_npz
    from sid4ds.datasets import make_defect_images

    if npz is not None and images is not None:
        raise ValueError("pass either npz (--npz) or images (--images), not both")
    if defect_fraction is not None and npz is None:
        raise ValueError(
            "defect_fraction (--defect-fraction) subsets an npz file; pass npz (--npz) too, or "
            "defect_ratio (--defect-ratio) for generated data"
        )
    if masks is not None and images is None:
        raise ValueError("masks (--masks) needs images (--images): the folder of the images")
    if npz is not None:
        X, truth, _ = load_npz(npz, image_size=image_size, defect_fraction=defect_fraction,
                               random_state=data_seed)
        if truth is None:
            raise ValueError(
                f"{npz} has no 'masks' array; the benchmark needs the true masks to play the "
                f"labeller"
            )
        description = {"source": "npz", "path": str(npz), "defect_fraction": defect_fraction}
    elif images is not None:
        if masks is None and not mask_suffix:
            raise ValueError(
                "the benchmark needs the true masks to play the labeller: pass masks (--masks "
                "DIR), or mask_suffix (--mask-suffix) when they lie beside the images"
            )
        X, truth, _ = load_image_folder(images, masks if masks is not None else images,
                                        image_size=image_size, mask_suffix=mask_suffix)
        if truth is None:
            raise ValueError(f"no masks found for the images in {images}")
        description = {"source": "image folder", "images": str(images),
                       "masks": str(masks if masks is not None else images),
                       "mask_suffix": mask_suffix}
    else:
        size = 64 if image_size is None else image_size
        X, truth = make_defect_images(n_samples=n_samples, image_size=size,
                                      defect_ratio=defect_ratio, random_state=data_seed)
        description = {"source": "make_defect_images", "n_samples": n_samples,
                       "defect_ratio": defect_ratio}
    is_defective = truth.reshape(len(truth), -1).any(axis=1)
    description.update(data_seed=data_seed, image_size=image_size,
                       n_images=len(X), n_defective=int(is_defective.sum()),
                       image_shape=list(X.shape[1:]))
    return X, truth, description


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


_EXAMPLES = """\
examples:
  python -m sid4ds.benchmark --out results/synthetic --seeds 0 1 2 --iou
  python -m sid4ds.benchmark --npz magnetic_tile_128.npz --image-size 64 \\
      --defect-fraction 0.05 --out results/magnetic --strategies sid4ds random local_contrast
  sid4ds benchmark --images photos/ --masks truth/ --image-size 128 --out results/line3
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (used by ``sid4ds benchmark`` too)."""
    data = parser.add_argument_group(
        "data", "generated images by default; or --npz; or --images with --masks")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--npz", metavar="PATH",
                        help="an .npz file with images and masks (e.g. magnetic_tile_128.npz)")
    source.add_argument("--images", metavar="DIR", help="a folder of images")
    data.add_argument("--masks", metavar="DIR",
                      help="with --images: the folder of their masks (0 = normal, >0 = defect)")
    data.add_argument("--mask-suffix", default="", metavar="S",
                      help="ending of mask names to ignore when matching, e.g. _mask")
    data.add_argument("--image-size", type=_positive, metavar="N",
                      help="resize loaded images to NxN; the side of generated images "
                           "(default 64)")
    data.add_argument("--defect-fraction", type=float, metavar="F",
                      help="with --npz: keep every normal image and a seeded subset of the "
                           "defective ones so that they make up F (e.g. 0.05)")
    data.add_argument("--n-samples", type=_positive, default=1000, metavar="N",
                      help="generated images (default 1000)")
    data.add_argument("--defect-ratio", type=float, default=0.05, metavar="R",
                      help="share of defective generated images (default 0.05)")
    data.add_argument("--data-seed", type=_count, default=0, metavar="S",
                      help="seed of the generated images and of the --defect-fraction subset "
                           "(default 0)")

    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--strategies", nargs="+", choices=STRATEGIES,
                          default=list(STRATEGIES), metavar="NAME",
                          help=f"strategies to compare (default all: {' '.join(STRATEGIES)})")
    protocol.add_argument("--rounds", type=_count, default=2, metavar="T",
                          help="rounds after the cold start (default 2)")
    protocol.add_argument("--label-share", type=_share, default=0.1, metavar="F",
                          help="K, images labelled per round, as a share of the pool "
                               "(default 0.1)")
    protocol.add_argument("--seeds", type=_count, nargs="+", default=[0, 1, 2], metavar="S",
                          help="seeds of the split and the models; tables show mean ± std over "
                               "them (default 0 1 2)")
    protocol.add_argument("--test-share", type=float, default=0.2, metavar="F",
                          help="share of the images held out of the pool, stratified and "
                               "seeded, for --iou (default 0.2; 0 keeps all in the pool)")
    protocol.add_argument("--n-batches", type=_positive, default=10, metavar="N",
                          help="batches of the cold-start rankings (default 10)")
    protocol.add_argument("--expected-defect-ratio", type=float, default=0.05, metavar="R",
                          help="SID4DS fake normals per round V = K x (1 - R) (default 0.05)")
    protocol.add_argument("--iou", action="store_true",
                          help="also train a fresh S on what each strategy labelled and score "
                               "its IoU on the held-out images (the slowest part)")
    protocol.add_argument("--iou-shares", type=_share, nargs="+", default=[0.1, 0.2, 0.3],
                          metavar="F", help="labelled shares to train on (default 0.1 0.2 0.3)")

    models = parser.add_argument_group(
        "models", "defaults are those of SegmentationLearner (S) and ReconstructionScorer (M, "
                  "G); PT4AL's rotation model is sized like S, with M's epochs")
    models.add_argument("--epochs-m", type=_positive, metavar="N",
                        help="epochs of the self-supervised models: M and PT4AL's rotation "
                             "model (default 12)")
    add_network_arguments(
        models, epochs_s_help="epochs of the segmentation learner S per round (default 30)")
    models.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda, cuda:N (default auto)")

    output = parser.add_argument_group("output")
    output.add_argument("--out", default="sid4ds-benchmark", metavar="DIR",
                        help="folder for the CSV files, settings.json, report.md and plots "
                             "(default ./sid4ds-benchmark)")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m sid4ds.benchmark``."""
    parser = argparse.ArgumentParser(
        prog="python -m sid4ds.benchmark",
        description="Compare SID4DS with baseline active-learning strategies with the paper's "
                    "protocol: cold-start batches, defects found per round, segmentation IoU "
                    "(--iou) and time per round.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    return add_arguments(parser)


def _models(args: argparse.Namespace) -> tuple[SegmentationLearner, ReconstructionScorer,
                                                RotationPretextScorer]:
    network = {"device": args.device}
    if args.width is not None:
        network["base_channels"] = args.width
    if args.depth is not None:
        network["depth"] = args.depth
    segmenter = SegmentationLearner(**network)
    scorer = ReconstructionScorer(**network)
    if args.epochs_s is not None:
        segmenter.set_params(max_epochs=args.epochs_s)
    if args.epochs_m is not None:
        scorer.set_params(max_epochs=args.epochs_m)
    if args.patch_size is not None:
        scorer.set_params(patch_size=args.patch_size)
    pretext = RotationPretextScorer(base_channels=segmenter.base_channels,
                                    depth=segmenter.depth, dilation=segmenter.dilation,
                                    max_epochs=scorer.max_epochs, device=args.device)
    return segmenter, scorer, pretext


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    import sid4ds

    return {"sid4ds": sid4ds.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform(),
            "torch_threads": str(torch.get_num_threads())}


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed arguments (of :func:`build_parser` or ``sid4ds benchmark``).

    Returns
    -------
    exit_code : int
        0.
    """
    from sid4ds._torch import resolve_device

    _check_protocol(args.rounds, args.label_share, args.test_share, args.iou, args.iou_shares)
    X, truth, description = load_dataset(
        npz=args.npz, images=args.images, masks=args.masks, mask_suffix=args.mask_suffix,
        image_size=args.image_size, defect_fraction=args.defect_fraction,
        n_samples=args.n_samples, defect_ratio=args.defect_ratio, data_seed=args.data_seed)
    segmenter, scorer, pretext = _models(args)
    side = 2 ** segmenter.depth
    height, width = X.shape[2:]
    if height % side or width % side:
        raise ValueError(
            f"the images are {height}x{width} pixels but --depth {segmenter.depth} needs sides "
            f"divisible by {side}: pass --image-size {max(side, height // side * side)} or a "
            f"smaller --depth"
        )
    is_defective = truth.reshape(len(truth), -1).any(axis=1)
    pool, test = split_held_out(is_defective, args.test_share, random_state=args.seeds[0])
    arguments = {key: value for key, value in vars(args).items()
                 if key not in ("handler", "command")}
    settings = {
        "arguments": arguments, "data": description,
        "split": {"n_pool": len(pool), "n_test": len(test),
                  "n_label_per_round": max(1, int(round(args.label_share * len(pool)))),
                  "held_out": "stratified by defective/normal, drawn with each seed"},
        "models": {"segmenter_S": segmenter.get_params(), "scorer_M_G": scorer.get_params(),
                   "pt4al_pretext": pretext.get_params(),
                   "device": str(resolve_device(args.device))},
        "query_settings": {
            "sid4ds": "run_sid4ds: n_normal='auto', tie_break='msmr', G trained once",
            "baselines": "the library defaults of sid4ds.baselines (entropy/margin "
                         "reduction='mean', sa n_models=3, learning_loss epochs=100, pt4al "
                         "n_batches=10); no fake normals; S warm-started every round",
            "cold_start": {name: ("shared seeded random batch" if how == "random" else
                                  "own query") for name, how in _COLD_START.items()},
        },
        "versions": _versions(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings_text = json.dumps(settings, indent=2, default=str)
    print("# sid4ds benchmark\n\nsettings:\n```json\n" + settings_text + "\n```", flush=True)
    (out / "settings.json").write_text(settings_text + "\n", encoding="utf-8")

    started = time.perf_counter()
    result = run_benchmark(
        X, truth, strategies=args.strategies, n_rounds=args.rounds,
        label_share=args.label_share, seeds=args.seeds, test_share=args.test_share,
        segmenter=segmenter, scorer=scorer, pretext=pretext,
        expected_defect_ratio=args.expected_defect_ratio, n_batches=args.n_batches,
        iou=args.iou, iou_shares=args.iou_shares, progress=not args.quiet,
        on_seed=lambda partial: write_csvs(partial, out))  # finished seeds survive a stop
    elapsed = time.perf_counter() - started
    settings["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    settings["seconds"] = round(elapsed, 1)
    settings["split"]["n_defective_pool"] = result.info["n_defective_pool"]
    settings["split"]["n_defective_test"] = result.info["n_defective_test"]
    settings_text = json.dumps(settings, indent=2, default=str)
    (out / "settings.json").write_text(settings_text + "\n", encoding="utf-8")

    tables = format_tables(result, label_share=args.label_share)
    print("\n" + tables + "\n")
    written = write_csvs(result, out)
    (out / "report.md").write_text(
        "# sid4ds benchmark\n\nsettings:\n```json\n" + settings_text + "\n```\n\n" + tables
        + "\n", encoding="utf-8")
    written += [out / "settings.json", out / "report.md"]
    try:
        written += plot_results(result, out, label_share=args.label_share)
    except ImportError as error:
        print(f"no plots: {error}")
    print(f"total time {elapsed:.0f} s; wrote " + ", ".join(str(path) for path in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m sid4ds.benchmark`` with ``argv``; returns the exit code.

    Prints the settings, then the markdown tables of every part; writes ``settings.json``,
    ``report.md``, ``cold_start.csv``, ``selection.csv``, ``timing.csv`` (``iou.csv`` with
    ``--iou``) and PNG plots (when matplotlib is installed) into ``--out``. Bad input prints
    an error naming the option and returns 1.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    exit_code : int
        0 success, 1 bad input, 2 wrong usage (from argparse, as SystemExit).

    Examples
    --------
    >>> import tempfile
    >>> from sid4ds.benchmark import main
    >>> folder = tempfile.TemporaryDirectory()
    >>> main(["--n-samples", "40", "--image-size", "16", "--width", "4", "--depth", "2",
    ...       "--epochs-s", "1", "--strategies", "random", "local_contrast", "--rounds", "1",
    ...       "--seeds", "0", "--out", folder.name, "--quiet"])  # doctest: +ELLIPSIS
    # sid4ds benchmark
    ...
    0
    >>> folder.cleanup()
    """
    args = build_parser().parse_args(argv)
    try:
        return run_from_args(args)
    except (ValueError, TypeError, OSError) as error:
        print(f"sid4ds benchmark: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
