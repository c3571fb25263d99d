"""``sid4ds configure``: change the settings of S, of the ranking and of the final model on
a session.

The budget of the segmentation learner S of the rounds (``max_steps``, ...), the rule the
iterative rounds rank by (``fusion``, ``region``) and every setting of the final model of
``sid4ds train`` may change between commands: the next query trains S with the new
settings (from its previous weights, so settings that would change its network are
refused once it exists) and ranks by the new rule, and the next ``train`` trains the final
model with them. Each change is checked first, written into the manifest's settings and
recorded in its ``settings_changes``; a bad key or value changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sid4ds._core.validation import check_choice
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.ranking.scores import FUSION_RULES, REGION_RULES
from sid4ds.session.errors import SessionError
from sid4ds.session.models import final_settings
from sid4ds.session.storage import now
from sid4ds.session.store import SessionStore

__all__ = ["RANKING_RULES", "TRAINING_PARAMS", "check_ranking", "configure_session",
           "ranking_settings", "training_params"]

#: Parameters of S that may change once S is trained: they change how it trains further,
#: not its network or its optimiser's state.
TRAINING_PARAMS: tuple[str, ...] = (
    "max_steps", "max_epochs", "batch_size", "lr", "lr_schedule", "warmup", "defect_share",
    "loss", "bce_weight", "dice_weight", "augment", "best_window", "crop_size",
    "inference_batch_size", "n_jobs", "precision",
)
# Parameters of S the session sets itself.
_SESSION_PARAMS = ("device", "verbose", "warm_start", "random_state", "encoder_init")


def training_params(segmenter_settings: dict[str, Any]) -> dict[str, Any]:
    """The :data:`TRAINING_PARAMS` of S's JSON settings, as ``set_params`` takes them."""
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in segmenter_settings.items() if key in TRAINING_PARAMS}


#: The ranking settings of a session and the values each may take: ``fusion`` (the
#: iterative score: ``"rank"``, E_sdr fused with S's probability, or None, E_sdr alone) and
#: ``region`` (the rule of E_sdr's regions).
RANKING_RULES: dict[str, tuple[Any, ...]] = {"fusion": FUSION_RULES, "region": REGION_RULES}


def ranking_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ranking rule of a session's settings: ``fusion`` and ``region``, with the values
    of the sessions made before each was a setting (None: E_sdr alone; ``"threshold"``).

    Examples
    --------
    >>> from sid4ds.session.configure import ranking_settings
    >>> ranking_settings({})
    {'fusion': None, 'region': 'threshold'}
    """
    return {"fusion": settings.get("fusion"), "region": settings.get("region", "threshold")}


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in values.items()}


def check_ranking(ranking: Mapping[str, Any]) -> dict[str, Any]:
    """Ranking settings (:data:`RANKING_RULES`), checked; the word ``"none"`` is None.

    Raises
    ------
    SessionError
        For an unknown key or a value not allowed, naming it and what it may be.

    Examples
    --------
    >>> from sid4ds.session.configure import check_ranking
    >>> check_ranking({"fusion": "none"})
    {'fusion': None}
    """
    checked = {}
    for key, value in ranking.items():
        if key not in RANKING_RULES:
            raise SessionError(f"unknown ranking setting {key!r}; use "
                               f"{' or '.join(RANKING_RULES)}")
        if isinstance(value, str) and value.lower() == "none":
            value = None  # the command line's word for E_sdr alone
        try:
            checked[key] = check_choice(value, key, RANKING_RULES[key])
        except ValueError as error:
            raise SessionError(f"ranking setting: {error}") from None
    return checked


def configure_session(store: SessionStore, segmenter: dict[str, Any] | None,
                      final: dict[str, Any] | None,
                      ranking: dict[str, Any] | None = None) -> dict[str, Any]:
    """Change and return the settings (see ``LabelingSession.configure``)."""
    segmenter, final = dict(segmenter or {}), dict(final or {})
    ranking = check_ranking(dict(ranking or {}))
    with store.locked("configure") as manifest:
        settings = manifest["settings"]
        changed: dict[str, dict[str, Any]] = {}
        if ranking:
            before = ranking_settings(settings)
            changed["ranking"] = {key: value for key, value in ranking.items()
                                  if before[key] != value}
        if segmenter:
            trained = "S" in manifest["models"]
            for key in segmenter:
                if key in _SESSION_PARAMS:
                    raise SessionError(
                        f"segmenter setting {key!r} is not set this way: the session decides "
                        f"it (the seed is the session's; device and verbosity are chosen per "
                        f"command)")
                if trained and key not in TRAINING_PARAMS:
                    known = key in SegmentationLearner().get_params(deep=False)
                    raise SessionError(
                        f"segmenter setting {key!r} cannot change now: "
                        + ("S is trained and goes on from its weights, which keep their "
                           "network and optimiser" if known else "S has no such parameter")
                        + f"; the ones that can: {', '.join(TRAINING_PARAMS)}")
            merged = {**settings["segmenter"], **_json(segmenter)}
            try:
                SegmentationLearner.from_params(merged).check_params()
            except (TypeError, ValueError) as error:
                raise SessionError(f"segmenter setting: {error}") from None
            changed["segmenter"] = {key: merged[key] for key in segmenter
                                    if settings["segmenter"].get(key) != merged[key]}
        if final:
            merged_final = final_settings({**settings.get("final", {}), **final})
            changed["final"] = {key: merged_final[key] for key in final
                                if settings.get("final", {}).get(key) != merged_final[key]}
        changed = {part: values for part, values in changed.items() if values}
        if changed:
            if "segmenter" in changed:
                settings["segmenter"] = {**settings["segmenter"], **changed["segmenter"]}
            if "final" in changed:
                settings["final"] = final_settings({**settings.get("final", {}),
                                                    **changed["final"]})
            if "ranking" in changed:
                settings.update(changed["ranking"])  # type: ignore[typeddict-item]
            manifest.setdefault("settings_changes", []).append(
                {"changed": now(), "round": len(manifest["rounds"]), **changed})
            store.commit()
        return {"changed": changed, "segmenter": dict(settings["segmenter"]),
                "ranking": ranking_settings(settings),
                "final": final_settings(settings.get("final"))}
