"""The cold start on a small folder of magnetic tiles: E_msmr at 64 and 128 px.

    python benchmarks/cold_start_folder.py --image-size 128 --seeds 0 1 2 --patch-sizes 8 16
    python benchmarks/cold_start_folder.py --image-size 64 --seeds 0 1 2 --epochs 12 48

M's budget is counted in epochs (12 by default), so a folder of 300 images trains M for
``12 * ceil(300 / 16) = 228`` optimiser steps, a third of what the 1,000-image demo gets.
M's masked patches are ``patch_size`` pixels (8) whatever the image size, so at 128 px a
patch covers a quarter of the share of the image it covers at 64 px. For each seed this
draws the folder ``benchmarks/session_folder.py`` draws (``--n-images`` tiles,
``--n-defective`` of them defective, seeded alike), trains M (``ReconstructionScorer()``
with each of ``--epochs`` as ``max_epochs`` and each of ``--patch-sizes``) on all of them
as the cold start does, scores E_msmr and prints the ROC AUC (defective against normal tiles),
the defective tiles among the first ``--k`` (the cold start's first labelled batch) and
among the first 10%, M's optimiser steps and the seconds of fit and scoring.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch
from session_folder import folder_rows  # the same folders (this script's folder is on sys.path)
from sklearn.metrics import roc_auc_score

from sid4ds import ReconstructionScorer
from sid4ds.datasets import load_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", default="../shared/data/magnetic_tile_128.npz")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--n-defective", type=int, default=15)
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, nargs="+", default=[12])
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[8])
    args = parser.parse_args()
    X, masks, _ = load_npz(args.npz, image_size=args.image_size)
    defective = masks.reshape(len(masks), -1).any(axis=1)
    print(json.dumps({"settings": vars(args), "torch": torch.__version__,
                      "threads": torch.get_num_threads(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability()}), flush=True)
    for seed in args.seeds:
        rows = folder_rows(defective, args.n_images, args.n_defective, seed)
        images, truth = X[rows], defective[rows]
        for epochs, patch_size in itertools.product(args.epochs, args.patch_sizes):
            scorer = ReconstructionScorer(max_epochs=epochs, patch_size=patch_size,
                                          random_state=seed)
            started = time.perf_counter()
            scorer.fit(images)
            fitted = time.perf_counter()
            scores = scorer.score_samples(images)
            scored = time.perf_counter()
            order = np.argsort(-scores, kind="stable")
            print(json.dumps({
                "seed": seed, "epochs": epochs, "patch_size": patch_size,
                "image_size": args.image_size,
                "steps": sum(entry["steps"] for entry in scorer.history_),
                "auc": round(float(roc_auc_score(truth, scores)), 3),
                f"defective_in_first_{args.k}": int(truth[order[:args.k]].sum()),
                "defective_in_first_10pct": int(truth[order[:len(order) // 10]].sum()),
                "random_expects_first_k": round(args.k * truth.mean(), 1),
                "fit_s": round(fitted - started, 1), "score_s": round(scored - fitted, 1)}),
                flush=True)


if __name__ == "__main__":
    main()
