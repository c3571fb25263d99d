"""`import` of 100 masks and `status` on one session, under two versions of sid4ds.

    python benchmarks/session_ab.py SESSION --trees OLD_CHECKOUT NEW_CHECKOUT --repeats 5

SESSION is a session folder (for example one ``session_scaling.py state`` built, kept with
``--keep``); it is copied once per tree, never changed. Per tree and repeat, in a fresh
process with that checkout first on the path (the check that it was imported from there is
part of the run, and a command that fails stops it): ``sid4ds import COPY --masks DIR
--any`` of 100 new all-normal masks for unlabelled pool images (the last ones first), then
``sid4ds status COPY``; the seconds are those of the command inside the process
(``main()``), not of Python's start. The first repeat is not counted (it gives a state file
of an older version what this one keeps). Printed: one JSON line per tree with the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
from pathlib import Path

import numpy as np
from session_scaling import sid4ds, write_pngs  # this folder's benchmark: its runner


def timed(tree: Path, argv: list[str]) -> float:
    """Seconds of ``sid4ds ARGV`` in a fresh process importing the checkout ``tree``."""
    result = sid4ds(*argv, root=tree)
    if not result["module"].startswith(str(tree)):
        raise SystemExit(f"sid4ds came from {result['module']}, not from {tree}")
    return result["seconds"]


def unlabelled_names(session: Path) -> list[str]:
    """The pool's unlabelled images, last first (read with this checkout's sid4ds)."""
    from sid4ds.session.store import SessionStore

    store = SessionStore(session)
    labelled = store.manifest["labels"]
    return [name for name in reversed(store.pool_index().names) if name not in labelled]


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
    candidates = unlabelled_names(args.session)
    if len(candidates) < 100 * (args.repeats + 1):
        raise SystemExit(f"--repeats {args.repeats} needs {100 * (args.repeats + 1)} "
                         f"unlabelled images; the session has {len(candidates)}")
    for tree in args.trees:
        tree = tree.resolve()
        with tempfile.TemporaryDirectory(prefix="session_ab-") as work:
            copy = Path(work) / "session"
            shutil.copytree(args.session, copy)
            seconds: dict[str, list[float]] = {"import 100 masks": [], "status": []}
            for repeat in range(args.repeats + 1):
                folder = Path(work) / f"masks{repeat}"
                write_pngs(folder, None, np.zeros((100, size, size), np.uint8),
                           candidates[repeat * 100:(repeat + 1) * 100])
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
