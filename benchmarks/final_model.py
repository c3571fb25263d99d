"""The final model against a true held-out set: is the cross-validated estimate honest?

    python benchmarks/final_model.py --data gen5 --seeds 0 1 2 --out benchmarks/results/final_model
    python benchmarks/final_model.py --data mag5 --seeds 0 1 2 --out benchmarks/results/final_model
    python benchmarks/final_model.py --data mag29 --seeds 0 1 2 --out benchmarks/results/final_model

For each data set and seed: the benchmark's pool and held-out split
(:func:`sid4ds.evaluation.pool_and_test`, 20% held out, plus ``--test-defective`` defective
images only ever held out), then SID4DS as a labelling session runs it
(:func:`sid4ds.run_sid4ds`, K = 10% of the pool, cold start + 2 rounds, the default
models, seeded like the benchmark), which leaves 30% of the pool labelled, the last round's
fake normals and the S of the rounds. On that, each variant of the final model
(:func:`sid4ds.estimators.final_model.train_final_model`, the code ``sid4ds train`` runs) is trained
with its cross-validation, and then scored on the held-out images:

- ``default``: the final model's default settings;
- ``no_fake``: without the fake normals (``fake_normals=False``);
- ``in_loop``: trained further from the S of the rounds (``start="in_loop"``);
- ``continue``: what ``sid4ds train`` did before: the S of the rounds trained further on
  every label with its own budget, threshold 0.5, no cross-validation;
- ``--variant NAME:key=value[:key=value...]``: the default with those settings changed.

``--labelled-by`` trains the same variants on another labelled set of the same pool, for
the comparison the set is for: ``pool`` labels every pool image, and any other name is
that strategy's 30% read from ``--selections`` (``sid4ds`` too, when ``--selections`` is
given; the ``labeled.csv`` of a
``benchmarks/run_benchmark.py`` run on the same data and seeds, whose split this script
checks). Those sets have no fake normals, and the final model's recipe is today's default S
seeded with the seed, as the cached S's is after :func:`today_s_recipe`.

``--audit N`` labels besides a random audit of N images drawn from the pool images without a
label (:func:`sid4ds.stopping.draw_audit`, seeded with the seed; an audited fake normal is
labelled instead), as ``sid4ds query --audit N`` would after the last round, and gives the
final model's cross-validation the session's estimate weights
(:func:`sid4ds.stopping.audit_weights`): 1 for each labelled image, the
unlabelled images' number over N for each audit image, 0 for the fake normals. The records
then also hold the weighted estimate (``cvw_*``), and their ``labelled_by`` ends in
``+auditN``.

The cross-validation chooses threshold and checkpoint for the IoU at the pool's share of
defective images (what a user who knows the line's defect rate sets at ``init``). The
script prints, per variant, the estimate (mean ± std over the folds) and the held-out
truth, each at the held-out set's mix (the raw pooled IoU on it) and at the pool's mix
(held-out counts reweighted), with the differences, and the wall and CPU seconds of the
training with the time ``sid4ds train`` announces for it
(:func:`~sid4ds.estimators.final_model.final_model_seconds`, measured right before);
writes ``records.csv`` (one row per data set, seed and variant), ``summary.md`` and
``settings.json`` to ``OUT/<data>/``. The SID4DS runs are cached in ``OUT/<data>/cache/``
(not results: git ignores it), so further variants reuse them; a cached S whose
parameters differ from today's defaults (a cache made before a default changed) has them
reset to today's for the final model's recipe, and the script says which.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sid4ds import SegmentationLearner, run_sid4ds
from sid4ds._core.random import seed_if_unset
from sid4ds.cli.types import parameter
from sid4ds.engine.rounds import labels_per_round
from sid4ds.estimators.final_model import (
    check_final_settings,
    detection_counts,
    detection_scores,
    final_model_seconds,
    train_final_model,
)
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.evaluation import load_dataset, pool_and_test
from sid4ds.metrics import defective_rows
from sid4ds.stopping import audit_weights, draw_audit

DATA_SETS: dict[str, dict[str, Any]] = {
    "gen5": {"image_size": 64, "test_defective": 100},
    "mag5": {"npz": "/work/shared/data/magnetic_tile_128.npz", "image_size": 64,
             "defect_fraction": 0.05, "test_defective": 100},
    "mag29": {"npz": "/work/shared/data/magnetic_tile_128.npz", "image_size": 64,
              "test_defective": 0},
}
VARIANTS: dict[str, dict[str, Any] | None] = {
    "default": {}, "no_fake": {"fake_normals": False}, "in_loop": {"start": "in_loop"},
    "continue": None,
}
SCORES = ("iou", "detected", "false_alarms")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value:key=value"`` as ``(name, settings)``."""
    name, *settings = text.split(":")
    values = dict(parameter(setting) for setting in settings)
    check_final_settings(values)
    return name, values


def today_s_recipe(segmenter: SegmentationLearner) -> SegmentationLearner:
    """A cached S with the parameters that differ from today's defaults set to them.

    The final model's recipe is S's parameters: a cache made before a default changed
    (e.g. ``lr``) would otherwise train the final model with the old default. The
    labelled set and S's weights stay the cached run's; what was reset is printed.
    """
    today = SegmentationLearner().get_params(deep=False)
    kept = ("device", "random_state", "warm_start")
    stale = {key: value for key, value in segmenter.get_params(deep=False).items()
             if key not in kept and value != today[key]}
    if stale:
        print(f"the cached S has {stale}: set to today's defaults for the final model",
              flush=True)
        segmenter.set_params(**{key: today[key] for key in stale})
    return segmenter


def sid4ds_run(data: Any, pool: np.ndarray, seed: int, cache: Path) -> dict[str, Any]:
    """Labelled pool indices, the last round's fake normals and S of the rounds (cached)."""
    file = cache / f"seed{seed}.npz"
    state_file = cache / f"seed{seed}_S.pt"
    if file.is_file() and state_file.is_file():
        with np.load(file) as saved:
            result = {key: saved[key] for key in saved.files}
        result["segmenter"] = today_s_recipe(SegmentationLearner.load(state_file, device="cpu"))
        return result
    started = time.perf_counter()
    n_label = labels_per_round(0.1, len(pool))
    run = run_sid4ds(data.X[pool], lambda indices: data.masks[pool[indices]], n_rounds=2,
                     n_label=n_label, expected_defect_ratio=0.05,
                     segmenter=seed_if_unset(SegmentationLearner(), seed),
                     scorer=seed_if_unset(ReconstructionScorer(), seed), random_state=seed)
    result = {"labeled": pool[run.labeled_indices],
              "fake_normals": pool[np.asarray(run.rounds[-1].fake_normals, np.int64)],
              "seconds": np.array(time.perf_counter() - started)}
    cache.mkdir(parents=True, exist_ok=True)
    (cache / ".gitignore").write_text("*\n")
    np.savez(file, **result)
    run.segmenter.save(state_file)
    result["segmenter"] = run.segmenter
    return result


def labelled_by(record: dict[str, Any]) -> str:
    """Whose labelled set a record's model trained on (``sid4ds`` in rows written before
    ``--labelled-by`` existed)."""
    return record.get("labelled_by") or "sid4ds"


def other_labelled_set(pool: np.ndarray, seed: int, source: str,
                       selections: Path | None) -> dict[str, Any]:
    """The pool (``source="pool"``) or a strategy's labelled rows from ``selections``."""
    if source == "pool":
        labeled = pool
    else:
        if selections is None:
            raise SystemExit(f"--labelled-by {source} needs --selections (a labeled.csv)")
        with open(selections, newline="") as handle:
            chosen = [row for row in csv.DictReader(handle)
                      if row["strategy"] == source and int(row["seed"]) == seed]
        if not chosen:
            raise SystemExit(f"{selections} holds no rows of strategy {source!r}, seed {seed}")
        labeled = np.array([int(row["image_index"]) for row in chosen])
        at = np.array([int(row["pool_index"]) for row in chosen])
        if at.max() >= len(pool) or not np.array_equal(pool[at], labeled):
            raise SystemExit(f"{selections} was run on another split than seed {seed}'s here")
    return {"labeled": labeled, "fake_normals": np.zeros(0, np.int64),
            "seconds": np.array(0.0),
            "segmenter": seed_if_unset(SegmentationLearner(), seed)}


def with_audit(pool: np.ndarray, run: dict[str, Any], n_audit: int,
               seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """``run`` with a random audit of ``n_audit`` of the pool's unlabelled images labelled
    too (after the labelled rows; audited fake normals leave the fake normals), and the
    estimate weight of each training row (labelled, audit, fake normals)."""
    unlabelled = np.setdiff1d(pool, run["labeled"])
    audit = np.asarray(draw_audit(unlabelled, n_audit, random_state=[seed, 1]), np.int64)
    fake = np.setdiff1d(run["fake_normals"], audit)
    rows = np.r_[run["labeled"], audit]
    weights = audit_weights(np.r_[rows, fake], run["labeled"], audit, len(unlabelled))
    return {**run, "labeled": rows, "fake_normals": fake}, weights


def load_data(name: str) -> tuple[Any, np.ndarray]:
    """The data set ``name`` of :data:`DATA_SETS` and which of its images are defective."""
    spec = DATA_SETS[name]
    data = load_dataset(npz=spec.get("npz"), image_size=spec["image_size"],
                        defect_fraction=spec.get("defect_fraction"),
                        test_defective=spec["test_defective"])
    return data, defective_rows(data.masks)


def split(data: Any, is_defective: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's pool and held-out rows for ``seed`` (20% held out, by group)."""
    extra = data.test_only if data.test_only.size else np.zeros(len(data.X), dtype=bool)
    return pool_and_test(is_defective, 0.2, random_state=seed, groups=data.groups,
                         test_only=extra)


def training_set(data: Any, run: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, train-only flags (the fake normals) and masks (zero for the fake normals)."""
    labeled, fake = run["labeled"], run["fake_normals"]
    rows = np.concatenate([labeled, fake])
    train_only = np.r_[np.zeros(len(labeled), bool), np.ones(len(fake), bool)]
    masks = data.masks[rows].copy()
    masks[train_only] = 0
    return rows, train_only, masks


def held_out_scores(probabilities: np.ndarray, masks: np.ndarray, threshold: float,
                    ratio: float | None) -> dict[str, float]:
    """Defect IoU, defective images found and normal images flagged at one threshold, at
    the share ``ratio`` of defective images (as in the held-out set when None)."""
    counts = detection_counts(probabilities, masks, [threshold])
    return {key: float(values[0]) for key, values in detection_scores(counts, ratio).items()}


def held_out_truth(model: SegmentationLearner, X: np.ndarray, masks: np.ndarray,
                   ratios: dict[str, float | None]) -> dict[str, float]:
    """The model's scores on the held-out images at its threshold, at each mix."""
    probabilities = model.predict_proba(X)
    return {f"truth_{key}_{mix}": value for mix, ratio in ratios.items()
            for key, value in held_out_scores(probabilities, masks, model.threshold,
                                              ratio).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATA_SETS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="*", default=["default"],
                        choices=sorted(VARIANTS), help="named variants (default: default)")
    parser.add_argument("--variant", nargs="*", default=[], type=parse_variant,
                        help="NAME:key=value[:key=value...]: the default final settings "
                             "changed so")
    parser.add_argument("--out", default="benchmarks/results/final_model")
    parser.add_argument("--cache", help="folder of the cached SID4DS runs (default "
                                        "OUT/<data>/cache)")
    parser.add_argument("--labelled-by", default="sid4ds",
                        help="whose labelled set: sid4ds (default: a SID4DS run of this "
                             "script; with --selections, its sid4ds rows there), pool (every "
                             "pool image) or a strategy of --selections")
    parser.add_argument("--selections", type=Path,
                        help="labeled.csv of a run_benchmark.py run (for --labelled-by)")
    parser.add_argument("--audit", type=int, default=0,
                        help="label a random audit of this many unlabelled pool images too "
                             "and weigh the estimate by it (default 0: none)")
    args = parser.parse_args()
    source = args.labelled_by + (f"+audit{args.audit}" if args.audit else "")
    data, is_defective = load_data(args.data)
    out = Path(args.out) / args.data
    out.mkdir(parents=True, exist_ok=True)
    variants = [(name, VARIANTS[name]) for name in args.variants] + list(args.variant)
    settings = {"arguments": {**vars(args), "variant": [list(v) for v in args.variant]},
                "data": data.description, "torch": torch.__version__,
                "threads": torch.get_num_threads(), "machine": platform.processor()
                or platform.machine(), "final_defaults": check_final_settings(None)}
    print(json.dumps(settings, default=str), flush=True)
    records_file = out / "records.csv"
    records = []
    if records_file.is_file():
        with open(records_file, newline="") as handle:
            records = [row for row in csv.DictReader(handle)
                       if not (int(row["seed"]) in args.seeds
                               and row["variant"] in dict(variants)
                               and labelled_by(row) == source)]
    for seed in args.seeds:
        pool, test = split(data, is_defective, seed)
        run = (sid4ds_run(data, pool, seed, Path(args.cache) if args.cache else out / "cache")
               if args.labelled_by == "sid4ds" and args.selections is None else
               other_labelled_set(pool, seed, args.labelled_by, args.selections))
        weights = None
        if args.audit:
            run, weights = with_audit(pool, run, args.audit, seed)
        labeled, fake = run["labeled"], run["fake_normals"]
        n_labeled_defective = int(is_defective[labeled].sum())
        rows, train_only, y_train = training_set(data, run)
        pool_ratio = float(is_defective[pool].mean())
        test_ratio = float(is_defective[test].mean())
        ratios = {"test": test_ratio, "pool": pool_ratio}
        print(f"seed {seed}: pool {len(pool)} ({pool_ratio:.1%} defective), labelled "
              f"{len(labeled)} by {source} "
              f"({n_labeled_defective} defective), "
              f"{len(fake)} fake normals ({int(is_defective[fake].sum())} defective), test "
              f"{len(test)} ({test_ratio:.1%} defective); SID4DS run "
              f"{float(run['seconds']):.0f} s", flush=True)
        for name, final in variants:
            started, cpu_started = time.perf_counter(), time.process_time()
            record: dict[str, Any] = {"data": args.data, "seed": seed, "variant": name,
                                      "labelled_by": source, "n_audit": args.audit,
                                      "n_labeled": len(labeled),
                                      "n_labeled_defective": n_labeled_defective,
                                      "n_fake": len(fake)}
            if final is None:  # the S of the rounds trained further, threshold 0.5
                model = SegmentationLearner.from_state(run["segmenter"].get_state(),
                                                       warm_start=True)
                model.fit(data.X[rows], y_train)
            else:
                record["announced_seconds"] = final_model_seconds(
                    run["segmenter"], len(rows), tuple(data.X.shape[1:]), final)
                started, cpu_started = time.perf_counter(), time.process_time()
                model, cv = train_final_model(
                    run["segmenter"], data.X[rows], y_train, train_only=train_only,
                    groups=None if data.groups is None else data.groups[rows],
                    settings=final, defect_ratio=pool_ratio, estimate_weight=weights,
                    random_state=seed)
                record.update(threshold=cv.threshold, steps=cv.n_steps, folds=cv.n_folds)
                for prefix, weighted in (("cv", False), ("cvw", True))[:1 + cv.weighted]:
                    for mix, ratio in ratios.items():
                        estimate = cv.estimate(ratio, weighted=weighted)
                        for key in SCORES:
                            record[f"{prefix}_{key}_{mix}"] = estimate[key]["mean"]
                            record[f"{prefix}_{key}_{mix}_std"] = estimate[key]["std"]
            record["seconds"] = time.perf_counter() - started
            record["cpu_seconds"] = time.process_time() - cpu_started
            record.update(held_out_truth(model, data.X[test], data.masks[test], ratios))
            records.append(record)
            shown = {key: (f"{value:.3f}" if isinstance(value, float) else value)
                     for key, value in record.items()}
            print(f"  {shown}", flush=True)
        write_outputs(out, records, settings)


def write_outputs(out: Path, records: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """``records.csv``, ``settings.json`` and ``summary.md`` (mean ± std over seeds)."""
    columns = sorted({key for record in records for key in record},
                     key=lambda key: (key not in ("data", "seed", "variant"), key))
    with open(out / "records.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    (out / "settings.json").write_text(json.dumps(settings, indent=1, default=str) + "\n")

    def value(record: dict[str, Any], key: str) -> float:
        text = record.get(key, "")
        return float(text) if text not in ("", None) else float("nan")

    def cell(rows: list[dict[str, Any]], key: str, digits: int = 3) -> str:
        values = np.array([value(row, key) for row in rows])
        if np.isnan(values).all():
            return "–"
        return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}"

    lines = ["| labelled by | variant | seeds | mix | IoU: estimate | IoU: held out | "
             "IoU: estimate − held out | found: estimate | found: held out | "
             "normals flagged: estimate | normals flagged: held out | threshold | steps | "
             "seconds | announced |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    for source, variant in dict.fromkeys((labelled_by(record), record["variant"])
                                         for record in records):
        rows = [record for record in records
                if (labelled_by(record), record["variant"]) == (source, variant)]
        for mix in ("test", "pool"):
            difference = [value(row, f"cv_iou_{mix}") - value(row, f"truth_iou_{mix}")
                          for row in rows]
            gap = ("–" if np.isnan(difference).all() else
                   f"{np.nanmean(difference):+.3f} ± {np.nanstd(difference):.3f}")
            lines.append(
                f"| {source} | {variant} | {len(rows)} | {mix} | {cell(rows, f'cv_iou_{mix}')} | "
                f"{cell(rows, f'truth_iou_{mix}')} | {gap} | "
                f"{cell(rows, f'cv_detected_{mix}', 2)} | "
                f"{cell(rows, f'truth_detected_{mix}', 2)} | "
                f"{cell(rows, f'cv_false_alarms_{mix}', 2)} | "
                f"{cell(rows, f'truth_false_alarms_{mix}', 2)} | {cell(rows, 'threshold', 2)} | "
                f"{cell(rows, 'steps', 0)} | {cell(rows, 'seconds', 0)} | "
                f"{cell(rows, 'announced_seconds', 0)} |")
    lines += weighted_lines(records, value, cell)
    lines += paired_differences(records, value)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def weighted_lines(records: list[dict[str, Any]],
                   value: Callable[[dict[str, Any], str], float],
                   cell: Callable[..., str]) -> list[str]:
    """Lines of a table: the estimate weighted by the audit beside the plain one and the
    held-out truth (pool's mix); empty without weighted records."""
    lines = []
    for source, variant in dict.fromkeys((labelled_by(record), record["variant"])
                                         for record in records
                                         if np.isfinite(value(record, "cvw_iou_pool"))):
        rows = [record for record in records
                if (labelled_by(record), record["variant"]) == (source, variant)]
        gaps = {prefix: [value(row, f"{prefix}_iou_pool") - value(row, "truth_iou_pool")
                         for row in rows] for prefix in ("cv", "cvw")}
        recall_gaps = {prefix: [value(row, f"{prefix}_detected_pool")
                                - value(row, "truth_detected_pool") for row in rows]
                       for prefix in ("cv", "cvw")}
        lines.append(
            f"| {source} | {variant} | {len(rows)} | {cell(rows, 'cv_iou_pool')} | "
            f"{cell(rows, 'cvw_iou_pool')} | {cell(rows, 'truth_iou_pool')} | "
            f"{np.mean(gaps['cv']):+.3f} | {np.mean(gaps['cvw']):+.3f} ± "
            f"{np.std(gaps['cvw']):.3f} | {cell(rows, 'cv_detected_pool', 2)} | "
            f"{cell(rows, 'cvw_detected_pool', 2)} | {cell(rows, 'truth_detected_pool', 2)} | "
            f"{np.mean(recall_gaps['cv']):+.2f} | {np.mean(recall_gaps['cvw']):+.2f} ± "
            f"{np.std(recall_gaps['cvw']):.2f} |")
    if not lines:
        return []
    return ["", "The estimate weighted by the random audit (`--audit`) beside the plain one "
            "and the held-out truth, at the pool's mix.", "",
            "| labelled by | variant | seeds | IoU: estimate | IoU: weighted | IoU: held out | "
            "estimate − held out | weighted − held out | found: estimate | found: weighted | "
            "found: held out | estimate − held out | weighted − held out |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"] + lines


def paired_differences(records: list[dict[str, Any]],
                       value: Callable[[dict[str, Any], str], float]) -> list[str]:
    """Lines of a table: each variant's held-out IoU (pool's mix) minus the default's on the
    same labelled set and seed, and its wall time over the default's; empty without pairs."""
    by_run: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for record in records:
        key = (labelled_by(record), str(record["seed"]))
        by_run.setdefault(key, {})[record["variant"]] = record
    rows = []
    for (source, seed), variants in by_run.items():
        if "default" not in variants:
            continue
        default = variants["default"]
        for variant, record in variants.items():
            if variant != "default":
                rows.append((source, variant, seed,
                             value(record, "truth_iou_pool") - value(default, "truth_iou_pool"),
                             value(record, "seconds") / value(default, "seconds")))
    if not rows:
        return []
    lines = ["", "Paired with the default (same labelled set and seed): held-out IoU at the "
             "pool's mix, variant − default; wall time, variant / default.", "",
             "| labelled by | variant | seed | IoU difference | time ratio |",
             "|---|---|---|---|---|"]
    lines += [f"| {source} | {variant} | {seed} | {difference:+.3f} | {ratio:.2f} |"
              for source, variant, seed, difference, ratio in rows]
    for variant in dict.fromkeys(row[1] for row in rows):
        differences = np.array([row[3] for row in rows if row[1] == variant])
        ratios = np.array([row[4] for row in rows if row[1] == variant])
        lines.append(f"| all | {variant} | {len(differences)} runs | "
                     f"{differences.mean():+.3f} ± {differences.std():.3f} (ahead in "
                     f"{int((differences > 0).sum())}) | {ratios.mean():.2f} |")
    return lines


if __name__ == "__main__":
    main()
