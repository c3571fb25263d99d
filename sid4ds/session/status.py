"""``sid4ds status``: where a session stands, read without taking the lock."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from sid4ds.session.add import pending_drift
from sid4ds.session.audit import session_recall
from sid4ds.session.deliver import final_summary
from sid4ds.session.errors import SessionError
from sid4ds.session.lock import LOCK, SessionLock
from sid4ds.session.records import count_defective
from sid4ds.session.shards import pool_batches
from sid4ds.session.state import StateChangedError
from sid4ds.session.store import SessionStore

__all__ = ["batch_summary", "drift_words", "session_progress", "session_status"]


def batch_summary(store: SessionStore) -> list[dict[str, Any]]:
    """Each batch of pool images (``init``, then each ``add``) and where it stands.

    Returns
    -------
    batches : list of dict
        The batch record (``batch``, ``command``, ``time``, ``source``, ``n_added``,
        ``n_labeled``, ``n_skipped``) and ``in_pool`` (its images in the pool now),
        ``labeled`` and ``defective`` (of those, now), ``pruned`` (moved to an archive
        by ``sid4ds prune``) and ``drift_words`` (the drift check in plain words,
        :func:`drift_words`; None for ``init``'s batch).
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
             "pruned": int(pruned[record["batch"]]),
             "drift_words": drift_words(record)} for record in records]


def drift_words(record: dict[str, Any]) -> str | None:
    """What the drift check found for a batch, and what the rounds do about it, in words.

    Parameters
    ----------
    record : dict
        A batch record of the session (``batch``, ``command`` and, for an ``add`` after M
        was trained, ``drift``: :meth:`~sid4ds.ranking.drift.DriftReport.as_dict` and
        ``applied_round``).

    Returns
    -------
    words : str or None
        Which batch, its share above the pool's quantile against the share that counts
        as drift, and whether a round applied the drift rule to it or the next query
        will; None for the batch of ``init``.

    Examples
    --------
    >>> from sid4ds.session.status import drift_words
    >>> drift_words({"batch": 2, "command": "add"})
    'batch 2 was not checked for drift (no M was trained when it came)'
    >>> print(drift_words({"batch": 3, "command": "add", "drift": {
    ...     "drifted": True, "n_above": 62, "n_batch": 200, "share_above": 0.31,
    ...     "quantile": 0.95, "score": "M's mean reconstruction error",
    ...     "threshold": 0.01817, "min_share": 0.25, "max_p_value": 0.001,
    ...     "p_value": 4e-20, "applied_round": None}}))
    batch 3 DRIFTED: 62 of its 200 images (31%) score above the pool's 95th percentile \
of M's mean reconstruction error (0.01817); drift is 25% or more with a chance below 0.001 \
of that many by luck (here 4e-20). The next `sid4ds query` applies the drift rule to it.
    """
    if record.get("command") != "add":
        return None
    batch, drift = record["batch"], record.get("drift")
    if drift is None:
        return f"batch {batch} was not checked for drift (no M was trained when it came)"
    found = (f"{drift['n_above']} of its {drift['n_batch']} images "
             f"({drift['share_above']:.0%}) score above the pool's "
             f"{drift['quantile'] * 100:g}th percentile of {drift['score']} "
             f"({drift['threshold']:.4g}); drift is {drift['min_share']:.0%} or more with a "
             f"chance below {drift['max_p_value']:g} of that many by luck (here "
             f"{drift['p_value']:.2g})")
    if not drift["drifted"]:
        return f"batch {batch} looks like the pool: {found}"
    applied = drift.get("applied_round")
    then = ("The next `sid4ds query` applies the drift rule to it" if applied is None
            else f"Round {applied} applied the drift rule to it (once; later rounds rank "
                 f"it like the rest)")
    return f"batch {batch} DRIFTED: {found}. {then}."


def session_progress(store: SessionStore, *, own_lock: bool = False,
                     reread: bool = True) -> dict[str, Any]:
    """How far the labelling is and what to do next, without the counts that walk every
    label and round (what ``import`` prints; :func:`session_status` adds them).

    Returns
    -------
    progress : dict
        ``n_images``, ``labeled``, ``defective``, ``waiting`` (names the last round asked
        for that have no mask), ``lock`` (the lock file's record, None when there is
        none or, with ``own_lock``, when it is this process's), ``running`` (another
        command holds the lock) and ``next`` (the next step, in words).
    """
    manifest = store.reread() if reread else store.manifest
    labels = manifest["labels"]
    waiting = store.waiting()
    n_images = manifest["pool"]["n_images"]
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
        lists = ("to_label.csv and audit.csv" if manifest["rounds"][-1].get("audit")
                 else "to_label.csv")
        next_step = (f"label the {len(waiting)} images listed in {store.path / folder}/"
                     f"{lists}, then `sid4ds import {store.path} --masks DIR`")
    elif len(labels) == n_images:
        next_step = f"every image is labelled: `sid4ds export {store.path}`"
    else:
        next_step = f"`sid4ds query {store.path}` for the next round"
    pending = pending_drift(manifest)
    if pending and not running:
        next_step += (f" (the next query applies the drift rule to batch"
                      f"{'es' if len(pending) > 1 else ''} {', '.join(map(str, pending))})")
    return {"n_images": n_images, "labeled": len(labels),
            "defective": count_defective(labels), "waiting": waiting, "lock": lock,
            "running": running, "next": next_step}


def session_status(store: SessionStore, *, own_lock: bool = False,
                   target_recall: float = 0.95) -> dict[str, Any]:
    """Where the session stands (see ``LabelingSession.status``).

    ``own_lock``: the caller holds the lock itself (a command that reports the status, like
    ``report``): a lock of this process is then no command to wait for. Read without the
    lock, so read again when another command committed while it was read.
    """
    for _ in range(2):
        with contextlib.suppress(StateChangedError):  # read again: the state changed
            return _status(store, own_lock=own_lock, target_recall=target_recall)
    return _status(store, own_lock=own_lock, target_recall=target_recall)


def _status(store: SessionStore, *, own_lock: bool,
            target_recall: float) -> dict[str, Any]:
    manifest = store.reread()
    labels = manifest["labels"]
    rounds = []
    for record in manifest["rounds"]:
        done = [name for name in record["selected"]
                if name in labels and labels[name]["round"] == record["round"]]
        defective = sum(labels[name]["defective"] for name in done)
        audited = [name for name in record.get("audit", []) if name in labels]
        rounds.append({
            "round": record["round"], "stage": record["stage"],
            "reason": record.get("reason", ""), "asked": len(record["selected"]),
            "labeled": len(done), "defective": defective,
            "defect_rate": defective / len(done) if done else None,
            "fake_normals": len(record["fake_normals"]),
            "audit": len(record.get("audit", [])),
            "audit_labeled": len(audited),
            "audit_defective": sum(labels[name]["defective"] for name in audited),
        })
    progress = session_progress(store, own_lock=own_lock, reread=False)
    waiting, lock = progress["waiting"], progress["lock"]
    fake = store.fake_normals()
    n_images = progress["n_images"]
    batches = batch_summary(store)  # reads the pool's index (again, after a prune)
    recall = session_recall(store.manifest, store.pool_index(), str(store.path),
                            target_recall=target_recall)
    pool = manifest["pool"]
    final = final_summary(manifest["models"].get("F"))
    if final is not None:
        final["labels_not_seen"] = store.labels_not_seen("F")
    return {
        "path": str(store.path), "format_version": manifest["format_version"],
        "n_images": n_images,
        "image_shape": [pool["n_channels"], pool["height"], pool["width"]],
        "n_rounds": len(manifest["rounds"]), "labeled": progress["labeled"],
        "defective": progress["defective"], "waiting": waiting, "n_waiting": len(waiting),
        "fake_normals": len(fake),
        "unlabeled": n_images - len(labels) - len(waiting) - len(fake),
        "rounds": rounds, "recall": recall,
        "initially_labeled": sum(record["round"] is None for record in labels.values()),
        "batches": batches,
        "drift": [entry["drift_words"] for entry in batches
                  if entry.get("drift", {}).get("drifted")],
        "lock": lock, "running": progress["running"], "next": progress["next"],
        "final_model": final,
    }
