"""SID4DS's loop with several settings from one cold start: defects found per round.

    python benchmarks/loop_variants.py --seeds 0 --variant default esdr:fusion=None \\
        old_rate:lr=0.003
    python benchmarks/loop_variants.py --npz ../shared/data/magnetic_tile_128.npz \\
        --image-size 64 --defect-fraction 0.05 --seeds 0 1 2 --variant default esdr:fusion=None

The benchmark's pool and K (``python -m sid4ds.evaluation``'s data, held-out split, K = 10% of
the pool, V = K·0.95 fake normals), and for each seed one self-supervised M (seeded as the
benchmark seeds it), trained once and shared by every variant: each variant runs
``run_sid4ds`` for ``--rounds`` iterative rounds from a copy of that M, so the variants
differ only after the cold start. A variant is ``NAME[:key=value...]``: keys of
``run_sid4ds`` (``fusion``, ``region``, ``tie_break``) go to the loop, any other key to S
(``lr``, ``crop_size``, ...). With the benchmark's seeds, ``default`` repeats the
benchmark's ``sid4ds`` row to the image on the same machine.

Prints per seed and variant the defective images labelled in each round, the share of the
pool's defective images found after each round, the defective images among each round's
fake normals, and the seconds of S's fits and of the scoring; ``--record FILE`` appends a
JSON line per (seed, variant).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from typing import Any

import numpy as np
import torch
from esdr_ranking import npz_classes  # a script beside this one: benchmarks/ is on the path

from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds
from sid4ds.cli.types import parameter
from sid4ds.engine.rounds import labels_per_round
from sid4ds.evaluation import load_dataset, pool_and_test
from sid4ds.metrics import defective_rows

#: The keys of a variant that are run_sid4ds's; every other key is S's.
LOOP_KEYS = ("fusion", "region", "tie_break")


class TrainedM(ReconstructionScorer):
    """A fitted M that ``run_sid4ds`` takes as it is: cloning gives a copy of the fitted
    model, not a fresh one, so each variant starts from the same cold start."""

    def __sklearn_clone__(self) -> TrainedM:
        return copy.deepcopy(self)


def parse_variant(text: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``NAME[:key=value...]`` as (name, loop options, S's parameters)."""
    name, *settings = text.split(":")
    loop: dict[str, Any] = {}
    segmenter: dict[str, Any] = {}
    for setting in settings:
        key, value = parameter(setting)
        if key in ("fusion", "crop_size") and value == "None":
            value = None
        (loop if key in LOOP_KEYS else segmenter)[key] = value
    return name, loop, segmenter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", help="an .npz data set (default: generated images)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--defect-fraction", type=float, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", nargs="+", type=parse_variant,
                        default=[parse_variant("default")])
    parser.add_argument("--record", help="append one JSON line per (seed, variant)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"settings: {vars(args)}; torch {torch.__version__}", flush=True)
    data = load_dataset(npz=args.npz, image_size=args.image_size,
                        defect_fraction=args.defect_fraction, test_defective=100)
    is_defective = defective_rows(data.masks)
    class_id, class_names = npz_classes(args.npz, data.X) if args.npz else (None, [])
    summary: dict[str, list[float]] = {}
    for seed in args.seeds:
        pool, _ = pool_and_test(is_defective, 0.2, random_state=seed, groups=data.groups,
                                test_only=data.test_only)
        X, masks, defective = data.X[pool], data.masks[pool], is_defective[pool]
        n_label = labels_per_round(0.1, len(pool))
        started = time.perf_counter()
        cold = TrainedM(random_state=seed).fit(X)
        print(f"seed {seed}: pool {len(pool)}, {int(defective.sum())} defective, K = {n_label};"
              f" M trained in {time.perf_counter() - started:.0f} s", flush=True)
        for name, loop, params in args.variant:
            started = time.perf_counter()
            run = run_sid4ds(X, lambda indices, masks=masks: masks[indices], n_rounds=args.rounds,
                             n_label=n_label, expected_defect_ratio=0.05,
                             segmenter=SegmentationLearner(random_state=seed, **params),
                             scorer=copy.deepcopy(cold), random_state=seed, **loop)
            found = [int(record.n_defective) for record in run.rounds]
            shares = np.cumsum(found) / defective.sum()
            fake = [int(defective[record.fake_normals].sum()) for record in run.rounds]
            seconds = {phase: round(sum(record.seconds.get(phase, 0.0)
                                        for record in run.rounds), 1)
                       for phase in ("train_S", "train_G", "score_sdr", "score_msmr")}
            labelled = np.concatenate([record.selected for record in run.rounds])
            pool_class = class_id[pool] if class_id is not None else None
            by_class = ({class_names[value]: int(np.sum(pool_class[labelled] == value))
                         for value in np.unique(pool_class[defective])}
                        if pool_class is not None else {})
            row = {"seed": seed, "variant": name, "loop": loop, "segmenter": params,
                   "found": found, "found_by_class": by_class,
                   "labelled": labelled.tolist(), "shares": [round(float(v), 4) for v in shares],
                   "fake_normals_defective": fake, "seconds": seconds,
                   "wall": round(time.perf_counter() - started, 1),
                   "data": args.npz or "generated", "defect_fraction": args.defect_fraction}
            print(json.dumps(row), flush=True)
            summary.setdefault(name, []).append(float(shares[-1]))
            if args.record:
                with open(args.record, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
    print(f"\n| variant | share found after round {args.rounds}, seeds "
          f"{' / '.join(map(str, args.seeds))} | mean ± std |")
    print("|---|---|---|")
    for name, shares in summary.items():
        print(f"| {name} | {' / '.join(f'{share:.0%}' for share in shares)} | "
              f"{np.mean(shares):.0%} ± {np.std(shares):.0%} |")


if __name__ == "__main__":
    main()
