"""What the baseline strategies share: finding the learner's fitted segmenter and labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds._core.validation import check_images, check_masks
from sid4ds.estimators.base import is_fitted
from sid4ds.ranking.selection import estimator_of

__all__ = ["fitted_segmenter", "labeled_set"]


def fitted_segmenter(learner: Any, strategy: str) -> Any:
    segmenter = estimator_of(learner)
    if not is_fitted(segmenter):
        raise ValueError(
            f"{strategy} needs the learner's estimator to be a fitted SegmentationLearner, "
            f"but {type(segmenter).__name__} is not fitted: teach the learner some labelled "
            f"images first (or start with random_sampling, pt4al_sampling or msmr_sampling)"
        )
    return segmenter


def labeled_set(learner: Any, strategy: str, minimum: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The learner's labelled images and masks (``X_training``, ``y_training``), validated."""
    X_labeled = getattr(learner, "X_training", None)
    y_labeled = getattr(learner, "y_training", None)
    if X_labeled is None or y_labeled is None:
        raise ValueError(
            f"{strategy} needs labelled images, but the learner has no "
            f"X_training/y_training: teach it at least {minimum} labelled image(s) first"
        )
    images = check_images(X_labeled, name="learner.X_training")
    masks = check_masks(y_labeled, name="learner.y_training", n_samples=len(images),
                        height=images.shape[2], width=images.shape[3])
    if len(images) < minimum:
        raise ValueError(
            f"{strategy} needs at least {minimum} labelled images; the learner has "
            f"{len(images)}: teach it more first"
        )
    return images, masks

