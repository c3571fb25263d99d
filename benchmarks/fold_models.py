"""Which model to ship: the final refit, or the mean of the cross-validation's fold models?

    python benchmarks/fold_models.py --data mag29 --seeds 0 1 2 --labelled-by entropy \\
        --selections benchmarks/results/run11_mag29/labeled.csv --out benchmarks/results/fold_models

The final model (:func:`sid4ds.estimators.final_model.fit_final_model`, default settings)
trains k fold models for the cross-validation, then one more S on every label, which it
ships. The estimate describes the fold models, and one 1600-step fit varies a lot on
magnetic tile (``docs/method.md``). This script trains the same final model (same labelled
sets as ``benchmarks/final_model.py --labelled-by``, same seeds, so the refit is that
script's model) while keeping each fold model's weights at every checkpoint, and scores on
the held-out images, at the cross-validation's chosen threshold:

- ``refit``: the shipped model today;
- ``fold_mean``: the mean probability of the k fold models at the chosen checkpoint;
- ``fold_mean_end``: the same at the last checkpoint;
- ``fold_mean_refit``: the k fold models and the refit;
- ``soup``: one network whose weights (and BatchNorm statistics) are the fold models'
  mean at the chosen checkpoint;
- ``fold_0`` … : each fold model alone at the chosen checkpoint.

``--bootstrap N`` adds, per scheme, the 5th and 95th percentiles and the std of the held-out
IoU over N resamples of the held-out images' source groups (how much the truth of one split
moves). Prints one line per seed and scheme and writes ``records.csv``, ``summary.md`` and
``settings.json`` to ``OUT/<data>_<labelled-by>/``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from final_model import (  # this script's folder is on sys.path
    DATA_SETS,
    held_out_scores,
    load_data,
    other_labelled_set,
    sid4ds_run,
    split,
    training_set,
)

from sid4ds import SegmentationLearner
from sid4ds.estimators.final_model import (
    check_final_settings,
    checkpoints,
    detection_counts,
    detection_scores,
    final_segmenter,
    fit_final_model,
)


class KeepingLearner(SegmentationLearner):
    """S that keeps a copy of its weights at the steps of :attr:`keep_steps` and registers
    every fitted instance in :attr:`fitted` (the fold models, then the refit)."""

    keep_steps: frozenset[int] = frozenset()
    fitted: list[KeepingLearner] = []

    def fit(self, X: Any, y: Any, *, on_step: Any = None) -> KeepingLearner:
        self.kept_: dict[int, dict[str, torch.Tensor]] = {}

        def keep(done: int) -> bool | None:
            if done in self.keep_steps:
                self.kept_[done] = copy.deepcopy(self.module_.state_dict())
            return None if on_step is None else on_step(done)

        KeepingLearner.fitted.append(self)
        return super().fit(X, y, on_step=keep)


def with_weights(model: SegmentationLearner, state: dict[str, torch.Tensor]) -> SegmentationLearner:
    """A copy of ``model`` carrying the weights ``state``."""
    copied = copy.deepcopy(model)
    copied.module_.load_state_dict(state)
    copied.module_.eval()
    return copied


def mean_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating tensors (the first state's integer counters)."""
    return {key: (torch.stack([state[key] for state in states]).mean(0)
                  if states[0][key].is_floating_point() else states[0][key])
            for key in states[0]}


def bootstrap_iou(probabilities: np.ndarray, masks: np.ndarray, threshold: float,
                  ratio: float, groups: np.ndarray, n_draws: int, seed: int) -> np.ndarray:
    """The held-out IoU over ``n_draws`` resamples of the held-out images' source groups
    (as many groups, drawn with replacement): how much the truth of one split moves."""
    per_image = [detection_counts(probabilities[i:i + 1], masks[i:i + 1], [threshold])
                 for i in range(len(masks))]
    counts = {key: np.array([float(np.ravel(found[key])[0]) for found in per_image])
              for key in per_image[0]}
    names, member = np.unique(groups, return_inverse=True)
    draws = np.random.default_rng(seed).integers(0, len(names), size=(n_draws, len(names)))
    weight = np.stack([np.bincount(draw, minlength=len(names))[member] for draw in draws])
    return detection_scores({key: weight @ values for key, values in counts.items()},
                            ratio)["iou"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(DATA_SETS), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labelled-by", default="pool")
    parser.add_argument("--selections", type=Path)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="the final model's budget (default: its default)")
    parser.add_argument("--bootstrap", type=int, default=0,
                        help="resamples of the held-out source groups for each scheme's "
                             "interval (0: none)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fold_models"))
    args = parser.parse_args()
    data, is_defective = load_data(args.data)
    out = args.out / f"{args.data}_{args.labelled_by}"
    out.mkdir(parents=True, exist_ok=True)
    final = check_final_settings(None if args.max_steps is None else
                                 {"max_steps": args.max_steps})
    settings = {"arguments": vars(args), "data": data.description, "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(), "final": final}
    print(json.dumps(settings, default=str), flush=True)
    records: list[dict[str, Any]] = []
    for seed in args.seeds:
        pool, test = split(data, is_defective, seed)
        run = (sid4ds_run(data, pool, seed, args.cache) if args.cache else
               other_labelled_set(pool, seed, args.labelled_by, args.selections))
        rows, train_only, y_train = training_set(data, run)
        ratio = float(is_defective[pool].mean())
        config = final_segmenter(run["segmenter"].get_params(deep=False), final)
        steps = checkpoints(int(config.max_steps), final["n_checkpoints"])
        KeepingLearner.keep_steps = frozenset(int(step) for step in steps)
        KeepingLearner.fitted = []
        started = time.perf_counter()
        refit, cv = fit_final_model(
            KeepingLearner(**config.get_params(deep=False)), data.X[rows], y_train,
            groups=None if data.groups is None else data.groups[rows], train_only=train_only,
            n_folds=final["n_folds"], n_checkpoints=final["n_checkpoints"],
            defect_ratio=ratio, random_state=seed)
        seconds = time.perf_counter() - started
        folds = KeepingLearner.fitted[:-1]
        X_test, masks_test = data.X[test], data.masks[test]
        fold_probabilities = [with_weights(model, model.kept_[cv.n_steps]).predict_proba(X_test)
                              for model in folds]
        last_probabilities = (fold_probabilities if cv.n_steps == steps[-1] else
                              [with_weights(model, model.kept_[int(steps[-1])])
                               .predict_proba(X_test) for model in folds])
        refit_probabilities = refit.predict_proba(X_test)
        groups = (np.arange(len(test)) if data.groups is None
                  else np.asarray(data.groups)[test])
        schemes = {
            "refit": refit_probabilities,
            "fold_mean": np.mean(fold_probabilities, axis=0),
            "fold_mean_end": np.mean(last_probabilities, axis=0),
            "fold_mean_refit": np.mean(fold_probabilities + [refit_probabilities], axis=0),
            "soup": with_weights(folds[0], mean_state([model.kept_[cv.n_steps]
                                                       for model in folds])).predict_proba(X_test),
            **{f"fold_{index}": probabilities
               for index, probabilities in enumerate(fold_probabilities)},
        }
        estimate = cv.estimate(ratio)
        for scheme, probabilities in schemes.items():
            record = {"data": args.data, "labelled_by": args.labelled_by, "seed": seed,
                      "scheme": scheme, "threshold": cv.threshold, "steps": cv.n_steps,
                      "cv_iou": estimate["iou"]["mean"], "cv_iou_std": estimate["iou"]["std"],
                      "seconds": seconds,
                      **{f"truth_{key}": value for key, value in
                         held_out_scores(probabilities, masks_test, cv.threshold,
                                         ratio).items()}}
            if args.bootstrap:
                draws = bootstrap_iou(probabilities, masks_test, cv.threshold, ratio,
                                      groups, args.bootstrap, seed)
                record.update(truth_iou_p05=float(np.nanpercentile(draws, 5)),
                              truth_iou_p95=float(np.nanpercentile(draws, 95)),
                              truth_iou_bootstrap_std=float(np.nanstd(draws)))
            records.append(record)
            print({key: f"{value:.3f}" if isinstance(value, float) else value
                   for key, value in record.items()}, flush=True)
        write_outputs(out, records, settings)


def write_outputs(out: Path, records: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """``records.csv``, ``settings.json`` and ``summary.md`` (mean ± std over seeds)."""
    with open(out / "records.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    (out / "settings.json").write_text(json.dumps(settings, indent=1, default=str) + "\n")
    lines = ["| scheme | seeds | IoU held out | per seed | found | normals flagged |",
             "|---|---|---|---|---|---|"]
    for scheme in dict.fromkeys(record["scheme"] for record in records):
        rows = [record for record in records if record["scheme"] == scheme]

        def cell(key: str, rows: list[dict[str, Any]] = rows) -> str:
            values = np.array([row[key] for row in rows], dtype=float)
            return f"{values.mean():.3f} ± {values.std():.3f}"

        per_seed = " / ".join(f"{row['truth_iou']:.3f}" for row in rows)
        lines.append(f"| {scheme} | {len(rows)} | {cell('truth_iou')} | {per_seed} | "
                     f"{cell('truth_detected')} | {cell('truth_false_alarms')} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
