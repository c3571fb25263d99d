"""``sid4ds status``: where a session stands, read without taking the lock."""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds.rounds import remaining_estimate
from sid4ds.session.deliver import final_summary
from sid4ds.session.errors import SessionError
from sid4ds.session.lock import LOCK, SessionLock
from sid4ds.session.shards import pool_batches
from sid4ds.session.store import SessionStore

__all__ = ["batch_summary", "session_status"]


def batch_summary(store: SessionStore) -> list[dict[str, Any]]:
    """Each batch of pool images (``init``, then each ``add``) and where it stands.

    Returns
    -------
    batches : list of dict
        The batch record (``batch``, ``command``, ``time``, ``source``, ``n_added``,
        ``n_labeled``, ``n_skipped``) and ``in_pool`` (its images in the pool now),
        ``labeled`` and ``defective`` (of those, now) and ``pruned`` (moved to an archive
        by ``sid4ds prune``).
    """
    try:
        index = store.pool_index()
    except SessionError:  # read without the lock: a prune may just have replaced a shard
        store.reread()
        store.forget_pool()
        index = store.pool_index()
    manifest = store.manifest
    records = pool_batches(manifest)
    size = max(record["batch"] for record in records) + 1
    in_pool = np.bincount(index.batches, minlength=size)
    labeled = np.zeros(size, np.int64)
    defective = np.zeros(size, np.int64)
    for name, record in manifest["labels"].items():
        row = index.index.get(name)
        if row is None:
            continue
        labeled[index.batches[row]] += 1
        defective[index.batches[row]] += bool(record["defective"])
    pruned = np.zeros(size, np.int64)
    for prune in manifest.get("prunes", []):
        for batch, count in prune["per_batch"].items():
            pruned[int(batch)] += count
    return [{**record, "in_pool": int(in_pool[record["batch"]]),
             "labeled": int(labeled[record["batch"]]),
             "defective": int(defective[record["batch"]]),
             "pruned": int(pruned[record["batch"]])} for record in records]


def session_status(store: SessionStore, *, own_lock: bool = False) -> dict[str, Any]:
    """Where the session stands (see ``LabelingSession.status``).

    ``own_lock``: the caller holds the lock itself (a command that reports the status, like
    ``report``): a lock of this process is then no command to wait for.
    """
    manifest = store.reread()
    labels = manifest["labels"]
    rounds = []
    for record in manifest["rounds"]:
        done = [name for name in record["selected"]
                if name in labels and labels[name]["round"] == record["round"]]
        defective = sum(labels[name]["defective"] for name in done)
        rounds.append({
            "round": record["round"], "stage": record["stage"],
            "reason": record.get("reason", ""), "asked": len(record["selected"]),
            "labeled": len(done), "defective": defective,
            "defect_rate": defective / len(done) if done else None,
            "fake_normals": len(record["fake_normals"]),
        })
    waiting = store.waiting()
    fake = store.fake_normals()
    n_images = manifest["pool"]["n_images"]
    n_defective = sum(record["defective"] for record in labels.values())
    lock = SessionLock.read(store.path / LOCK) if (store.path / LOCK).exists() else None
    if lock is not None and SessionLock.is_stale(lock, store.path / LOCK):
        lock = {**lock, "stale": True}
    if own_lock and lock is not None and SessionLock.is_own(lock):
        lock = None
    running = lock is not None and not lock.get("stale")
    if running:
        next_step = (f"wait: `sid4ds {lock.get('command')}` is running (pid {lock.get('pid')}, "
                     f"started {lock.get('started')})")
    elif waiting:
        folder = manifest["rounds"][-1]["folder"]
        next_step = (f"label the {len(waiting)} images listed in {store.path / folder}/"
                     f"to_label.csv, then `sid4ds import {store.path} --masks DIR`")
    elif len(labels) == n_images:
        next_step = f"every image is labelled: `sid4ds export {store.path}`"
    else:
        next_step = f"`sid4ds query {store.path}` for the next round"
    last = next((entry for entry in reversed(rounds) if entry["labeled"]), None)
    estimate = remaining_estimate(
        n_images, len(labels), n_defective, last["defective"] if last else 0,
        last["labeled"] if last else 0, manifest["settings"]["defect_ratio"])
    if last is None:
        estimate["at_most"] = None  # no round answered yet: no rate to extrapolate
    pool = manifest["pool"]
    final = final_summary(manifest["models"].get("F"))
    if final is not None:
        final["labels_not_seen"] = store.labels_not_seen("F")
    return {
        "path": str(store.path), "format_version": manifest["format_version"],
        "n_images": n_images,
        "image_shape": [pool["n_channels"], pool["height"], pool["width"]],
        "n_rounds": len(manifest["rounds"]), "labeled": len(labels),
        "defective": n_defective, "waiting": waiting, "n_waiting": len(waiting),
        "fake_normals": len(fake),
        "unlabeled": n_images - len(labels) - len(waiting) - len(fake),
        "rounds": rounds, "remaining_estimate": estimate,
        "initially_labeled": sum(record["round"] is None for record in labels.values()),
        "batches": batch_summary(store),
        "lock": lock, "running": running, "next": next_step, "final_model": final,
    }
