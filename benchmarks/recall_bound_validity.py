"""Is the recall bound of ``sid4ds.stopping`` valid, how tight is it, and what does it cost?

Simulated reviews, image by image: a pool of ``n_pool`` images, ``defect_ratio`` of them
defective (placed at random); a ranking that scores each image with standard normal noise
plus a shift for defective images (``strong`` +3, ``good`` +2, ``weak`` +0.5, ``random``
0, ``worse`` -1: defects ranked last more often than not); the review labels the top ``n_labelled``;
an audit draws ``audit_size`` images uniformly at random from the rest; the review then
labels ``n_after`` more in ranking order (skipping the audit). Per run, the true recall
(defective images labelled, audit included, over all defective images) is compared with
``recall_bound``'s lower bound at 95% confidence.

Three parts, each printed and written to ``--out`` (default
``benchmarks/results/recall_bound_validity/``):

1. ``coverage.csv``: per setting, the share of runs whose true recall is below the bound
   (must be at most 5%), the mean bound, the mean true recall and their mean gap.
2. ``audit_needed.csv``: audit labels the bound needs to certify 95% recall at 95%
   confidence, at 1%, 5% and 10% defective, for pools of 1k, 10k and 100k images after a
   review of 30% of the pool that found all or 97% of the defective images: the least
   audit (it finds no defective image) and the audit that certifies with an 80% chance when
   the unlabelled images hold the defective images the review missed. Beside it, for the
   same 80% chance, the expected sample of quantile-based certification (QBCB, Lewis et
   al. 2021; 59 defective sample images at 95%/95% when the review missed none), drawn
   from the whole pool, and the new labels it costs when drawn after the review (images the
   review labelled come free).
3. ``stopping.csv``: the stopping rule, for targets of 95% and 90%. After labelling
   ``start`` of the pool, an audit of 1, 1.5 or 2 times the least audit that can certify
   the target (``audit_size_needed``); the review goes on in rounds of 2% of the pool and
   stops at the first round whose bound certifies it (``RecallBound.defects_to_find``),
   or when the pool is labelled. The share of runs that stop with a true recall below the
   target (must be at most 5%), the labels spent (review + audit; mean and median) and
   the true recall at the stop (overshoot), against the labels an oracle that knows every
   label would need to reach the target (with no guarantee).

Run from the repository root::

    PYTHONPATH=. python benchmarks/recall_bound_validity.py            # full grid, minutes
    PYTHONPATH=. python benchmarks/recall_bound_validity.py --quick    # seconds
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
from scipy.stats import binom, hypergeom

from sid4ds.stopping import audit_size_needed, recall_bound

#: Mean score shift of a defective image in each simulated ranking (noise: standard normal).
RANKINGS = {"strong": 3.0, "good": 2.0, "weak": 0.5, "random": 0.0, "worse": -1.0}
CONFIDENCE = 0.95
TARGET = 0.95
OUT = Path(__file__).resolve().parent / "results" / "recall_bound_validity"


def _review_order(n_pool: int, defect_ratio: float, ranking: str, n_runs: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Defective flags in review order, shape (n_runs, n_pool): column i is the i-th image
    the ranking puts first."""
    n_defective = max(1, round(defect_ratio * n_pool))
    base = np.arange(n_pool) < n_defective
    defective = rng.permuted(np.broadcast_to(base, (n_runs, n_pool)), axis=1)
    scores = rng.standard_normal((n_runs, n_pool)) + RANKINGS[ranking] * defective
    return np.take_along_axis(defective, np.argsort(-scores, axis=1, kind="stable"), axis=1)


def _audit_mask(n_runs: int, n_rest: int, audit_size: int | np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """A uniform random sample without replacement of ``audit_size`` (an int, or one per
    run of shape (n_runs, 1)) of ``n_rest`` positions per run, as a boolean mask of shape
    (n_runs, n_rest)."""
    keys = rng.random((n_runs, n_rest))
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    return ranks < audit_size


def simulate_reviews(n_pool: int, defect_ratio: float, ranking: str, n_labelled: int,
                     audit_size: int, n_after: int, n_runs: int,
                     random_state: int) -> dict[str, np.ndarray]:
    """Simulate ``n_runs`` reviews with an audit (see the module docstring).

    Returns
    -------
    counts : dict of str to ndarray of shape (n_runs,)
        ``n_defective`` (all defective images), ``n_found`` (defective among the first
        ``n_labelled``), ``audit_defective``, ``found_since`` (defective among the
        ``n_after`` labelled after the audit) and ``true_recall``.
    """
    rng = np.random.default_rng(random_state)
    ordered = _review_order(n_pool, defect_ratio, ranking, n_runs, rng)
    rest = ordered[:, n_labelled:]
    audit = _audit_mask(n_runs, rest.shape[1], audit_size, rng)
    after = ~audit & (np.cumsum(~audit, axis=1) <= n_after)
    counts = {"n_defective": ordered.sum(axis=1), "n_found": ordered[:, :n_labelled].sum(1),
              "audit_defective": (rest & audit).sum(1), "found_since": (rest & after).sum(1)}
    found = counts["n_found"] + counts["audit_defective"] + counts["found_since"]
    counts["true_recall"] = found / counts["n_defective"]
    return counts


def bounds_of(counts: dict[str, np.ndarray], n_pool: int, n_labelled: int, audit_size: int,
              n_after: int, confidence: float = CONFIDENCE) -> np.ndarray:
    """``recall_bound(...).lower`` of every simulated run."""
    return np.array([
        recall_bound(n_labelled, int(found), n_pool - n_labelled, audit_size, int(audit),
                     labelled_since=n_after, found_since=int(since),
                     confidence=confidence).lower
        for found, audit, since in zip(counts["n_found"], counts["audit_defective"],
                                       counts["found_since"], strict=True)])


# ------------------------------------------------------------------------------ part 1
def exact_below_chance(defects: np.ndarray, audit_size: int, n_unlabelled: int,
                       confidence: float = CONFIDENCE) -> float:
    """The exact chance, averaged over runs, that the bound falls below the truth.

    With ``D`` defective images among the ``n_unlabelled`` (``defects``, one per run), the
    bound falls below ``D`` exactly when the audit shows so few that ``D`` is no longer
    plausible: ``P(X <= k | D) <= 1 - confidence``, i.e. ``k <= k*``, the largest such
    count; the chance of that is ``P(X <= k* | D)``. A check of the Monte Carlo share
    without its noise."""
    alpha = 1 - confidence
    chances = []
    for value in np.unique(defects):
        counts = np.arange(min(int(value), audit_size) + 1)
        cdf = hypergeom.cdf(counts, n_unlabelled, int(value), audit_size)
        below = counts[cdf <= alpha]
        chance = float(cdf[below[-1]]) if below.size else 0.0
        chances.append(chance * np.sum(defects == value))
    return float(np.sum(chances) / defects.size)


def coverage(pools, ratios, labelled_shares, audit_shares, after_shares, n_runs, seed):
    rows = []
    grid = itertools.product(pools, ratios, RANKINGS, labelled_shares, audit_shares,
                             after_shares)
    for index, (n_pool, ratio, ranking, labelled, audit, after) in enumerate(grid):
        n_labelled = round(labelled * n_pool)
        audit_size = max(1, round(audit * (n_pool - n_labelled)))
        n_after = round(after * n_pool)
        counts = simulate_reviews(n_pool, ratio, ranking, n_labelled, audit_size, n_after,
                                  n_runs, random_state=[seed, index])
        lower = bounds_of(counts, n_pool, n_labelled, audit_size, n_after)
        truth = counts["true_recall"]
        exact = exact_below_chance(counts["n_defective"] - counts["n_found"], audit_size,
                                   n_pool - n_labelled)
        rows.append({
            "n_pool": n_pool, "defect_ratio": ratio, "ranking": ranking,
            "n_labelled": n_labelled, "audit_size": audit_size, "n_after": n_after,
            "runs": n_runs, "below_bound": float(np.mean(truth < lower - 1e-12)),
            "exact_below_chance": exact,
            "mean_true_recall": float(truth.mean()), "mean_bound": float(lower.mean()),
            "mean_gap": float((truth - lower).mean())})
    return rows


# ------------------------------------------------------------------------------ part 2
def qbcb_positives(review_recall: float, power: float, target: float = TARGET,
                   confidence: float = CONFIDENCE) -> int:
    """The defective images QBCB (Lewis et al. 2021) needs in its sample of the whole pool.

    With ``r`` defective sample images, QBCB certifies ``target`` once the review has
    found ``j(r)`` of them, ``j(r)`` the least ``j`` with ``P(Binom(r, target) >= j) <=
    1 - confidence``. The answer is the least ``r`` for which a review of recall
    ``review_recall`` has found ``j(r)`` with probability at least ``power`` (for
    ``review_recall=1``: 59 at 95%/95%)."""
    for positives in range(1, 100_000):
        found = np.arange(positives + 1)
        allowed = binom.sf(found - 1, positives, target) <= 1 - confidence
        if allowed.any():
            needed = int(found[allowed][0])
            if binom.sf(needed - 1, positives, review_recall) >= power - 1e-12:
                return positives
    raise ValueError("no QBCB sample size found")


def audit_needed(pools, ratios, found_shares, labelled_share=0.3, power=0.8):
    rows = []
    for n_pool, ratio, found_share in itertools.product(pools, ratios, found_shares):
        n_defective = max(1, round(ratio * n_pool))
        n_found = round(found_share * n_defective)
        n_unlabelled = n_pool - round(labelled_share * n_pool)
        left = n_defective - n_found
        least = audit_size_needed(n_found, n_unlabelled, target_recall=TARGET,
                                  confidence=CONFIDENCE)
        planned = audit_size_needed(n_found, n_unlabelled, target_recall=TARGET,
                                    confidence=CONFIDENCE, defects_left=left, power=power)
        positives = qbcb_positives(n_found / n_defective, power)
        qbcb = positives / ratio                     # expected sample of the whole pool
        fits = positives <= n_defective
        rows.append({
            "n_pool": n_pool, "defect_ratio": ratio, "n_defective": n_defective,
            "found_by_review": n_found, "n_unlabelled": n_unlabelled,
            "audit_if_none_left": least, "audit_for_80pct_chance": planned,
            "share_of_unlabelled": round(planned / n_unlabelled, 3),
            "qbcb_sample": math.ceil(qbcb) if fits else "whole pool",
            "qbcb_new_labels": (math.ceil(qbcb * n_unlabelled / n_pool) if fits
                                else n_unlabelled)})
    return rows


# ------------------------------------------------------------------------------ part 3
def stopping(n_pool, ratio, ranking, starts, factors, n_runs, seed, target=TARGET,
             round_share=0.02):
    """The stop rule: after ``start`` of the pool an audit of ``factor`` times the least
    audit that can certify ``target`` (planned with the run's own count of defective images
    found, as a user would), then rounds of ranked review until the bound certifies."""
    rows = []
    batch = max(1, round(round_share * n_pool))

    @functools.cache
    def least(n_found: int, n_unlabelled: int) -> int:
        return audit_size_needed(n_found, n_unlabelled, target_recall=target,
                                 confidence=CONFIDENCE)

    for index, (start, factor) in enumerate(itertools.product(starts, factors)):
        rng = np.random.default_rng([seed, 1000 + index])
        ordered = _review_order(n_pool, ratio, ranking, n_runs, rng)
        n_labelled = round(start * n_pool)
        n_unlabelled = n_pool - n_labelled
        rest = ordered[:, n_labelled:]
        n_found = ordered[:, :n_labelled].sum(1)
        sizes = np.array([min(n_unlabelled, math.ceil(factor * least(int(found), n_unlabelled)))
                          for found in n_found])
        audit = _audit_mask(n_runs, n_unlabelled, sizes[:, None], rng)
        audit_found = (rest & audit).sum(1)
        total = ordered.sum(1)
        spent, recall_at_stop, oracle = [], [], []
        for run in range(n_runs):
            bound = recall_bound(n_labelled, int(n_found[run]), n_unlabelled,
                                 int(sizes[run]), int(audit_found[run]),
                                 confidence=CONFIDENCE)
            need = bound.defects_to_find(target)
            cumulative = np.cumsum(rest[run][~audit[run]])    # the review, audit skipped
            if need == 0:
                labelled_after = 0
            elif cumulative.size and cumulative[-1] >= need:
                first = int(np.searchsorted(cumulative, need)) + 1  # images to the need-th
                labelled_after = min(-(-first // batch) * batch, cumulative.size)
            else:
                labelled_after = cumulative.size                  # never certified: all
            found = n_found[run] + audit_found[run] + (
                cumulative[labelled_after - 1] if labelled_after else 0)
            spent.append(n_labelled + sizes[run] + labelled_after)
            recall_at_stop.append(found / total[run])
            wanted = math.ceil(target * total[run] - 1e-9)
            oracle.append(int(np.searchsorted(np.cumsum(ordered[run]), wanted)) + 1)
        spent, recall_at_stop = np.array(spent), np.array(recall_at_stop)
        rows.append({
            "n_pool": n_pool, "defect_ratio": ratio, "ranking": ranking, "target": target,
            "audit_after": n_labelled, "audit_factor": factor,
            "mean_audit_size": float(sizes.mean()), "runs": n_runs,
            "stopped_below_target": float(np.mean(recall_at_stop < target - 1e-12)),
            "certified_before_the_end": float(np.mean(spent < n_pool)),
            "mean_labels": float(spent.mean()), "median_labels": float(np.median(spent)),
            "oracle_labels": float(np.mean(oracle)),
            "mean_recall_at_stop": float(recall_at_stop.mean())})
    return rows


# ------------------------------------------------------------------------------ output
def table(rows: list[dict], columns: list[str]) -> str:
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row[column]) for column in columns) + " |"
              for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def summarise(rows: list[dict]) -> dict:
    below = np.array([row["below_bound"] for row in rows])
    runs = np.array([row["runs"] for row in rows])
    by_ranking = {}
    for ranking in RANKINGS:
        chosen = [row for row in rows if row["ranking"] == ranking]
        by_ranking[ranking] = {
            "below_bound": float(np.average([r["below_bound"] for r in chosen],
                                            weights=[r["runs"] for r in chosen])),
            "mean_gap": float(np.mean([r["mean_gap"] for r in chosen]))}
    return {"settings": len(rows), "runs": int(runs.sum()),
            "below_bound_overall": float(np.average(below, weights=runs)),
            "below_bound_worst_setting": float(below.max()),
            "settings_above_5pct": int(np.sum(below > 0.05)),
            "exact_below_chance_worst_setting": max(row["exact_below_chance"]
                                                    for row in rows),
            "mean_gap_overall": float(np.mean([row["mean_gap"] for row in rows])),
            "by_ranking": by_ranking}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid, seconds")
    parser.add_argument("--runs", type=int, default=200, help="runs per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.quick:
        pools, ratios, runs = [500, 2000], [0.01, 0.10], min(args.runs, 30)
        need_pools, stop_runs = [1000, 10000], 30
    else:
        pools, ratios, runs = [500, 2000, 10000], [0.01, 0.03, 0.05, 0.10], args.runs
        need_pools, stop_runs = [1000, 10_000, 100_000], args.runs
    settings = {"confidence": CONFIDENCE, "target_recall": TARGET, "rankings": RANKINGS,
                "pools": pools, "defect_ratios": ratios, "runs_per_setting": runs,
                "labelled_shares": [0.1, 0.3], "audit_shares_of_unlabelled": [0.05, 0.25],
                "after_shares": [0.0, 0.1], "seed": args.seed, "python": platform.python_version(),
                "numpy": np.__version__}
    print(json.dumps(settings))
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    rows = coverage(pools, ratios, [0.1, 0.3], [0.05, 0.25], [0.0, 0.1], runs, args.seed)
    summary = summarise(rows)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_csv(args.out / "coverage.csv", rows)
    print(f"\n1. coverage: {summary['runs']} runs in {summary['settings']} settings, "
          f"{summary['seconds']} s")
    print(json.dumps(summary, indent=1))

    needed = audit_needed(need_pools, [0.01, 0.05, 0.10], [1.0, 0.97])
    write_csv(args.out / "audit_needed.csv", needed)
    print("\n2. audit labels to certify 95% recall at 95% confidence (review of 30%):")
    print(table(needed, list(needed[0])))

    stops = []
    for target, ratio, ranking in itertools.product((TARGET, 0.9), (0.01, 0.05),
                                                    ("strong", "good")):
        stops += stopping(10_000 if not args.quick else 2000, ratio, ranking, [0.2, 0.3],
                          [1.0, 1.5, 2.0] if not args.quick else [1.0, 2.0], stop_runs,
                          args.seed, target=target)
    write_csv(args.out / "stopping.csv", stops)
    print("\n3. stop at the first round the bound certifies the target (rounds of 2% of the "
          "pool):")
    print(table(stops, list(stops[0])))
    (args.out / "summary.json").write_text(json.dumps({"settings": settings,
                                                       "coverage": summary}, indent=1))
    (args.out / "tables.md").write_text(
        "## Coverage by ranking\n\n"
        + table([{"ranking": k, **v} for k, v in summary["by_ranking"].items()],
                ["ranking", "below_bound", "mean_gap"])
        + "\n\n## Audit labels needed (95% recall, 95% confidence)\n\n"
        + table(needed, list(needed[0]))
        + "\n\n## Stopping rule\n\n" + table(stops, list(stops[0])) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
