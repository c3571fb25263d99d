"""How long ``sid4ds train``'s final model takes when the cross-validation chooses an
earlier checkpoint, the fits side by side (today's default on a CPU with AMX).

    python benchmarks/final_model_checkpoint_time.py --cache DIR --checkpoint 3

The final model of magnetic tile 29% seed 1 (the SID4DS run cached by
``benchmarks/final_model.py --cache DIR``, 324 labelled tiles and 103 fake normals, 64 px),
with the cross-validation's choice forced to checkpoint ``--checkpoint`` of five (3: 960 of
1600 steps) and threshold 0.5, so that the time does not depend on which checkpoint the
folds happen to choose. Prints one JSON line: this checkout's code (``git describe``), the
wall seconds of :func:`~sid4ds.estimators.final_model.train_final_model`, the steps the
model trained (from its history), its mean probability on the held-out tiles, torch's
threads and the progress messages. Run it with two checkouts on the same idle machine to
compare them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch
from final_model import load_data, sid4ds_run, split, training_set  # this folder: sys.path

from sid4ds.estimators.final_model import CrossValidation, train_final_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True, help="the cached SID4DS runs of mag29")
    parser.add_argument("--checkpoint", type=int, default=3,
                        help="the checkpoint to choose, 1..5 (default 3: 960 steps)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    def choose(cv: CrossValidation) -> CrossValidation:  # the choice, forced
        cv.n_steps, cv.threshold = int(cv.steps[args.checkpoint - 1]), 0.5
        return cv

    CrossValidation.choose = choose  # type: ignore[method-assign]
    data, is_defective = load_data("mag29")
    pool, test = split(data, is_defective, args.seed)
    run = sid4ds_run(data, pool, args.seed, Path(args.cache))
    rows, train_only, y_train = training_set(data, run)
    said: list[str] = []
    started = time.perf_counter()
    model, cv = train_final_model(run["segmenter"], data.X[rows], y_train,
                                  train_only=train_only,
                                  defect_ratio=float(is_defective[pool].mean()),
                                  random_state=args.seed, say=said.append)
    seconds = time.perf_counter() - started
    code = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                          text=True, cwd=Path(__file__).parent).stdout.strip()
    print(json.dumps({"code": code, "seconds": seconds, "n_steps": cv.n_steps,
                      "history_steps": sum(entry["steps"] for entry in model.history_),
                      "mean_probability": float(model.predict_proba(data.X[test]).mean()),
                      "threads": torch.get_num_threads(), "said": said}), flush=True)


if __name__ == "__main__":
    main()
