"""The model out of the session: the final model, its predictions and its export.

- ``sid4ds train``: the final model F (:mod:`sid4ds.estimators.final_model`): a fresh S trained on
  every label (and, by the session's final settings, the last round's fake normals), its
  threshold and training length chosen by cross-validation over the labelled images
  (grouped by source file), with the estimate of how well it does on new images. It is
  saved as ``models/F_rNNN.pt``; its cross-validation is kept in the manifest. The S of the
  rounds is not changed.
- ``sid4ds predict``: the final model's masks and per-image defect scores for new images,
  read with the session's preprocessing (resizing, tiling, colour mode); the S of the
  rounds, with a warning, before ``sid4ds train``.
- ``sid4ds export --format model``: that model as ``segmenter.pt`` (its state, which
  :meth:`sid4ds.SegmentationLearner.load` reads with ``weights_only=True``), the bare
  network's ``unet_state_dict.pt`` (for plain PyTorch, with :class:`sid4ds.nn.unet.UNet`) and
  ``segmenter.json`` (the settings, threshold, estimate and the preprocessing).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sid4ds._core.device import resolve_device, resolve_precision
from sid4ds._version import __version__
from sid4ds.datasets.imageio import join_pieces, tile_positions
from sid4ds.datasets.pool import ImagePool, is_path_sequence
from sid4ds.engine.rounds import format_duration
from sid4ds.estimators.final_model import (
    CrossValidation,
    check_final_settings,
    final_model_seconds,
    train_final_model,
)
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows
from sid4ds.session.audit import audit_estimate_weights
from sid4ds.session.errors import SessionError
from sid4ds.session.ingest import read_images_like
from sid4ds.session.models import new_model
from sid4ds.session.query import say
from sid4ds.session.storage import csv_text, png_bytes, replace_folder, write_bytes, write_text
from sid4ds.session.store import SessionStore

__all__ = ["cross_validation", "deliverable_model", "export_model", "final_summary",
           "new_output_folder", "predict_images", "session_final_model", "session_segmenter",
           "train_final", "trains_alike"]


def session_segmenter(store: SessionStore, device: Any = "auto") -> SegmentationLearner:
    """The session's newest S of the rounds (see ``LabelingSession.segmenter``)."""
    segmenter = store.model("S", device)
    if segmenter is None:
        raise SessionError(
            f"session {store.path} has no segmentation learner yet: it is trained once a "
            f"defective and a normal image are labelled; label a round, then run `sid4ds "
            f"train {store.path}`"
        )
    return segmenter


def session_final_model(store: SessionStore, device: Any = "auto") -> SegmentationLearner:
    """The session's final model F (see ``LabelingSession.final_model``)."""
    model = store.model("F", device)
    if model is None:
        raise SessionError(f"session {store.path} has no final model yet: run "
                           f"`sid4ds train {store.path}`")
    return model


def deliverable_model(store: SessionStore, device: Any = "auto") -> tuple[SegmentationLearner,
                                                                        str]:
    """The model ``predict`` and ``export`` deliver: the final model F when trained, else
    the S of the rounds (with a warning on stderr); and its kind, ``"F"`` or ``"S"``."""
    final = store.model("F", device)
    if final is not None:
        return final, "F"
    segmenter = session_segmenter(store, device)
    print(f"[sid4ds] warning: no final model yet: using the S of the rounds, trained for "
          f"ranking, at threshold {segmenter.threshold:g}; run `sid4ds train {store.path}` "
          f"for a model with a cross-validated threshold and an estimate of how good it is",
          file=sys.stderr, flush=True)
    return segmenter, "S"


def final_summary(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a final model's manifest entry tells the user (None without one).

    Returns
    -------
    summary : dict or None
        ``round``, ``threshold``, ``n_steps``, ``n_folds``, ``defect_ratio``,
        ``estimate`` (mean and std over folds of ``iou``, ``detected``, ``false_alarms``,
        on the labelled images), ``weighted_estimate`` (the same weighted to the pool by
        the random audit of round ``audit_round``; None without an audit),
        ``audit_round``, ``n_training``, ``n_fake_normals``, ``settings``.
    """
    if entry is None or "cross_validation" not in entry:
        return None
    cv = entry["cross_validation"]
    return {"round": entry["round"], "threshold": cv["threshold"], "n_steps": cv["n_steps"],
            "n_folds": len(cv["n_defective"]), "defect_ratio": cv["defect_ratio"],
            "estimate": cv["estimate"], "weighted_estimate": cv.get("weighted_estimate"),
            "audit_round": entry.get("audit_round"), "n_training": entry.get("n_training"),
            "n_fake_normals": entry.get("n_fake_normals"), "settings": entry.get("settings")}


def _groups(store: SessionStore, names: list[str]) -> np.ndarray:
    """The source file of each image (its name when it came from an array): tiles of one
    file share a group."""
    pool = store.pool()
    sources = [str(pool.sources[pool.index[name]]) for name in names]
    return np.array([source or name for source, name in zip(sources, names, strict=True)])


def trains_alike(stored: Mapping[str, Any] | None, final: Mapping[str, Any],
                 device: torch.device) -> bool:
    """Whether a final model trained with the ``stored`` settings is the one ``final``
    would train on ``device``.

    The same settings, with each precision compared as it resolves there (``"auto"`` is
    fp32 on a CPU without AMX), whatever ``parallel_fits`` (how the fits share the cores,
    not what they learn). Settings stored before the precision was one of them trained in
    fp32.

    Parameters
    ----------
    stored : mapping or None
        The settings the session's final model was trained with (None: no model yet).
    final : mapping
        The session's final-model settings now
        (:func:`sid4ds.estimators.final_model.check_final_settings`).
    device : torch.device
        Where the next ``train`` would train.

    Returns
    -------
    alike : bool

    Examples
    --------
    >>> import torch
    >>> from sid4ds.session.deliver import trains_alike
    >>> trains_alike({"max_steps": 1600}, {"max_steps": 1600, "precision": "fp32"},
    ...              torch.device("cpu"))
    True
    >>> trains_alike({"max_steps": 800}, {"max_steps": 1600, "precision": "fp32"},
    ...              torch.device("cpu"))
    False
    >>> trains_alike({"max_steps": 1600, "precision": "fp32"},
    ...              {"max_steps": 1600, "precision": "fp32", "parallel_fits": 1},
    ...              torch.device("cpu"))
    True
    """
    if stored is None:
        return False

    def resolved(settings: Mapping[str, Any]) -> dict[str, Any]:
        precision = resolve_precision(settings.get("precision", "fp32"), device,
                                      training=True)
        return {**{key: value for key, value in settings.items() if key != "parallel_fits"},
                "precision": precision}

    return resolved(stored) == resolved(final)


def train_final(store: SessionStore, *, device: Any, verbose: int) -> dict[str, Any]:
    """Train the final model F (see ``LabelingSession.train``)."""
    training_device = resolve_device(device)  # a bad device fails before the lock
    with store.locked("train") as manifest:
        settings = manifest["settings"]
        try:
            final = check_final_settings(settings.get("final"))
        except (TypeError, ValueError) as error:
            raise SessionError(f"the session's final-model settings: {error}; change them "
                               f"with `sid4ds configure {store.path} --final KEY=VALUE`"
                               ) from None
        labeled, fake = store.labeled_names(), store.fake_normals()
        X_train, y_train = store.training_set()
        train_only = np.r_[np.zeros(len(labeled), bool), np.ones(len(fake), bool)]
        defective = defective_rows(y_train)
        normal = (~defective) if final["fake_normals"] else (~defective & ~train_only)
        if defective.sum() < 2 or not normal.any():
            raise SessionError(
                f"the final model needs at least 2 defective images (to cross-validate) and "
                f"a normal one; the session has {int(defective.sum())} defective and "
                f"{int(normal.sum())} normal labelled images"
                + (" and fake normals" if final["fake_normals"] else "")
                + ": label more first")
        round_index = len(manifest["rounds"])
        entry = manifest["models"].get("F")
        if (entry is not None and entry["round"] == round_index
                and trains_alike(entry.get("settings"), final, training_device)
                and entry.get("segmenter_settings") == settings["segmenter"]
                and not store.labels_not_seen("F")):
            say(verbose, "the final model is already trained on every label with these "
                         "settings: nothing to do")
            return {**final_summary(entry), "trained": False}
        if final["start"] == "in_loop":
            segmenter = store.model("S", device, verbose)
            if segmenter is None:
                raise SessionError(
                    f"the final settings say start='in_loop', but session {store.path} has "
                    f"no S of the rounds yet; run a round, or `sid4ds configure "
                    f"{store.path} --final start=scratch`")
        else:
            segmenter = new_model("S", settings, device, verbose)
        if verbose:
            seconds = final_model_seconds(segmenter, len(X_train), tuple(X_train.shape[1:]),
                                          final)
            say(verbose, f"training the final model: {final['n_folds']}-fold "
                         f"cross-validation and the final fit, {final['max_steps']} steps each "
                         f"(about {format_duration(seconds)} here, from a short warm-up)")
        weights, audit_round = audit_estimate_weights(manifest, [*labeled, *fake])
        if verbose and audit_round is not None:
            say(verbose, f"the estimate is also weighted to the pool by the random audit of "
                         f"round {audit_round}")
        try:
            model, cv = train_final_model(
                segmenter, X_train, y_train, train_only=train_only,
                groups=_groups(store, [*labeled, *fake]), settings=final,
                defect_ratio=float(settings["defect_ratio"]) or None,
                estimate_weight=weights,
                random_state=int(settings["seed"]),
                say=(lambda message: say(verbose, message)) if verbose else None)
        except ValueError as error:
            raise SessionError(f"the final model: {error}") from None
        n_fake = len(fake) if final["fake_normals"] else 0
        store.keep_model("F", round_index, model, cross_validation=cv.to_dict(),
                         settings=final, segmenter_settings=settings["segmenter"],
                         n_training=len(labeled) + n_fake, n_fake_normals=n_fake,
                         audit_round=audit_round)
        say(verbose, f"final model: {cv.summary()}")
        return {**final_summary(store.manifest["models"]["F"]), "trained": True}


def cross_validation(store: SessionStore) -> CrossValidation | None:
    """The cross-validation of the session's final model, or None."""
    entry = store.manifest["models"].get("F")
    if entry is None or "cross_validation" not in entry:
        return None
    return CrossValidation.from_dict(entry["cross_validation"])


def predict_images(store: SessionStore, images: Any, out: str | os.PathLike[str], *,
                   threshold: float | None, device: Any, overwrite: bool,
                   skip_unreadable: bool) -> Path:
    """The final model's masks and scores for new images (see ``LabelingSession.predict``)."""
    segmenter, kind = deliverable_model(store, device)
    if threshold is not None:
        segmenter.set_params(threshold=threshold)
        segmenter.check_params()
    stale = store.labels_not_seen(kind)
    if stale:
        what = "the final model" if kind == "F" else "S"
        print(f"[sid4ds] warning: {what} was trained before {stale} of the labels; run "
              f"`sid4ds train {store.path}` to use them", file=sys.stderr, flush=True)
    keep: tuple[tuple[str, Any], ...] = (("the session", store.path),)
    if isinstance(images, (str, os.PathLike)):
        keep += (("the images", images),)
    target = new_output_folder(out, overwrite, keep=keep)
    settings = store.manifest["settings"]
    items, described = read_images_like(settings, images, skip_unreadable=skip_unreadable)
    cutting = {"image_size": tuple(settings["image_size"]) if settings.get("image_size")
               else None, "tile_size": tuple(settings["tile"]) if settings.get("tile")
               else None}
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    rows = []
    try:
        batch: list[tuple[str, str, tuple[int, int], list[np.ndarray]]] = []
        for original in _originals(items, images, cutting["tile_size"]):
            batch.append(original)
            if sum(len(pieces) for *_, pieces in batch) >= 64:
                rows += _predict_batch(segmenter, batch, cutting, staging)
                batch = []
        if batch:
            rows += _predict_batch(segmenter, batch, cutting, staging)
        if not rows:
            raise SessionError(f"no readable images in {described}")
        write_text(staging / "scores.csv", csv_text(
            ["name", "defect_score", "defect_pixels", "defective", "mask", "source", "height",
             "width"], rows))
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _originals(items: Any, images: Any, tile_size: tuple[int, int] | None
               ) -> Any:
    """The pieces ``read_images_like`` yields, gathered by the image they were cut from:
    ``(name, source, (height, width), pieces)`` per image, at its own size (read from the
    file's header; an array's images all have the array's size)."""
    array_size = None
    if not (isinstance(images, (str, os.PathLike)) or is_path_sequence(images)):
        array_size = tuple(ImagePool(images, name="images").image_shape[1:])
    current: list[Any] | None = None
    for name, source, piece in items:
        if current is None:
            if source:
                with Image.open(source) as opened:
                    width, height = opened.size
                size = (height, width)
            else:
                size = array_size
            count = len(tile_positions(size, tile_size)) if tile_size is not None else 1
            base = name.rsplit("_t", 1)[0] if tile_size is not None else name
            current = [base, source, size, count, []]
        current[4].append(piece)
        if len(current[4]) == current[3]:
            yield current[0], current[1], current[2], current[4]
            current = None


def _predict_batch(segmenter: SegmentationLearner,
                   batch: list[tuple[str, str, tuple[int, int], list[np.ndarray]]],
                   cutting: dict[str, Any], folder: Path) -> list[list[Any]]:
    probabilities = iter(segmenter.predict_proba(
        np.stack([piece for *_, pieces in batch for piece in pieces])))
    rows = []
    for name, source, size, pieces in batch:
        joined = join_pieces([next(probabilities) for _ in pieces], size, **cutting)
        mask = (joined >= segmenter.threshold).astype(np.uint8)
        write_bytes(folder / "masks" / f"{name}.png", png_bytes(mask * 255))
        rows.append([name, f"{float(joined.max()):.6g}", int(mask.sum()), int(mask.any()),
                     f"masks/{name}.png", source, size[0], size[1]])
    return rows


def new_output_folder(out: str | os.PathLike[str], overwrite: bool, *,
                      keep: tuple[tuple[str, Any], ...] = ()) -> Path:
    """``out`` as the output folder of a command: new, empty, or replaced (``overwrite``),
    but never one that is or holds a folder of ``keep`` (``(what, folder)`` pairs, e.g.
    the session): replacing it would delete them."""
    target = Path(out)
    resolved = target.resolve()
    for what, folder in keep:
        folder = Path(folder).resolve()
        if resolved == folder or resolved in folder.parents:
            raise SessionError(f"{target} is or holds {what} ({folder}); replacing it would "
                               f"delete them: choose another output folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise SessionError(f"{target} already exists and is not empty; choose a new folder, "
                           f"or pass overwrite=True (--overwrite) to replace it")
    return target


def export_model(store: SessionStore, out: Path) -> None:
    """Write the final model (else S) into the folder ``out`` (see the module docstring)."""
    import torch

    segmenter, kind = deliverable_model(store, "cpu")
    stale = store.labels_not_seen(kind)
    buffer = io.BytesIO()
    torch.save(segmenter.get_state(), buffer)
    write_bytes(out / "segmenter.pt", buffer.getvalue())
    buffer = io.BytesIO()
    torch.save({key: value.detach().cpu() for key, value in
                segmenter.module_.state_dict().items()}, buffer)
    write_bytes(out / "unet_state_dict.pt", buffer.getvalue())
    settings = store.manifest["settings"]
    write_text(out / "segmenter.json", json.dumps({
        "load": "sid4ds.SegmentationLearner.load('segmenter.pt') (weights_only); or "
                "sid4ds.nn.unet.UNet(**unet).load_state_dict(torch.load('unet_state_dict.pt', "
                "weights_only=True)) and sigmoid(output) >= threshold",
        "sid4ds": __version__, "session": store.path.name,
        "model": ("the final model (sid4ds train)" if kind == "F" else
                  "the S of the rounds (no final model yet: run sid4ds train)"),
        "trained_for_round": store.manifest["models"][kind]["round"],
        "labels_not_seen": stale,
        "threshold": segmenter.threshold,
        "cross_validation": final_summary(store.manifest["models"][kind]),
        "unet": segmenter.network_kwargs(),
        "preprocessing": {
            "image_size": settings["image_size"], "tile": settings["tile"],
            "mode": settings["mode"], "image_shape": list(segmenter.image_shape_),
            "scale": "pixels / 255 (8-bit) or / 65535 (16-bit): floats in [0, 1]",
        },
        "params": segmenter.get_state()["params"],
    }, indent=1) + "\n")
