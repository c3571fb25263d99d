"""A labelling session over a folder of magnetic tiles, as a new user runs it (issue 31).

    python benchmarks/session_folder.py --seeds 0 1 2 --out results/session128

For each seed: a seeded draw of ``--n-images`` tiles of the magnetic-tile npz at
``--image-size`` (``--n-defective`` of them defective, the rest normal) is written as PNG
files into a folder, a :class:`~sid4ds.LabelingSession` is created on it with the command
line's defaults (``sid4ds init --images FOLDER --seed S``; ``--set KEY=VALUE`` changes S,
e.g. ``crop_size=64``; ``--session-image-size N`` is ``init``'s ``--image-size N``: the
session works on the images resized to N, ``predict`` writes masks at their own size),
and ``--rounds`` + 1 rounds of K = ``--k`` images are queried and answered with the true
masks (the labeller; at the session's size). It prints, per round, the defective tiles
labelled, the share of all of them found so far against random sampling's expectation
(K per round out of the pool), and the seconds of each phase (``train_S`` is the in-loop
fit of S). The issue's target: after round 2, at least twice random's share.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sid4ds._core.random import make_rng
from sid4ds.cli.types import parameter
from sid4ds.datasets import load_npz
from sid4ds.session import LabelingSession


def folder_rows(defective: np.ndarray, n_images: int, n_defective: int, seed: int) -> np.ndarray:
    """The rows of the npz in ``seed``'s folder: ``n_defective`` defective, the rest normal,
    in a seeded order (``benchmarks/cold_start_folder.py`` scores the same folders)."""
    rng = make_rng((seed, 31))
    rows = np.concatenate([
        rng.choice(np.flatnonzero(defective), n_defective, replace=False),
        rng.choice(np.flatnonzero(~defective), n_images - n_defective, replace=False)])
    return rows[rng.permutation(len(rows))]


def write_folder(folder: Path, images: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names, strict=True):
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / f"{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", default="../shared/data/magnetic_tile_128.npz")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--n-defective", type=int, default=15)
    parser.add_argument("--session-image-size", type=int, default=None,
                        help="the session's --image-size (default: the images' own size)")
    parser.add_argument("--k", type=int, default=30, help="images labelled per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds after the cold start")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="changes", nargs="+", type=parameter, default=[],
                        metavar="KEY=VALUE", help="parameters of S to change")
    parser.add_argument("--out", required=True, help="folder for sessions and results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny networks (a smoke test of the script, not a measurement)")
    args = parser.parse_args()
    X, masks, _ = load_npz(args.npz, image_size=args.image_size)
    defective = masks.reshape(len(masks), -1).any(axis=1)
    # the labeller draws on the images the session wrote: masks at the session's size
    drawn = masks if args.session_image_size in (None, args.image_size) else load_npz(
        args.npz, image_size=args.session_image_size)[1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"settings: {vars(args)}", flush=True)
    results = []
    for seed in args.seeds:
        rows = folder_rows(defective, args.n_images, args.n_defective, seed)
        names = [f"tile_{index:04d}" for index in range(len(rows))]
        truth = dict(zip(names, masks[rows], strict=True))
        answer = dict(zip(names, drawn[rows], strict=True))
        folder = out / f"seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        write_folder(folder / "images", X[rows], names)
        tiny = {"base_channels": 4, "depth": 2}
        scorer = {**tiny, "max_epochs": 1, "patch_size": 4, "n_blocks": 4} if args.quick else None
        segmenter = {**(tiny | {"max_steps": 20} if args.quick else {}), **dict(args.changes)}
        session = LabelingSession.create(folder / "session", folder / "images", seed=seed,
                                         image_size=args.session_image_size,
                                         scorer_params=scorer, segmenter_params=segmenter or None)
        found, per_round = 0, []
        for round_index in range(args.rounds + 1):
            started = time.perf_counter()
            record = session.query(n_label=args.k)
            answers = folder / f"masks{round_index}"
            answers.mkdir()
            for name in record["selected"]:
                Image.fromarray(answer[name].astype(np.uint8) * 255).save(answers / f"{name}.png")
            session.import_masks(answers)
            hits = sum(bool(truth[name].any()) for name in record["selected"])
            found += hits
            labelled = args.k * (round_index + 1)
            row = {"seed": seed, "round": round_index, "stage": record["stage"],
                   "defective": hits, "share_found": found / args.n_defective,
                   "random_share": min(1.0, labelled / args.n_images),
                   "fake_normals_defective": sum(bool(truth[name].any())
                                                 for name in record["fake_normals"]),
                   "seconds": {key: round(value, 1) for key, value in record["seconds"].items()},
                   "wall": round(time.perf_counter() - started, 1)}
            per_round.append(row)
            print(json.dumps(row), flush=True)
        results += per_round
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    last = [row for row in results if row["round"] == args.rounds]
    shares = [row["share_found"] for row in last]
    print(f"\nshare found after round {args.rounds}: "
          + " / ".join(f"{share:.0%}" for share in shares)
          + f" (mean {np.mean(shares):.0%}); random {last[0]['random_share']:.0%}")


if __name__ == "__main__":
    main()
