"""How close the time estimates that rounds and ``sid4ds train`` announce come to the truth.

    python benchmarks/time_estimates.py --sizes 64 128 --out benchmarks/results/time_estimates

For each phase a round times (S's fit, M's fit, E_msmr scoring, G's fit, E_sdr scoring)
and each image size, the estimate (:meth:`sid4ds.estimators.base.TorchEstimator.estimate_seconds`,
the call :class:`sid4ds.engine.rounds.SID4DSRounds` makes before each phase, in a fresh process
state for the first) is taken right before the phase runs, on generated images, and both
are printed with their ratio (estimate / truth: above 1 is too high). The work is sized
to take tens of seconds per phase (``--scale`` multiplies it); the estimates scale
linearly in the number of steps or images, so a short phase tests the rate they announce.
Writes ``estimates.csv`` and ``settings.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sid4ds import ReconstructionScorer, SegmentationLearner
from sid4ds.datasets import make_defect_images
from sid4ds.ranking.scores import msmr_scores, sdr_scores


def timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def phases(size: int, scale: float, seed: int) -> list[dict[str, Any]]:
    """Estimate, then run, each phase at one image size; a record per phase."""
    factor = (64 / size) ** 2  # as many pixels per phase at every size
    n_train = max(16, int(100 * scale))
    X, masks = make_defect_images(n_samples=max(n_train, int(200 * scale * factor)),
                                  image_size=size, defect_ratio=0.2, random_state=seed)
    shape = tuple(X.shape[1:])
    records = []

    def record(phase: str, model: Any, n_images: int, work: Any, *, train: bool,
               copies: int = 1) -> None:
        estimate = model.estimate_seconds(n_images, shape, train=train, copies=copies)
        truth = timed(work)
        records.append({"size": size, "phase": phase, "images": n_images,
                        "estimate_s": estimate, "truth_s": truth, "ratio": estimate / truth})
        print(f"  {size} px {phase:<10s} images {n_images:5d}: estimate {estimate:7.1f} s, "
              f"truth {truth:7.1f} s, ratio {estimate / truth:.2f}", flush=True)

    steps = max(10, int(60 * scale * factor))
    segmenter = SegmentationLearner(max_steps=steps, random_state=seed)
    record("train_S", segmenter, n_train, lambda: segmenter.fit(X[:n_train], masks[:n_train]),
           train=True)
    scorer = ReconstructionScorer(max_epochs=1, random_state=seed)
    n_pool = len(X)
    record("train_M", scorer, n_pool, lambda: scorer.fit(X), train=True)
    record("score_msmr", scorer, n_pool, lambda: msmr_scores(scorer, X), train=False,
           copies=scorer.n_blocks)
    guided = scorer.guided_copy(1)
    record("train_G", guided, n_train, lambda: guided.fit(X[:n_train], masks[:n_train]),
           train=True)
    estimate_s = segmenter.estimate_seconds(n_pool, shape, train=False)
    estimate_g = guided.estimate_seconds(n_pool, shape, train=False)
    truth = timed(lambda: sdr_scores(segmenter, guided, X))
    records.append({"size": size, "phase": "score_sdr", "images": n_pool,
                    "estimate_s": estimate_s + estimate_g, "truth_s": truth,
                    "ratio": (estimate_s + estimate_g) / truth})
    print(f"  {size} px score_sdr  images {n_pool:5d}: estimate "
          f"{estimate_s + estimate_g:7.1f} s, truth {truth:7.1f} s, ratio "
          f"{(estimate_s + estimate_g) / truth:.2f}", flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1,
                        help="measure every phase this many times")
    parser.add_argument("--out", default="benchmarks/results/time_estimates")
    args = parser.parse_args()
    settings = {"arguments": vars(args), "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine()}
    print(json.dumps(settings), flush=True)
    records = []
    for repeat in range(args.repeats):
        for size in args.sizes:
            records += [{**row, "repeat": repeat} for row in phases(size, args.scale, repeat)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "estimates.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    (out / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    ratios = np.array([row["ratio"] for row in records])
    print(f"ratio estimate / truth: median {np.median(ratios):.2f}, range "
          f"{ratios.min():.2f} to {ratios.max():.2f}; within 1.5x: "
          f"{int(((ratios <= 1.5) & (ratios >= 1 / 1.5)).sum())} of {len(ratios)}")


if __name__ == "__main__":
    main()
