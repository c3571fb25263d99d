"""``sid4ds query``: one SID4DS round of a session, and the round folder it writes.

The round itself is :meth:`sid4ds.engine.rounds.SID4DSRounds.run_round`, the same one
:func:`~sid4ds.run_sid4ds` runs. The session gives it the models it saved, saves every model
right after it is trained (so a killed query resumes from there and gives the same round),
keeps the scores per image on disk (so unchanged models never score an image twice: a
query after ``add`` with no new label scores only the new images), and writes
``rounds/NNN/``: the list of images to label, the images, S's pre-annotations, the fake
normals and every score.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import sys
from typing import Any

import numpy as np

from sid4ds._core.device import resolve_device
from sid4ds._core.validation import check_int, check_target_recall
from sid4ds.datasets.pool import as_pool
from sid4ds.engine.rounds import RoundResult, SID4DSRounds, labels_per_round
from sid4ds.session.add import drifted_rows
from sid4ds.session.audit import CONFIDENCE, audit_fields, check_audit
from sid4ds.session.configure import ranking_settings, training_params
from sid4ds.session.errors import SessionError
from sid4ds.session.manifest import RoundRecord
from sid4ds.session.models import new_model
from sid4ds.session.storage import (
    FileBatch,
    csv_text,
    now,
    png_bytes,
    replace_folder,
    test_hook,
    to_uint8,
)
from sid4ds.session.store import PoolView, SessionStore
from sid4ds.stopping import audit_size_needed

__all__ = ["round_ranking", "run_query", "say", "session_engine"]


def say(verbose: int, message: str) -> None:
    """A progress message on stderr when ``verbose``."""
    if verbose:
        print(f"[sid4ds] {message}", file=sys.stderr, flush=True)


def run_query(store: SessionStore, n_label: int | None, n_normal: int | str, *,
              device: Any, verbose: int, skip_missing: bool, audit: int = 0,
              target_recall: float = 0.95) -> RoundRecord:
    """Run one round of the session in ``store`` (see ``LabelingSession.query``)."""
    resolve_device(device)
    verbose = check_int(verbose, "verbose", minimum=0)
    target_recall = check_target_recall(target_recall)
    with store.locked("query") as manifest:
        waiting = store.waiting()
        if waiting and not skip_missing:
            folder = manifest["rounds"][-1]["folder"]
            raise SessionError(
                f"round {len(manifest['rounds']) - 1} still waits for masks of "
                f"{len(waiting)} images ({', '.join(waiting[:5])}"
                f"{', ...' if len(waiting) > 5 else ''}; listed in "
                f"{store.path / folder / 'to_label.csv'}); import them first, or pass "
                f"skip_missing=True (--skip-missing) to put them back in the pool"
            )
        pool = store.pool()
        labels = manifest["labels"]
        unlabeled = np.array([row for row, name in enumerate(pool.names) if name not in labels],
                             dtype=np.int64)
        if not len(unlabeled):
            raise SessionError(
                f"every image of {store.path} is labelled; nothing is left to query: "
                f"export the masks with `sid4ds export {store.path}`"
            )
        if n_label is None:
            n_label = labels_per_round(0.1, len(pool.names))
        n_label = check_int(n_label, "n_label", minimum=1)
        if n_normal != "auto":
            n_normal = check_int(n_normal, "n_normal", minimum=0)
        audit = check_audit(audit, len(unlabeled), n_label)
        if waiting:
            store.change_last_round("skipped", waiting)
        return _run_round(store, pool, unlabeled, n_label, n_normal, device, verbose,
                          audit, target_recall)


def session_engine(store: SessionStore, n_normal: int | str, device: Any, verbose: int,
                   round_index: int, command: str = "query") -> SID4DSRounds:
    """The round engine with the session's models (new ones where none is saved yet).

    Every model it trains is saved in the session right away.
    """
    manifest = store.manifest
    settings = manifest["settings"]
    models = {kind: store.model(kind, device, verbose) for kind in ("M", "S", "G")}
    if models["S"] is not None:  # settings changed since it was saved (sid4ds configure)
        models["S"].set_params(**training_params(settings["segmenter"]))
    trained_for = {kind: manifest["models"][kind]["round"] for kind in models
                   if models[kind] is not None}
    if trained_for.get("S") == round_index and store.labels_not_seen("S"):
        # S was trained for this round (by `sid4ds train`, or a killed query), but labels
        # were imported since: the round trains it again, from its weights
        del trained_for["S"]
    elif "S" in trained_for and not store.labels_not_seen("S"):
        # no label since S was trained (a query after `add`, or with --skip-missing): S has
        # nothing new to learn, so it stays as it is and its scores are reused
        trained_for["S"] = round_index

    def keep(kind: str, model: Any, trained_round: int) -> None:
        store.keep_model(kind, trained_round, model)
        test_hook(f"{command}:after-train-{kind}")

    return SID4DSRounds(
        models["S"] if models["S"] is not None else new_model("S", settings, device, verbose),
        models["M"] if models["M"] is not None else new_model("M", settings, device, verbose),
        sdr_scorer=models["G"], guided_epochs=settings["guided_epochs"],
        **ranking_settings(settings),
        n_normal=n_normal,
        expected_defect_ratio=settings["defect_ratio"], trained_for=trained_for,
        score_cache=store.score_cache(), on_trained=keep,
        # no reader, no messages: the engine then measures no time estimates either
        say=(lambda message: say(verbose, message)) if verbose else None)


def _run_round(store: SessionStore, pool: PoolView, unlabeled: np.ndarray, n_label: int,
               n_normal: int | str, device: Any, verbose: int, audit: int,
               target_recall: float) -> RoundRecord:
    manifest = store.manifest
    round_index = len(manifest["rounds"])
    engine = session_engine(store, n_normal, device, verbose, round_index)
    X_train, y_train = store.training_set()
    images = as_pool(pool.images, name="pool")
    drifted, drifted_batches = drifted_rows(manifest, pool.batches)
    result = engine.run_round(images, unlabeled, X_train, y_train, round_index, n_label,
                              keys=pool.keys, drifted=drifted)
    names = [pool.names[row] for row in unlabeled]
    models_used = {kind: manifest["models"][kind]["round"]
                   for kind in (("M", "S", "G") if result.stage == "iterative" else ("M",))}
    record: RoundRecord = {
        "round": round_index, "stage": result.stage, "score": result.score,
        "reason": result.reason, "n_label": n_label, "n_normal": n_normal,
        "defect_ratio": manifest["settings"]["defect_ratio"],
        "selected": [names[index] for index in result.selected],
        "scores": [float(result.scores[index]) for index in result.selected],
        "fake_normals": [names[index] for index in result.fake_normals],
        "fake_normal_scores": [float(result.scores[index]) for index in result.fake_normals],
        "n_training": len(X_train), "models": models_used,
        "folder": f"rounds/{round_index:03d}", "created": now(),
        "device": str(resolve_device(device)), "seconds": result.seconds,
        "reused_scores": result.reused_scores, "n_reused": result.n_reused,
    }
    # the random audit (--audit): drawn from the images the ranked batch left
    record.update(audit_fields(manifest, pool, names, record["selected"], audit, round_index)
                  if audit else {"audit": []})
    n_found = sum(bool(label["defective"]) for label in manifest["labels"].values())
    record["target_recall"] = target_recall
    record["audit_needed"] = audit_size_needed(
        n_found, len(names) - len(record["selected"]), target_recall=target_recall,
        confidence=CONFIDENCE)
    if drifted_batches:  # the rule acted once on each: the next rounds rank them as usual
        record["drifted_batches"] = drifted_batches
        record["drift_normals"] = [names[index] for index in result.drift_normals]
        for batch in manifest["batches"]:
            if batch["batch"] in drifted_batches:
                batch["drift"]["applied_round"] = round_index
    preannotations = None
    if result.stage == "iterative" and len(result.selected):
        preannotations = engine.segmenter.predict(images.subset(unlabeled[result.selected]))
    _write_round_folder(store, record, pool, names, result, preannotations)
    test_hook("query:before-commit")
    manifest["rounds"].append(record)
    store.commit()
    say(verbose, f"round {round_index} ({record['stage']}): label the "
                 f"{len(record['selected'])} images"
                 + (f" and the {len(record['audit'])} audit images" if record["audit"] else "")
                 + f" in {store.path / record['folder']}")
    return copy.deepcopy(record)


def round_ranking(store: SessionStore, record: RoundRecord) -> list[dict[str, Any]]:
    """A round's whole ranking, read from its ``scores.csv``: best first.

    Returns
    -------
    rows : list of dict
        ``name``, ``score`` (float), ``rank`` (int, 1 = best), ``role`` (``"label"``,
        ``"audit"``, ``"fake_normal"`` or ``"pool"``) and ``batch`` (int; 0 in rounds written before
        batches existed).

    Raises
    ------
    SessionError
        If the file is missing or unreadable.
    """
    file = store.path / record["folder"] / "scores.csv"
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            return [{"name": row["name"], "score": float(row["score"]), "rank": int(row["rank"]),
                     "role": row["role"], "batch": int(row.get("batch") or 0)}
                    for row in csv.DictReader(handle)]
    except (OSError, KeyError, ValueError, TypeError, csv.Error) as error:
        raise SessionError(f"cannot read the ranking of round {record['round']} ({file}): "
                           f"{error}; run `sid4ds query {store.path}` for a new one") from None


def _write_round_folder(store: SessionStore, record: RoundRecord, pool: PoolView,
                        names: list[str], result: RoundResult,
                        preannotations: np.ndarray | None) -> None:
    """Write ``rounds/NNN``; ``preannotations`` are S's masks of the selected images."""
    target = store.path / record["folder"]
    staging = FileBatch(target.with_name(f".{target.name}.tmp-{os.getpid()}"), fresh=True)
    scores, top, bottom = result.scores, result.selected, result.fake_normals
    batch = [int(pool.batches[pool.index[name]]) for name in names]  # where each came from
    rows, entries = [], []
    for rank, index in enumerate(top, start=1):
        name = names[index]
        image_file = f"images/{name}.png"
        staging.write(image_file, png_bytes(to_uint8(pool.images[pool.index[name]])))
        preannotation = ""
        if preannotations is not None:
            preannotation = f"preannotations/{name}.png"
            staging.write(preannotation,
                        png_bytes(preannotations[rank - 1].astype(np.uint8) * 255))
        source = str(pool.sources[pool.index[name]])
        rows.append([rank, name, repr(float(scores[index])), image_file, preannotation, source,
                     batch[index]])
        entries.append({"rank": rank, "name": name, "score": float(scores[index]),
                        "image": image_file, "preannotation": preannotation or None,
                        "source": source, "batch": batch[index]})
    header = ["rank", "name", "score", "image", "preannotation", "source", "batch"]
    staging.write("to_label.csv", csv_text(header, rows).encode("utf-8"))
    # the audit: images drawn at random, listed apart (no score shown, no pre-annotation:
    # label them as carefully as if nothing were known)
    audit_rows, audit_entries = [], []
    for number, name in enumerate(record["audit"], start=1):
        row = pool.index[name]
        image_file = f"images/{name}.png"
        staging.write(image_file, png_bytes(to_uint8(pool.images[row])))
        source, origin = str(pool.sources[row]), int(pool.batches[row])
        audit_rows.append([number, name, image_file, source, origin])
        audit_entries.append({"draw": number, "name": name, "image": image_file,
                              "source": source, "batch": origin})
    if record["audit"]:
        staging.write("audit.csv", csv_text(["draw", "name", "image", "source", "batch"],
                                            audit_rows).encode("utf-8"))
    fake_rows = [[rank, names[index], repr(float(scores[index])), batch[index]]
                 for rank, index in enumerate(bottom, start=1)]
    staging.write("fake_normals.csv", csv_text(["rank", "name", "score", "batch"],
                                               fake_rows).encode("utf-8"))
    order = result.order
    role = {int(index): "label" for index in top}
    role.update({int(index): "fake_normal" for index in bottom})
    audited = set(record["audit"])  # an audit image that is also a fake normal: "audit"
    role.update({index: "audit" for index, name in enumerate(names) if name in audited})
    all_rows = [[names[index], repr(float(scores[index])), rank, role.get(int(index), "pool"),
                 batch[index]] for rank, index in enumerate(order, start=1)]
    staging.write("scores.csv", csv_text(["name", "score", "rank", "role", "batch"],
                                         all_rows).encode("utf-8"))
    listing = {
        "round": record["round"], "stage": record["stage"], "score": record["score"],
        "reason": record["reason"],
        "instructions": "draw a mask for every image in images/ (0 = normal, 255 = "
                        "defect; an all-black mask for a normal image), name it like "
                        "the image, and run `sid4ds import SESSION --masks DIR`",
        "images": entries,
        "audit": audit_entries,
        "fake_normals": [{"rank": rank, "name": names[index], "score": float(scores[index]),
                          "batch": batch[index]}
                         for rank, index in enumerate(bottom, start=1)],
    }
    staging.write("to_label.json", (json.dumps(listing, indent=1) + "\n").encode("utf-8"))
    replace_folder(staging.finish(), target)
