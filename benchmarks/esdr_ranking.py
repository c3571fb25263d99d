"""How well do the iterative scores rank the images left before a round? One SID4DS run.

    python benchmarks/esdr_ranking.py                  # generated, the benchmark's pool
    python benchmarks/esdr_ranking.py --round 2 --seed 1
    python benchmarks/esdr_ranking.py --npz ../shared/data/magnetic_tile_128.npz \\
        --image-size 64 --defect-fraction 0.05 --round 2

Builds the benchmark's pool for the seed (``python -m sid4ds.evaluation``'s data, held-out
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

- (issue 31) S's evidence fused with E_sdr: the mean of the two rank shares
  (:func:`sid4ds.ranking.scores.fuse_ranks`), and E_sdr over S's probability-weighted region
  (G's squared error weighted by S's probability, over the image).

It prints its settings; timing depends on the machine (3–10 minutes on 2 cores).
``--set KEY=VALUE`` changes S (e.g. ``lr=0.001``); ``--cache DIR`` keeps the run's S, G and
cold-start scores there and reads them back on the next call with the same settings, so
new rules are scored in seconds; ``--by-class`` prints the defect classes in each rule's
top K (the npz's ``class_id``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds, sdr_scores
from sid4ds.baselines import entropy_scores
from sid4ds.cli.types import parameter
from sid4ds.datasets import load_npz
from sid4ds.engine.rounds import labels_per_round, resolve_n_normal
from sid4ds.evaluation import load_dataset, pool_and_test
from sid4ds.metrics import defective_rows
from sid4ds.ranking.scores import pseudo_label_regions


def below_marked(marked: np.ndarray, esdr: np.ndarray, evidence: np.ndarray) -> np.ndarray:
    """Marked images keep E_sdr (≥ 0); the others score ``evidence − 1`` (evidence in [0, 1))."""
    return np.where(marked, esdr, np.asarray(evidence, dtype=np.float64) - 1.0)


def rank_share(scores: np.ndarray) -> np.ndarray:
    """Each score's rank among all, as a share in (0, 1] (ties: their mean rank)."""
    from scipy.stats import rankdata
    return rankdata(np.asarray(scores, dtype=np.float64)) / len(scores)


def npz_classes(npz: str, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The npz's class id of each loaded image, matched by content (subsets included)."""
    with np.load(npz, allow_pickle=False) as arrays:
        class_id, names = arrays["class_id"], [str(n) for n in arrays["class_names"]]
    every, _, _ = load_npz(npz, image_size=images.shape[-1])
    digest = {hashlib.sha1(image.tobytes()).hexdigest(): row for row, image in enumerate(every)}
    rows = [digest.get(hashlib.sha1(image.tobytes()).hexdigest(), -1) for image in images]
    return np.array([class_id[row] if row >= 0 else -1 for row in rows]), names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--npz", default=None, help="an .npz data set (default: generated)")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--defect-fraction", type=float, default=None)
    parser.add_argument("--round", type=int, default=1, help="the iterative round to score")
    parser.add_argument("--seed", type=int, default=0, help="split and model seed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", dest="changes", nargs="+", type=parameter, default=[],
                        metavar="KEY=VALUE", help="parameters of S to change, e.g. lr=0.001")
    parser.add_argument("--cache", help="folder to keep (and read back) the run's models")
    parser.add_argument("--by-class", action="store_true",
                        help="defect classes in each rule's top K (npz class_id)")
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
    cache = Path(args.cache) if args.cache else None
    key = json.dumps({name: value for name, value in vars(args).items()
                      if name in ("npz", "image_size", "defect_fraction", "round", "seed",
                                  "changes")}, sort_keys=True, default=str)
    if cache is not None and (cache / "settings.json").is_file() and (
            (cache / "settings.json").read_text() == key):
        segmenter = SegmentationLearner.load(cache / "S.pt")
        guided = ReconstructionScorer.load(cache / "G.pt")
        saved = np.load(cache / "run.npz")
        before, msmr, found = saved["before"], saved["msmr"], saved["found"].tolist()
        print(f"models read back from {cache}")
    else:
        run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=args.round,
                         n_label=n_label, expected_defect_ratio=0.05,
                         segmenter=SegmentationLearner(random_state=args.seed,
                                                       **dict(args.changes)),
                         scorer=ReconstructionScorer(random_state=args.seed),
                         random_state=args.seed)
        found = [int(record.n_defective) for record in run.rounds]
        before = np.concatenate([run.rounds[r].selected for r in range(args.round)])
        segmenter, guided, msmr = run.segmenter, run.sdr_scorer, run.msmr_scores
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            segmenter.save(cache / "S.pt")
            guided.save(cache / "G.pt")
            np.savez(cache / "run.npz", before=before, msmr=msmr, found=np.array(found))
            (cache / "settings.json").write_text(key)
    print(f"pool {len(pool)} images, {int(defective.sum())} defective, K = {n_label}; "
          f"defective labelled per round: {found}")
    rest = np.setdiff1d(np.arange(len(X)), before)
    images, is_left_defective = X[rest], defective[rest]
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
    squared = (whole ** 2).sum(axis=1).reshape(len(images), -1)
    weighted = (flat * squared).sum(axis=1) / flat.shape[1]
    entropy = entropy_scores(probabilities)
    candidates = {
        "E_sdr adaptive (default)": esdr,
        "E_sdr adaptive, unranked": guided.score_samples(
            images, pseudo_label_regions(probabilities)),
        "E_sdr threshold (paper)": sdr_scores(segmenter, guided, images, region="threshold"),
        "marked by E_sdr, others by S mean probability": below_marked(
            marked, esdr, flat.mean(axis=1)),
        "marked by E_sdr, others by S top-1% probability": below_marked(
            marked, esdr, top_mean),
        "E_msmr (cold-start order)": msmr[rest],
        "S largest probability": flat.max(axis=1),
        "S mean probability": flat.mean(axis=1),
        "S top-1% probability": top_mean,
        "S area >= threshold": (flat >= segmenter.threshold).sum(axis=1),
        "S mean pixel entropy (entropy baseline)": entropy,
        "G error, whole image": squared.sum(axis=1),
        "G error weighted by S probability": weighted,
        "rank fusion: E_sdr + S mean probability": rank_share(esdr) + rank_share(
            flat.mean(axis=1)),
        "rank fusion: E_sdr + S top-1% probability": rank_share(esdr) + rank_share(top_mean),
        "rank fusion: E_sdr + S mean entropy": rank_share(esdr) + rank_share(entropy),
        "rank fusion: E_sdr + S-weighted G error": rank_share(esdr) + rank_share(weighted),
    }
    classes = None
    if args.by_class and args.npz:
        classes = npz_classes(args.npz, images)
    class_header = ""
    if classes is not None:
        class_id, names = classes
        shown = [value for value in range(1, len(names))
                 if (is_left_defective & (class_id == value)).any()]
        left = class_id[is_left_defective]
        class_header = " " + " | ".join(
            f"{names[value].removeprefix('MT_')} (of {int((left == value).sum())})"
            for value in shown) + " |"
    n_fake = resolve_n_normal("auto", n_label, len(rest), 0.05)
    print(f"| score | ROC AUC | defective in top {n_label} |{class_header} defective among "
          f"the bottom {n_fake} (fake normals) |")
    print("|---|---|---|" + ("---|" * class_header.count("|")) + "---|")
    for name, scores in candidates.items():
        order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        top, bottom = order[:n_label], order[len(order) - n_fake:]
        row = (f"| {name} | {roc_auc_score(is_left_defective, scores):.3f} | "
               f"{int(is_left_defective[top].sum())} of {int(is_left_defective.sum())} |")
        if classes is not None:
            row += " " + " | ".join(
                str(int((is_left_defective[top] & (class_id[top] == value)).sum()))
                for value in shown) + " |"
        print(row + f" {int(is_left_defective[bottom].sum())} |")
    if classes is not None:  # where each class of defect lies in the orders
        scores_shown = ("E_sdr adaptive (default)", "S mean probability",
                        "rank fusion: E_sdr + S mean probability")
        print("\nmedian rank share (1 = first) of each class among the images left, and the "
              "share S marks (any pixel at its threshold):\n")
        print("| class | images | " + " | ".join(scores_shown) + " | marked by S |")
        print("|---|---|" + "---|" * (len(scores_shown) + 1))
        shares = {name: rank_share(candidates[name]) for name in scores_shown}
        for value in [0, *shown]:
            members = (class_id == value) & (is_left_defective if value else ~is_left_defective)
            print(f"| {names[value].removeprefix('MT_')} | {int(members.sum())} | "
                  + " | ".join(f"{np.median(shares[name][members]):.2f}"
                               for name in scores_shown)
                  + f" | {marked[members].mean():.0%} |")
    print(f"\nseconds: {time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
