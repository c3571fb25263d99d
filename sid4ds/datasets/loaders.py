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

import warnings
from pathlib import Path
from typing import Literal, cast

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import (
    PathLike,
    SizeLike,
    check_folder,
    check_image_arrays,
    check_mode,
    check_on_error,
    check_size,
    describe_size,
)
from sid4ds.datasets.folders import (
    folder_layout,
    folder_pairs,
    index_by_name,
    list_image_files,
    load_pairs,
    pair_images_and_masks,
    strip_suffix,
)
from sid4ds.datasets.imageio import resize_image, resize_mask, tile_positions

__all__ = ["load_image_folder", "load_kolektorsdd", "load_npz", "resize", "tile"]


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
    mask_threshold: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Load a folder of images, and optionally a folder of defect masks.

    Image files are those ending in .png, .jpg, .jpeg, .bmp, .tif or .tiff (in any case);
    hidden files and other files are ignored. Images are sorted by name, so the order does not
    depend on the file system.

    Parameters
    ----------
    images : str or path-like
        Folder holding the images. A folder in the MVTec AD / anomalib layout, as ``sid4ds
        export --format png`` writes it (``good/``, ``defect/``, and
        ``ground_truth/defect/NAME_mask.png``), is read whole with its masks when ``masks``
        is not given: images named ``defect/NAME`` and ``good/NAME``, the mask files never
        taken for images.
    masks : str or path-like, optional
        Folder holding the defect masks. A mask belongs to the image with the same name
        (relative path without extension), after removing ``mask_suffix`` from the end of the
        mask's name: with ``mask_suffix="_label"``, image ``a.jpg`` matches mask ``a.png`` or
        ``a_label.bmp``. A mask holds 0 for normal pixels and one other value for defect
        pixels (see ``mask_threshold`` for masks with several grey levels). An image
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
    mask_threshold : int, optional
        For masks with several grey levels (JPEG-compressed or anti-aliased): the pixels
        above this grey level are defect pixels. ``None`` refuses such masks, naming the
        file.

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
    check_mode(mode)
    check_on_error(on_error)
    image_size_pair = check_size(image_size, "image_size") if image_size is not None else None
    tile_pair = check_size(tile, "tile") if tile is not None else None
    masks, mask_suffix, recursive = folder_layout(images, masks, mask_suffix, recursive)
    pairs, images_folder = folder_pairs(
        images, masks, mask_suffix=mask_suffix, recursive=recursive, on_error=on_error
    )
    return load_pairs(
        pairs,
        with_masks=masks is not None,
        image_size=image_size_pair,
        tile_size=tile_pair,
        mode=mode,
        on_error=on_error,
        source=f"folder {images_folder}",
        mask_threshold=mask_threshold,
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
    check_mode(mode)
    tile_pair = check_size(tile, "tile") if tile is not None else None
    image_size_pair = check_size(image_size, "image_size") if image_size is not None else None
    root_folder = check_folder(root, "root")
    part_folders = sorted(
        path for path in root_folder.iterdir() if path.is_dir() and path.name.startswith("kos")
    )
    image_files: list[tuple[str, Path]] = []
    mask_files: list[tuple[str, Path]] = []
    for part_folder in part_folders:
        for name, path in list_image_files(part_folder, recursive=False):
            qualified = f"{part_folder.name}/{name}"
            if name.endswith("_label"):
                mask_files.append((strip_suffix(qualified, "_label"), path))
            else:
                image_files.append((qualified, path))
    if not image_files:
        raise ValueError(
            f"no KolektorSDD images found under {root_folder}: expected folders kosNN holding "
            f"PartK.jpg and PartK_label.bmp; pass the folder that holds the kosNN folders."
        )
    pairs = pair_images_and_masks(
        index_by_name(image_files, "image"),
        index_by_name(mask_files, "mask"),
        root_folder,
        "raise",
    )
    X, masks, names = load_pairs(
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
        Seed or generator for the subset; the same int always gives the same subset (a
        generator is drawn from once, as everywhere in sid4ds).

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
    image_size_pair = check_size(image_size, "image_size") if image_size is not None else None
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
        rng = make_rng(random_state)
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
    X, masks = check_image_arrays(X, masks)
    size_pair = check_size(size, "size")
    X_resized = np.zeros((X.shape[0], X.shape[1], *size_pair), dtype=np.float32)
    for i, image in enumerate(X):
        X_resized[i] = resize_image(image, size_pair)
    if masks is None:
        return X_resized, None
    masks_resized = np.zeros((masks.shape[0], *size_pair), dtype=np.uint8)
    for i, mask in enumerate(masks):
        masks_resized[i] = resize_mask(mask, size_pair)
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
    X, masks = check_image_arrays(X, masks)
    tile_height, tile_width = check_size(size, "size")
    height, width = X.shape[2], X.shape[3]
    if tile_height > height or tile_width > width:
        raise ValueError(
            f"tile size {tile_height}x{tile_width} is larger than the images, which are "
            f"{describe_size((height, width))}; pass a smaller size."
        )
    positions = tile_positions((height, width), (tile_height, tile_width))
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

