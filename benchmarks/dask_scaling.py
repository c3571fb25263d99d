"""E_msmr scoring on a local Dask cluster: 1 worker against 2 workers, same pool.

    python benchmarks/dask_scaling.py --n-samples 256 --image-size 64

Starts a ``dask.distributed.LocalCluster`` on loopback with 1 worker and then with 2
workers (one thread each; sid4ds gives each task one torch thread), and scores the same
memmapped pool with ``ReconstructionScorer.score_samples`` under
``joblib.parallel_config(backend="dask")``. Also times the plain in-process call (torch's
own threads) for reference. Checks that every run gives the serial scores exactly. Needs
the ``dask`` extra: ``pip install "sid4ds[dask]"``.

Each cluster runs twice: with Dask's default worker environment, which sets
``MALLOC_TRIM_THRESHOLD_=65536`` (glibc then serves every large allocation with a fresh
``mmap``, so each forward pass page-faults its activations in), and without that variable
(``--keep-malloc-trim`` skips the second). Note that Dask's Nanny also writes these
variables into the *client's* ``os.environ``, so processes started later from it (joblib's
loky workers included) inherit them.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import dask
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
    parser.add_argument("--keep-malloc-trim", action="store_true",
                        help="only run with Dask's default worker environment")
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
        default_environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
        without_trim = {key: value for key, value in default_environ.items()
                        if key != "MALLOC_TRIM_THRESHOLD_"}
        environments = {"Dask default environment": default_environ}
        if not args.keep_malloc_trim:
            environments["without MALLOC_TRIM_THRESHOLD_"] = without_trim
        for label, environ in environments.items():
            for n_workers in (1, 2):
                # a Nanny copies its environment into this process's os.environ, where the
                # next cluster's workers would inherit it: start each cluster from a clean one
                os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
                with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), \
                        LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                     processes=True, host="127.0.0.1",
                                     dashboard_address=None) as cluster, \
                        Client(cluster), parallel_config(backend="dask"):
                    seconds, scores = best(lambda: scorer.score_samples(pool))
                if not np.array_equal(scores, serial):
                    raise SystemExit(f"{n_workers} worker(s) gave different scores")
                results[f"{label}: {n_workers} worker(s) x 1 thread"] = seconds
    print("| run | seconds | images/s |")
    print("|---|---|---|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {args.n_samples / seconds:.1f} |")
    for label in environments:
        one, two = (results[f"{label}: {n} worker(s) x 1 thread"] for n in (1, 2))
        print(f"{label}: 2 workers / 1 worker speed-up {one / two:.2f}x")
    print("every run's scores are identical to the in-process scores")


if __name__ == "__main__":
    main()
