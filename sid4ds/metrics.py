"""How well masks are found: pixel IoU, and the image-level view a line engineer reads."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["defect_iou", "defective_rows", "image_detection"]


def defective_rows(masks: Any) -> np.ndarray:
    """Which masks mark a defect: True for a mask with at least one non-zero pixel.

    Parameters
    ----------
    masks : array-like of shape (n_samples, height, width)
        Masks (0 = normal); an empty sequence is allowed.

    Returns
    -------
    defective : ndarray of shape (n_samples,), bool

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.metrics import defective_rows
    >>> defective_rows(np.array([[[0, 0]], [[0, 3]]]))
    array([False,  True])
    """
    values = np.asarray(masks)
    if values.size == 0:
        return np.zeros(len(values), dtype=bool)
    return values.reshape(len(values), -1).any(axis=1)


def defect_iou(masks_true: Any, masks_pred: Any) -> float:
    """Defect-class IoU pooled over all pixels of all images.

    Intersection and union are summed over the whole set before dividing, so an image whose
    true mask and prediction are both empty adds nothing to either: it neither helps nor
    hurts. If every mask and every prediction is empty the IoU is 1.0 (nothing to find,
    nothing falsely found).

    Parameters
    ----------
    masks_true, masks_pred : array-like of shape (n_samples, height, width)
        Binary masks.

    Returns
    -------
    iou : float in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.metrics import defect_iou
    >>> truth = np.array([[[0, 1], [1, 0]]])
    >>> defect_iou(truth, np.array([[[0, 1], [0, 0]]]))
    0.5
    """
    truth = np.asarray(masks_true).astype(bool)
    predicted = np.asarray(masks_pred).astype(bool)
    union = np.logical_or(truth, predicted).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(truth, predicted).sum() / union)


def image_detection(masks_true: Any, masks_pred: Any) -> dict[str, float]:
    """The share of defective images in which a defect is found, and of normal ones flagged.

    An image is flagged when its predicted mask has a defect pixel (at the segmenter's
    threshold); a defective image counts as found when it is flagged.

    Parameters
    ----------
    masks_true, masks_pred : array-like of shape (n_samples, height, width)
        Binary masks.

    Returns
    -------
    rates : dict
        ``detected`` (share of the defective images flagged, NaN without any),
        ``false_alarms`` (share of the normal images flagged, NaN without any),
        ``n_defective`` and ``n_normal``.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.metrics import image_detection
    >>> truth = np.zeros((4, 2, 2), np.uint8); truth[:2, 0, 0] = 1
    >>> found = np.zeros((4, 2, 2), np.uint8); found[[0, 2], 1, 1] = 1
    >>> image_detection(truth, found)
    {'detected': 0.5, 'false_alarms': 0.5, 'n_defective': 2, 'n_normal': 2}
    """
    truth = np.asarray(masks_true).astype(bool)
    predicted = np.asarray(masks_pred).astype(bool)
    defective = defective_rows(truth)
    flagged = defective_rows(predicted)
    return {
        "detected": float(flagged[defective].mean()) if defective.any() else float("nan"),
        "false_alarms": float(flagged[~defective].mean()) if (~defective).any()
        else float("nan"),
        "n_defective": int(defective.sum()), "n_normal": int((~defective).sum()),
    }
