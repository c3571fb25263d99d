"""How well do the iterative scores rank the images the cold start left? One SID4DS round.

    python benchmarks/esdr_ranking.py                  # generated images, 800, 5% defective
    python benchmarks/esdr_ranking.py --seed 1 --n-samples 1000

Runs the cold start and one iterative round of ``run_sid4ds`` (default models, K = 10% of
the pool), then scores the images left unlabelled after the cold start with the trained S
and G in several ways and prints, for each, the ROC AUC (defective against normal) and the
defective images among its top K:

- ``E_sdr adaptive`` (the default: ``sdr_scores``; images S marks rank first);
- ``E_sdr adaptive, unranked``: the same regions without that ordering (the rule before
  it, ``G.score_samples(X, pseudo_label_regions(p))``);
- ``E_sdr threshold`` (the paper's S ≥ 0.5; ties in index order, not E_msmr);
- S's own evidence (largest and mean probability, marked area) and G's error on the whole
  image, which say whether S or G carries the ranking.

It prints its settings; timing depends on the machine (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from sid4ds import run_sid4ds, sdr_scores
from sid4ds.datasets import make_defect_images
from sid4ds.strategies import pseudo_label_regions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=800)
    parser.add_argument("--defect-ratio", type=float, default=0.05)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="data and model seed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"settings: {vars(args)}, torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    X, masks = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                                  defect_ratio=args.defect_ratio, random_state=args.seed)
    defective = masks.reshape(len(masks), -1).any(axis=1)
    n_label = len(X) // 10
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=1, n_label=n_label,
                     random_state=args.seed)
    cold, first = run.rounds
    print(f"cold start: {cold['n_defective']} of {int(defective.sum())} defective images "
          f"labelled; {len(cold['fake_normals'])} fake normals, "
          f"{int(defective[cold['fake_normals']].sum())} of them defective; "
          f"round 1 (E_sdr adaptive) labelled {first['n_defective']} defective")
    rest = np.setdiff1d(np.arange(len(X)), cold["selected"])
    images, is_defective = X[rest], defective[rest]
    segmenter, guided = run.segmenter, run.sdr_scorer
    probabilities = segmenter.predict_proba(images)
    flat = probabilities.reshape(len(images), -1)
    marked = (flat >= segmenter.threshold).any(axis=1)
    print(f"left after the cold start: {len(rest)} images, {int(is_defective.sum())} "
          f"defective; S marks {int(marked.sum())} ({int(is_defective[marked].sum())} "
          f"defective)\n")
    whole = guided.reconstruct(images) - images
    candidates = {
        "E_sdr adaptive (default)": sdr_scores(segmenter, guided, images),
        "E_sdr adaptive, unranked": guided.score_samples(
            images, pseudo_label_regions(probabilities)),
        "E_sdr threshold (paper)": sdr_scores(segmenter, guided, images, region="threshold"),
        "E_msmr (cold-start order)": run.msmr_scores[rest],
        "S largest probability": flat.max(axis=1),
        "S mean probability": flat.mean(axis=1),
        "S area >= threshold": (flat >= segmenter.threshold).sum(axis=1),
        "G error, whole image": (whole ** 2).reshape(len(images), -1).sum(axis=1),
    }
    print(f"| score | ROC AUC | defective in top {n_label} |")
    print("|---|---|---|")
    for name, scores in candidates.items():
        top = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:n_label]
        print(f"| {name} | {roc_auc_score(is_defective, scores):.3f} | "
              f"{int(is_defective[top].sum())} of {int(is_defective.sum())} |")
    print(f"\nseconds: {time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
