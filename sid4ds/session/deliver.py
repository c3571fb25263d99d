"""The model out of the session: train S on every label, predict new images, export S.

- ``sid4ds train``: S trained on everything labelled (and the last round's fake normals),
  from its previous weights; the next ``query`` uses it as is, so nothing is trained twice.
- ``sid4ds predict``: S's masks and per-image defect scores for new images, read with the
  session's preprocessing (resizing, tiling, colour mode).
- ``sid4ds export --format model``: S as ``segmenter.pt`` (its state, which
  :meth:`sid4ds.SegmentationLearner.load` reads with ``weights_only=True``), the bare
  network's ``unet_state_dict.pt`` (for plain PyTorch, with :class:`sid4ds.nets.UNet`) and
  ``segmenter.json`` (the settings and the preprocessing).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._device import resolve_device
from sid4ds._version import __version__
from sid4ds.metrics import defective_rows
from sid4ds.rounds import round_stage
from sid4ds.segmentation import SegmentationLearner
from sid4ds.session.errors import SessionError
from sid4ds.session.ingest import read_images_like
from sid4ds.session.query import say, session_engine
from sid4ds.session.storage import csv_text, png_bytes, replace_folder, write_bytes, write_text
from sid4ds.session.store import SessionStore

__all__ = ["export_model", "new_output_folder", "predict_images", "session_segmenter",
           "train_segmenter"]


def session_segmenter(store: SessionStore, device: Any = "auto") -> SegmentationLearner:
    """The session's newest S (see ``LabelingSession.segmenter``)."""
    segmenter = store.model("S", device)
    if segmenter is None:
        raise SessionError(
            f"session {store.path} has no segmentation learner yet: it is trained once a "
            f"defective and a normal image are labelled; label a round, then run `sid4ds "
            f"train {store.path}`"
        )
    return segmenter


def train_segmenter(store: SessionStore, *, device: Any, verbose: int) -> dict[str, Any]:
    """Train S on the labelled set now (see ``LabelingSession.train``)."""
    resolve_device(device)
    with store.locked("train") as manifest:
        X_train, y_train = store.training_set()
        if round_stage(y_train)[0] != "iterative":  # the round engine's rule for S
            defective = defective_rows(y_train)
            raise SessionError(
                f"S needs a defective and a normal image to learn from; the session has "
                f"{int(np.sum(defective))} defective of {len(y_train)} labelled images and "
                f"fake normals: label more first"
            )
        round_index = len(manifest["rounds"])
        entry = manifest["models"].get("S")
        if (entry is not None and entry["round"] == round_index
                and not store.labels_not_seen("S")):
            say(verbose, "S is already trained on every label: nothing to do")
            return {"round": round_index, "n_training": len(X_train), "trained": False}
        # the round engine's rule (from S's previous weights), saved as a query saves it
        engine = session_engine(store, "auto", device, verbose, round_index, command="train")
        engine.fit_segmenter(X_train, y_train, round_index)
        return {"round": round_index, "n_training": len(X_train), "trained": True}


def predict_images(store: SessionStore, images: Any, out: str | os.PathLike[str], *,
                   threshold: float | None, device: Any, overwrite: bool,
                   skip_unreadable: bool) -> Path:
    """S's masks and scores for new images (see ``LabelingSession.predict``)."""
    segmenter = session_segmenter(store, device)
    if threshold is not None:
        segmenter.set_params(threshold=threshold)
        segmenter.check_params()
    stale = store.labels_not_seen("S")
    if stale:
        print(f"[sid4ds] warning: S was trained before {stale} of the labels; run `sid4ds "
              f"train {store.path}` to use them", file=sys.stderr, flush=True)
    keep: tuple[tuple[str, Any], ...] = (("the session", store.path),)
    if isinstance(images, (str, os.PathLike)):
        keep += (("the images", images),)
    target = new_output_folder(out, overwrite, keep=keep)
    items, described = read_images_like(store.manifest["settings"], images,
                                        skip_unreadable=skip_unreadable)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    rows = []
    try:
        batch: list[tuple[str, str, np.ndarray]] = []
        for item in items:
            batch.append(item)
            if len(batch) == 64:
                rows += _predict_batch(segmenter, batch, staging)
                batch = []
        if batch:
            rows += _predict_batch(segmenter, batch, staging)
        if not rows:
            raise SessionError(f"no readable images in {described}")
        write_text(staging / "scores.csv", csv_text(
            ["name", "defect_score", "defect_pixels", "defective", "mask", "source"], rows))
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _predict_batch(segmenter: SegmentationLearner, batch: list[tuple[str, str, np.ndarray]],
                   folder: Path) -> list[list[Any]]:
    images = np.stack([image for _, _, image in batch])
    probabilities = segmenter.predict_proba(images)
    rows = []
    for (name, source, _), probability in zip(batch, probabilities, strict=True):
        mask = (probability >= segmenter.threshold).astype(np.uint8)
        write_bytes(folder / "masks" / f"{name}.png", png_bytes(mask * 255))
        rows.append([name, f"{float(probability.max()):.6g}", int(mask.sum()),
                     int(mask.any()), f"masks/{name}.png", source])
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
    """Write S into the folder ``out`` (see the module docstring)."""
    import torch

    segmenter = session_segmenter(store, "cpu")
    stale = store.labels_not_seen("S")
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
                "sid4ds.nets.UNet(**unet).load_state_dict(torch.load('unet_state_dict.pt', "
                "weights_only=True)) and sigmoid(output) >= threshold",
        "sid4ds": __version__, "session": store.path.name,
        "trained_for_round": store.manifest["models"]["S"]["round"],
        "labels_not_seen": stale,
        "threshold": segmenter.threshold,
        "unet": segmenter.network_kwargs(),
        "preprocessing": {
            "image_size": settings["image_size"], "tile": settings["tile"],
            "mode": settings["mode"], "image_shape": list(segmenter.image_shape_),
            "scale": "pixels / 255 (8-bit) or / 65535 (16-bit): floats in [0, 1]",
        },
        "params": segmenter.get_state()["params"],
    }, indent=1) + "\n")
