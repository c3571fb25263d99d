"""``sid4ds export``: the labelled images and masks in formats other tools read.

``png`` (the MVTec AD / anomalib folder layout), ``coco`` (``annotations.json``) and
``label-studio`` (tasks with brush annotations and S's pre-annotations).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask
from scipy import ndimage

from sid4ds.session.codecs import mask_to_brush_rle, mask_to_coco_rle
from sid4ds.session.deliver import export_model, new_output_folder
from sid4ds.session.errors import SessionError
from sid4ds.session.storage import (
    now,
    png_bytes,
    replace_folder,
    to_uint8,
    write_bytes,
    write_json,
    write_text,
)
from sid4ds.session.store import PoolView, SessionStore

__all__ = ["EXPORT_FORMATS", "export_session"]

#: What ``sid4ds export --format`` writes.
EXPORT_FORMATS = ("png", "coco", "label-studio", "model")


def export_session(
    store: SessionStore,
    out: str | os.PathLike[str] | None = None,
    format: str = "png",
    *,
    image_url_prefix: str = "images/",
    device: Any = "auto",
    overwrite: bool = False,
) -> Path:
    """Export the labelled masks (see :meth:`LabelingSession.export`)."""
    if format not in EXPORT_FORMATS:
        raise SessionError(f"format must be one of {', '.join(EXPORT_FORMATS)}; got "
                           f"{format!r}")
    with store.locked("export") as manifest:
        target = new_output_folder(out if out is not None else
                                   store.path / "exports" / format, overwrite,
                                   keep=(("the session", store.path),))
        labeled = store.labeled_names()
        if not labeled and format not in ("label-studio", "model"):
            raise SessionError(f"session {store.path} has no labelled image yet; nothing "
                               f"to export (run `sid4ds query` and `sid4ds import`)")
        pool = store.pool()
        staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            if format == "png":
                _export_png(store, staging, pool, labeled)
            elif format == "coco":
                _export_coco(store, staging, pool, labeled)
            elif format == "model":
                export_model(store, staging)
            else:
                _export_label_studio(store, staging, pool, labeled, manifest,
                                          image_url_prefix, device)
            replace_folder(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

def _image_bytes(store: SessionStore, pool: PoolView, name: str) -> bytes:
    return png_bytes(to_uint8(pool.images[pool.index[name]]))

def _export_png(store: SessionStore, out: Path, pool: PoolView, labeled: list[str]) -> None:
    # always there, empty when every labelled image is normal: the folder that tells
    # load_image_folder (and anomalib) this is the MVTec layout, with masks
    (out / "ground_truth" / "defect").mkdir(parents=True, exist_ok=True)
    for name in labeled:
        mask = store.load_mask(name)
        if mask.any():
            write_bytes(out / "defect" / f"{name}.png", _image_bytes(store, pool, name))
            write_bytes(out / "ground_truth" / "defect" / f"{name}_mask.png",
                         png_bytes(mask * 255))
        else:
            write_bytes(out / "good" / f"{name}.png", _image_bytes(store, pool, name))

def _export_coco(store: SessionStore, out: Path, pool: PoolView, labeled: list[str]) -> None:
    height, width = store.image_shape()
    images, annotations = [], []
    for image_id, name in enumerate(labeled, start=1):
        write_bytes(out / "images" / f"{name}.png", _image_bytes(store, pool, name))
        images.append({"id": image_id, "file_name": f"images/{name}.png",
                       "height": height, "width": width})
        regions, n_regions = ndimage.label(store.load_mask(name),
                                           structure=np.ones((3, 3), dtype=int))
        for region in range(1, n_regions + 1):
            rle = mask_to_coco_rle(regions == region)
            encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                "segmentation": rle, "area": int(coco_mask.area(encoded)),
                "bbox": [int(value) for value in coco_mask.toBbox(encoded)], "iscrowd": 0,
            })
    write_json(out / "annotations.json", {
        "info": {"description": f"sid4ds labelling session {store.path.name}",
                 "date_created": now()},
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "defect", "supercategory": "defect"}],
    })


def _export_label_studio(store: SessionStore, out: Path, pool: PoolView, labeled: list[str],
                         manifest: dict[str, Any], prefix: str, device: Any) -> None:
    height, width = store.image_shape()
    waiting = store.waiting()
    predictions = None
    if waiting and "S" in manifest["models"]:
        segmenter = store.model("S", device)
        rows = [pool.index[name] for name in waiting]
        predictions = segmenter.predict(pool.images[rows])

    def brush(mask: np.ndarray) -> list[dict[str, Any]]:
        if not mask.any():
            return []
        return [{"id": "sid4ds", "from_name": "defect", "to_name": "image",
                 "type": "brushlabels", "original_width": width,
                 "original_height": height, "image_rotation": 0,
                 "value": {"format": "rle", "rle": mask_to_brush_rle(mask),
                           "brushlabels": ["defect"]}}]

    tasks = []
    for name in [*waiting, *labeled]:
        write_bytes(out / "images" / f"{name}.png", _image_bytes(store, pool, name))
        task: dict[str, Any] = {"data": {"image": f"{prefix}{name}.png",
                                         "sid4ds_name": name}}
        if name in manifest["labels"]:
            task["annotations"] = [{"result": brush(store.load_mask(name))}]
        elif predictions is not None:
            mask = predictions[waiting.index(name)]
            task["predictions"] = [{"model_version": f"sid4ds-S-round"
                                                     f"{manifest['models']['S']['round']}",
                                    "result": brush(mask)}]
        tasks.append(task)
    write_json(out / "tasks.json", tasks)
    write_text(out / "label_config.xml", (
        "<View>\n"
        "  <Image name=\"image\" value=\"$image\" zoom=\"true\"/>\n"
        "  <BrushLabels name=\"defect\" toName=\"image\">\n"
        "    <Label value=\"defect\" background=\"#ff0000\"/>\n"
        "  </BrushLabels>\n"
        "</View>\n"))

