"""The session manifest: the one source of truth of a session, as typed JSON.

``manifest.json`` holds the settings, the pool's description and checksums, every label,
every round and the index of the trained models. It is replaced atomically and last by
every command, so a killed command leaves the session as it was after its last finished
step. The ``TypedDict`` classes below spell out its fields; :func:`read_manifest` checks a
file against them and against the format versions this sid4ds reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from sid4ds.session.errors import SessionError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "LabelRecord",
    "Manifest",
    "ModelEntry",
    "PoolEntry",
    "RoundRecord",
    "Settings",
    "read_manifest",
]

#: The ``format`` field of every session manifest.
FORMAT_NAME = "sid4ds-session"
#: Version of the on-disk format this sid4ds writes and the newest it reads. 3: models are
#: estimator states (``get_state``) in one ``.pt`` file each; E_msmr scores are kept.
FORMAT_VERSION = 3
#: The manifest's file name in the session folder.
MANIFEST = "manifest.json"


class Settings(TypedDict):
    """How the session was created: ``images`` and ``masks`` (where they came from),
    ``image_size``/``tile`` (resizing), ``mode`` ("L" or "RGB"), ``mask_suffix``,
    ``defect_ratio`` (the expected share of defective images), ``seed``, ``region`` (the
    rule of E_sdr's regions; sessions of format 2 and older used ``"threshold"``),
    ``segmenter`` and ``scorer`` (JSON parameters of S and M), ``guided_epochs`` (G's
    epochs) and ``final`` (the final model's settings,
    :func:`sid4ds.final_model.check_final_settings`; sessions made before it have none and
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
    segmenter: dict[str, Any]
    scorer: dict[str, Any]
    guided_epochs: int
    final: dict[str, Any]


class PoolEntry(TypedDict, total=False):
    """The pool files: ``file`` (images, float32 ``.npy``), ``meta`` (names, content keys,
    sources), their ``sha256``/``meta_sha256``, and the shape."""

    file: str
    sha256: str
    meta: str
    meta_sha256: str
    dtype: str
    n_images: int
    n_channels: int
    height: int
    width: int


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
    each model used), ``folder``, ``created``, ``device``, ``seconds``, ``reused_scores``,
    and ``skipped`` (names a later round put back in the pool)."""

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
    skipped: list[str]


class ModelEntry(TypedDict, total=False):
    """A saved model: the ``round`` it was trained for, its ``weights`` file, when it was
    ``saved`` and its checksums (``sha256`` by part; format-2 models also have a ``meta``
    JSON file). The final model F also keeps its ``cross_validation``
    (:meth:`sid4ds.final_model.CrossValidation.to_dict`), the final ``settings`` and S's
    ``segmenter_settings`` it was trained with, ``n_training`` and ``n_fake_normals``."""

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


class Manifest(TypedDict, total=False):
    """The whole manifest. ``models`` holds the newest model of each kind, ``model_files``
    every model by ``KIND_rNNN``; ``msmr_scores`` names the file of M's E_msmr per image."""

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


_REQUIRED = ("settings", "pool", "labels", "rounds", "models", "model_files")


def read_manifest(folder: Path) -> Manifest:
    """Read and check ``folder/manifest.json``.

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
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise SessionError(f"{file} lacks {', '.join(missing)}; restore the session folder "
                           f"from a copy")
    manifest.setdefault("msmr_scores", {})
    return manifest  # type: ignore[return-value]
