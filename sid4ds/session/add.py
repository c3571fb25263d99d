"""``sid4ds add``: more images into a session's pool, read as ``init`` read the first ones.

The new images are read one at a time with the session's preprocessing (its resizing,
tiling and colour mode) and streamed into one new pool shard
(:mod:`~sid4ds.session.shards`); images already in the pool (the same content key) or
whose name the pool already uses are left out and named in the result. Masks that come
with the images are checked and copied in as ``init`` does; their images count as
labelled. The pool already there is never rewritten: the manifest, replaced last, names
the new shard and the batch it came with, so a killed ``add`` leaves the pool as it was
(the next command removes the unnamed shard), and a finished one leaves it complete.
A session of format 3 or older becomes format 4 in that same last step.
"""

from __future__ import annotations

import csv
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import describe_size
from sid4ds._version import __version__
from sid4ds.datasets.imageio import read_image
from sid4ds.datasets.pool import ImagePool, as_pool, is_path_sequence
from sid4ds.engine.rounds import DEFAULT_DRIFT_RULE, drift_plan
from sid4ds.ranking.drift import check_drift
from sid4ds.ranking.selection import content_keys
from sid4ds.session.errors import SessionError, SessionWarning
from sid4ds.session.ingest import session_items
from sid4ds.session.manifest import (
    FORMAT_VERSION,
    BatchRecord,
    LabelRecord,
    Manifest,
    ShardEntry,
)
from sid4ds.session.shards import (
    ShardBuilder,
    ShardedImages,
    pool_batches,
    pool_shards,
    read_shard_meta,
    shard_files,
)
from sid4ds.session.storage import FileBatch, now, test_hook
from sid4ds.session.store import PoolIndex, SessionStore

__all__ = ["ARCHIVE_LIST", "add_images", "archive_items", "current_shards", "drifted_rows",
           "pending_drift", "to_current_format"]

#: The list of images in an archive folder written by ``sid4ds prune --apply``: ``add``
#: reads such a folder back as the images were in the pool (names kept, nothing resized).
ARCHIVE_LIST = "sid4ds_archive.csv"

Item = tuple[str, str, np.ndarray, np.ndarray | None]


def add_images(store: SessionStore, images: Any, masks: str | os.PathLike[str] | None, *,
               mask_suffix: str = "", skip_unreadable: bool = False,
               names: Sequence[str] | None = None) -> dict[str, Any]:
    """Add images to the pool of the session in ``store`` (see ``LabelingSession.add_images``)."""
    with store.locked("add") as manifest:
        settings = manifest["settings"]
        pool = store.pool_index()
        batches = pool_batches(manifest)
        batch = max(record["batch"] for record in batches) + 1
        if (names is None and not isinstance(images, (str, os.PathLike))
                and not is_path_sequence(images)):
            names = _array_names(images, batch)
        items, described = _items(settings, images, masks, mask_suffix, skip_unreadable,
                                  names)
        shards, number = current_shards(store)
        shard = ShardBuilder(store.path, *shard_files(number), batch=batch)
        try:
            summary, labels = _stream(store, pool, items, shard)
        except BaseException:
            shard.abort()
            raise
        summary.update(batch=None, source=described, drift=None)
        if not len(shard):
            shard.abort()
            summary["n_images"] = len(pool.names)
            return summary
        entry = shard.finish()
        test_hook("add:after-shard")
        record: BatchRecord = {
            "batch": batch, "command": "add", "time": now(), "source": described,
            "n_added": len(summary["added"]), "n_labeled": len(summary["labeled"]),
            "n_skipped": {"same_content": len(summary["same_content"]),
                          "name_taken": len(summary["name_taken"])}}
        summary["drift"] = _drift_check(store, entry, batch)
        if summary["drift"] is not None:
            record["drift"] = summary["drift"]
        _grow_manifest(manifest, [*shards, entry], number + 1, [*batches, record], labels)
        test_hook("add:before-commit")
        store.commit()
        store.forget_pool()
        summary.update(batch=batch, n_images=manifest["pool"]["n_images"])
        return summary


def _drift_check(store: SessionStore, entry: ShardEntry, batch: int) -> dict[str, Any] | None:
    """Does the new shard look like the pool to M? None while no M is trained.

    Returns the :class:`~sid4ds.ranking.drift.DriftReport` as a dict, its ``message`` followed by
    what the next query will do about a drifted batch, ``applied_round`` None (the
    query that acts on it sets it) and ``seconds`` (the check's time). M's scores are kept
    in the session's score cache: the next check, M unchanged, scores only its new batch,
    and the next query reuses the new images' E_msmr.
    """
    if store.manifest["models"].get("M") is None:
        return None
    started = time.perf_counter()
    scorer = store.model("M", "auto")
    new = ShardedImages([store.path / entry["file"]], [int(entry["n_images"])])
    report = check_drift(scorer, as_pool(store.pool().images, name="pool"),
                         as_pool(new, name="new images"), pool_keys=store.pool_index().keys,
                         new_keys=read_shard_meta(store.path / entry["meta"])["keys"],
                         score_cache=store.score_cache()).as_dict()
    if report["drifted"]:
        iterative = any(record["stage"] == "iterative" for record in store.manifest["rounds"])
        report["message"] += (f" The next `sid4ds query` acts on batch {batch}: "
                              + drift_plan(DEFAULT_DRIFT_RULE, iterative or bool(
                                  store.manifest["labels"])) + ".")
    report.update(applied_round=None, seconds=round(time.perf_counter() - started, 3))
    return report


def drifted_rows(manifest: Manifest, batches: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Pool rows of the batches ``add`` found drifted that no round has acted on yet.

    Parameters
    ----------
    manifest : Manifest
    batches : ndarray of shape (n_images,), int
        The batch of each pool row (:attr:`~sid4ds.session.store.PoolIndex.batches`).

    Returns
    -------
    rows : ndarray of int64
        For :meth:`~sid4ds.SID4DSRounds.run_round`'s ``drifted``.
    numbers : list of int
        The batches; the query that passes ``rows`` sets their ``applied_round``.
    """
    numbers = pending_drift(manifest)
    return np.flatnonzero(np.isin(batches, numbers)).astype(np.int64), numbers


def pending_drift(manifest: Manifest) -> list[int]:
    """The batches ``add`` found drifted that no round has applied the drift rule to yet."""
    return [int(record["batch"]) for record in manifest.get("batches", [])
            if record.get("drift", {}).get("drifted")
            and record["drift"].get("applied_round") is None]


def _items(settings: dict[str, Any], images: Any, masks: Any, mask_suffix: str,
           skip_unreadable: bool, names: Sequence[str] | None
           ) -> tuple[Iterator[Item], str]:
    if isinstance(images, (str, os.PathLike)) and (Path(images) / ARCHIVE_LIST).is_file():
        if masks is not None:
            raise SessionError(f"{images} is an archive of pruned images, which are "
                               f"unlabelled; add it without masks")
        return archive_items(Path(images), settings["mode"])
    return session_items(settings, images, masks, mask_suffix=mask_suffix,
                         skip_unreadable=skip_unreadable, names=names, each_alone=True,
                         keep_channels=True)


def archive_items(folder: Path, mode: str) -> tuple[Iterator[Item], str]:
    """The images of an archive folder (``sid4ds prune --apply``) as they were in the pool.

    Returns
    -------
    items : iterator of (name, source file, image, None)
    described : str
    """
    try:
        with open(folder / ARCHIVE_LIST, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        entries = [(row["name"], row["file"], row.get("source") or "") for row in rows]
    except (OSError, KeyError, csv.Error) as error:
        raise SessionError(f"cannot read {folder / ARCHIVE_LIST}: {error}") from None

    def items() -> Iterator[Item]:
        for name, file, source in entries:
            path = folder / file
            if not path.exists():  # the user deleted it: what archives are for
                warnings.warn(f"archived image {path} is no longer there; skipping it",
                              SessionWarning, stacklevel=2)
                continue
            try:
                image = read_image(path, mode)
            except (OSError, ValueError) as error:
                raise SessionError(f"cannot read archived image {path}: {error}") from None
            yield name, source or str(path.resolve()), image, None

    return items(), f"archive {folder.resolve()}"


def _array_names(images: Any, batch: int) -> list[str]:
    """Names of images given as an array or Dataset: ``b<batch>_<row>``, never a name of
    another batch."""
    try:
        count = len(ImagePool(images, name="images"))
    except (TypeError, ValueError) as error:
        raise SessionError(str(error)) from None
    return [f"b{batch}_{row:06d}" for row in range(count)]


def _stream(store: SessionStore, pool: PoolIndex, items: Iterator[Item],
            shard: ShardBuilder) -> tuple[dict[str, Any], dict[str, LabelRecord]]:
    """Check each item against the session and write the new ones into ``shard``."""
    manifest = store.manifest
    channels = int(manifest["pool"]["n_channels"])
    size = (int(manifest["pool"]["height"]), int(manifest["pool"]["width"]))
    order = np.argsort(pool.keys, kind="stable")
    sorted_keys = pool.keys[order]
    taken = set(pool.names)
    new_keys: dict[int, str] = {}
    summary: dict[str, Any] = {"added": [], "labeled": [], "same_content": {},
                               "name_taken": []}
    labels: dict[str, LabelRecord] = {}
    masks = FileBatch(store.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for name, source, image, mask in items:
                _check_fits(image, channels, size, manifest["settings"], name, source)
                key = content_keys(image[np.newaxis])
                position = int(np.searchsorted(sorted_keys, key[0]))
                if position < len(sorted_keys) and sorted_keys[position] == key[0]:
                    summary["same_content"][name] = pool.names[int(order[position])]
                    continue
                if int(key[0]) in new_keys:
                    summary["same_content"][name] = new_keys[int(key[0])]
                    continue
                if name in taken:
                    summary["name_taken"].append(name)
                    continue
                shard.append(name, source, image, key)
                taken.add(name)
                new_keys[int(key[0])] = name
                summary["added"].append(name)
                if mask is not None:
                    labels[name] = store.write_mask(name, mask, version=1, round_index=None,
                                                    source=source, batch=masks)
                    summary["labeled"].append(name)
                if len(summary["added"]) == 1:
                    test_hook("add:after-first-image")
        except SessionError:
            raise
        except ValueError as error:  # the readers' messages name the file
            raise SessionError(str(error)) from None
    masks.finish()
    for warning in caught:
        warnings.warn(str(warning.message), SessionWarning, stacklevel=3)
    return summary, labels


def _check_fits(image: np.ndarray, channels: int, size: tuple[int, int],
                settings: dict[str, Any], name: str, source: str) -> None:
    """An image must have the session's channels and (after its resizing) its size."""
    where = f"image {name!r}" + (f" ({source})" if source else "")
    if image.shape[0] != channels:
        kinds = {1: "grey-scale", 3: "colour (RGB)"}
        raise SessionError(
            f"{where} has {image.shape[0]} channel(s) but the session's images have "
            f"{channels} ({kinds.get(channels, 'other')}); convert the new images to "
            f"{kinds.get(channels, f'{channels} channels')} first, or start a new session "
            f"for them")
    if tuple(image.shape[1:]) != size:
        plain = f"{size[0]}x{size[1]}"
        how = ("" if settings.get("image_size") or settings.get("tile") else
               "; the session resizes nothing (it was created without --image-size or "
               f"--tile): resize the new images to {plain} first, or start a new session "
               f"with --image-size")
        raise SessionError(f"{where} is {image.shape[1]}x{image.shape[2]} but the session's "
                           f"images are {describe_size(size)}{how}")


def current_shards(store: SessionStore) -> tuple[list[ShardEntry], int]:
    """The pool's shards and the number of the next shard file (lock held).

    A format-1 pool (one ``pool.npz``) is first written as a shard of its own, which the
    manifest names once the command commits.
    """
    manifest = store.manifest
    number = int(manifest["pool"].get("next_shard", 1))
    if "meta" in manifest["pool"] or "shards" in manifest["pool"]:
        return pool_shards(manifest), number
    pool, images = store.pool_index(), store.pool().images
    shard = ShardBuilder(store.path, *shard_files(number), batch=0)
    try:
        for row, name in enumerate(pool.names):
            shard.append(name, str(pool.sources[row]), images[row], pool.keys[row:row + 1])
        return [shard.finish()], number + 1
    except BaseException:
        shard.abort()
        raise


def _grow_manifest(manifest: Manifest, shards: list[Any], next_shard: int,
                   batches: list[BatchRecord], labels: dict[str, LabelRecord]) -> None:
    """The manifest after an add: format 4, the new shard, batch and labels."""
    pool = manifest["pool"]
    manifest["pool"] = {
        "dtype": "float32", "n_images": sum(int(shard["n_images"]) for shard in shards),
        "n_channels": pool["n_channels"], "height": pool["height"], "width": pool["width"],
        "shards": shards, "next_shard": next_shard}
    manifest["batches"] = batches
    manifest["labels"].update(labels)
    to_current_format(manifest)


def to_current_format(manifest: Manifest) -> None:
    """Mark a manifest whose pool is now shards as format 4, recording the migration (its
    next commit moves the session to ``session.db``)."""
    version = manifest["format_version"]
    if version < FORMAT_VERSION:
        manifest.setdefault("migrations", []).append(
            {"from": version, "to": FORMAT_VERSION, "time": now(), "sid4ds": __version__})
        manifest["format_version"] = FORMAT_VERSION
