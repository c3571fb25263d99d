"""sid4ds: pick the images of a production line worth labelling (SID4DS active learning).

The SID4DS method (Li et al., Advanced Engineering Informatics 2023) as scikit-learn
estimators backed by PyTorch UNets, with modAL query strategies.
"""

from sid4ds._version import __version__
from sid4ds.baselines import (
    LossPredictionHead,
    RotationPretextScorer,
    coreset_sampling,
    entropy_sampling,
    greedy_k_center,
    learning_loss_sampling,
    margin_sampling,
    pt4al_sampling,
    random_sampling,
    suggestive_annotation_sampling,
)
from sid4ds.datasets.pool import ImagePool
from sid4ds.engine.loop import RoundSummary, SID4DSRun, run_sid4ds
from sid4ds.engine.rounds import SID4DSRounds, labels_per_round, resolve_n_normal
from sid4ds.estimators.reconstruction import ReconstructionScorer
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.modal.learner import DefectActiveLearner
from sid4ds.modal.strategies import msmr_sampling, sdr_sampling, sid4ds_sampling
from sid4ds.ranking.scores import msmr_scores, sdr_scores
from sid4ds.ranking.selection import rank_pool
from sid4ds.session import LabelingSession, SessionBusyError, SessionError

__all__ = [
    "DefectActiveLearner",
    "ImagePool",
    "LabelingSession",
    "SessionBusyError",
    "SessionError",
    "LossPredictionHead",
    "RotationPretextScorer",
    "coreset_sampling",
    "entropy_sampling",
    "greedy_k_center",
    "learning_loss_sampling",
    "margin_sampling",
    "pt4al_sampling",
    "random_sampling",
    "suggestive_annotation_sampling",
    "ReconstructionScorer",
    "RoundSummary",
    "SID4DSRounds",
    "SID4DSRun",
    "SegmentationLearner",
    "__version__",
    "msmr_sampling",
    "msmr_scores",
    "rank_pool",
    "labels_per_round",
    "resolve_n_normal",
    "run_sid4ds",
    "sdr_sampling",
    "sdr_scores",
    "sid4ds_sampling",
]
