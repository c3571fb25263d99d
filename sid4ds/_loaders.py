"""Load defect-image datasets into numpy arrays.

Every loader returns ``(X, masks, names)``:

- ``X`` : float32 ndarray of shape (n_samples, n_channels, height, width) with values in [0, 1],
- ``masks`` : uint8 ndarray of shape (n_samples, height, width) with defect pixels 1 and all
  other pixels 0, or None when the loader was given no masks at all,
- ``names`` : list of str, one per sample: the image's path relative to the dataset folder,
  without extension and with ``/`` separators, plus ``_t<k>`` when the image was cut into tiles.

The helpers :func:`resize` and :func:`tile` apply the same resizing and tiling to arrays that
are already in memory.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, cast

import numpy as np
from PIL import Image

__all__ = ["load_image_folder", "load_kolektorsdd", "load_npz", "resize", "tile"]

PathLike = str | os.PathLike[str]
SizeLike = int | tuple[int, int] | Sequence[int]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Pillow modes whose pixels carry one intensity value (alpha, if any, is dropped).
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


# --------------------------------------------------------------------------------------------
# argument checks


def _check_size(size: SizeLike, argument: str) -> tuple[int, int]:
    """Turn an int or (height, width) pair into a (height, width) tuple of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        pair = (int(size), int(size))
    elif (
        isinstance(size, Sequence)
        and not isinstance(size, str)
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        pair = (int(size[0]), int(size[1]))
    else:
        raise TypeError(
            f"{argument} must be an int or a (height, width) pair of ints, got {size!r}."
        )
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{argument} must be positive, got {size!r}.")
    return pair


def _check_mode(mode: str | None) -> None:
    if mode not in ("L", "RGB", None):
        raise ValueError(
            f"mode must be 'L' (grayscale), 'RGB' (colour) or None (grayscale unless some "
            f"image is in colour), got {mode!r}."
        )


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}.")


def _check_folder(folder: PathLike, argument: str) -> Path:
    path = Path(folder)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise ValueError(f"{argument}={str(folder)!r} {what}; pass the folder holding the files.")
    return path


def _check_arrays(X: np.ndarray, masks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(
            f"X must have shape (n_samples, n_channels, height, width), got shape {X.shape}."
        )
    if masks is not None:
        masks = np.asarray(masks)
        expected = (X.shape[0], X.shape[2], X.shape[3])
        if masks.shape != expected:
            raise ValueError(
                f"masks must have shape (n_samples, height, width) = {expected} to match X of "
                f"shape {X.shape}, got shape {masks.shape}."
            )
    return X, masks


# --------------------------------------------------------------------------------------------
# single-image operations


def _tile_starts(length: int, tile_length: int) -> list[int]:
    """Start offsets of tiles along one axis; the last tile ends flush with the edge."""
    starts = list(range(0, length - tile_length + 1, tile_length))
    if starts[-1] + tile_length < length:
        starts.append(length - tile_length)
    return starts


def _tile_positions(size: tuple[int, int], tile_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(row, column) of the top-left corner of every tile, row by row."""
    return [
        (row, col)
        for row in _tile_starts(size[0], tile_size[0])
        for col in _tile_starts(size[1], tile_size[1])
    ]


def _resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float image of shape (n_channels, height, width)."""
    if image.shape[1:] == size:
        return image.astype(np.float32, copy=True)
    height, width = size
    channels = [
        np.asarray(
            Image.fromarray(channel.astype(np.float32)).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for channel in image
    ]
    return np.clip(np.stack(channels), 0.0, 1.0).astype(np.float32, copy=False)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 0/1 mask of shape (height, width)."""
    if mask.shape == size:
        return mask.astype(np.uint8, copy=True)
    height, width = size
    return np.asarray(
        Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST)
    )


def _read_image(path: Path, mode: str | None) -> np.ndarray:
    """Read an image as float32 (n_channels, height, width) in [0, 1].

    With ``mode=None`` grayscale files give one channel and colour files three.
    """
    with Image.open(path) as image:
        image.load()
        if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
            values = np.asarray(image)
            if values.min() < 0 or values.max() > 65535:
                raise ValueError(
                    f"32-bit integer pixels outside 0..65535 (found {values.min()}.."
                    f"{values.max()}); save the image with 8 or 16 bits per channel"
                )
            gray = values.astype(np.float32) / np.float32(65535)
            if mode == "RGB":
                return np.repeat(gray[np.newaxis], 3, axis=0)
            return gray[np.newaxis]
        if image.mode == "F":
            raise ValueError(
                "floating-point pixels are not supported; save the image with 8 or 16 bits "
                "per channel"
            )
        if mode is None:
            mode = "L" if image.mode in _GRAYSCALE_MODES else "RGB"
        values = np.asarray(image.convert(mode))
    values = values.astype(np.float32) / np.float32(255)
    if values.ndim == 2:
        return values[np.newaxis]
    return np.moveaxis(values, -1, 0)


def _read_mask(path: Path) -> np.ndarray:
    """Read a mask as uint8 (height, width): pixels > 0 (in grayscale) become 1."""
    with Image.open(path) as image:
        image.load()
        values = np.asarray(image.convert("L"))
    return (values > 0).astype(np.uint8)


def _describe_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} (height x width)"


# --------------------------------------------------------------------------------------------
# folder scanning


def _list_files(
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


def _index_by_name(files: list[tuple[str, Path]], kind: str) -> dict[str, Path]:
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


def _strip_suffix(name: str, mask_suffix: str) -> str:
    if mask_suffix and name.endswith(mask_suffix):
        return name[: -len(mask_suffix)]
    return name


def _pair_images_and_masks(
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
                f"mask {mask_path} has no matching image {name}.<ext> in {images_folder}; "
                f"fix its name, remove it, or pass on_error='warn' to ignore it."
            )
            if on_error == "raise":
                raise ValueError(message)
            warnings.warn(message, UserWarning, stacklevel=stacklevel)
    return [(name, path, mask_index.get(name)) for name, path in image_index.items()]


def _iter_pairs(
    pairs: Sequence[tuple[str, Path, Path | None]],
    *,
    image_size: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
    mode: str | None,
    on_error: str,
) -> Iterator[tuple[str, Path, np.ndarray, np.ndarray]]:
    """Read, check, tile and resize matched (name, image, mask) files one at a time.

    Yields ``(name, image_path, image, mask)`` per image or tile: float32 (C, H, W) and uint8
    (H, W), zeros where the image has no mask. Only one image is held at a time, so callers
    can stream a folder of any size.
    """
    first: tuple[Path, tuple[int, int]] | None = None
    for name, image_path, mask_path in pairs:
        try:
            image = _read_image(image_path, mode)
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
                mask = _read_mask(mask_path)
            except Exception as error:  # Pillow's decoders raise many exception types
                message = f"cannot read mask file {mask_path}: {error}"
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
                    f"mask {mask_path} is {_describe_size(mask.shape)} but its image "
                    f"{image_path} is {_describe_size(size)}; a mask must have the size of "
                    f"its image."
                )
        if tile_size is None and image_size is None:
            if first is None:
                first = (image_path, size)
            elif size != first[1]:
                raise ValueError(
                    f"images have different sizes: {first[0]} is {_describe_size(first[1])} "
                    f"but {image_path} is {_describe_size(size)}; pass image_size= to resize "
                    f"them all to one size or tile= to cut them into equal tiles."
                )
        for piece_name, piece, piece_mask in _pieces(
            name, image, mask, image_size=image_size, tile_size=tile_size,
            where=f"image {image_path}",
        ):
            yield piece_name, image_path, piece, piece_mask


def _pieces(
    name: str,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    image_size: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
    where: str,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Tile, then resize, one image (C, H, W) and its mask (H, W): ``[(name, image, mask)]``.

    Tile ``k`` of image ``a`` is named ``a_t<k>``; ``where`` names the image in errors.
    """
    size = (image.shape[1], image.shape[2])
    if tile_size is not None:
        if size[0] < tile_size[0] or size[1] < tile_size[1]:
            raise ValueError(
                f"{where} is {_describe_size(size)}, smaller than tile="
                f"{tile_size[0]}x{tile_size[1]}; pass a smaller tile= or remove the image."
            )
        rows, cols = tile_size
        pieces = [
            (f"{name}_t{k}", image[:, r : r + rows, c : c + cols], mask[r : r + rows, c : c + cols])
            for k, (r, c) in enumerate(_tile_positions(size, tile_size))
        ]
    else:
        pieces = [(name, image, mask)]
    if image_size is None:
        return pieces
    return [
        (piece_name, _resize_image(piece, image_size), _resize_mask(piece_mask, image_size))
        for piece_name, piece, piece_mask in pieces
    ]


def _load_pairs(
    pairs: list[tuple[str, Path, Path | None]],
    *,
    with_masks: bool,
    image_size: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
    mode: str | None,
    on_error: str,
    source: str,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Read, check, tile and resize matched (name, image, mask) files into arrays."""
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    names: list[str] = []
    for name, _, image, mask in _iter_pairs(
        pairs, image_size=image_size, tile_size=tile_size, mode=mode, on_error=on_error
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


def _folder_pairs(
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
    images_folder = _check_folder(images, "images")
    masks_folder = _check_folder(masks, "masks") if masks is not None else None
    same_folder = masks_folder is not None and masks_folder.resolve() == images_folder.resolve()
    if same_folder and not mask_suffix:
        raise ValueError(
            f"masks is the same folder as images ({images_folder}), so every file would be "
            f"both an image and a mask; pass mask_suffix= (e.g. '_label') to tell masks apart."
        )

    exclude = masks_folder if recursive and masks_folder is not None and not same_folder else None
    image_files = _list_files(images_folder, recursive, exclude=exclude)
    if same_folder:
        mask_files = [(n, p) for n, p in image_files if n.endswith(mask_suffix)]
        image_files = [(n, p) for n, p in image_files if not n.endswith(mask_suffix)]
    elif masks_folder is not None:
        mask_files = _list_files(masks_folder, recursive)
    else:
        mask_files = []
    if not image_files:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {images_folder}"
            + (" or its subfolders" if recursive else "")
            + "."
        )
    image_index = _index_by_name(image_files, "image")
    mask_index = _index_by_name([(_strip_suffix(n, mask_suffix), p) for n, p in mask_files], "mask")
    pairs = _pair_images_and_masks(image_index, mask_index, images_folder, on_error, stacklevel=4)
    return pairs, images_folder


# --------------------------------------------------------------------------------------------
# public loaders


def load_image_folder(
    images: PathLike,
    masks: PathLike | None = None,
    *,
    image_size: SizeLike | None = None,
    tile: SizeLike | None = None,
    mode: Literal["L", "RGB"] | None = "L",
    mask_suffix: str = "",
    on_error: Literal["raise", "warn"] = "raise",
    recursive: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Load a folder of images, and optionally a folder of defect masks.

    Image files are those ending in .png, .jpg, .jpeg, .bmp, .tif or .tiff (in any case);
    hidden files and other files are ignored. Images are sorted by name, so the order does not
    depend on the file system.

    Parameters
    ----------
    images : str or path-like
        Folder holding the images.
    masks : str or path-like, optional
        Folder holding the defect masks. A mask belongs to the image with the same name
        (relative path without extension), after removing ``mask_suffix`` from the end of the
        mask's name: with ``mask_suffix="_label"``, image ``a.jpg`` matches mask ``a.png`` or
        ``a_label.bmp``. Mask pixels that are > 0 in grayscale are defect pixels. An image
        without a mask is a normal image (its mask is all zeros). May be the ``images`` folder
        itself when ``mask_suffix`` is set: then files whose name ends with the suffix are the
        masks and all other files the images.
    image_size : int or (height, width), optional
        Resize every image (bilinear) and mask (nearest neighbour) to this size. With ``tile``,
        every tile is resized after tiling.
    tile : int or (height, width), optional
        Cut every image and mask into tiles of this size, row by row. The last tile in each
        direction is taken flush with the bottom or right edge, so it overlaps its neighbour
        when the image size is not a multiple of the tile size. Images may then differ in size,
        but none may be smaller than the tile.
    mode : {"L", "RGB"} or None, default="L"
        ``"L"`` gives one grayscale channel, ``"RGB"`` three colour channels, ``None`` one
        channel when every image file is grayscale and three otherwise (grayscale images are
        then repeated on three channels). 16-bit images are scaled by 1/65535, others by 1/255.
    mask_suffix : str, default=""
        Ending removed from mask names before matching them to images.
    on_error : {"raise", "warn"}, default="raise"
        What to do with an unreadable image or mask file and with a mask that has no image:
        raise a ValueError, or emit a UserWarning and skip the file (an unreadable mask skips
        its image as well). Duplicate names and size mismatches always raise.
    recursive : bool, default=False
        Also load images from subfolders (and masks from the matching subfolders of ``masks``).
        Names then include the subfolder, e.g. ``"sub/a"``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_channels, height, width)
        float32 pixel values in [0, 1]; ``n_channels`` is 1 or 3.
    masks : ndarray of shape (n_samples, height, width) or None
        uint8 defect masks (1 = defect pixel), or None when no ``masks`` folder was given.
    names : list of str
        Name of each sample: relative path without extension, plus ``_t<k>`` for tile ``k``.

    Raises
    ------
    ValueError
        If a folder does not exist or holds no images, a file cannot be read, two images or
        two masks have the same name, a mask has no image, a mask's size differs from its
        image's, images differ in size while neither ``image_size`` nor ``tile`` is given, or an
        image is smaller than ``tile``. The message names the files involved.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sid4ds.datasets import load_image_folder
    >>> workdir = tempfile.TemporaryDirectory()
    >>> image_dir = Path(workdir.name, "images")
    >>> mask_dir = Path(workdir.name, "masks")
    >>> image_dir.mkdir()
    >>> mask_dir.mkdir()
    >>> pixels = np.full((16, 24), 255, dtype=np.uint8)
    >>> Image.fromarray(pixels).save(image_dir / "good.png")
    >>> Image.fromarray(pixels).save(image_dir / "scratch.png")
    >>> defect_region = np.zeros((16, 24), dtype=np.uint8)
    >>> defect_region[4:8, 4:8] = 255
    >>> Image.fromarray(defect_region).save(mask_dir / "scratch_label.png")
    >>> X, masks, names = load_image_folder(image_dir, mask_dir, mask_suffix="_label")
    >>> X.shape, X.dtype, float(X.max())
    ((2, 1, 16, 24), dtype('float32'), 1.0)
    >>> names
    ['good', 'scratch']
    >>> masks.sum(axis=(1, 2)).tolist()
    [0, 16]
    >>> X, masks, names = load_image_folder(image_dir, mask_dir, mask_suffix="_label", tile=16)
    >>> X.shape, names
    ((4, 1, 16, 16), ['good_t0', 'good_t1', 'scratch_t0', 'scratch_t1'])
    >>> workdir.cleanup()
    """
    _check_mode(mode)
    _check_on_error(on_error)
    image_size_pair = _check_size(image_size, "image_size") if image_size is not None else None
    tile_pair = _check_size(tile, "tile") if tile is not None else None
    pairs, images_folder = _folder_pairs(
        images, masks, mask_suffix=mask_suffix, recursive=recursive, on_error=on_error
    )
    return _load_pairs(
        pairs,
        with_masks=masks is not None,
        image_size=image_size_pair,
        tile_size=tile_pair,
        mode=mode,
        on_error=on_error,
        source=f"folder {images_folder}",
    )


def load_kolektorsdd(
    root: PathLike,
    *,
    tile: SizeLike | None = 500,
    image_size: SizeLike | None = None,
    mode: Literal["L", "RGB"] | None = "L",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load the KolektorSDD surface-defect dataset, cut into square tiles.

    The expected layout is the one of the published archive: ``root/kosNN/PartK.jpg`` with its
    defect mask ``root/kosNN/PartK_label.bmp``. Only subfolders named ``kos*`` are read. The
    images are about 500 pixels wide and 1240 high; with the default ``tile=500`` each gives
    three 500x500 tiles, the last one taken flush with the bottom edge (overlapping the second),
    as done for KolektorSDD in the SID4DS paper.

    Parameters
    ----------
    root : str or path-like
        Folder holding the ``kosNN`` folders.
    tile : int or (height, width) or None, default=500
        Tile size; None loads whole images (which then must all have the same size, or
        ``image_size`` must be given).
    image_size : int or (height, width), optional
        Resize every tile (bilinear; masks nearest neighbour) after tiling, e.g. 64.
    mode : {"L", "RGB"} or None, default="L"
        Channels of ``X``, as in :func:`load_image_folder`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_channels, height, width)
        float32 pixel values in [0, 1].
    masks : ndarray of shape (n_samples, height, width)
        uint8 defect masks (1 = defect pixel); a part without a label file is normal.
    names : list of str
        ``"kosNN/PartK_t<k>"`` for tile ``k`` of a part (``"kosNN/PartK"`` without tiling).

    Raises
    ------
    ValueError
        If ``root`` has no ``kos*`` folder with images, or a file is unreadable, a mask has no
        image or differs from it in size, or an image is smaller than the tile.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sid4ds.datasets import load_kolektorsdd
    >>> workdir = tempfile.TemporaryDirectory()
    >>> part_dir = Path(workdir.name, "kos01")
    >>> part_dir.mkdir()
    >>> Image.fromarray(np.zeros((20, 8), dtype=np.uint8)).save(part_dir / "Part0.jpg")
    >>> label = np.zeros((20, 8), dtype=np.uint8)
    >>> label[18:, :] = 255
    >>> Image.fromarray(label).save(part_dir / "Part0_label.bmp")
    >>> X, masks, names = load_kolektorsdd(workdir.name, tile=8)
    >>> X.shape
    (3, 1, 8, 8)
    >>> names
    ['kos01/Part0_t0', 'kos01/Part0_t1', 'kos01/Part0_t2']
    >>> masks.sum(axis=(1, 2)).tolist()
    [0, 0, 16]
    >>> workdir.cleanup()
    """
    _check_mode(mode)
    tile_pair = _check_size(tile, "tile") if tile is not None else None
    image_size_pair = _check_size(image_size, "image_size") if image_size is not None else None
    root_folder = _check_folder(root, "root")
    part_folders = sorted(
        path for path in root_folder.iterdir() if path.is_dir() and path.name.startswith("kos")
    )
    image_files: list[tuple[str, Path]] = []
    mask_files: list[tuple[str, Path]] = []
    for part_folder in part_folders:
        for name, path in _list_files(part_folder, recursive=False):
            qualified = f"{part_folder.name}/{name}"
            if name.endswith("_label"):
                mask_files.append((_strip_suffix(qualified, "_label"), path))
            else:
                image_files.append((qualified, path))
    if not image_files:
        raise ValueError(
            f"no KolektorSDD images found under {root_folder}: expected folders kosNN holding "
            f"PartK.jpg and PartK_label.bmp; pass the folder that holds the kosNN folders."
        )
    pairs = _pair_images_and_masks(
        _index_by_name(image_files, "image"),
        _index_by_name(mask_files, "mask"),
        root_folder,
        "raise",
    )
    X, masks, names = _load_pairs(
        pairs,
        with_masks=True,
        image_size=image_size_pair,
        tile_size=tile_pair,
        mode=mode,
        on_error="raise",
        source=f"folder {root_folder}",
    )
    return X, cast(np.ndarray, masks), names


def load_npz(
    path: PathLike,
    *,
    image_size: SizeLike | None = None,
    defect_fraction: float | None = None,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Load a grayscale dataset stored as an ``.npz`` file.

    The file holds ``images`` (uint8, shape (n_samples, height, width)) and optionally
    ``masks`` (uint8, same shape, defect pixels 1), ``is_defect`` (shape (n_samples,), 1 for a
    defective image) and ``name`` (str, shape (n_samples,)); other keys (``class_id``,
    ``class_names``, ``group``) are ignored. This is the layout of the benchmark data in
    ``shared/data``.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    image_size : int or (height, width), optional
        Resize images (bilinear) and masks (nearest neighbour) to this size.
    defect_fraction : float in [0, 1), optional
        Keep every normal image and a random subset of the defective ones, so that defective
        images make up about this fraction of the result (``round(defect_fraction * n_normal /
        (1 - defect_fraction))`` of them, at least one when ``defect_fraction > 0``). The
        original order is kept. None keeps every image.
    random_state : int, numpy Generator or RandomState, optional
        Seed or generator for the subset; the same int always gives the same subset.

    Returns
    -------
    X : ndarray of shape (n_samples, 1, height, width)
        float32 pixel values ``images / 255``.
    masks : ndarray of shape (n_samples, height, width) or None
        uint8 defect masks, or None when the file has no ``masks``.
    names : list of str
        The ``name`` entries, or the image indices as strings when the file has none.

    Raises
    ------
    ValueError
        If ``images`` is missing or not uint8 of shape (n_samples, height, width), another key
        has the wrong shape, ``defect_fraction`` is out of range, or ``defect_fraction`` is
        given but the file has neither ``is_defect`` nor ``masks``.

    Warns
    -----
    UserWarning
        When the file has too few defective images to reach ``defect_fraction``; all of them
        are kept.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from sid4ds.datasets import load_npz
    >>> workdir = tempfile.TemporaryDirectory()
    >>> masks = np.zeros((40, 8, 8), dtype=np.uint8)
    >>> masks[:10, 2:4, 2:4] = 1
    >>> file = Path(workdir.name, "toy.npz")
    >>> np.savez(file, images=np.full((40, 8, 8), 51, dtype=np.uint8), masks=masks,
    ...          is_defect=masks.any(axis=(1, 2)).astype(np.uint8),
    ...          name=np.array([f"img{i}" for i in range(40)]))
    >>> X, masks, names = load_npz(file)
    >>> X.shape, round(float(X[0, 0, 0, 0]), 4)
    ((40, 1, 8, 8), 0.2)
    >>> X, masks, names = load_npz(file, defect_fraction=0.1, random_state=0)
    >>> len(names), int(masks.any(axis=(1, 2)).sum())
    (33, 3)
    >>> workdir.cleanup()
    """
    image_size_pair = _check_size(image_size, "image_size") if image_size is not None else None
    if defect_fraction is not None and not 0 <= defect_fraction < 1:
        raise ValueError(
            f"defect_fraction must be in [0, 1) (e.g. 0.05 for 5% defective images) or None, "
            f"got {defect_fraction!r}."
        )
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TypeError(
            f"{path} is a single .npy array, not an .npz archive; save the arrays with "
            f"np.savez(path, images=..., masks=...)."
        )
    with data:
        if "images" not in data:
            raise ValueError(
                f"{path} has no 'images' array (it has {sorted(data.files)}); expected uint8 "
                f"images of shape (n_samples, height, width)."
            )
        images = data["images"]
        mask_array = data.get("masks")
        is_defect = data.get("is_defect")
        file_names = data.get("name")
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"'images' in {path} must be uint8 of shape (n_samples, height, width), got "
            f"{images.dtype} of shape {images.shape}."
        )
    n_samples = images.shape[0]
    if mask_array is not None and mask_array.shape != images.shape:
        raise ValueError(
            f"'masks' in {path} has shape {mask_array.shape} but 'images' has shape "
            f"{images.shape}; they must match."
        )
    for key, values in (("is_defect", is_defect), ("name", file_names)):
        if values is not None and values.shape != (n_samples,):
            raise ValueError(
                f"'{key}' in {path} has shape {values.shape}; expected ({n_samples},), one entry "
                f"per image."
            )

    keep = np.arange(n_samples)
    if defect_fraction is not None:
        if is_defect is not None:
            defective = np.asarray(is_defect).astype(bool)
        elif mask_array is not None:
            defective = mask_array.any(axis=(1, 2))
        else:
            raise ValueError(
                f"defect_fraction needs to know which images are defective, but {path} has "
                f"neither 'is_defect' nor 'masks'; pass defect_fraction=None."
            )
        normal_index = np.flatnonzero(~defective)
        defect_index = np.flatnonzero(defective)
        n_wanted = round(defect_fraction * len(normal_index) / (1 - defect_fraction))
        if defect_fraction > 0:
            n_wanted = max(n_wanted, 1)
        if n_wanted > len(defect_index):
            warnings.warn(
                f"defect_fraction={defect_fraction} needs {n_wanted} defective images but "
                f"{path} has only {len(defect_index)}; keeping all of them.",
                UserWarning,
                stacklevel=2,
            )
            n_wanted = len(defect_index)
        if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
            rng = random_state
        else:
            rng = np.random.default_rng(random_state)
        chosen = rng.choice(defect_index, size=n_wanted, replace=False)
        keep = np.sort(np.concatenate([normal_index, chosen]))

    X = (images[keep].astype(np.float32) / np.float32(255))[:, np.newaxis]
    masks_kept = (mask_array[keep] > 0).astype(np.uint8) if mask_array is not None else None
    if file_names is not None:
        names = [str(file_names[i]) for i in keep]
    else:
        names = [str(i) for i in keep]
    if image_size_pair is not None:
        X, masks_kept = resize(X, image_size_pair, masks=masks_kept)
    return X, masks_kept, names


# --------------------------------------------------------------------------------------------
# array helpers


def resize(
    X: np.ndarray, size: SizeLike, *, masks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize images (bilinear) and masks (nearest neighbour).

    Uses Pillow's bilinear filter, which averages over the covered pixels when shrinking.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_channels, height, width)
        Images with values in [0, 1].
    size : int or (height, width)
        Output size; an int gives square images.
    masks : ndarray of shape (n_samples, height, width), optional
        0/1 defect masks to resize along with the images.

    Returns
    -------
    X_resized : ndarray of shape (n_samples, n_channels, new_height, new_width)
        float32 values in [0, 1].
    masks_resized : ndarray of shape (n_samples, new_height, new_width) or None
        uint8 masks, or None when ``masks`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.datasets import resize
    >>> X = np.ones((2, 1, 8, 8), dtype=np.float32)
    >>> masks = np.zeros((2, 8, 8), dtype=np.uint8)
    >>> masks[:, :4, :4] = 1
    >>> X_small, masks_small = resize(X, 4, masks=masks)
    >>> X_small.shape, masks_small.shape
    ((2, 1, 4, 4), (2, 4, 4))
    >>> masks_small[0].tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    """
    X, masks = _check_arrays(X, masks)
    size_pair = _check_size(size, "size")
    X_resized = np.zeros((X.shape[0], X.shape[1], *size_pair), dtype=np.float32)
    for i, image in enumerate(X):
        X_resized[i] = _resize_image(image, size_pair)
    if masks is None:
        return X_resized, None
    masks_resized = np.zeros((masks.shape[0], *size_pair), dtype=np.uint8)
    for i, mask in enumerate(masks):
        masks_resized[i] = _resize_mask(mask, size_pair)
    return X_resized, masks_resized


def tile(
    X: np.ndarray, size: SizeLike, *, masks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Cut images (and masks) into tiles.

    Tiles are taken row by row with a stride equal to the tile size; the last tile in each
    direction is taken flush with the bottom or right edge, so it overlaps its neighbour when
    the image size is not a multiple of the tile size.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_channels, height, width)
        Images; any dtype, kept in the output.
    size : int or (height, width)
        Tile size; must not exceed the image size.
    masks : ndarray of shape (n_samples, height, width), optional
        Masks to cut the same way.

    Returns
    -------
    X_tiles : ndarray of shape (n_samples * n_tiles, n_channels, tile_height, tile_width)
        All tiles of image 0 first, then those of image 1, and so on.
    masks_tiles : ndarray of shape (n_samples * n_tiles, tile_height, tile_width) or None
        The matching mask tiles, or None when ``masks`` is None.
    source_index : ndarray of shape (n_samples * n_tiles,)
        Index in ``X`` of the image each tile was cut from.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.datasets import tile
    >>> X = np.arange(20, dtype=np.float32).reshape(1, 1, 10, 2)
    >>> X_tiles, _, source_index = tile(X, (4, 2))
    >>> X_tiles.shape, source_index.tolist()
    ((3, 1, 4, 2), [0, 0, 0])
    >>> X_tiles[-1, 0, :, 0].tolist()
    [12.0, 14.0, 16.0, 18.0]
    """
    X, masks = _check_arrays(X, masks)
    tile_height, tile_width = _check_size(size, "size")
    height, width = X.shape[2], X.shape[3]
    if tile_height > height or tile_width > width:
        raise ValueError(
            f"tile size {tile_height}x{tile_width} is larger than the images, which are "
            f"{_describe_size((height, width))}; pass a smaller size."
        )
    positions = _tile_positions((height, width), (tile_height, tile_width))
    X_tiles = np.stack(
        [X[:, :, r : r + tile_height, c : c + tile_width] for r, c in positions], axis=1
    ).reshape(-1, X.shape[1], tile_height, tile_width)
    source_index = np.repeat(np.arange(X.shape[0]), len(positions))
    if masks is None:
        return X_tiles, None, source_index
    masks_tiles = np.stack(
        [masks[:, r : r + tile_height, c : c + tile_width] for r, c in positions], axis=1
    ).reshape(-1, tile_height, tile_width)
    return X_tiles, masks_tiles, source_index
