"""What a segmenter finds at each threshold of a grid, counted over a set of images, and the
scores a user reads from the counts: defect IoU, the share of defective images found and
the share of normal images flagged.

The counting rules of the final model's cross-validation
(:func:`sid4ds.estimators.final_model.cross_validate`), pure numpy: counts add up over
images and folds, so the scores of any mix of them are computed from the sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sid4ds._core.validation import (
    check_float,
    check_masks,
    check_probabilities,
    check_weights,
)
from sid4ds.metrics import defective_rows

__all__ = ["COUNT_KEYS", "THRESHOLDS", "detection_counts", "detection_scores"]

#: The threshold grid of the cross-validation: 0.01, 0.02, 0.03, then 0.05, 0.10, ..., 0.95,
#: then 0.97, 0.98, 0.99 (S is often far from calibrated: on magnetic tiles the best
#: threshold was 0.05-0.10 when the grid began at 0.05).
THRESHOLDS: tuple[float, ...] = ((0.01, 0.02, 0.03)
                                 + tuple(round(0.05 * k, 2) for k in range(1, 20))
                                 + (0.97, 0.98, 0.99))

#: The counts of :func:`detection_counts` that add up over images: ``intersection`` and
#: ``union`` (defect pixels), ``false_pixels`` (pixels marked on normal images), ``found``
#: (defective images with a marked pixel) and ``flagged`` (normal images with one).
COUNT_KEYS: tuple[str, ...] = ("intersection", "union", "false_pixels", "found", "flagged")


def detection_counts(probabilities: Any, masks: Any,
                     thresholds: Sequence[float] = THRESHOLDS,
                     weights: Any = None) -> dict[str, np.ndarray]:
    """What a segmenter finds at each threshold, counted over a set of images.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width)
        Defect probabilities.
    masks : array-like of shape (n_samples, height, width)
        True binary masks.
    thresholds : sequence of float, default=THRESHOLDS
        Probability at or above which a pixel is marked.
    weights : array-like of shape (n_samples,), optional
        How many images each one stands for (finite, >= 0): every count of an image is
        multiplied by its weight, so the counts are those of the population the images
        were drawn from (e.g. a random audit of the unlabelled images weighs the number of
        unlabelled images over the audit's size). Default: 1 each, integer counts.

    Returns
    -------
    counts : dict
        Arrays of shape (n_thresholds,): ``intersection`` and ``union`` (pixels, summed
        over the defective images), ``false_pixels`` (pixels marked on normal images),
        ``found`` (defective images with a marked pixel) and ``flagged`` (normal images
        with a marked pixel); ``n_defective`` and ``n_normal``. Ints without ``weights``,
        floats (weighted sums) with them.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.estimators.detection import detection_counts
    >>> truth = np.array([[[1, 0]], [[0, 0]]])
    >>> probability = np.array([[[0.3, 0.1]], [[0.2, 0.0]]])
    >>> counts = detection_counts(probability, truth, thresholds=[0.15, 0.5])
    >>> counts["intersection"].tolist(), counts["false_pixels"].tolist()
    ([1, 0], [1, 0])
    >>> weighted = detection_counts(probability, truth, [0.15, 0.5], weights=[1.0, 3.0])
    >>> weighted["false_pixels"].tolist(), float(weighted["n_normal"])
    ([3.0, 0.0], 3.0)
    """
    values = check_probabilities(probabilities, "probabilities")
    if values.ndim != 3:
        raise ValueError(f"probabilities must have shape (n_samples, height, width); got "
                         f"{values.shape}")
    truth = check_masks(masks, name="masks", n_samples=len(values), height=values.shape[1],
                        width=values.shape[2]).astype(bool)
    weight = check_weights(weights, len(values), "weights")
    per_image = _per_image_counts(values, truth, np.asarray(thresholds, dtype=np.float64))
    if weight is None:
        return {key: (value.sum(axis=0) if value.ndim == 2 else int(value.sum()))
                for key, value in per_image.items()}
    return {key: (weight @ value if value.ndim == 2 else float(weight @ value))
            for key, value in per_image.items()}


def _per_image_counts(values: np.ndarray, truth: np.ndarray,
                      cuts: np.ndarray) -> dict[str, np.ndarray]:
    """The counts of :func:`detection_counts` image by image: arrays of shape
    (n_samples, n_thresholds), int64 (0 where a count is not the image's kind), and
    ``n_defective``/``n_normal`` of shape (n_samples,), 0 or 1."""
    n_samples = len(values)
    pixels = values.reshape(n_samples, -1)
    on_defect = truth.reshape(n_samples, -1)
    defective = defective_rows(truth)
    marked = np.zeros((n_samples, len(cuts)), np.int64)
    hits = np.zeros((n_samples, len(cuts)), np.int64)
    for start in range(0, n_samples, _CHUNK):  # (chunk, pixels, thresholds) at a time
        rows = slice(start, start + _CHUNK)
        at_or_above = pixels[rows, :, None] >= cuts
        marked[rows] = at_or_above.sum(axis=1)
        hits[rows] = (at_or_above & on_defect[rows, :, None]).sum(axis=1)
    is_defective, is_normal = defective[:, None], ~defective[:, None]
    any_marked = (marked > 0).astype(np.int64)
    return {
        "intersection": hits * is_defective,
        "union": (marked + on_defect.sum(axis=1)[:, None] - hits) * is_defective,
        "false_pixels": marked * is_normal,
        "found": any_marked * is_defective,
        "flagged": any_marked * is_normal,
        "n_defective": defective.astype(np.int64),
        "n_normal": (~defective).astype(np.int64),
    }


#: Images counted at once by :func:`_per_image_counts` (bounds its memory).
_CHUNK = 16


def detection_scores(counts: Mapping[str, Any],
                     defect_ratio: float | None = None) -> dict[str, np.ndarray]:
    """Defect IoU, share of defective images found and of normal images flagged.

    Parameters
    ----------
    counts : mapping
        As :func:`detection_counts` returns, or arrays of any shape of such counts (e.g.
        per fold, checkpoint and threshold) with ``n_defective`` and ``n_normal``
        broadcasting against them.
    defect_ratio : float in (0, 1), optional
        The share of defective images of the images the IoU is meant for: the defective
        images' pixel counts and the normal images' false pixels are weighted to that mix.
        None: as counted (pooled over the images, as :func:`sid4ds.metrics.defect_iou`).

    Returns
    -------
    scores : dict
        ``iou``, ``detected`` (share of the defective images found; NaN without any) and
        ``false_alarms`` (share of the normal images flagged; NaN without any).

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.estimators.detection import detection_scores
    >>> counts = {"intersection": 6, "union": 8, "false_pixels": 4, "found": 2,
    ...           "flagged": 1, "n_defective": 2, "n_normal": 4}
    >>> {key: float(value) for key, value in detection_scores(counts).items()}
    {'iou': 0.5, 'detected': 1.0, 'false_alarms': 0.25}
    >>> round(float(detection_scores(counts, defect_ratio=0.5)["iou"]), 3)
    0.6
    """
    parts = {key: np.asarray(counts[key], dtype=np.float64)
             for key in (*COUNT_KEYS, "n_defective", "n_normal")}
    n_defective, n_normal = parts["n_defective"], parts["n_normal"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if defect_ratio is None:
            weight_defect, weight_normal = 1.0, 1.0
        else:
            ratio = check_float(defect_ratio, "defect_ratio", low=0.0, high=1.0,
                                include_low=False, include_high=False)
            weight_defect = np.where(n_defective > 0, ratio / n_defective, np.nan)
            weight_normal = np.where(n_normal > 0, (1.0 - ratio) / n_normal, 0.0)
        found = parts["intersection"] * weight_defect
        union = (parts["union"] * weight_defect if defect_ratio is None
                 else np.nan_to_num(parts["union"] * weight_defect, nan=0.0))
        union = union + parts["false_pixels"] * weight_normal
        iou = np.where(union > 0, found / np.where(union > 0, union, 1.0), 1.0)
        if defect_ratio is not None:
            iou = np.where(n_defective > 0, iou, np.nan)
        detected = np.where(n_defective > 0, parts["found"] / n_defective, np.nan)
        false_alarms = np.where(n_normal > 0, parts["flagged"] / n_normal, np.nan)
    return {"iou": iou, "detected": detected, "false_alarms": false_alarms}
