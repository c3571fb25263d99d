"""The scikit-learn estimators of SID4DS: the segmentation learner S
(:mod:`~sid4ds.estimators.segmentation`), the reconstruction learners M and G
(:mod:`~sid4ds.estimators.reconstruction`), the final model's cross-validation
(:mod:`~sid4ds.estimators.final_model`) with its counting rules
(:mod:`~sid4ds.estimators.detection`), and the one base they share
(:mod:`~sid4ds.estimators.base`)."""

from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner

__all__ = ["ReconstructionScorer", "SegmentationLearner"]
