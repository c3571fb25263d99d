"""Peak memory (RSS) while scoring memmapped pools of growing size.

    python benchmarks/pool_memory.py --sizes 10000 100000

For each size, writes a pool of 64×64 uint8 images to an ``.npy`` file (the generated
images repeated), then, in a fresh Python process, fits a small ReconstructionScorer on
its first 256 images and runs ``msmr_sampling`` (E_msmr of every image, content keys,
ranking) on the whole memmapped pool, selecting ``--n-instances`` images (fixed, so that
the returned images do not grow with the pool). Prints the child's peak resident set size
(``VmHWM``) after the fit and after the query, the query's time, and the ratio of the
largest pool's peak to the smallest's. The network is deliberately small (memory, not
speed, is measured here).

    python benchmarks/pool_memory.py --session --sizes 10000 100000

does the same for a labelling session: ``LabelingSession.create`` from the memmapped pool
(the images are streamed into the session's ``pool_images.npy``), then one cold-start
``query`` (M trained for one epoch on the whole pool, E_msmr of every image, ranking and
the round's files), printing the peak RSS after init and after the query.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status (Linux only)")


def write_pool(path: Path, n_images: int, image_size: int) -> None:
    from sid4ds.datasets import make_defect_images

    base, _ = make_defect_images(n_samples=1000, image_size=image_size, random_state=0)
    base = (base[:, 0] * 255).round().astype(np.uint8)
    pool = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                     shape=(n_images, image_size, image_size))
    for start in range(0, n_images, len(base)):
        stop = min(start + len(base), n_images)
        pool[start:stop] = base[: stop - start]
    pool.flush()


def child(path: str, n_blocks: int, n_jobs: int | None, n_instances: int) -> None:
    from modAL.models import ActiveLearner

    from sid4ds import ReconstructionScorer, SegmentationLearner, msmr_sampling

    pool = np.load(path, mmap_mode="r")
    scorer = ReconstructionScorer(base_channels=4, depth=2, n_blocks=n_blocks, patch_size=4,
                                  max_epochs=1, random_state=0).fit(pool[:256])
    after_fit = peak_rss_mib()
    learner = ActiveLearner(SegmentationLearner(), query_strategy=msmr_sampling)
    started = time.perf_counter()
    indices, _ = learner.query(pool, n_instances=n_instances, scorer=scorer, n_jobs=n_jobs)
    seconds = time.perf_counter() - started
    print(json.dumps({"n_images": len(pool), "peak_after_fit_mib": after_fit,
                      "peak_after_query_mib": peak_rss_mib(), "query_seconds": seconds,
                      "selected": len(indices)}))


def child_session(path: str, n_blocks: int, n_instances: int) -> None:
    from sid4ds.session import LabelingSession

    pool = np.load(path, mmap_mode="r")
    tiny = {"base_channels": 4, "depth": 2}
    with tempfile.TemporaryDirectory(dir=Path(path).parent) as folder:
        started = time.perf_counter()
        session = LabelingSession.create(
            Path(folder) / "session", pool, segmenter_params=tiny,
            scorer_params={**tiny, "n_blocks": n_blocks, "patch_size": 4, "max_epochs": 1})
        init_seconds = time.perf_counter() - started
        after_init = peak_rss_mib()
        started = time.perf_counter()
        record = session.query(n_label=n_instances)
        seconds = time.perf_counter() - started
        print(json.dumps({"n_images": len(pool), "peak_after_fit_mib": after_init,
                          "init_seconds": init_seconds, "peak_after_query_mib": peak_rss_mib(),
                          "query_seconds": seconds, "selected": len(record["selected"])}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-blocks", type=int, default=4)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--n-instances", type=int, default=100)
    parser.add_argument("--session", action="store_true",
                        help="measure sid4ds init + one query instead of msmr_sampling")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.session:
            child_session(args.child, args.n_blocks, args.n_instances)
        else:
            child(args.child, args.n_blocks, args.n_jobs, args.n_instances)
        return
    if args.session:
        print(f"settings: {vars(args)}; session: scorer base_channels=4, depth=2, "
              f"patch_size=4, 1 epoch on the whole pool; one cold-start query of "
              f"n_instances images")
    else:
        print(f"settings: {vars(args)}; scorer base_channels=4, depth=2, patch_size=4, "
              f"fitted 1 epoch on 256 images; msmr_sampling selecting n_instances images")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = Path(folder) / f"pool_{size}.npy"
            write_pool(path, size, args.image_size)
            command = [sys.executable, __file__, "--child", str(path),
                       "--n-blocks", str(args.n_blocks), "--n-instances", str(args.n_instances)]
            if args.n_jobs is not None:
                command += ["--n-jobs", str(args.n_jobs)]
            if args.session:
                command.append("--session")
            output = subprocess.run(command, check=True, capture_output=True, text=True)
            results.append(json.loads(output.stdout.strip().splitlines()[-1]))
            path.unlink()
    first = "init" if args.session else "fit"
    print(f"| images | pool on disk MiB | peak RSS after {first} MiB | peak RSS after query MiB "
          f"| query seconds |" + (" init seconds |" if args.session else ""))
    print("|---|---|---|---|---|" + ("---|" if args.session else ""))
    for result in results:
        disk = result["n_images"] * args.image_size**2 / 2**20
        print(f"| {result['n_images']} | {disk:.0f} | {result['peak_after_fit_mib']:.0f} | "
              f"{result['peak_after_query_mib']:.0f} | {result['query_seconds']:.1f} |"
              + (f" {result['init_seconds']:.1f} |" if args.session else ""))
    ratio = results[-1]["peak_after_query_mib"] / results[0]["peak_after_query_mib"]
    print(f"peak RSS {results[-1]['n_images']} / {results[0]['n_images']} images: {ratio:.3f}")


if __name__ == "__main__":
    main()
