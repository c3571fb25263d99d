"""A session that grows with the line: the pool store, and what each command costs at scale.

    python benchmarks/session_scaling.py store --sizes 10000 100000
    python benchmarks/session_scaling.py state --state-sizes 1000 10000 100000
    python benchmarks/session_scaling.py ratio
    python benchmarks/session_scaling.py drift --state-sizes 1000 10000

``store``: how fast, and in how much memory, the pool's images are read from each store a
growing session could use, at each size (64×64 grey float32 by default):

- ``npy``: one ``.npy`` file, memory-mapped (format-3 sessions);
- ``shards``: ``.npy`` shards read by ``ShardedImages`` (format 4): 90% of the images in the
  first (``init``), the rest in ten more (ten ``add``\\ s);
- ``zarr``, ``zarr-zstd``: a zarr 3 array (chunks of 256 images; uncompressed, and zstd),
  grown by ten appends.

Each is read in a fresh process through :class:`sid4ds.ImagePool`: one pass in chunks (as
scoring reads it) and 100 batches of 32 random rows (as training reads it), three times,
interleaved (the median is kept), with the page cache warm (the files were just written,
as a session's newest shards are). Printed: seconds, MB/s, the ratio to ``npy``, and the
process's peak RSS (``VmHWM``).

``state``: at each pool size (32×32 grey by default, tiny networks: the state is measured,
not the learning), through the ``sid4ds`` command in fresh processes: ``init``; a
cold-start ``query`` (K = 10% of the pool, the default); ``add`` of 10% more images and a
``query --skip-missing`` (no new label: only the new images are scored); the round's masks
imported; an iterative ``query`` and its masks imported (the state of a session after two
answered rounds at the default K: 20% of the pool labelled); then the three commands the
targets name: ``status``, ``import`` of 100 masks (``--any``) and ``add`` of 1,000 images.
Each command's wall time (the command alone, imports excluded) and peak RSS are printed,
with the size of the manifest. ``--keep`` keeps the sessions (under ``--work``), for
``benchmarks/session_ab.py`` to time ``import`` and ``status`` on them under two versions.

``ratio``: the target "add of 10% more images, then a query with no new label, in at most
0.3 of the first cold-start query", with the default models (M: 12 epochs, width 16) on
1,000 images of 64×64: ``init``, the cold-start ``query``, ``add`` of 100 images and
``query --skip-missing``.

``drift``: what the drift check costs ``add``, at each pool size of ``--state-sizes`` (32×32
grey, tiny networks, as ``state``): ``init``; ``add`` of 1,000 images before M is trained
(no drift check: the cost of ``add`` alone); a cold-start ``query`` (M trained); then
``add`` of 1,000 images twice, both checked for drift (M unchanged in between). Printed per
``add``: its wall time and peak RSS, and from the batch's drift record the check's own
seconds and the images M scored for it (``n_scored``; absent before the scores were kept).

Results go to ``benchmarks/results/session_scaling/`` (``store.csv``, ``state.csv``,
``ratio.csv``, ``drift.csv`` and ``settings.json``, the machine and the arguments; ``--tag`` adds a
suffix); the scratch folder is removed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "session_scaling"
TINY = ["--width", "4", "--depth", "2", "--epochs-m", "1", "--epochs-s", "1",
        "--patch-size", "4", "--n-blocks", "4", "--epochs-g", "1"]


# ---------------------------------------------------------------------- helpers
def images_of(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct noise images (1, size, size) float32 in 8-bit steps; 5% carry a bright
    square, marked in the masks."""
    images = np.round((0.4 + 0.08 * rng.standard_normal((n, 1, size, size))).clip(0, 1)
                      * 255) / 255
    masks = np.zeros((n, size, size), np.uint8)
    side = max(2, size // 8)
    for row in np.flatnonzero(rng.random(n) < 0.05):
        top, left = rng.integers(0, size - side, size=2)
        images[row, 0, top:top + side, left:left + side] = 1.0
        masks[row, top:top + side, left:left + side] = 1
    return images.astype(np.float32), masks


def run(*command: str, root: Path = ROOT) -> dict:
    """Run a Python snippet or ``sid4ds`` command in a fresh process: its JSON result.
    ``root``: the checkout of sid4ds it imports (first on the path, and the folder it runs
    in)."""
    result = subprocess.run([sys.executable, "-c", *command], capture_output=True, text=True,
                            cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1",
                                 "MKL_NUM_THREADS": "1"})
    if result.returncode:
        raise RuntimeError(f"{command}\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


PEAK = """
def peak_mib():  # VmHWM: this process's own peak (ru_maxrss would count the parent's too)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

TIMED_COMMAND = PEAK + """
import json, sys, time, contextlib, io
import sid4ds
from sid4ds.cli import main
argv = json.loads(sys.argv[1])
out = io.StringIO()
started = time.perf_counter()
with contextlib.redirect_stdout(out):
    code = main(argv)
seconds = time.perf_counter() - started
print(json.dumps({"code": code, "seconds": seconds, "peak_mib": peak_mib(),
                  "out": out.getvalue()[-2000:], "module": sid4ds.__file__}))
"""


def sid4ds(*argv, root: Path = ROOT) -> dict:
    """``sid4ds ARGV`` in a fresh process (importing the checkout ``root``): seconds (the
    command alone), peak RSS and the module's file."""
    result = run(TIMED_COMMAND, json.dumps([str(arg) for arg in argv]), root=root)
    if result["code"]:
        raise RuntimeError(f"sid4ds {argv} exited with {result['code']}: {result['out']}")
    return result


def write_pngs(folder: Path, images: np.ndarray, masks: np.ndarray | None,
               names: list[str]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        if masks is None:
            Image.fromarray(np.round(images[index, 0] * 255).astype(np.uint8)).save(
                folder / f"{name}.png")
        else:
            Image.fromarray(masks[index] * 255).save(folder / f"{name}.png")


# ---------------------------------------------------------------------- store
#: The stores compared: one ``.npy`` (0.2.0's pool, the baseline), the session's ``.npy``
#: shards, zarr plain and zstd-compressed.
STORES = ("npy", "shards", "zarr", "zarr-zstd")

READ_STORE = PEAK + """
import json, sys, time
import numpy as np
from sid4ds.datasets.pool import ImagePool, chunk_size_for
kind, path, n, n_batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kind == "npy":
    source = np.load(path, mmap_mode="r")
elif kind == "shards":
    from pathlib import Path
    from sid4ds.session.shards import ShardedImages
    files = sorted(Path(path).glob("*.npy"))
    source = ShardedImages(files, [np.load(f, mmap_mode="r").shape[0] for f in files])
else:
    import zarr
    source = zarr.open_array(path, mode="r")
pool = ImagePool(source)
started = time.perf_counter()
total = 0.0
for _, chunk in pool.iter_chunks(chunk_size_for(pool, 1)):
    total += float(chunk[:, 0, 0, 0].sum())
sequential = time.perf_counter() - started
rng = np.random.default_rng(0)
started = time.perf_counter()
for _ in range(n_batches):
    total += float(pool[rng.choice(n, 32, replace=False)][:, 0, 0, 0].sum())
batches = time.perf_counter() - started
print(json.dumps({"sequential": sequential, "batches": batches, "check": total,
                  "peak_mib": peak_mib()}))
"""


def write_stores(work: Path, n: int, size: int,
                 stores: tuple[str, ...] = STORES) -> dict[str, Path]:
    """The same ``n`` images in each store; appended in ten steps where a store grows."""
    import zarr
    from zarr.codecs import ZstdCodec

    rng = np.random.default_rng(n)
    first = int(n * 0.9)
    steps = [0, first, *(int(step) for step in np.linspace(first, n, 11).astype(int)[1:])]
    paths = {"npy": work / "pool.npy", "shards": work / "shards", "zarr": work / "pool.zarr",
             "zarr-zstd": work / "pool-zstd.zarr"}
    paths = {kind: path for kind, path in paths.items()  # npy and shards always
             if kind in stores or kind in STORES[:2]}
    single = np.lib.format.open_memmap(paths["npy"], mode="w+", dtype=np.float32,
                                       shape=(n, 1, size, size))
    paths["shards"].mkdir()
    arrays = {kind: zarr.create_array(store=str(paths[kind]), shape=(0, 1, size, size),
                                      chunks=(256, 1, size, size), dtype="float32",
                                      compressors=compressors)
              for kind, compressors in (("zarr", None), ("zarr-zstd", ZstdCodec(level=3)))
              if kind in paths}
    for number, (start, stop) in enumerate(zip(steps[:-1], steps[1:], strict=True)):
        shard = np.lib.format.open_memmap(paths["shards"] / f"{number:06d}.npy", mode="w+",
                                          dtype=np.float32, shape=(stop - start, 1, size, size))
        for array in arrays.values():
            array.resize((stop, 1, size, size))
        for offset in range(start, stop, 4096):  # 4096 images at a time: 64 MiB at 64 px
            block = images_of(rng, min(4096, stop - offset), size)[0]
            single[offset:offset + len(block)] = block
            shard[offset - start:offset - start + len(block)] = block
            for array in arrays.values():
                array[offset:offset + len(block)] = block
        shard.flush()
        del shard
    single.flush()
    del single
    return paths


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def store_part(args: argparse.Namespace, work: Path) -> list[dict]:
    rows = []
    for n in args.sizes:
        folder = work / f"store{n}"
        folder.mkdir()
        started = time.perf_counter()
        paths = write_stores(folder, n, args.image_size, tuple(args.stores))
        print(f"[store] wrote {n} images of {args.image_size} px to 4 stores in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        results: dict[str, list[dict]] = {kind: [] for kind in paths}
        for _ in range(args.repeats):  # interleaved, so that a busy moment hits all alike
            for kind, path in paths.items():
                results[kind].append(run(READ_STORE, kind, str(path), str(n),
                                         str(args.batches)))
        megabytes = n * args.image_size ** 2 * 4 / 1e6
        baseline: dict | None = None
        for kind, path in paths.items():
            sequential = float(np.median([result["sequential"] for result in results[kind]]))
            batches = float(np.median([result["batches"] for result in results[kind]]))
            row = {"n_images": n, "image_size": args.image_size, "store": kind,
                   "files": 1 if kind == "npy" else len(list(path.rglob("*"))),
                   "disk_mb": round(folder_bytes(path) / 1e6, 1),
                   "sequential_s": round(sequential, 3),
                   "sequential_mb_s": round(megabytes / sequential, 1),
                   "batches_s": round(batches, 3),
                   "batch_images_s": round(args.batches * 32 / batches, 1),
                   "peak_rss_mib": round(max(result["peak_mib"] for result in results[kind]),
                                         1)}
            baseline = baseline or row
            row["sequential_vs_npy"] = round(baseline["sequential_s"] / row["sequential_s"], 2)
            row["batches_vs_npy"] = round(baseline["batches_s"] / row["batches_s"], 2)
            rows.append(row)
            print(f"[store] {json.dumps(row)}", flush=True)
        shutil.rmtree(folder)
    return rows


# ---------------------------------------------------------------------- state
def to_label(session: Path, round_index: int) -> list[str]:
    with open(session / f"rounds/{round_index:03d}/to_label.csv", newline="") as handle:
        return [row["name"] for row in csv.DictReader(handle)]


def state_part(args: argparse.Namespace, work: Path) -> list[dict]:
    rows = []
    for n in args.state_sizes:
        folder = work / f"state{n}"
        folder.mkdir()
        size = args.state_image_size
        rng = np.random.default_rng(n + 1)
        X, masks = images_of(rng, n, size)
        np.save(folder / "pool.npy", X)
        del X
        names = [f"image_{index:06d}" for index in range(n)]  # init's names for an array
        truth = dict(zip(names, masks, strict=True))
        extra_X, extra_masks = images_of(rng, n // 10, size)
        extra = [f"new{index:07d}" for index in range(len(extra_X))]
        write_pngs(folder / "extra", extra_X, None, extra)
        truth.update(zip(extra, extra_masks, strict=True))
        late_X, _ = images_of(rng, 1000, size)
        write_pngs(folder / "late", late_X, None, [f"late{index:05d}" for index in range(1000)])
        session = folder / "session"

        def measure(step: str, *argv, _n=n, _session=session) -> dict:
            result = sid4ds(*argv)
            manifest = _session / "manifest.json"
            row = {"n_images": _n, "step": step, "seconds": round(result["seconds"], 3),
                   "peak_rss_mib": round(result["peak_mib"], 1),
                   "manifest_mb": round(manifest.stat().st_size / 1e6, 3)
                   if manifest.exists() else 0.0}
            extra_state = _session / "session.db"
            if extra_state.exists():
                row["db_mb"] = round(extra_state.stat().st_size / 1e6, 3)
            rows.append(row)
            print(f"[state] {json.dumps(row)}", flush=True)
            return row

        def answer(round_index: int, where: str, _session=session, _folder=folder,
                   _truth=truth) -> Path:
            asked = to_label(_session, round_index)
            out = _folder / where
            write_pngs(out, None, np.stack([_truth[name] for name in asked]), asked)
            return out

        measure("init", "init", session, "--images", folder / "pool.npy", *TINY)
        measure("query (cold start)", "query", session, "--quiet")
        measure("add 10%", "add", session, "--images", folder / "extra")
        measure("query after add, no new label", "query", session, "--quiet",
                "--skip-missing")
        measure("import the round's masks", "import", session, "--masks", answer(1, "a1"))
        measure("query (iterative)", "query", session, "--quiet")
        measure("import the round's masks ", "import", session, "--masks", answer(2, "a2"))
        measure("status", "status", session)
        asked = set(to_label(session, 1)) | set(to_label(session, 2))
        unlabelled = [name for name in names[::-1] if name not in asked][:100]
        write_pngs(folder / "hundred", None, np.stack([truth[name] for name in unlabelled]),
                   unlabelled)
        measure("import 100 masks", "import", session, "--masks", folder / "hundred", "--any")
        measure("add 1,000 images", "add", session, "--images", folder / "late")
        measure("status ", "status", session)
        if args.keep:
            print(f"[state] kept {session}", flush=True)
        else:
            shutil.rmtree(folder)
    return rows


# ---------------------------------------------------------------------- ratio
def ratio_part(args: argparse.Namespace, work: Path) -> list[dict]:
    """The first cold-start query against add of 10% more images and a query with no new
    label, with the default models (M: 12 epochs, as a user runs it)."""
    rows = []
    n, size = args.ratio_size, args.ratio_image_size
    folder = work / "ratio"
    rng = np.random.default_rng(7)
    X, _ = images_of(rng, n, size)
    write_pngs(folder / "shift1", X, None, [f"a{index:05d}" for index in range(n)])
    extra, _ = images_of(rng, n // 10, size)
    write_pngs(folder / "shift2", extra, None, [f"b{index:05d}" for index in range(n // 10)])
    session = folder / "session"
    steps = [("init", ["init", session, "--images", folder / "shift1", "--seed", "0"]),
             ("query (cold start)", ["query", session, "--quiet", "--device", "cpu"]),
             ("add 10%", ["add", session, "--images", folder / "shift2"]),
             ("query after add, no new label",
              ["query", session, "--quiet", "--skip-missing", "--device", "cpu"])]
    for step, argv in steps:
        result = sid4ds(*argv)
        rows.append({"n_images": n, "image_size": size, "step": step,
                     "seconds": round(result["seconds"], 2),
                     "peak_rss_mib": round(result["peak_mib"], 1)})
        print(f"[ratio] {json.dumps(rows[-1])}", flush=True)
    cold = rows[1]["seconds"]
    rows.append({"n_images": n, "image_size": size,
                 "step": "(add + query after add) / cold-start query",
                 "seconds": round((rows[2]["seconds"] + rows[3]["seconds"]) / cold, 3)})
    print(f"[ratio] {json.dumps(rows[-1])}", flush=True)
    return rows


# ---------------------------------------------------------------------- drift
DRIFT_RECORD = """
import json, sys
from sid4ds.session import LabelingSession
batch = LabelingSession.open(sys.argv[1]).manifest["batches"][-1]
print(json.dumps(batch.get("drift")))
"""


def drift_part(args: argparse.Namespace, work: Path) -> list[dict]:
    """What the drift check adds to ``add``: an add before M exists (no check), then two
    checked adds with M unchanged."""
    rows = []
    for n in args.state_sizes:
        folder = work / f"drift{n}"
        folder.mkdir()
        size = args.state_image_size
        rng = np.random.default_rng(n + 2)
        X, _ = images_of(rng, n, size)
        np.save(folder / "pool.npy", X)
        del X
        for number in range(3):
            write_pngs(folder / f"batch{number}", images_of(rng, 1000, size)[0], None,
                       [f"b{number}_{index:05d}" for index in range(1000)])
        session = folder / "session"
        steps = [("init", ["init", session, "--images", folder / "pool.npy", *TINY]),
                 ("add 1,000 images, no M (no drift check)",
                  ["add", session, "--images", folder / "batch0"]),
                 ("query (cold start)", ["query", session, "--quiet"]),
                 ("add 1,000 images, drift check (first)",
                  ["add", session, "--images", folder / "batch1"]),
                 ("add 1,000 images, drift check (again)",
                  ["add", session, "--images", folder / "batch2"])]
        for step, argv in steps:
            result = sid4ds(*argv)
            row = {"n_images": n, "step": step, "seconds": round(result["seconds"], 3),
                   "peak_rss_mib": round(result["peak_mib"], 1)}
            if argv[0] == "add":
                drift = run(DRIFT_RECORD, str(session))
                row["drifted"] = None if drift is None else drift["drifted"]
                row["check_seconds"] = (None if drift is None or "seconds" not in drift
                                        else round(drift["seconds"], 3))
                row["n_scored"] = None if drift is None else drift.get("n_scored")
            rows.append(row)
            print(f"[drift] {json.dumps(row)}", flush=True)
        shutil.rmtree(folder)
    return rows


# ---------------------------------------------------------------------- main
def write_csv(file: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("store", "state", "ratio", "drift", "all"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000],
                        help="pool sizes of the store part")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES),
                        help="store: the stores compared (npy, the baseline, and the session's "
                             "shards always)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="reads of each store (the median is kept)")
    parser.add_argument("--batches", type=int, default=100,
                        help="random batches of 32 images per read")
    parser.add_argument("--state-sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--state-image-size", type=int, default=32)
    parser.add_argument("--ratio-size", type=int, default=1000)
    parser.add_argument("--ratio-image-size", type=int, default=64)
    parser.add_argument("--work", type=Path, default=None,
                        help="scratch folder (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--keep", action="store_true",
                        help="state: keep each session (under --work; see session_ab.py)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # absolute: the commands run in the checkout's folder
    work = Path(tempfile.mkdtemp(prefix="session_scaling-", dir=args.work)).resolve()
    settings = {"arguments": {key: str(value) for key, value in vars(args).items()},
                "python": sys.version.split()[0], "machine": platform.platform(),
                "cpus": os.cpu_count(), "load_average": os.getloadavg(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        if args.part in ("store", "all"):
            write_csv(args.out / f"store{args.tag}.csv", store_part(args, work))
        if args.part in ("state", "all"):
            write_csv(args.out / f"state{args.tag}.csv", state_part(args, work))
        if args.part in ("ratio", "all"):
            write_csv(args.out / f"ratio{args.tag}.csv", ratio_part(args, work))
        if args.part in ("drift", "all"):
            write_csv(args.out / f"drift{args.tag}.csv", drift_part(args, work))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    settings["load_average_end"] = os.getloadavg()
    (args.out / f"settings{args.tag}.json").write_text(json.dumps(settings, indent=1) + "\n")


if __name__ == "__main__":
    main()
