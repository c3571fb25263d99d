"""Wall time of an in-loop fit of S on labelled magnetic tiles, and how well it ranks.

    python benchmarks/segmenter_fit_time.py --image-size 128 --n-labelled 100
    python benchmarks/segmenter_fit_time.py --image-size 128 --set crop_size=64

Issue 31's target: an in-loop fit of the segmentation learner S (default settings) on 100
labelled 128 x 128 images takes at most 8 minutes on 2 idle cores. For each seed, a seeded
draw of ``--n-labelled`` tiles of the magnetic-tile npz (at the npz's share of defective
tiles) is the labelled set and ``--n-test`` other tiles the pool S ranks afterwards. The
script prints the time the fit announces (``estimate_seconds``, what a round prints as
"about N min"), its wall time, and the ranking quality of the fitted S on the other tiles:
the ROC AUC of its mean defect probability per tile (defective against normal tiles),
the score S brings to a round. ``--set KEY=VALUE`` changes S (e.g. ``crop_size=64``,
``precision=bf16``). Run it on idle cores: the time is the measurement. The settings line
names oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` times a CPU without AMX
on one that has it) and what ``precision="auto"`` resolves to here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from sklearn.metrics import roc_auc_score

from sid4ds import SegmentationLearner
from sid4ds._core.device import resolve_precision
from sid4ds._core.random import make_rng
from sid4ds.cli.types import parameter
from sid4ds.datasets import load_npz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", default="../shared/data/magnetic_tile_128.npz")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--n-labelled", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="changes", nargs="+", type=parameter, default=[],
                        metavar="KEY=VALUE", help="parameters of S to change")
    args = parser.parse_args()
    X, masks, _ = load_npz(args.npz, image_size=args.image_size)
    defective = masks.reshape(len(masks), -1).any(axis=1)
    print(json.dumps({"settings": vars(args), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "machine": platform.processor(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                      "auto_precision": resolve_precision("auto", torch.device("cpu"),
                                                          training=True)}),
          flush=True)
    for seed in args.seeds:
        order = make_rng((seed, 17)).permutation(len(X))
        train, test = order[:args.n_labelled], order[args.n_labelled:][:args.n_test]
        segmenter = SegmentationLearner(random_state=seed, **dict(args.changes))
        segmenter.check_params()
        estimate = segmenter.estimate_seconds(len(train), tuple(X.shape[1:]), train=True)
        started = time.perf_counter()
        segmenter.fit(X[train], masks[train])
        wall = time.perf_counter() - started
        scores = segmenter.predict_proba(X[test]).reshape(len(test), -1).mean(axis=1)
        auc = roc_auc_score(defective[test], scores)
        print(json.dumps({
            "seed": seed, "image_size": args.image_size, "n_labelled": len(train),
            "defective_labelled": int(defective[train].sum()),
            "steps": sum(entry["steps"] for entry in segmenter.history_),
            "estimate_s": round(estimate, 1), "wall_s": round(wall, 1),
            "estimate_over_wall": round(estimate / wall, 2),
            "ranking_auc": round(float(auc), 3), "test_defective": int(defective[test].sum()),
            "changes": dict(args.changes)}), flush=True)


if __name__ == "__main__":
    main()
