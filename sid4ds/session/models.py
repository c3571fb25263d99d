"""The models of a session: their settings, and their states on disk.

A session keeps one state file per trained model and round, ``models/{M,S,G}_rNNN.pt``,
written with the estimators' one state API (:meth:`~sid4ds.SegmentationLearner.get_state`,
``torch.save``) and read back with ``torch.load(weights_only=True)``, so opening a session
someone sent you runs none of their code. The manifest names each file with its checksum.
Models of format-2 sessions (state dicts plus a JSON file of settings) are still read.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from sid4ds.engine.rounds import configure_models
from sid4ds.estimators.final_model import check_final_settings
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.session.errors import SessionError
from sid4ds.session.storage import file_sha256, now, sha256, write_bytes

__all__ = ["MODEL_KINDS", "estimator_class", "final_settings", "load_model", "model_settings",
           "new_model", "save_model"]

#: The models of a session: M and G are reconstruction scorers, S the segmentation learner
#: of the rounds, F the final model (a segmentation learner, trained by ``sid4ds train``).
MODEL_KINDS = {"M": "scorer", "G": "scorer", "S": "segmenter", "F": "segmenter"}
# Parameters the session sets per command, not per session.
_PER_COMMAND = ("device", "verbose", "warm_start")


def estimator_class(kind: str) -> type:
    """The estimator class of model ``kind`` (``"M"``, ``"S"`` or ``"G"``)."""
    return SegmentationLearner if MODEL_KINDS[kind] == "segmenter" else ReconstructionScorer


def _json_params(estimator: Any) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    for runtime in ("device", "verbose"):
        params.pop(runtime, None)
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in params.items()}


def model_settings(scorer_params: dict[str, Any] | None,
                   segmenter_params: dict[str, Any] | None,
                   guided_epochs: int | None, seed: int,
                   final_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validated settings of S, M (and G's epochs), seeded from ``seed`` as run_sid4ds seeds,
    and of the final model.

    Returns
    -------
    settings : dict
        ``segmenter`` and ``scorer`` (JSON parameters of S and M), ``guided_epochs`` and
        ``final`` (:func:`sid4ds.estimators.final_model.check_final_settings`).

    Raises
    ------
    SessionError
        For an unknown or bad parameter, or one the session decides per command.
    """
    given = {"segmenter": dict(segmenter_params or {}), "scorer": dict(scorer_params or {})}
    built = {}
    for key, cls in (("segmenter", SegmentationLearner), ("scorer", ReconstructionScorer)):
        for runtime in _PER_COMMAND:
            if runtime in given[key]:
                raise SessionError(
                    f"{key}_params may not set {runtime!r}: the session decides it "
                    f"(device and verbosity are chosen per command)"
                )
        try:
            built[key] = cls(**given[key])
        except TypeError as error:
            raise SessionError(f"{key}_params: {error}") from None
    segmenter, scorer = configure_models(built["segmenter"], built["scorer"], seed)
    for estimator in (segmenter, scorer):
        estimator.check_params()
    settings = {"segmenter": _json_params(segmenter), "scorer": _json_params(scorer)}
    settings["guided_epochs"] = (settings["scorer"]["max_epochs"] if guided_epochs is None
                                 else guided_epochs)
    settings["final"] = final_settings(final_params)
    return settings


def final_settings(final_params: dict[str, Any] | None) -> dict[str, Any]:
    """The final model's settings as JSON values, validated; a SessionError naming the bad
    one."""
    try:
        checked = check_final_settings(final_params)
    except (TypeError, ValueError) as error:
        raise SessionError(f"final_params: {error}") from None
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in checked.items()}


def new_model(kind: str, settings: dict[str, Any], device: Any, verbose: int) -> Any:
    """An unfitted M or S with the session's settings (G is always made from M)."""
    cls = estimator_class(kind)
    params = settings["segmenter" if MODEL_KINDS[kind] == "segmenter" else "scorer"]
    try:
        return cls.from_params(params, device=device, verbose=verbose)
    except ValueError as error:
        raise SessionError(f"the session's settings for model {kind}: {error}") from None


def save_model(root: Path, kind: str, round_index: int, estimator: Any) -> dict[str, Any]:
    """Write the estimator's state to ``models/KIND_rNNN.pt``; return its manifest entry."""
    import torch

    stem = f"models/{kind}_r{round_index:03d}"
    buffer = io.BytesIO()
    torch.save(estimator.get_state(), buffer)
    weights = buffer.getvalue()
    write_bytes(root / f"{stem}.pt", weights)
    return {"round": round_index, "weights": f"{stem}.pt", "saved": now("microseconds"),
            "sha256": {"weights": sha256(weights)}}


def load_model(root: Path, kind: str, entry: dict[str, Any], device: Any,
               verbose: int = 0) -> Any:
    """The fitted estimator of a manifest entry (checksums verified, no pickles run)."""
    import torch

    paths = {part: root / entry[part] for part in entry["sha256"]}
    for path, expected in ((paths[part], entry["sha256"][part]) for part in paths):
        if not path.is_file():
            raise SessionError(
                f"model file {path} of model {kind} is missing; the session folder is "
                f"incomplete: restore it from a copy"
            )
        if file_sha256(path) != expected:
            raise SessionError(
                f"model file {path} of model {kind} was changed or damaged (checksum "
                f"mismatch); restore the session folder from a copy"
            )
    cls = estimator_class(kind)
    try:
        # weights_only: tensors and plain containers only, never code from the file
        state = torch.load(paths["weights"], map_location="cpu", weights_only=True)
        if "meta" in paths:  # format version 2: state dicts here, the rest in JSON
            state = _state_of_format_2(cls, state, json.loads(paths["meta"].read_text()))
        return cls.from_state(state, device=device, verbose=verbose)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, KeyError...
        raise SessionError(
            f"cannot load model file {paths['weights']} of model {kind}: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}; "
            f"it holds no valid sid4ds weights (only tensors are read from it)"
        ) from None


def _state_of_format_2(cls: type, weights: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The estimator state of a model a format-2 session saved (state dicts + JSON meta)."""
    import torch

    fitted = dict(meta["fitted"])
    for name in ("pixel_mean_", "pixel_std_"):
        if name in fitted:
            fitted[name] = torch.tensor(fitted[name], dtype=torch.float32)
    fitted["image_shape_"] = tuple(fitted["image_shape_"])
    return {"format": "sid4ds-estimator", "format_version": 1, "class": cls.__name__,
            "params": meta["params"], "fitted": fitted, "module": weights["module"],
            "optimizer": weights.get("optimizer"), "rng": meta["rng_state"]}
