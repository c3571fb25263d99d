"""Listing a folder's images and matching their masks, then reading them one at a time.

The loaders of :mod:`sid4ds.datasets` and the labelling session's ``init`` share these
functions: a name is a file's path relative to its folder, without extension, and a mask
belongs to the image of the same name once ``mask_suffix`` is removed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import PathLike, check_folder, describe_size
from sid4ds.datasets.imageio import (
    IMAGE_EXTENSIONS,
    NotBinaryMaskError,
    cut_pieces,
    read_image,
    read_mask,
)

__all__ = [
    "MVTEC_MASKS",
    "folder_layout",
    "folder_pairs",
    "index_by_name",
    "iter_pairs",
    "list_image_files",
    "load_pairs",
    "pair_images_and_masks",
    "strip_suffix",
    "suffix_hint",
]

#: Endings that mark a file as the mask of the image named without them.
MASK_LIKE_ENDINGS = ("mask", "masks", "label", "labels", "gt", "seg", "segmentation")


def list_image_files(
    folder: Path, recursive: bool, exclude: Path | None = None
) -> list[tuple[str, Path]]:
    """(relative name without extension, path) of the image files in a folder, sorted.

    Hidden files (names starting with ``.``, such as macOS ``._a.png`` resource forks) are
    ignored, and so is everything under ``exclude``.
    """
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    exclude_resolved = exclude.resolve() if exclude is not None else None
    listed = []
    for path in candidates:
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if not path.is_file():
            continue
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if exclude_resolved is not None and exclude_resolved in path.resolve().parents:
            continue
        listed.append((relative.with_suffix("").as_posix(), path))
    listed.sort(key=lambda item: (item[0], item[1].name))
    return listed


def index_by_name(files: list[tuple[str, Path]], kind: str) -> dict[str, Path]:
    """Map names to paths; two files with the same name are an error naming both."""
    index: dict[str, Path] = {}
    for name, path in files:
        if name in index:
            raise ValueError(
                f"two {kind} files share the name {name!r}: {index[name]} and {path}; "
                f"rename or remove one of them."
            )
        index[name] = path
    return index


def suffix_hint(name: str, names: Any) -> str:
    """``"; did you mean image 'a'? pass mask_suffix='_mask' ..."`` when an ending explains it.

    ``name`` (a mask's name) matches no image; if cutting an ending that starts with ``_``,
    ``-`` or ``.`` gives a name in ``names``, the hint says which ``mask_suffix`` removes
    it; otherwise it is ``""``.

    Examples
    --------
    >>> from sid4ds.datasets.folders import suffix_hint
    >>> print(suffix_hint("tile_130_mask", {"tile_130"}))  # doctest: +ELLIPSIS
    ; did you mean image 'tile_130'? pass mask_suffix='_mask' (--mask-suffix _mask) ...
    >>> suffix_hint("other", {"tile_130"})
    ''
    """
    ending = _image_ending(name, names)
    if ending is None:
        return ""
    stem, suffix = ending
    return (f"; did you mean image {stem!r}? pass mask_suffix={suffix!r} "
            f"(--mask-suffix {suffix}) to remove the ending")


def _image_ending(name: str, names: Any) -> tuple[str, str] | None:
    """(image name, ending) when ``name`` is an image name in ``names`` plus an ending."""
    for position in range(len(name) - 1, 0, -1):
        if name[position] in "_-." and name[:position] in names:
            return name[:position], name[position:]
    return None


def strip_suffix(name: str, mask_suffix: str) -> str:
    if mask_suffix and name.endswith(mask_suffix):
        return name[: -len(mask_suffix)]
    return name


def pair_images_and_masks(
    image_index: dict[str, Path],
    mask_index: dict[str, Path],
    images_folder: Path,
    on_error: str,
    stacklevel: int = 3,
) -> list[tuple[str, Path, Path | None]]:
    """Match masks to images by name; report masks without an image."""
    for name, mask_path in mask_index.items():
        if name not in image_index:
            message = (
                f"mask {mask_path} has no matching image {name}.<ext> in {images_folder}"
                f"{suffix_hint(name, image_index)}; fix its name, remove it, or pass "
                f"on_error='warn' to ignore it."
            )
            if on_error == "raise":
                raise ValueError(message)
            warnings.warn(message, UserWarning, stacklevel=stacklevel)
    return [(name, path, mask_index.get(name)) for name, path in image_index.items()]


def iter_pairs(
    pairs: Sequence[tuple[str, Path, Path | None]],
    *,
    image_size: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
    mode: str | None,
    on_error: str,
    mask_threshold: int | None = None,
) -> Iterator[tuple[str, Path, np.ndarray, np.ndarray]]:
    """Read, check, tile and resize matched (name, image, mask) files one at a time.

    Yields ``(name, image_path, image, mask)`` per image or tile: float32 (C, H, W) and uint8
    (H, W), zeros where the image has no mask (masks are read by
    :func:`~sid4ds.datasets.imageio.read_mask` with ``mask_threshold``). Only one image is
    held at a time, so callers can stream a folder of any size.
    """
    first: tuple[Path, tuple[int, int]] | None = None
    for name, image_path, mask_path in pairs:
        try:
            image = read_image(image_path, mode)
        except Exception as error:  # Pillow's decoders raise many exception types
            message = f"cannot read image file {image_path}: {error}"
            if on_error == "raise":
                raise ValueError(
                    f"{message}. Fix or remove the file, or pass on_error='warn' to skip it."
                ) from error
            warnings.warn(f"{message}; skipping it.", UserWarning, stacklevel=4)
            continue
        size = (image.shape[1], image.shape[2])
        mask = np.zeros(size, dtype=np.uint8)
        if mask_path is not None:
            try:
                mask = read_mask(mask_path, threshold=mask_threshold)
            except ValueError as error:  # unreadable, or several grey levels
                message = str(error)
                if isinstance(error, NotBinaryMaskError):
                    message += ", or pass mask_threshold= to count the pixels above a grey level"
                if on_error == "raise":
                    raise ValueError(
                        f"{message}. Fix or remove the file, or pass on_error='warn' to skip "
                        f"it and its image."
                    ) from error
                warnings.warn(
                    f"{message}; skipping it and its image {image_path}.",
                    UserWarning,
                    stacklevel=4,
                )
                continue
            if mask.shape != size:
                raise ValueError(
                    f"mask {mask_path} is {describe_size(mask.shape)} but its image "
                    f"{image_path} is {describe_size(size)}; a mask must have the size of "
                    f"its image."
                )
        if tile_size is None and image_size is None:
            if first is None:
                first = (image_path, size)
            elif size != first[1]:
                raise ValueError(
                    f"images have different sizes: {first[0]} is {describe_size(first[1])} "
                    f"but {image_path} is {describe_size(size)}; pass image_size= to resize "
                    f"them all to one size or tile= to cut them into equal tiles."
                )
        for piece_name, piece, piece_mask in cut_pieces(
            name, image, mask, image_size=image_size, tile_size=tile_size,
            where=f"image {image_path}",
        ):
            yield piece_name, image_path, piece, piece_mask


def load_pairs(
    pairs: list[tuple[str, Path, Path | None]],
    *,
    with_masks: bool,
    image_size: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
    mode: str | None,
    on_error: str,
    source: str,
    mask_threshold: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Read, check, tile and resize matched (name, image, mask) files into arrays."""
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    names: list[str] = []
    for name, _, image, mask in iter_pairs(
        pairs, image_size=image_size, tile_size=tile_size, mode=mode, on_error=on_error,
        mask_threshold=mask_threshold,
    ):
        images.append(image)
        masks.append(mask)
        names.append(name)
    if not images:
        raise ValueError(f"no readable images in {source}.")
    n_channels = max(image.shape[0] for image in images)
    X = np.stack(
        [
            np.repeat(image, n_channels, axis=0) if image.shape[0] < n_channels else image
            for image in images
        ]
    ).astype(np.float32, copy=False)
    mask_array = np.stack(masks).astype(np.uint8, copy=False) if with_masks else None
    return X, mask_array, names


#: The masks folder of the MVTec AD / anomalib layout (``sid4ds export --format png``).
MVTEC_MASKS = "ground_truth"


def folder_layout(images: PathLike, masks: PathLike | None, mask_suffix: str,
                  recursive: bool) -> tuple[PathLike | None, str, bool]:
    """The MVTec AD layout, recognised: ``(masks, mask_suffix, recursive)`` to read it with.

    A folder that holds ``ground_truth/`` beside class folders (``good/``, ``defect/``,
    ...), as ``sid4ds export --format png`` and MVTec AD write it, is read whole: the class
    folders give the images (named ``defect/NAME``), ``ground_truth/defect/NAME_mask.png``
    their masks, and no mask file is ever taken for an image. Other folders are returned
    unchanged.
    """
    folder = Path(images)
    if masks is None and (folder / MVTEC_MASKS).is_dir():
        return folder / MVTEC_MASKS, mask_suffix or "_mask", True
    return masks, mask_suffix, recursive


def folder_pairs(
    images: PathLike,
    masks: PathLike | None,
    *,
    mask_suffix: str,
    recursive: bool,
    on_error: str,
) -> tuple[list[tuple[str, Path, Path | None]], Path]:
    """List a folder's images and match its masks: ``([(name, image, mask)], folder)``."""
    if not isinstance(mask_suffix, str):
        raise TypeError(f"mask_suffix must be a str, got {mask_suffix!r}.")
    images_folder = check_folder(images, "images")
    masks_folder = check_folder(masks, "masks") if masks is not None else None
    same_folder = masks_folder is not None and masks_folder.resolve() == images_folder.resolve()
    if same_folder and not mask_suffix:
        raise ValueError(
            f"masks is the same folder as images ({images_folder}), so every file would be "
            f"both an image and a mask; pass mask_suffix= (e.g. '_label') to tell masks apart."
        )

    exclude = masks_folder if recursive and masks_folder is not None and not same_folder else None
    image_files = list_image_files(images_folder, recursive, exclude=exclude)
    if same_folder:
        mask_files = [(n, p) for n, p in image_files if n.endswith(mask_suffix)]
        image_files = [(n, p) for n, p in image_files if not n.endswith(mask_suffix)]
    elif masks_folder is not None:
        mask_files = list_image_files(masks_folder, recursive)
    else:
        mask_files = []
    if not image_files:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {images_folder}"
            + (" or its subfolders" if recursive else "")
            + "."
        )
    image_index = index_by_name(image_files, "image")
    if masks_folder is None:
        _refuse_mask_files(image_index, images_folder)
    mask_index = index_by_name([(strip_suffix(n, mask_suffix), p) for n, p in mask_files], "mask")
    pairs = pair_images_and_masks(image_index, mask_index, images_folder, on_error, stacklevel=4)
    return pairs, images_folder



def _refuse_mask_files(image_index: dict[str, Path], images_folder: Path) -> None:
    """No mask files taken for images: ``a_mask.png`` beside ``a.png`` is an error."""
    masks_like = []
    for name, path in image_index.items():
        ending = _image_ending(name, image_index)
        if ending is not None and ending[1][1:].lower() in MASK_LIKE_ENDINGS:
            masks_like.append((path, ending))
    if masks_like:
        path, (stem, suffix) = masks_like[0]
        raise ValueError(
            f"{len(masks_like)} files in {images_folder} look like masks of its images "
            f"(e.g. {path.name} for image {stem!r}), and no masks folder was given; pass "
            f"masks={str(images_folder)!r}, mask_suffix={suffix!r} to read them as masks, "
            f"or move them out of the images folder."
        )
