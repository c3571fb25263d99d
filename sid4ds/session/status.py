"""``sid4ds status``: where a session stands, read without taking the lock."""

from __future__ import annotations

from typing import Any

from sid4ds.rounds import remaining_estimate
from sid4ds.session.deliver import final_summary
from sid4ds.session.lock import LOCK, SessionLock
from sid4ds.session.store import SessionStore

__all__ = ["session_status"]


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
        "lock": lock, "running": running, "next": next_step, "final_model": final,
    }
