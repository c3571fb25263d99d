"""The session manifest: the one source of truth of a session, as typed JSON.

The manifest holds the settings, the pool's description and checksums, every label, every
round and the index of the trained models. Up to format 3 it is ``manifest.json``, replaced
atomically and last by every command; from format 4 ``manifest.json`` is a marker written
once (the format and the name of the state file) and the manifest lives in ``session.db``
(:mod:`~sid4ds.session.state`), where each command writes what it changed in one
transaction. Either way a killed command leaves the session as it was after its last
finished step. The ``TypedDict`` classes below spell out its fields; :func:`open_manifest`
reads a session's manifest whatever its format, checking it against them and against the
format versions this sid4ds reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from sid4ds.session.errors import SessionError
from sid4ds.session.state import STATE, StateFile

__all__ = [
    "BatchRecord",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "LabelRecord",
    "Manifest",
    "ModelEntry",
    "PoolEntry",
    "RoundRecord",
    "Settings",
    "ShardEntry",
    "manifest_marker",
    "open_manifest",
    "read_manifest",
]

#: The ``format`` field of every session manifest.
FORMAT_NAME = "sid4ds-session"
#: Version of the on-disk format this sid4ds writes and the newest it reads. 3: models are
#: estimator states (``get_state``) in one ``.pt`` file each; E_msmr scores are kept. 4: the
#: pool is a list of ``.npy`` shards, one per batch of images (``init``, then each ``add``),
#: with each batch's provenance, and the manifest lives in ``session.db`` (SQLite, written
#: by the change); format-3 sessions become format 4 on their first ``add``.
FORMAT_VERSION = 4
#: The manifest's file name in the session folder.
MANIFEST = "manifest.json"


class Settings(TypedDict):
    """How the session was created: ``images`` and ``masks`` (where they came from),
    ``image_size``/``tile`` (resizing), ``mode`` ("L" or "RGB"), ``mask_suffix``,
    ``defect_ratio`` (the expected share of defective images), ``seed``, ``region`` (the
    rule of E_sdr's regions; sessions of format 2 and older used ``"threshold"``),
    ``fusion`` (the iterative score: ``"rank"``, E_sdr fused with S's probability, or None,
    E_sdr alone; sessions made before it was a setting have none and use E_sdr alone),
    ``segmenter`` and ``scorer`` (JSON parameters of S and M), ``guided_epochs`` (G's
    epochs) and ``final`` (the final model's settings,
    :func:`sid4ds.estimators.final_model.check_final_settings`; sessions made before it have
    none and
    use the defaults)."""

    images: str
    masks: str | None
    image_size: list[int] | None
    tile: list[int] | None
    mode: str
    mask_suffix: str
    defect_ratio: float
    seed: int
    region: str
    fusion: str | None
    segmenter: dict[str, Any]
    scorer: dict[str, Any]
    guided_epochs: int
    final: dict[str, Any]


class ShardEntry(TypedDict):
    """One file of pool images (format 4): ``file`` (float32 ``.npy``, (n, C, H, W)),
    ``meta`` (an ``.npz`` of their names, content keys and source files), their checksums,
    ``n_images`` and the ``batch`` the images came with."""

    file: str
    sha256: str
    meta: str
    meta_sha256: str
    n_images: int
    batch: int


class PoolEntry(TypedDict, total=False):
    """The pool: its shape (``n_images``, ``n_channels``, ``height``, ``width``, ``dtype``)
    and its files. Format 4: ``shards`` (:class:`ShardEntry`, in pool order) and
    ``next_shard`` (the number of the next shard file). Formats 2 and 3: one ``file``
    (images) and ``meta`` with their ``sha256``/``meta_sha256``; format 1: one ``file``
    (``pool.npz``) holding everything."""

    file: str
    sha256: str
    meta: str
    meta_sha256: str
    dtype: str
    n_images: int
    n_channels: int
    height: int
    width: int
    shards: list[ShardEntry]
    next_shard: int


class BatchRecord(TypedDict, total=False):
    """Where a batch of pool images came from (format 4): ``batch`` (0 for ``init``, then
    1, 2, ... for each ``add``), ``command`` (``"init"`` or ``"add"``), ``time`` (UTC),
    ``source`` (the folder, files or array given), ``n_added`` (images that joined the
    pool), ``n_labeled`` (those that came with a mask), ``n_skipped`` (images left out,
    by reason: ``same_content``, ``name_taken``) and, for an ``add`` after M was trained,
    ``drift`` (the drift check, :meth:`sid4ds.ranking.drift.DriftReport.as_dict`,
    ``applied_round``: the round that applied the drift rule to a drifted batch, None
    until then, and ``seconds``: the check's time)."""

    batch: int
    command: str
    time: str
    source: str
    n_added: int
    n_labeled: int
    n_skipped: dict[str, int]
    drift: dict[str, Any]


class LabelRecord(TypedDict):
    """One labelled image: its ``mask`` file (relative), ``sha256``, ``version`` (1, then +1
    per replacement), the ``round`` that asked for it (None: given at init or labelled
    without being asked), ``defective``, ``source`` (where the mask came from) and
    ``imported`` (a UTC time)."""

    mask: str
    sha256: str
    version: int
    round: int | None
    defective: bool
    source: str
    imported: str


class RoundRecord(TypedDict, total=False):
    """One round: ``round``, ``stage``, ``score``, ``reason``, ``n_label``, ``n_normal``,
    ``defect_ratio``, ``selected`` and ``scores`` (names and scores, best first),
    ``fake_normals`` and ``fake_normal_scores``, ``n_training``, ``models`` (the round of
    each model used), ``folder``, ``created``, ``device``, ``seconds``, ``reused_scores``
    (every score was kept from before), ``n_reused`` (how many were), ``skipped`` (names
    a later round put back in the pool), and in the first round after ``add`` found a batch
    drifted, ``drifted_batches`` (their numbers) and ``drift_normals`` (the names that
    trained S as normal images under the drift rule). A round with a random audit
    (``sid4ds query --audit N``, :mod:`sid4ds.session.audit`) also has ``audit`` (the audit's
    names, in the order drawn), ``audit_population`` (the images it was drawn from: those
    without a human label then, less ``selected``), ``audit_labelled`` (the images with a
    human label then) and ``audit_last_batch`` (the newest pool batch then; images added
    later are not in the audit's pool). Rounds written before audits existed have none of
    these: no audit."""

    round: int
    stage: str
    score: str
    reason: str
    n_label: int
    n_normal: int | str
    defect_ratio: float
    selected: list[str]
    scores: list[float]
    fake_normals: list[str]
    fake_normal_scores: list[float]
    n_training: int
    models: dict[str, int]
    folder: str
    created: str
    device: str
    seconds: dict[str, float]
    reused_scores: bool
    n_reused: int
    skipped: list[str]
    audit: list[str]
    audit_population: int
    audit_labelled: list[str]
    audit_last_batch: int
    target_recall: float
    audit_needed: int
    drifted_batches: list[int]
    drift_normals: list[str]


class ModelEntry(TypedDict, total=False):
    """A saved model: the ``round`` it was trained for, its ``weights`` file, when it was
    ``saved`` and its checksums (``sha256`` by part; format-2 models also have a ``meta``
    JSON file). The final model F also keeps its ``cross_validation``
    (:meth:`sid4ds.estimators.final_model.CrossValidation.to_dict`), the final ``settings`` and S's
    ``segmenter_settings`` it was trained with, ``n_training``, ``n_fake_normals`` and
    ``audit_round`` (the round whose random audit weighs its estimate, or None)."""

    round: int
    weights: str
    saved: str
    meta: str
    sha256: dict[str, str]
    cross_validation: dict[str, Any]
    settings: dict[str, Any]
    segmenter_settings: dict[str, Any]
    n_training: int
    n_fake_normals: int
    audit_round: int | None


class Manifest(TypedDict, total=False):
    """The whole manifest. ``models`` holds the newest model of each kind, ``model_files``
    every model by ``KIND_rNNN``; ``score_files`` names the file of each model's scores per
    image (``msmr_scores``: those of sessions written before, no longer read);
    ``batches`` (format 4) the provenance of each batch of pool images; ``prunes`` each
    ``sid4ds prune --apply`` (when, the archive, how many per batch, the estimate);
    ``migrations``
    when the session was brought to a newer format (from, to, time, sid4ds)."""

    format: str
    format_version: int
    created: str
    updated: str
    written_by: dict[str, str]
    settings: Settings
    pool: PoolEntry
    labels: dict[str, LabelRecord]
    rounds: list[RoundRecord]
    models: dict[str, ModelEntry]
    model_files: dict[str, ModelEntry]
    msmr_scores: dict[str, str]
    score_files: dict[str, dict[str, Any]]
    batches: list[BatchRecord]
    prunes: list[dict[str, Any]]
    migrations: list[dict[str, Any]]


_REQUIRED = ("settings", "pool", "labels", "rounds", "models", "model_files")


def read_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/manifest.json`` (of format 4: the marker only; see
    :func:`open_manifest`).

    Raises
    ------
    SessionError
        If the folder does not exist, holds no manifest, the manifest is unreadable or not
        a sid4ds manifest, or it was written by a newer sid4ds; the message says what to do.
    """
    file = folder / MANIFEST
    if not folder.exists():
        raise SessionError(
            f"session folder {folder} does not exist; create it with `sid4ds init "
            f"{folder} --images DIR`"
        )
    if not file.is_file():
        raise SessionError(
            f"{folder} is not a sid4ds session: it has no {MANIFEST}; pass the folder that "
            f"`sid4ds init` created"
        )
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SessionError(f"cannot read {file}: {error}; restore the session folder from "
                           f"a copy") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise SessionError(f"{file} is not a sid4ds session manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise SessionError(f"{file} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        written = manifest.get("written_by", {}).get("sid4ds", "a newer version")
        raise SessionError(
            f"session {folder} has format version {version}, written by sid4ds {written}; "
            f"this sid4ds reads format versions up to {FORMAT_VERSION}: upgrade sid4ds "
            f"(pip install -U sid4ds)"
        )
    if "state" in manifest:
        return manifest  # type: ignore[return-value]  # the marker of a format-4 session
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise SessionError(f"{file} lacks {', '.join(missing)}; restore the session folder "
                           f"from a copy")
    manifest.setdefault("msmr_scores", {})
    return manifest  # type: ignore[return-value]


def open_manifest(folder: Path) -> tuple[Manifest, StateFile | None]:
    """A session's manifest, whatever its format, and its state file (None up to format 3,
    whose manifest is ``manifest.json`` itself).

    Raises
    ------
    SessionError
        As :func:`read_manifest`, or if the state file is missing or damaged.
    """
    manifest = read_manifest(folder)
    if "state" not in manifest:
        return manifest, None
    state = StateFile(folder / str(manifest["state"]))
    full = state.read()
    missing = [key for key in _REQUIRED if key not in full]
    if missing:
        raise SessionError(f"{state.path} lacks {', '.join(missing)}; restore the session "
                           f"folder from a copy")
    full.setdefault("msmr_scores", {})
    return full, state  # type: ignore[return-value]


def manifest_marker(manifest: Manifest) -> dict[str, Any]:
    """What ``manifest.json`` holds in a format-4 session: the format, where the state is,
    when and by what it was created."""
    return {"format": manifest["format"], "format_version": manifest["format_version"],
            "state": STATE, "created": manifest.get("created", ""),
            "written_by": manifest.get("written_by", {})}
