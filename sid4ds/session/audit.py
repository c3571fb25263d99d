"""A session's random audit and the recall bound it gives (``query --audit N``, ``status``).

The statistics are :mod:`sid4ds.stopping`'s (one copy of each rule: the draw,
:func:`~sid4ds.stopping.draw_audit`; the bound, :func:`~sid4ds.stopping.audit_recall_bound`;
the audit size, :func:`~sid4ds.stopping.audit_size_needed`). This module says which images
of a session they apply to: an audit is drawn by ``query`` from the images without a human
label less the round's ranked batch, with the session's seed and the round's number, and
the round record keeps what the bound needs later (:class:`~sid4ds.session.manifest.RoundRecord`:
``audit``, ``audit_population``, ``audit_labelled``, ``audit_last_batch``). ``status``,
``report`` read the bound of the newest audit, counted from the labels as they are now;
``train`` weighs the final model's estimate by it (:func:`audit_estimate_weights`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from sid4ds._core.validation import check_audit_size, check_target_recall
from sid4ds.session.manifest import Manifest, RoundRecord
from sid4ds.session.store import PoolIndex
from sid4ds.stopping import audit_recall_bound, audit_size_needed, audit_weights, draw_audit

__all__ = ["audit_estimate_weights", "audit_fields", "audit_needed_text", "check_audit",
           "session_recall"]

#: The confidence of a session's recall bound.
CONFIDENCE = 0.95


def check_audit(audit: Any, n_unlabeled: int, n_label: int) -> int:
    """``audit`` (``--audit``): images to draw besides a ranked batch of ``n_label``.

    Checked before the round runs: at most the ``n_unlabeled`` images without a label,
    less the ranked batch.
    """
    n_batch = min(n_label, n_unlabeled)
    return check_audit_size(audit, n_unlabeled - n_batch, "audit", n_batch=n_batch)


def audit_fields(manifest: Manifest, index: PoolIndex, unlabeled: Sequence[str],
                 selected: Sequence[str], audit: int, round_index: int) -> dict[str, Any]:
    """Draw a round's audit; the fields its round record keeps.

    Parameters
    ----------
    manifest : dict
        The session's manifest (its labels now, its seed).
    index : PoolIndex
        The pool now.
    unlabeled : sequence of str
        The images without a human label (fake normals and skipped images included).
    selected : sequence of str
        The round's ranked batch: left out of the audit's population.
    audit : int
        Images to draw (checked by :func:`check_audit`).
    round_index : int
        The round: with the session's seed, it seeds the draw.

    Returns
    -------
    fields : dict
        ``audit`` (names, in the order drawn), ``audit_population``, ``audit_labelled``,
        ``audit_last_batch``.
    """
    chosen = set(selected)
    candidates = [name for name in unlabeled if name not in chosen]
    drawn = draw_audit(candidates, audit,
                       random_state=[int(manifest["settings"]["seed"]), 1, round_index])
    return {"audit": [str(name) for name in drawn], "audit_population": len(candidates),
            "audit_labelled": sorted(manifest["labels"]),
            "audit_last_batch": int(index.batches.max()) if len(index.batches) else 0}


def _last_audit(manifest: Manifest) -> RoundRecord | None:
    return next((record for record in reversed(manifest["rounds"]) if record.get("audit")),
                None)


def audit_needed_text(needed: int, target_recall: float, session: str,
                      confidence: float = CONFIDENCE) -> str:
    """How many audit labels the bound needs, in plain words (``query``, ``status``)."""
    return (f"for a recall of at least {target_recall:.0%} at {confidence:.0%} confidence the "
            f"bound needs an audit of at least {needed} images (that many if it finds no "
            f"defective image, more if it does): `sid4ds query {session} --audit {needed}` "
            f"draws one with the next round")


def session_recall(manifest: Manifest, index: PoolIndex, session: str, *,
                   target_recall: float = 0.95,
                   confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The share of defective images labelled, with its bound from the newest audit.

    Parameters
    ----------
    manifest : dict
        The session's manifest.
    index : PoolIndex
        The pool now.
    session : str
        The session's path, for the advice.
    target_recall : float, default=0.95
        In (0, 1).
    confidence : float, default=CONFIDENCE

    Returns
    -------
    recall : dict
        ``target_recall``, ``confidence``, ``audit_round`` (the round whose audit gives the
        bound; None without an audit), ``bound`` (the
        :class:`~sid4ds.stopping.RecallBound`'s fields as a dict, or None), ``certified``
        (whether the bound reaches ``target_recall``), ``defects_to_find`` (defective
        images the review must still label for this audit to certify it; None without an
        audit), ``audit_needed`` (the least audit that can certify it now,
        :func:`~sid4ds.stopping.audit_size_needed`), ``statement`` (what is guaranteed and
        what is assumed) and ``advice`` (what to do), in plain words.
    """
    target_recall = check_target_recall(target_recall)
    labels = manifest["labels"]
    n_found = sum(bool(record["defective"]) for record in labels.values())
    needed = audit_size_needed(n_found, len(index.names) - len(labels),
                               target_recall=target_recall, confidence=confidence)
    record = _last_audit(manifest)
    result: dict[str, Any] = {"target_recall": target_recall, "confidence": confidence,
                              "audit_round": None, "bound": None, "certified": False,
                              "defects_to_find": None, "audit_needed": needed}
    if record is None:
        result["statement"] = ("No audit yet: nothing is known of the defective images "
                               "that are not labelled (the ranking alone proves nothing "
                               "about what it missed).")
        result["advice"] = audit_needed_text(needed, target_recall, session, confidence)
        return result
    audit, last_batch = record["audit"], record["audit_last_batch"]
    outside = {*record["audit_labelled"], *record["selected"]}
    # the labels now of the images in the pool when the audit was drawn (not of later ones)
    then = outside | set(audit)
    now = {name: bool(label["defective"]) for name, label in labels.items()
           if name in then or (name in index.index
                                     and index.batches[index.index[name]] <= last_batch)}
    bound = audit_recall_bound(now, outside, record["audit_population"], audit,
                               confidence=confidence)
    certified = bound.certifies(target_recall)
    to_find = bound.defects_to_find(target_recall)
    result.update(audit_round=record["round"], bound=dataclasses.asdict(bound),
                  certified=certified, defects_to_find=to_find, statement=bound.statement)
    if certified:
        result["advice"] = (f"the audit of round {record['round']} certifies a recall of at "
                            f"least {target_recall:.0%}: labelling can stop (for the images "
                            f"in the pool when it was drawn)")
    else:
        result["advice"] = (
            f"a recall of {target_recall:.0%} is not certified yet: the audit of round "
            f"{record['round']} certifies it once further rounds label {to_find} more "
            f"defective images (if the unlabelled images hold that many; if not, only a new, "
            f"larger audit can); or "
            + audit_needed_text(needed, target_recall, session, confidence))
    return result


def audit_estimate_weights(manifest: Manifest, names: Sequence[str]
                           ) -> tuple[np.ndarray | None, int | None]:
    """How many images of the pool each labelled image stands for, by the newest audit
    (:func:`sid4ds.stopping.audit_weights`, for the session's names).

    The pool when the audit was drawn is two strata: the images labelled then or in that
    round's ranked batch (each stands for itself: weight 1) and the rest, of which the
    audit is a random sample (each labelled audit image stands for the rest's size over
    the number of audit images labelled: the audit's population / its labelled images).
    Images labelled later by ranking, or added to the pool later, stand for none (weight
    0: they are trained on and validated, but the audit already speaks for them).

    Parameters
    ----------
    manifest : dict
        The session's manifest.
    names : sequence of str
        The images to weigh (e.g. the labelled images, then the fake normals: weight 0).

    Returns
    -------
    weights : ndarray of shape (n_names,) or None
        None without an audit, or when no labelled audit image is defective and no
        defective image stands for itself (nothing to weigh an IoU by).
    audit_round : int or None
        The round whose audit gives the weights.

    Examples
    --------
    >>> from sid4ds.session.audit import audit_estimate_weights
    >>> manifest = {"rounds": [{"round": 0, "selected": ["b"], "audit": ["c", "d"],
    ...                         "audit_population": 10, "audit_labelled": ["a"]}],
    ...             "labels": {name: {"defective": name in "ace"} for name in "abcde"}}
    >>> weights, audit_round = audit_estimate_weights(manifest, list("abcde"))
    >>> weights.tolist(), audit_round  # e was ranked after the audit
    ([1.0, 1.0, 5.0, 5.0, 0.0], 0)
    """
    record = _last_audit(manifest)
    if record is None:
        return None, None
    labels = manifest["labels"]
    audited = [name for name in record["audit"] if name in labels]
    if not audited:
        return None, None
    census = [name for name in {*record["audit_labelled"], *record["selected"]}
              if name in labels]
    weights = audit_weights(list(names), census, audited, record["audit_population"])
    defective = np.array([name in labels and bool(labels[name]["defective"])
                          for name in names])
    if not (weights[defective] > 0).any():
        return None, None
    return weights, int(record["round"])
