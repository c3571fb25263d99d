"""Pure functions that turn rankings and selection histories into the benchmark's records.

One record is one row of a part's tidy CSV; every function here works on plain arrays and
lists, so it is easy to test and to reuse on results of one's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from sid4ds._core.validation import check_int
from sid4ds.ranking.selection import rank_pool

__all__ = [
    "COLD_START_COLUMNS",
    "IOU_COLUMNS",
    "LABELED_COLUMNS",
    "RANKINGS",
    "RANKING_TITLES",
    "SELECTION_COLUMNS",
    "TIMING_COLUMNS",
    "WHOLE_POOL",
    "aggregate",
    "batch_defect_counts",
    "cold_start_records",
    "cumulative_defect_share",
    "histories_from_labeled",
    "labeled_prefix",
    "labeled_records",
    "selection_records",
]

#: Cold-start rankings of part (a), in table order: "msmr" comes with the sid4ds strategy,
#: "pt4al_rotation" with pt4al; random and local contrast cost nothing and are always shown.
RANKINGS = ("msmr", "pt4al_rotation", "random", "local_contrast")


#: The name of each ranking in the tables and plots.
RANKING_TITLES = {"msmr": "E_msmr (sid4ds)", "pt4al_rotation": "rotation loss (pt4al)",
                   "random": "random", "local_contrast": "local contrast (no learning)"}



#: Columns of part (a), the cold-start records (each part has a tidy CSV).
COLD_START_COLUMNS = ("seed", "ranking", "batch", "n_images", "n_defective",
                      "share_of_defective", "cumulative_share")


#: Columns of part (b), the selection records.
SELECTION_COLUMNS = ("seed", "strategy", "round", "stage", "n_selected", "n_labeled",
                     "labeled_share", "n_defective_selected", "cumulative_defective",
                     "n_defective_pool", "cumulative_share")


#: Columns of the labelled images: one row per image a strategy labelled, in labelling
#: order (``position``), with its index in the pool and in the images the run was given.
LABELED_COLUMNS = ("seed", "strategy", "round", "position", "pool_index", "image_index",
                    "defective")


#: Columns of part (d), the wall time per round.
TIMING_COLUMNS = ("seed", "strategy", "round", "stage", "selection_seconds",
                  "training_seconds", "seconds")


#: Columns of part (c), the segmentation IoU.
IOU_COLUMNS = ("seed", "strategy", "labeled_share", "n_labeled", "n_defective_labeled",
               "n_test", "n_defective_test", "iou", "detected", "false_alarms")


#: The strategy name of the IoU rows trained on every pool image.
WHOLE_POOL = "whole pool"


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
    >>> from sid4ds.evaluation import batch_defect_counts
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
    >>> from sid4ds.evaluation import cold_start_records
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


def _rounds_in_pool(history: Sequence[Any], n_pool: int) -> list[np.ndarray]:
    """Each round's selected indices as int64 arrays, checked to lie in a pool of n_pool."""
    rounds = []
    for round_index, selected in enumerate(history):
        indices = np.asarray(selected, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n_pool):
            raise ValueError(
                f"history[{round_index}] holds indices outside the pool of {n_pool} images"
            )
        rounds.append(indices)
    return rounds


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
    >>> from sid4ds.evaluation import cumulative_defect_share
    >>> cumulative_defect_share([[0, 1], [2, 3]], [1, 0, 0, 1]).tolist()
    [0.5, 1.0]
    """
    labels = np.asarray(is_defective).astype(bool)
    n_total = int(labels.sum())
    seen = np.zeros(len(labels), dtype=bool)
    shares = np.empty(len(history), dtype=np.float64)
    for round_index, indices in enumerate(_rounds_in_pool(history, len(labels))):
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
    >>> from sid4ds.evaluation import selection_records
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


def labeled_records(
    history: Sequence[Any],
    pool: Any,
    is_defective: Any,
    *,
    strategy: str,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Which images a strategy labelled, one record per image in labelling order.

    With them a run's choices can be looked at, and S trained again on any prefix of them
    (:func:`labeled_prefix`), without running the selection again.

    Parameters
    ----------
    history : sequence of array-like of int
        Pool indices selected in each round, round 0 (the cold start) first.
    pool : array-like of shape (n_pool,), int
        Index of each pool image in the images the run was given (e.g. ``pool`` from
        :func:`~sid4ds.evaluation.pool_and_test`).
    is_defective : array-like of shape (n_pool,), bool
        Which pool images have a defect.
    strategy : str
        Stored in every record.
    seed : int, optional
        Stored in every record.

    Returns
    -------
    records : list of dict
        One per labelled image with the keys :data:`LABELED_COLUMNS`; ``position`` counts
        from 0 across rounds, ``defective`` is 0 or 1.

    Examples
    --------
    >>> from sid4ds.evaluation import labeled_records
    >>> records = labeled_records([[1], [0, 2]], pool=[10, 11, 12],
    ...                            is_defective=[0, 1, 0], strategy="toy", seed=0)
    >>> [(r["round"], r["position"], r["image_index"], r["defective"]) for r in records]
    [(0, 0, 11, 1), (1, 1, 10, 0), (1, 2, 12, 0)]
    """
    image_index = np.asarray(pool, dtype=np.int64)
    labels = np.asarray(is_defective).astype(bool)
    if image_index.ndim != 1 or labels.shape != image_index.shape:
        raise ValueError(
            f"pool and is_defective must both have shape (n_pool,); got {image_index.shape} "
            f"and {labels.shape}"
        )
    records = []
    for round_index, indices in enumerate(_rounds_in_pool(history, len(labels))):
        for index in indices.tolist():
            records.append({"seed": seed, "strategy": strategy, "round": round_index,
                            "position": len(records), "pool_index": index,
                            "image_index": int(image_index[index]),
                            "defective": int(labels[index])})
    return records


def histories_from_labeled(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[int, str], list[np.ndarray]]:
    """Each strategy's selection history back from its :func:`labeled_records`.

    The inverse of :func:`labeled_records`: with it S can be trained again on what a
    finished run labelled (:func:`~sid4ds.evaluation.retrain_iou`), e.g. with other settings,
    without running the selection again.

    Parameters
    ----------
    records : iterable of mapping
        Records with at least ``seed``, ``strategy``, ``round``, ``position`` and
        ``pool_index`` (the rows of a run's ``labeled.csv``), in any order.

    Returns
    -------
    histories : dict of (seed, strategy) to list of ndarray of int64
        Pool indices selected in each round, round 0 first; a round that selected nothing
        is an empty array.

    Raises
    ------
    ValueError
        When a strategy's positions are not 0, 1, …, n − 1 each once, or its rounds go
        back in labelling order: the records are incomplete or mix two runs.

    Examples
    --------
    >>> from sid4ds.evaluation import histories_from_labeled, labeled_records
    >>> records = labeled_records([[1], [0, 2]], pool=[10, 11, 12],
    ...                            is_defective=[0, 1, 0], strategy="toy", seed=0)
    >>> histories = histories_from_labeled(records)
    >>> [part.tolist() for part in histories[0, "toy"]]
    [[1], [0, 2]]
    """
    grouped: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault((int(record["seed"]), str(record["strategy"])), []).append(record)
    histories = {}
    for (seed, strategy), rows in grouped.items():
        rows = sorted(rows, key=lambda row: int(row["position"]))
        positions = [int(row["position"]) for row in rows]
        rounds = [int(row["round"]) for row in rows]
        named = f"the labelled records of seed {seed}, strategy {strategy!r}"
        if positions != list(range(len(rows))):
            raise ValueError(
                f"{named} have positions {_summary(positions)}; expected 0 to "
                f"{len(rows) - 1}, each once: the records are incomplete or mix two runs"
            )
        if rounds[0] < 0 or any(later < earlier for earlier, later in pairwise(rounds)):
            raise ValueError(
                f"{named} go back from a later round to an earlier one in labelling order "
                f"(rounds {_summary(rounds)}): the records are not one run's labelled set"
            )
        history = [[] for _ in range(rounds[-1] + 1)]
        for row, round_index in zip(rows, rounds, strict=True):
            history[round_index].append(int(row["pool_index"]))
        histories[seed, strategy] = [np.asarray(part, dtype=np.int64) for part in history]
    return histories


def _summary(values: Sequence[int], shown: int = 8) -> str:
    """``values`` for an error message: all of them, or the first few and the count."""
    if len(values) <= shown:
        return str(list(values))
    return f"[{', '.join(map(str, values[:shown]))}, …] ({len(values)} in all)"


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
    >>> from sid4ds.evaluation import labeled_prefix
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
    >>> from sid4ds.evaluation import aggregate
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

