"""Mask codecs of the export and import formats, through the formats' own libraries.

- COCO run-length encoding through ``pycocotools`` (the COCO API itself): masks are
  written as compressed RLE, as COCO tools expect, and read from compressed or
  uncompressed RLE and from polygons.
- Label Studio's brush RLE through the converter of ``label-studio-sdk`` (the
  ``label-studio`` extra: ``pip install "sid4ds[label-studio]"``), imported only when a
  brush mask is encoded or decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["brush_rle_to_mask", "coco_rle_to_mask", "mask_to_brush_rle", "mask_to_coco_rle"]


def _binary(mask: Any) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"mask must have shape (height, width); got shape {array.shape}")
    return (array != 0).astype(np.uint8)


def mask_to_coco_rle(mask: Any) -> dict[str, Any]:
    """Compressed COCO RLE of a binary mask, with JSON-ready ``counts``.

    Parameters
    ----------
    mask : array-like of shape (height, width)
        Non-zero pixels are the object.

    Returns
    -------
    rle : dict
        ``{"size": [height, width], "counts": str}`` as ``pycocotools.mask.encode`` makes
        it (column-major runs, compressed), ``counts`` decoded to ASCII for JSON.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.session.codecs import coco_rle_to_mask, mask_to_coco_rle
    >>> mask = np.array([[0, 1, 1], [0, 0, 1]], dtype=np.uint8)
    >>> rle = mask_to_coco_rle(mask)
    >>> rle["size"], bool((coco_rle_to_mask(rle) == mask).all())
    ([2, 3], True)
    """
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(_binary(mask)))
    return {"size": [int(side) for side in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE, compressed (``counts`` a str or bytes) or uncompressed (a list).

    Parameters
    ----------
    rle : dict
        ``{"size": [height, width], "counts": ...}``.

    Returns
    -------
    mask : ndarray of shape (height, width), uint8 in {0, 1}

    Raises
    ------
    ValueError
        If ``rle`` is not a COCO RLE, or its runs do not fill ``size``.
    """
    from pycocotools import mask as coco_mask

    try:
        height, width = (int(side) for side in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"a COCO RLE is {{'size': [height, width], 'counts': ...}}; got "
                         f"{str(rle)[:80]} ({error})") from None
    if isinstance(counts, list):
        if sum(counts) != height * width or min(counts, default=0) < 0:
            raise ValueError(f"COCO RLE counts sum to {sum(counts)} but size {height}x{width} "
                             f"has {height * width} pixels")
        encoded = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height,
                                        width)
    else:
        encoded = {"size": [height, width],
                   "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(encoded).astype(np.uint8)


def _brush_module() -> Any:
    try:
        from label_studio_sdk.converter import brush
    except ImportError as error:
        raise ImportError(
            "Label Studio brush masks need the label-studio-sdk package, which is not "
            "installed: pip install \"sid4ds[label-studio]\""
        ) from error
    return brush


def mask_to_brush_rle(mask: Any) -> list[int]:
    """Label Studio brush RLE of a binary mask (``"format": "rle"`` brush results).

    Encoded by ``label_studio_sdk.converter.brush.mask2rle``: the mask as an RGBA image of
    the picture's size, defect pixels 255 in every channel, so Label Studio draws them.

    Parameters
    ----------
    mask : array-like of shape (height, width)
        Non-zero pixels are the brush.

    Returns
    -------
    rle : list of int
        The bytes, as Label Studio's ``value.rle`` holds them.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.session.codecs import brush_rle_to_mask, mask_to_brush_rle
    >>> mask = np.array([[0, 1, 1], [0, 0, 1]], dtype=np.uint8)
    >>> bool((brush_rle_to_mask(mask_to_brush_rle(mask), 2, 3) == mask).all())
    True
    """
    return [int(byte) for byte in _brush_module().mask2rle(_binary(mask) * np.uint8(255))]


def brush_rle_to_mask(rle: Sequence[int], height: int, width: int) -> np.ndarray:
    """Decode a Label Studio brush RLE into a binary mask: pixels whose alpha is > 0.

    Decoded by ``label_studio_sdk.converter.brush.decode_rle``. Label Studio's brush draws
    anti-aliased strokes, so every pixel it painted at all counts as defect.

    Parameters
    ----------
    rle : sequence of int
        ``value.rle`` of a Label Studio brush result.
    height, width : int
        ``original_height`` and ``original_width`` of the result.

    Returns
    -------
    mask : ndarray of shape (height, width), uint8 in {0, 1}

    Raises
    ------
    ValueError
        If ``rle`` is not a list of bytes or does not hold a ``height`` × ``width`` image.
    """
    try:
        data = [int(byte) for byte in rle]
    except (TypeError, ValueError) as error:
        raise ValueError(f"a brush RLE must be a list of bytes (0..255): {error}") from None
    if not data or min(data) < 0 or max(data) > 255:
        raise ValueError("a brush RLE must be a non-empty list of bytes (0..255)")
    try:
        values = np.asarray(_brush_module().decode_rle(data))
    except (IndexError, ValueError) as error:
        raise ValueError(f"the brush RLE is truncated or not an RLE ({error})") from None
    if values.size != height * width * 4:
        raise ValueError(
            f"the brush RLE holds {values.size} values but a {height}x{width} RGBA image has "
            f"{height * width * 4}; original_height/original_width do not match it"
        )
    return (values.reshape(height, width, 4)[:, :, 3] > 0).astype(np.uint8)
