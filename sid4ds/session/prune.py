"""``sid4ds prune``: move the images the ranking puts at the bottom out of the pool.

The paper's storage saving, as a command. The last round's ranking (its ``scores.csv``)
orders the images that were unlabelled then; the bottom of it is what the method would
label last, and the images a production line need not keep. ``prune`` lists the bottom
``n`` (or ``share``) of those still unlabelled, leaving out the images the last round
asked for and its fake normals (the next round trains on them), with an estimate of how
many defective images the list holds and what that estimate assumes. It changes nothing
unless applied: then the images are written to an archive folder the user names (PNG, as
the session sees them, with ``sid4ds_archive.csv`` listing them) and removed from the pool
by rewriting the shards that held them. sid4ds deletes no image file of the user's; ``sid4ds
add ARCHIVE`` brings archived images back.

Applying is atomic like every command: the archive is written first, the new shards next,
and the manifest, replaced last, switches the pool to them; a killed ``prune`` leaves the
pool as before (an archive that already holds the images does no harm: applying again
writes the same files), and the next command removes shards no manifest names.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import check_float, check_int
from sid4ds.session.add import ARCHIVE_LIST, current_shards, to_current_format
from sid4ds.session.errors import SessionError
from sid4ds.session.manifest import RoundRecord, ShardEntry
from sid4ds.session.query import round_ranking
from sid4ds.session.shards import ShardBuilder, ShardedImages, pool_batches, shard_files
from sid4ds.session.storage import (
    csv_text,
    now,
    png_bytes,
    test_hook,
    to_uint8,
    write_bytes,
    write_text,
)
from sid4ds.session.store import PoolView, SessionStore, asked_names
from sid4ds.stopping import rate_upper_bound

__all__ = ["CONFIDENCE", "defect_estimate", "prune_pool"]

#: Confidence of the upper figure of the estimate (one-sided Clopper-Pearson).
CONFIDENCE = 0.95
#: Share of the ranked unlabelled images pruned when neither ``n`` nor ``share`` is given.
DEFAULT_SHARE = 0.5
_ARCHIVE_COLUMNS = ["name", "file", "source", "batch", "content_key", "exact", "session",
                    "round", "rank", "score", "pruned"]


def defect_estimate(n_pruned: int, *, region: tuple[int, int] | None,
                    last_round: tuple[int, int, int] | None,
                    defect_ratio: float) -> dict[str, Any]:
    """How many defective images a pruned list of ``n_pruned`` holds, and on what basis.

    The best basis available is used, and named:

    1. ``"labelled_in_range"``: ``region = (defective, labelled)``, the labelled images
       that the ranking put in the pruned part. Assumes they are like the rest of that part
       (true for a random spot-check, e.g. of fake normals; not for images labelled because
       they looked defective).
    2. ``"last_round"``: ``last_round = (round, defective, labelled)``, the defect rate of
       the last answered round (the images ranked first then). The bottom of the ranking
       should be no richer in defects than its top: an upper figure as long as the ranking
       is better than random.
    3. ``"defect_ratio"``: the defect ratio given at ``init``, the user's own guess.

    Parameters
    ----------
    n_pruned : int
    region : (int, int) or None
    last_round : (int, int, int) or None
    defect_ratio : float

    Returns
    -------
    estimate : dict
        ``expected`` (rate × n, one decimal), ``upper`` (the 95% upper bound of the rate ×
        n; None for ``"defect_ratio"``), ``basis``, ``observed`` (defective, labelled) and
        ``assumes`` (in words).

    Examples
    --------
    >>> from sid4ds.session.prune import defect_estimate
    >>> estimate = defect_estimate(500, region=(0, 60), last_round=None, defect_ratio=0.05)
    >>> estimate["basis"], estimate["expected"], estimate["upper"]
    ('labelled_in_range', 0.0, 24.4)
    """
    if region is not None and region[1] > 0:
        found, seen = region
        basis = "labelled_in_range"
        assumes = (f"{found} of the {seen} labelled images that the ranking put in the pruned "
                   f"part are defective; the pruned images are assumed to be like them, "
                   f"which holds when those labels are a random sample of that part (a "
                   f"spot-check of random fake normals), not when they were picked because "
                   f"they looked defective")
    elif last_round is not None and last_round[2] > 0:
        round_index, found, seen = last_round
        basis = "last_round"
        assumes = (f"no labelled image lies in the pruned part of the ranking, so the defect "
                   f"rate of round {round_index} ({found} of {seen}, the images ranked first "
                   f"then) is used: the bottom of the ranking should hold fewer defects than "
                   f"its top, so this is an upper figure as long as the ranking is better "
                   f"than random. Label a random sample of the list (sid4ds import --any) to "
                   f"measure it instead")
    else:
        return {"n": n_pruned, "expected": round(defect_ratio * n_pruned, 1), "upper": None,
                "basis": "defect_ratio", "observed": None,
                "assumes": (f"no round is answered yet: the defect ratio given at init "
                            f"({defect_ratio:g}) is used, the user's own guess")}
    rate, upper = found / seen, rate_upper_bound(found, seen, CONFIDENCE)
    return {"n": n_pruned, "expected": round(rate * n_pruned, 1),
            "upper": round(upper * n_pruned, 1), "basis": basis, "observed": [found, seen],
            "assumes": assumes}


def prune_pool(store: SessionStore, *, n: int | None = None, share: float | None = None,
               archive: str | os.PathLike[str] | None = None, apply: bool = False,
               list_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """List (and with ``apply``, archive) the bottom of the ranking (see
    ``LabelingSession.prune``)."""
    if n is not None and share is not None:
        raise SessionError("pass n (a number of images) or share (of the ranked unlabelled "
                           "images), not both")
    if n is not None:
        n = check_int(n, "n", minimum=0)
    share = DEFAULT_SHARE if share is None and n is None else share
    if share is not None:
        share = check_float(share, "share", low=0.0, high=1.0)
    if apply:
        if archive is None:
            raise SessionError("prune needs archive=DIR (--archive DIR) to apply: the folder "
                               "the images are moved to (sid4ds deletes none)")
        target = _check_archive(store, Path(archive))
        with store.locked("prune") as manifest:
            plan = _plan(store, manifest, n, share)
            _write_list(list_file, plan)
            if plan["names"]:
                _apply(store, plan, target)
            plan.update(applied=True, archive=str(target.resolve()),
                        n_images=store.manifest["pool"]["n_images"])
            return plan
    plan = _plan(store, store.reread(), n, share)
    _write_list(list_file, plan)
    plan.update(applied=False, archive=None, n_images=store.manifest["pool"]["n_images"])
    return plan


def _check_archive(store: SessionStore, archive: Path) -> Path:
    session = store.path.resolve()
    where = archive.resolve()
    if where == session or where.is_relative_to(session):
        raise SessionError(f"the archive folder {archive} is inside the session {store.path}; "
                           f"choose a folder outside it (the archive is what leaves the "
                           f"session)")
    if where.exists() and not where.is_dir():
        raise SessionError(f"the archive {archive} exists and is not a folder; choose a "
                           f"folder (new, or one an earlier prune wrote)")
    return archive


def _plan(store: SessionStore, manifest: Any, n: int | None,
          share: float | None) -> dict[str, Any]:
    """The images to prune: the bottom of the last round's ranking, with the estimate."""
    if not manifest["rounds"]:
        raise SessionError(f"session {store.path} has no ranking yet; run `sid4ds query "
                           f"{store.path}` first")
    record: RoundRecord = manifest["rounds"][-1]
    ranking = round_ranking(store, record)
    pool = store.pool_index()
    labels = manifest["labels"]
    kept = {*asked_names(record), *record["fake_normals"]}
    ranked = {row["name"] for row in ranking}
    candidates = [row for row in ranking
                  if row["name"] in pool.index and row["name"] not in labels
                  and row["name"] not in kept]
    count = n if n is not None else int(round(share * len(candidates)))
    count = min(count, len(candidates))
    chosen = candidates[len(candidates) - count:][::-1]  # the lowest ranked first
    cut = min((row["rank"] for row in chosen), default=len(ranking) + 1)
    in_range = [labels[row["name"]] for row in ranking
                if row["rank"] >= cut and row["name"] in labels]
    answered = [entry for entry in _answered(manifest) if entry[2]]
    estimate = defect_estimate(
        count, region=(sum(label["defective"] for label in in_range), len(in_range))
        if chosen else None, last_round=answered[-1] if answered else None,
        defect_ratio=float(manifest["settings"]["defect_ratio"]))
    return {"round": record["round"], "score": record["score"], "names": [row["name"] for row
                                                                         in chosen],
            "ranks": [row["rank"] for row in chosen],
            "scores": [row["score"] for row in chosen], "n_ranked": len(ranking),
            "n_candidates": len(candidates),
            "kept_round_images": sum(name not in labels and name in pool.index
                                     for name in kept),
            "not_ranked": sum(name not in ranked and name not in labels
                              for name in pool.names),
            "estimate": estimate}


def _answered(manifest: Any) -> list[tuple[int, int, int]]:
    """(round, defective, labelled) of each round, from the labels it asked for."""
    labels = manifest["labels"]
    result = []
    for record in manifest["rounds"]:
        done = [labels[name] for name in record["selected"]
                if name in labels and labels[name]["round"] == record["round"]]
        result.append((record["round"], sum(label["defective"] for label in done), len(done)))
    return result


def _write_list(list_file: Any, plan: dict[str, Any]) -> None:
    if list_file is None:
        return
    rows = [[name, rank, repr(float(score))] for name, rank, score in
            zip(plan["names"], plan["ranks"], plan["scores"], strict=True)]
    write_text(Path(list_file), csv_text(["name", "rank", "score"], rows))


def _apply(store: SessionStore, plan: dict[str, Any], archive: Path) -> None:
    pool = store.pool()
    names = plan["names"]
    rows = np.array(sorted(pool.index[name] for name in names), dtype=np.int64)
    _write_archive(store, pool, plan, archive)
    test_hook("prune:after-archive")
    manifest = store.manifest
    shards, number, replaced = _compact(store, pool, rows)
    test_hook("prune:after-shards")
    per_batch = np.bincount(pool.batches[rows]).tolist()
    manifest["batches"] = pool_batches(manifest)  # before the pool changes (format 3)
    manifest["pool"] = {"dtype": "float32", "n_channels": manifest["pool"]["n_channels"],
                        "height": manifest["pool"]["height"],
                        "width": manifest["pool"]["width"], "shards": shards,
                        "next_shard": number,
                        "n_images": sum(shard["n_images"] for shard in shards)}
    to_current_format(manifest)
    manifest.setdefault("prunes", []).append({
        "time": now(), "archive": str(archive.resolve()), "n_images": len(names),
        "round": plan["round"], "estimate": plan["estimate"],
        "per_batch": {str(batch): count for batch, count in enumerate(per_batch) if count}})
    test_hook("prune:before-commit")
    store.commit()
    store.forget_pool()
    test_hook("prune:after-commit")
    for relative in replaced:  # no longer named: the next command would remove them too
        (store.path / relative).unlink(missing_ok=True)


def _write_archive(store: SessionStore, pool: PoolView, plan: dict[str, Any],
                   archive: Path) -> None:
    """The images as PNG files and their list; existing files must be the same."""
    archive.mkdir(parents=True, exist_ok=True)
    existing = _archive_rows(archive)
    written = now()
    files: dict[str, bytes] = {}
    rows = dict(existing)
    for name, rank, score in zip(plan["names"], plan["ranks"], plan["scores"], strict=True):
        row = pool.index[name]
        image = pool.images[row]
        pixels = to_uint8(image)
        data = png_bytes(pixels)
        file = archive / f"{name}.png"
        if file.exists() and file.read_bytes() != data:
            raise SessionError(f"{file} exists and is another image; prune into another "
                               f"archive folder, or move that file away first")
        files[name] = data
        back = pixels[np.newaxis] if pixels.ndim == 2 else np.moveaxis(pixels, -1, 0)
        exact = bool(np.array_equal(back.astype(np.float32) / np.float32(255), image))
        rows[name] = {"name": name, "file": file.name, "source": str(pool.sources[row]),
                      "batch": int(pool.batches[row]), "content_key": int(pool.keys[row]),
                      "exact": int(exact), "session": str(store.path.resolve()),
                      "round": plan["round"], "rank": rank, "score": repr(float(score)),
                      "pruned": written}
    for name, data in files.items():
        write_bytes(archive / f"{name}.png", data)
    write_text(archive / ARCHIVE_LIST, csv_text(
        _ARCHIVE_COLUMNS, [[row.get(column, "") for column in _ARCHIVE_COLUMNS]
                           for row in rows.values()]))


def _archive_rows(archive: Path) -> dict[str, dict[str, Any]]:
    file = archive / ARCHIVE_LIST
    if not file.is_file():
        return {}
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            return {row["name"]: row for row in csv.DictReader(handle)}
    except (OSError, KeyError, csv.Error) as error:
        raise SessionError(f"cannot read {file}: {error}; prune into another archive "
                           f"folder") from None


def _compact(store: SessionStore, pool: PoolView, rows: np.ndarray
             ) -> tuple[list[ShardEntry], int, list[str]]:
    """New shards without ``rows``: (shards, next shard number, files replaced)."""
    shards, number = current_shards(store)
    starts = np.concatenate([[0], np.cumsum([shard["n_images"] for shard in shards])])
    result: list[ShardEntry] = []
    replaced: list[str] = []
    for position, shard in enumerate(shards):
        inside = rows[(rows >= starts[position]) & (rows < starts[position + 1])]
        if not len(inside):
            result.append(shard)
            continue
        replaced += [shard["file"], shard["meta"]]
        keep = np.setdiff1d(np.arange(starts[position], starts[position + 1]), inside)
        if not len(keep):
            continue
        images = ShardedImages([store.path / shard["file"]], [shard["n_images"]])
        builder = ShardBuilder(store.path, *shard_files(number), batch=shard["batch"])
        number += 1
        try:
            step = max(1, (1 << 24) // max(1, images.dtype.itemsize * math.prod(
                images.shape[1:])))  # about 16 MiB at a time
            for first in range(0, len(keep), step):
                block = keep[first:first + step]
                for row, image in zip(block, images[block - starts[position]], strict=True):
                    builder.append(pool.names[row], str(pool.sources[row]), image,
                                   pool.keys[row:row + 1])
            result.append(builder.finish())
        except BaseException:
            builder.abort()
            raise
    return result, number, replaced

