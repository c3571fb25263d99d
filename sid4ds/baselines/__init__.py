"""Baseline query strategies to compare SID4DS against, adapted to defect segmentation.

Every strategy is ``f(learner, X_pool, n_instances=1, **kwargs) -> (indices, scores)`` like
modAL's and like :mod:`sid4ds.modal.strategies`: ``indices`` of the chosen pool images, best
first, and their scores, as numpy arrays. ``learner`` is a modAL ``ActiveLearner`` (or a
:class:`~sid4ds.DefectActiveLearner`) whose ``estimator`` is a
:class:`~sid4ds.SegmentationLearner`; a bare ``SegmentationLearner`` works too.

One module per strategy family:

- :mod:`~sid4ds.baselines.passive`: :func:`random_sampling`; needs nothing; leaves no pool
  scores.
- :mod:`~sid4ds.baselines.uncertainty`: :func:`entropy_sampling`, :func:`margin_sampling`;
  need a fitted estimator; pool scores: pixel entropy / 1 − pixel margin per image.
- :mod:`~sid4ds.baselines.coreset`: :func:`coreset_sampling`; needs a fitted estimator;
  leaves no pool scores.
- :mod:`~sid4ds.baselines.pt4al`: :func:`pt4al_sampling` and its pretext model
  :class:`RotationPretextScorer`; needs nothing (uses the estimator once it is fitted); pool
  scores: pretext (rotation) loss.
- :mod:`~sid4ds.baselines.suggestive`: :func:`suggestive_annotation_sampling`; needs
  labelled images; pool scores: ensemble variance.
- :mod:`~sid4ds.baselines.learning_loss`: :func:`learning_loss_sampling` and its
  :class:`LossPredictionHead`; needs a fitted estimator and at least 2 labelled images; pool
  scores: predicted loss.
- :mod:`~sid4ds.baselines.contrast`: :func:`local_contrast_sampling`, no learning; pool
  scores: local contrast.

Strategies that score the whole pool with one "higher is more informative" vector leave it
in the learner's state (``learner.sid4ds_state.pool_scores``, see :mod:`sid4ds.ranking.selection`),
so :class:`~sid4ds.DefectActiveLearner` can take the lowest-scored images as fake normals;
the others remove stale ones, so ``n_normal="auto"`` then picks no fake normals. Top-K
rankings go through :func:`~sid4ds.rank_pool` with the content hash as the tie-break, so
permuting the pool permutes the selection; every model a strategy keeps lives in that
state too.

Seeds: ``random_state=None`` borrows the learner's estimator's int ``random_state``
(:func:`sid4ds._core.random.borrow_seed`, the rule of every sid4ds strategy), else fresh
entropy; global random state (numpy's or torch's) is never touched.

Each strategy has pure functions beneath it (``pixel_entropy``, ``greedy_k_center``,
``max_cover_selection``, ``margin_ranking_loss``, ...) that work on plain arrays.
"""

from sid4ds.baselines.contrast import local_contrast_sampling, local_contrast_scores
from sid4ds.baselines.coreset import coreset_sampling, greedy_k_center
from sid4ds.baselines.learning_loss import (
    LossPredictionHead,
    fit_loss_prediction_head,
    learning_loss_sampling,
    margin_ranking_loss,
    pooled_encoder_features,
    predict_losses,
    segmentation_losses,
)
from sid4ds.baselines.passive import random_sampling
from sid4ds.baselines.pt4al import (
    RotationPretextScorer,
    pt4al_assign_batches,
    pt4al_sampling,
    pt4al_split,
    rotation_confidence,
    segmentation_confidence,
)
from sid4ds.baselines.suggestive import (
    ensemble_uncertainty,
    max_cover_selection,
    suggestive_annotation_sampling,
)
from sid4ds.baselines.uncertainty import (
    entropy_sampling,
    entropy_scores,
    margin_sampling,
    margin_scores,
    pixel_entropy,
    pixel_margin,
    reduce_per_image,
)

__all__ = [
    "LossPredictionHead",
    "RotationPretextScorer",
    "coreset_sampling",
    "ensemble_uncertainty",
    "entropy_sampling",
    "entropy_scores",
    "fit_loss_prediction_head",
    "greedy_k_center",
    "learning_loss_sampling",
    "local_contrast_sampling",
    "local_contrast_scores",
    "margin_ranking_loss",
    "margin_sampling",
    "margin_scores",
    "max_cover_selection",
    "pixel_entropy",
    "pixel_margin",
    "pooled_encoder_features",
    "predict_losses",
    "pt4al_assign_batches",
    "pt4al_sampling",
    "pt4al_split",
    "random_sampling",
    "reduce_per_image",
    "rotation_confidence",
    "segmentation_confidence",
    "segmentation_losses",
    "suggestive_annotation_sampling",
]
