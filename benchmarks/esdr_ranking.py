"""How well do the iterative scores rank the images left before a round? One SID4DS run.

    python benchmarks/esdr_ranking.py                  # generated, the benchmark's pool
    python benchmarks/esdr_ranking.py --round 2 --seed 1
    python benchmarks/esdr_ranking.py --npz ../shared/data/magnetic_tile_128.npz \\
        --image-size 64 --defect-fraction 0.05 --round 2

Builds the benchmark's pool for the seed (``python -m sid4ds.benchmark``'s data, held-out
split and K = 10% of the pool), runs SID4DS up to round ``--round`` with the default
models (``run_sid4ds``), then scores the images still unlabelled before that round with
the round's S and G in several ways and prints, for each, the ROC AUC (defective against
normal) and the defective images among its top K (what the round would label):

- ``E_sdr adaptive``: ``sdr_scores`` (the default: images S marks rank first by E_sdr,
  the others by G's error e inside their most probable 1% of pixels, as e / (1 + e) − 1);
- ``E_sdr adaptive, unranked``: the same regions without that ordering (the rule before
  it, ``G.score_samples(X, pseudo_label_regions(p))``);
- ``E_sdr threshold`` (the paper's S ≥ 0.5; ties in index order, not E_msmr);
- the images S marks first by E_sdr, the others by S's own probability (mean over the
  image, or over its most probable 1% of pixels) instead of G's error: a candidate rule,
  measured here and in the benchmark (docs/benchmarks.md, *Iterative stage*; not adopted);
- S's own evidence (largest and mean probability, marked area, mean pixel entropy: the
  entropy baseline's score) and G's error on the whole image, which say whether S or G
  carries the ranking.

It prints its settings; timing depends on the machine (3–10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds, sdr_scores
from sid4ds.baselines import entropy_scores
from sid4ds.benchmark import load_dataset, pool_and_test
from sid4ds.metrics import defective_rows
from sid4ds.rounds import labels_per_round
from sid4ds.scores import pseudo_label_regions


def below_marked(marked: np.ndarray, esdr: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Marked images keep E_sdr (≥ 0); the others score ``evidence − 1`` (evidence in [0, 1))."""
    return np.where(marked, esdr, np.asarray(evidence, dtype=np.float64) - 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--npz", default=None, help="an .npz data set (default: generated)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--defect-fraction", type=float, default=None)
    parser.add_argument("--round", type=int, default=1, help="the iterative round to score")
    parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"settings: {vars(args)}, torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    data = load_dataset(npz=args.npz, image_size=args.image_size,
                        defect_fraction=args.defect_fraction, test_defective=100)
    is_defective = defective_rows(data.masks)
    pool, _ = pool_and_test(is_defective, 0.2, random_state=args.seed, groups=data.groups,
                            test_only=data.test_only)
    X, masks, defective = data.X[pool], data.masks[pool], is_defective[pool]
    n_label = labels_per_round(0.1, len(pool))
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=args.round, n_label=n_label,
                     expected_defect_ratio=0.05,
                     segmenter=SegmentationLearner(random_state=args.seed),
                     scorer=ReconstructionScorer(random_state=args.seed),
                     random_state=args.seed)
    found = [int(record.n_defective) for record in run.rounds]
    print(f"pool {len(pool)} images, {int(defective.sum())} defective, K = {n_label}; "
          f"defective labelled per round: {found}")
    before = np.concatenate([run.rounds[r].selected for r in range(args.round)])
    rest = np.setdiff1d(np.arange(len(X)), before)
    images, is_left_defective = X[rest], defective[rest]
    segmenter, guided = run.segmenter, run.sdr_scorer
    probabilities = segmenter.predict_proba(images)
    flat = probabilities.reshape(len(images), -1)
    marked = (flat >= segmenter.threshold).any(axis=1)
    n_top = max(1, int(round(0.01 * flat.shape[1])))
    top_mean = -np.sort(-flat, axis=1)[:, :n_top].mean(axis=1)
    print(f"left before round {args.round}: {len(rest)} images, "
          f"{int(is_left_defective.sum())} defective; S marks {int(marked.sum())} "
          f"({int(is_left_defective[marked].sum())} defective)\n")
    esdr = sdr_scores(segmenter, guided, images)
    whole = guided.reconstruct(images) - images
    candidates = {
        "E_sdr adaptive (default)": esdr,
        "E_sdr adaptive, unranked": guided.score_samples(
            images, pseudo_label_regions(probabilities)),
        "E_sdr threshold (paper)": sdr_scores(segmenter, guided, images, region="threshold"),
        "marked by E_sdr, others by S mean probability": below_marked(
            marked, esdr, flat.mean(axis=1)),
        "marked by E_sdr, others by S top-1% probability": below_marked(
            marked, esdr, top_mean),
        "E_msmr (cold-start order)": run.msmr_scores[rest],
        "S largest probability": flat.max(axis=1),
        "S mean probability": flat.mean(axis=1),
        "S top-1% probability": top_mean,
        "S area >= threshold": (flat >= segmenter.threshold).sum(axis=1),
        "S mean pixel entropy (entropy baseline)": entropy_scores(probabilities),
        "G error, whole image": (whole ** 2).reshape(len(images), -1).sum(axis=1),
    }
    print(f"| score | ROC AUC | defective in top {n_label} |")
    print("|---|---|---|")
    for name, scores in candidates.items():
        top = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:n_label]
        print(f"| {name} | {roc_auc_score(is_left_defective, scores):.3f} | "
              f"{int(is_left_defective[top].sum())} of {int(is_left_defective.sum())} |")
    print(f"\nseconds: {time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
