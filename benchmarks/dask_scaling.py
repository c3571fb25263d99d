"""E_msmr scoring on a local Dask cluster: 1 worker against 2 workers, same pool.

    python benchmarks/dask_scaling.py --n-samples 256 --image-size 64

Starts a ``dask.distributed.LocalCluster`` on loopback with 1 worker and then with 2
workers (one thread each; sid4ds gives each task one torch thread), and scores the same
memmapped pool with ``ReconstructionScorer.score_samples`` under
``joblib.parallel_config(backend="dask")``. Also times the plain in-process call (torch's
own threads) for reference. Checks that every run gives the serial scores exactly. Needs
the ``dask`` extra: ``pip install "sid4ds[dask]"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from joblib import parallel_config

from sid4ds import ReconstructionScorer
from sid4ds.datasets import make_defect_images


def main() -> None:
    from dask.distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    X, _ = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                              random_state=0)
    scorer = ReconstructionScorer(max_epochs=1, device="cpu", random_state=0).fit(X[:64])
    print(f"settings: {vars(args)}; default scorer (width 16, depth 3, 16 blocks); "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs, {platform.machine()}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pool.npy"
        stored = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=X.shape)
        stored[:] = X
        stored.flush()
        pool = np.load(path, mmap_mode="r")

        def best(function) -> tuple[float, np.ndarray]:
            scores = function()  # warm-up (workers load torch, the model arrives)
            seconds = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                scores = function()
                seconds = min(seconds, time.perf_counter() - started)
            return seconds, scores

        results = {}
        serial_seconds, serial = best(lambda: scorer.score_samples(pool))
        results[f"in process ({torch.get_num_threads()} torch threads)"] = serial_seconds
        for n_workers in (1, 2):
            with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                              host="127.0.0.1", dashboard_address=None) as cluster, \
                    Client(cluster), parallel_config(backend="dask"):
                seconds, scores = best(lambda: scorer.score_samples(pool))
            if not np.array_equal(scores, serial):
                raise SystemExit(f"{n_workers} worker(s) gave different scores")
            results[f"Dask, {n_workers} worker(s) x 1 thread"] = seconds
    print("| run | seconds | images/s |")
    print("|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {args.n_samples / seconds:.1f} |")
    one, two = (results[f"Dask, {n} worker(s) x 1 thread"] for n in (1, 2))
    print(f"2 workers / 1 worker speed-up: {one / two:.2f}x; scores identical to in-process")


if __name__ == "__main__":
    main()
