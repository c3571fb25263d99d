"""Reading, resizing and tiling one image or mask: the building blocks of the loaders.

The loaders of :mod:`sid4ds.datasets`, the image-path pools of :mod:`sid4ds.datasets.pool` and the
labelling session all read pixels through these functions, so an image or mask file gives
the same array wherever it is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sid4ds._core.validation import describe_size

__all__ = [
    "IMAGE_EXTENSIONS",
    "NotBinaryMaskError",
    "cut_pieces",
    "join_pieces",
    "read_image",
    "read_mask",
    "resize_image",
    "resize_mask",
    "tile_positions",
]

#: File endings read as images (in any case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Pillow modes whose pixels carry one intensity value (alpha, if any, is dropped).
_GRAYSCALE_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def _tile_starts(length: int, tile_length: int) -> list[int]:
    """Start offsets of tiles along one axis; the last tile ends flush with the edge."""
    starts = list(range(0, length - tile_length + 1, tile_length))
    if starts[-1] + tile_length < length:
        starts.append(length - tile_length)
    return starts


def tile_positions(size: tuple[int, int], tile_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(row, column) of the top-left corner of every tile, row by row."""
    return [
        (row, col)
        for row in _tile_starts(size[0], tile_size[0])
        for col in _tile_starts(size[1], tile_size[1])
    ]


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 0/1 mask of shape (height, width)."""
    if mask.shape == size:
        return mask.astype(np.uint8, copy=True)
    height, width = size
    return np.asarray(
        Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST)
    )


def read_image(path: Path, mode: str | None) -> np.ndarray:
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


class NotBinaryMaskError(ValueError):
    """A mask file holds several non-zero grey levels (see :func:`read_mask`)."""


def read_mask(path: Path, threshold: int | None = None) -> np.ndarray:
    """Read a mask file as uint8 (height, width): 1 on defect pixels, 0 elsewhere.

    The one mask reader of sid4ds (the loaders and the labelling session use it). A mask
    holds 0 for normal pixels and one other value for defect pixels (255, 1, 128...); 8-bit
    colour masks are read in grey scale, 16-bit ones as they are.

    Parameters
    ----------
    path : path-like
        The mask file.
    threshold : int, optional
        With several non-zero grey levels (a JPEG-compressed or anti-aliased mask), the
        pixels above ``threshold`` are the defect. ``None`` (default) refuses such a mask.

    Returns
    -------
    mask : ndarray of shape (height, width), uint8 in {0, 1}

    Raises
    ------
    ValueError
        If the file cannot be read; :class:`NotBinaryMaskError` (a ValueError) if it has
        several non-zero grey levels and no ``threshold`` is given. The message names the
        file and what to do.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
                values = np.asarray(image)
            else:
                values = np.asarray(image.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise ValueError(f"cannot read mask file {path}: {error}; save it again as a PNG "
                         f"(0 = normal, 255 = defect)") from None
    if threshold is not None:
        return (values > threshold).astype(np.uint8)
    levels = np.unique(values)
    if np.count_nonzero(levels) > 1:
        shown = ", ".join(str(level) for level in levels[:4])
        raise NotBinaryMaskError(
            f"mask file {path} is not binary: it has {levels.size} grey levels ({shown}"
            f"{', ...' if levels.size > 4 else ''}); save it with 0 for normal and one value "
            f"(e.g. 255) for defect pixels, as PNG (JPEG compression adds grey levels)"
        )
    return (values != 0).astype(np.uint8)


def cut_pieces(
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
                f"{where} is {describe_size(size)}, smaller than tile="
                f"{tile_size[0]}x{tile_size[1]}; pass a smaller tile= or remove the image."
            )
        rows, cols = tile_size
        pieces = [
            (f"{name}_t{k}", image[:, r : r + rows, c : c + cols], mask[r : r + rows, c : c + cols])
            for k, (r, c) in enumerate(tile_positions(size, tile_size))
        ]
    else:
        pieces = [(name, image, mask)]
    if image_size is None:
        return pieces
    return [
        (piece_name, resize_image(piece, image_size), resize_mask(piece_mask, image_size))
        for piece_name, piece, piece_mask in pieces
    ]



def join_pieces(
    maps: list[np.ndarray],
    size: tuple[int, int],
    *,
    image_size: tuple[int, int] | None,
    tile_size: tuple[int, int] | None,
) -> np.ndarray:
    """Undo :func:`cut_pieces` for per-pixel maps: one (H, W) map at the image's own size.

    Each piece's map (e.g. a defect probability, in [0, 1]) is resized back to its tile
    (or to the image, without tiles; bilinear), and the tiles are put where they were cut,
    averaged where the last tile of a row or column overlaps the one before it.

    Parameters
    ----------
    maps : list of ndarray of shape (piece_height, piece_width)
        One map per piece, in the order :func:`cut_pieces` returned the pieces.
    size : (int, int)
        (height, width) of the image the pieces were cut from.
    image_size, tile_size : (int, int) or None
        As given to :func:`cut_pieces`.

    Returns
    -------
    map : ndarray of shape size, float32

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.datasets.imageio import cut_pieces, join_pieces
    >>> image = np.linspace(0, 1, 30, dtype=np.float32).reshape(1, 5, 6)
    >>> pieces = cut_pieces("a", image, np.zeros((5, 6), np.uint8), image_size=None,
    ...                     tile_size=(3, 4), where="a")
    >>> joined = join_pieces([piece[0] for _, piece, _ in pieces], (5, 6), image_size=None,
    ...                      tile_size=(3, 4))
    >>> bool(np.allclose(joined, image[0]))
    True
    """
    if tile_size is None:
        positions, piece_size = [(0, 0)], size
    else:
        positions, piece_size = tile_positions(size, tile_size), tile_size
    if len(maps) != len(positions):
        raise ValueError(f"{len(maps)} maps for an image of {describe_size(size)} cut into "
                         f"{len(positions)} pieces; pass one map per piece")
    total = np.zeros(size, dtype=np.float64)
    count = np.zeros(size, dtype=np.float64)
    for (row, col), values in zip(positions, maps, strict=True):
        piece = np.asarray(values, dtype=np.float32)
        if image_size is not None or piece.shape != tuple(piece_size):
            piece = resize_image(piece[np.newaxis], tuple(piece_size))[0]
        total[row : row + piece_size[0], col : col + piece_size[1]] += piece
        count[row : row + piece_size[0], col : col + piece_size[1]] += 1
    return (total / count).astype(np.float32)
