"""`import` of 100 masks and `status` on one session, under two versions of sid4ds.

    python benchmarks/session_ab.py SESSION --trees OLD_CHECKOUT NEW_CHECKOUT --repeats 5

SESSION is a session folder (for example one ``session_scaling.py state`` built, kept with
``--keep``); it is copied once per tree, never changed. Per tree and repeat, in a fresh
process with that checkout first on the path (the check that it was imported from there is
part of the run): ``sid4ds import COPY --masks DIR --any`` of 100 new all-normal masks for
unlabelled images of the first batch (``image_NNNNNN``, the names ``init`` gives an array),
then ``sid4ds status COPY``; the seconds are those of the command inside the process
(``main()``), not of Python's start. The first repeat is not counted (it gives a state file
of an older version what this one keeps). Printed: one JSON line per tree with the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

TIMED = """
import contextlib, io, json, sys, time
from sid4ds.cli import main
import sid4ds
if not sid4ds.__file__.startswith(sys.argv[2]):
    raise SystemExit(f"sid4ds came from {sid4ds.__file__}, not {sys.argv[2]}")
argv = json.loads(sys.argv[1])
started = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    code = main(argv)
print(json.dumps({"code": code, "seconds": time.perf_counter() - started}))
"""


def timed(tree: Path, argv: list[str]) -> float:
    result = subprocess.run([sys.executable, "-c", TIMED, json.dumps(argv), str(tree)],
                            capture_output=True, text=True, cwd=tree,
                            env={"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
                                 "PATH": "/usr/bin:/bin"})
    if result.returncode:
        raise RuntimeError(f"sid4ds {argv} under {tree}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def unlabelled_names(session: Path, n_images: int) -> list[str]:
    with sqlite3.connect(session / "session.db") as connection:
        labelled = {name for (name,) in connection.execute("SELECT name FROM labels")}
    names = (f"image_{index:06d}" for index in range(n_images - 1, -1, -1))
    return [name for name in names if name not in labelled]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session", type=Path)
    parser.add_argument("--trees", type=Path, nargs="+", required=True,
                        help="checkouts of sid4ds (the folder holding sid4ds/)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with sqlite3.connect(args.session / "session.db") as connection:
        meta = json.loads(connection.execute("SELECT body FROM meta").fetchone()[0])
    n_images, size = meta["pool"]["n_images"], meta["pool"]["height"]
    print(f"settings: {vars(args)}; {n_images} images of {size} px", flush=True)
    candidates = unlabelled_names(args.session, n_images)
    if len(candidates) < 100 * (args.repeats + 1):
        raise SystemExit(f"--repeats {args.repeats} needs {100 * (args.repeats + 1)} "
                         f"unlabelled images named image_NNNNNN; the session has "
                         f"{len(candidates)}")
    for tree in args.trees:
        tree = tree.resolve()
        with tempfile.TemporaryDirectory(prefix="session_ab-") as work:
            copy = Path(work) / "session"
            shutil.copytree(args.session, copy)
            seconds: dict[str, list[float]] = {"import 100 masks": [], "status": []}
            for repeat in range(args.repeats + 1):
                folder = Path(work) / f"masks{repeat}"
                folder.mkdir()
                for name in candidates[repeat * 100:(repeat + 1) * 100]:
                    Image.fromarray(np.zeros((size, size), np.uint8)).save(
                        folder / f"{name}.png")
                imported = timed(tree, ["import", str(copy), "--masks", str(folder), "--any"])
                status = timed(tree, ["status", str(copy)])
                if repeat:
                    seconds["import 100 masks"].append(imported)
                    seconds["status"].append(status)
        print(json.dumps({"tree": str(tree), "n_images": n_images,
                          **{step: round(statistics.median(values), 3)
                             for step, values in seconds.items()}}), flush=True)


if __name__ == "__main__":
    main()
