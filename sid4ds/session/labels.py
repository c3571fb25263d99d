"""``sid4ds import``: the labeller's masks back into the session.

Masks come from a folder of mask files or a Label Studio JSON export. Every file is
checked first (readable, binary, the image's size, an image the session asked for or
already knows); if any is wrong nothing is imported and the message names each problem.
Masks are copied into the session (and fsynced) before the manifest marks their images
labelled.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import describe_size
from sid4ds.datasets.folders import list_image_files, suffix_hint
from sid4ds.datasets.imageio import IMAGE_EXTENSIONS
from sid4ds.session.codecs import brush_rle_to_mask
from sid4ds.session.errors import SessionError, SessionWarning
from sid4ds.session.ingest import read_binary_mask
from sid4ds.session.storage import FileBatch, test_hook
from sid4ds.session.store import SessionStore, asked_names

__all__ = ["import_coco", "import_label_studio", "import_masks"]


def import_masks(
    store: SessionStore,
    folder: str | os.PathLike[str],
    *,
    mask_suffix: str = "",
    replace: bool = False,
    any_image: bool = False,
) -> dict[str, list[str]]:
    """Import a folder of mask files (see :meth:`LabelingSession.import_masks`)."""
    source = Path(folder)
    if not source.is_dir():
        raise SessionError(f"masks folder {source} does not exist or is not a folder")
    files = list_image_files(source, recursive=False)
    if not files:
        raise SessionError(
            f"no mask files ({', '.join(IMAGE_EXTENSIONS)}) in {source}; save one mask "
            f"per labelled image there, named like the image"
        )
    with store.locked("import"):
        problems: list[str] = []
        candidates: list[tuple[str, np.ndarray, str]] = []
        seen: dict[str, Path] = {}
        shape = store.image_shape()
        for stem, path in files:
            name = stem[: -len(mask_suffix)] if mask_suffix and stem.endswith(
                mask_suffix) else stem
            if name in seen:
                problems.append(f"two mask files are for image {name!r}: {seen[name]} and "
                                f"{path}; remove one of them")
                continue
            seen[name] = path
            try:
                mask = read_binary_mask(path)
            except SessionError as error:
                problems.append(str(error))
                continue
            if mask.shape != shape:
                problems.append(
                    f"mask file {path} is {describe_size(mask.shape)} but image "
                    f"{name!r} is {describe_size(shape)} in this session; draw the "
                    f"mask on the image the session wrote (rounds/NNN/images/{name}.png)")
                continue
            candidates.append((name, mask, str(path)))
        return _import(store, candidates, problems, replace, f"folder {source}", any_image)

def import_label_studio(
    store: SessionStore,
    export: str | os.PathLike[str],
    *,
    replace: bool = False,
    any_image: bool = False,
) -> dict[str, list[str]]:
    """Import a Label Studio JSON export (see :meth:`LabelingSession.import_label_studio`)."""
    file = Path(export)
    try:
        tasks = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SessionError(f"cannot read Label Studio export {file}: {error}") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise SessionError(f"{file} is not a Label Studio JSON export (a list of tasks)")
    with store.locked("import"):
        pool = store.pool_index()
        problems: list[str] = []
        candidates: list[tuple[str, np.ndarray, str]] = []
        not_annotated: list[str] = []
        annotated_in: dict[str, str] = {}
        shape = store.image_shape()
        for number, task in enumerate(tasks, start=1):
            where = f"task {task.get('id', f'#{number}')} of {file}"
            name = _label_studio_name(task, pool.index)
            if name is None:
                problems.append(f"{where}: cannot tell which session image it is (data: "
                                f"{json.dumps(task.get('data'))[:120]}); keep "
                                f"data.sid4ds_name or the image's file name")
                continue
            annotations = [entry for entry in task.get("annotations") or []
                           if isinstance(entry, dict) and not entry.get("was_cancelled")]
            if not annotations:
                not_annotated.append(name)
                continue
            if name in annotated_in:
                problems.append(f"{where}: image {name!r} is also annotated in "
                                f"{annotated_in[name]}; keep one task per image (tasks "
                                f"imported twice, or a synced storage, make copies)")
                continue
            annotated_in[name] = where
            mask = np.zeros(shape, np.uint8)
            try:
                for result in annotations[-1].get("result") or []:
                    mask |= _decode_label_studio_result(result, shape)
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                problems.append(f"{where} (image {name!r}): malformed result: "
                                f"{type(error).__name__}: {error}")
                continue
            candidates.append((name, mask, where))
        summary = _import(store, candidates, problems, replace, f"export {file}", any_image)
        summary["not_annotated"] = not_annotated
        return summary


def import_coco(
    store: SessionStore,
    annotations: str | os.PathLike[str],
    *,
    replace: bool = False,
    any_image: bool = False,
) -> dict[str, list[str]]:
    """Import a COCO annotations file (see :meth:`LabelingSession.import_coco`)."""
    from pycocotools.coco import COCO

    file = Path(annotations)
    if not file.is_file():
        raise SessionError(f"COCO annotations file {file} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
            coco = COCO(str(file))
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as error:
        raise SessionError(f"cannot read COCO annotations {file}: {type(error).__name__}: "
                           f"{error}") from None
    with store.locked("import"):
        shape = store.image_shape()
        problems: list[str] = []
        candidates: list[tuple[str, np.ndarray, str]] = []
        listed_in: dict[str, str] = {}
        for image_id, image in sorted(coco.imgs.items()):
            where = f"image {image_id} ({image.get('file_name')}) of {file}"
            name = Path(str(image.get("file_name", ""))).stem
            if name in listed_in:
                problems.append(f"{where}: image {name!r} is also {listed_in[name]}; keep one "
                                f"COCO image per session image")
                continue
            listed_in[name] = where
            size = (int(image.get("height", 0)), int(image.get("width", 0)))
            if size != shape:
                problems.append(f"{where} is {describe_size(size)} but the session's images are "
                                f"{describe_size(shape)}; annotate the images the session "
                                f"exported")
                continue
            mask = np.zeros(shape, np.uint8)
            try:
                for annotation in coco.imgToAnns.get(image_id, []):
                    mask |= coco.annToMask(annotation).astype(np.uint8)
            except (ValueError, KeyError, TypeError, IndexError) as error:
                problems.append(f"{where}: malformed segmentation: {type(error).__name__}: "
                                f"{error}")
                continue
            candidates.append((name, mask, where))
        for image_id in sorted(set(coco.imgToAnns) - set(coco.imgs), key=str):
            numbers = ", ".join(str(annotation.get("id")) for annotation in
                                coco.imgToAnns[image_id])
            problems.append(f"annotations {numbers} of {file} are of image_id {image_id!r}, "
                            f"which its \"images\" list lacks; add that image (file_name, "
                            f"height, width) or remove the annotations")
        return _import(store, candidates, problems, replace, f"COCO file {file}", any_image)

def _label_studio_name(task: dict[str, Any], index: dict[str, int]) -> str | None:
    data = task.get("data") or {}
    if isinstance(data.get("sid4ds_name"), str) and data["sid4ds_name"] in index:
        return data["sid4ds_name"]
    image = data.get("image")
    if not isinstance(image, str):
        return None
    stem = Path(image.split("?d=")[-1].split("/")[-1]).stem
    for candidate in (stem, re.sub(r"^[0-9a-f]{8}-", "", stem)):
        if candidate in index:
            return candidate
    return None

def _decode_label_studio_result(result: dict[str, Any],
                                shape: tuple[int, int]) -> np.ndarray:
    kind = result.get("type")
    if kind not in ("brushlabels", "brush"):
        raise ValueError(f"result type {kind!r} is not supported; draw masks with the "
                         f"brush tool (BrushLabels)")
    value = result["value"]
    if value.get("format") != "rle":
        raise ValueError(f"brush format {value.get('format')!r} is not supported, only "
                         f"'rle'")
    height, width = int(result["original_height"]), int(result["original_width"])
    if (height, width) != shape:
        raise ValueError(f"the annotation is {describe_size((height, width))} but the "
                         f"session's image is {describe_size(shape)}; annotate the "
                         f"image the session exported")
    return brush_rle_to_mask(value["rle"], height, width)

def _import(store: SessionStore, candidates: list[tuple[str, np.ndarray, str]],
            problems: list[str], replace: bool, origin: str,
            any_image: bool = False) -> dict[str, list[str]]:
    """Check names against the session, then copy masks and commit (lock held)."""
    manifest = store.manifest
    pool = store.pool_index()
    labels = manifest["labels"]
    asked_in = {name: record["round"] for record in manifest["rounds"]
                for name in asked_names(record)}
    was_fake_normal = {name: record["round"] for record in manifest["rounds"]
                       for name in record["fake_normals"]}
    accepted: list[tuple[str, np.ndarray, str, str]] = []
    for name, mask, where in candidates:
        if name not in pool.index:
            problems.append(f"{where}: the session has no image named {name!r}; masks are "
                            f"matched to images by file name without extension"
                            + suffix_hint(name, pool.index))
        elif name not in asked_in and name not in labels and not any_image:
            problems.append(f"{where}: image {name!r} was not asked for by any round; "
                            f"the session takes masks for the images listed in "
                            f"rounds/NNN/to_label.csv, or for any image with any_image=True "
                            f"(--any), e.g. a fake normal you saw a defect in")
        elif name in labels:
            try:
                same = np.array_equal(store.load_mask(name), mask)
            except SessionError:  # the stored copy is damaged: replace may fix it
                same = False
            if same:
                accepted.append((name, mask, where, "unchanged"))
            elif not replace:
                problems.append(f"{where}: image {name!r} is already labelled with a "
                                f"different mask; pass replace=True (--replace) to "
                                f"replace it")
            else:
                accepted.append((name, mask, where, "replaced"))
        else:
            accepted.append((name, mask, where, "added"))
    if problems:
        shown = problems[:20]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SessionError(
            f"nothing was imported from {origin}; fix these and import again:\n  "
            + "\n  ".join(shown) + more)
    summary: dict[str, list[str]] = {"added": [], "replaced": [], "unchanged": [],
                                     "defective_fake_normals": []}
    replaced_files = []
    batch = FileBatch(store.path)
    for name, mask, where, outcome in accepted:
        summary[outcome].append(name)
        if outcome == "unchanged":
            continue
        if mask.any() and name in was_fake_normal:
            summary["defective_fake_normals"].append(name)
        version = labels[name]["version"] + 1 if name in labels else 1
        if name in labels:
            replaced_files.append(store.path / labels[name]["mask"])
        labels[name] = store.write_mask(name, mask, version=version,
                                        round_index=asked_in.get(name), source=where,
                                        batch=batch)
        if len(summary["added"]) + len(summary["replaced"]) == 1:
            test_hook("import:after-first-mask")
    batch.finish()
    test_hook("import:before-commit")
    if summary["added"] or summary["replaced"]:
        store.commit()
    for stale in replaced_files:
        with contextlib.suppress(OSError):
            stale.unlink()
    _warn_defective_fake_normals(summary["defective_fake_normals"], was_fake_normal)
    return summary


def _warn_defective_fake_normals(names: list[str], was_fake_normal: dict[str, int]) -> None:
    if not names:
        return
    rounds = sorted({was_fake_normal[name] for name in names})
    warnings.warn(
        f"{len(names)} of the imported masks show a defect in images that were fake normals "
        f"of round{'s' if len(rounds) > 1 else ''} {', '.join(map(str, rounds))} "
        f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}): S was taught they are "
        f"normal. Their masks now replace that; if it happens often, the pool is too varied "
        f"for fake normals: pass fewer (--normals) in the next queries",
        SessionWarning, stacklevel=3)
