"""Learning loss (Yoo & Kweon 2019): a head that predicts the segmenter's loss per image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sid4ds._core.random import borrow_seed, make_rng
from sid4ds._core.validation import (
    check_features,
    check_float,
    check_images,
    check_int,
    check_n_instances,
)
from sid4ds.baselines.common import fitted_segmenter, labeled_set
from sid4ds.datasets.pool import as_pool
from sid4ds.estimators.base import is_fitted
from sid4ds.ranking.selection import content_keys, query_state, select_top, tie_keys

__all__ = [
    "LossPredictionHead",
    "fit_loss_prediction_head",
    "learning_loss_sampling",
    "margin_ranking_loss",
    "pooled_encoder_features",
    "predict_losses",
    "segmentation_losses",
]


class LossPredictionHead(nn.Module):
    """Loss-prediction module of Yoo & Kweon (2019) on pooled UNet features.

    Each feature level (global-average-pooled encoder level or bottleneck) goes through
    its own ``Linear → ReLU``; the concatenation goes through a final ``Linear`` to one
    scalar, the predicted loss.

    Parameters
    ----------
    level_widths : sequence of int
        Channels of each pooled level, in the order they are concatenated in the input.
    hidden_units : int, default=32
        Units per level.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.baselines import LossPredictionHead
    >>> head = LossPredictionHead([4, 8, 16], hidden_units=8)
    >>> head(torch.zeros(5, 28)).shape
    torch.Size([5])
    """

    def __init__(self, level_widths: Sequence[int], hidden_units: int = 32) -> None:
        super().__init__()
        self.level_widths = [check_int(width, "level_widths", minimum=1)
                             for width in level_widths]
        if not self.level_widths:
            raise ValueError("level_widths is empty; give the width of at least one level")
        hidden_units = check_int(hidden_units, "hidden_units", minimum=1)
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Linear(width, hidden_units), nn.ReLU())
            for width in self.level_widths
        )
        self.output = nn.Linear(hidden_units * len(self.level_widths), 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Map pooled features to predicted losses.

        Parameters
        ----------
        pooled : Tensor of shape (n, sum(level_widths))
            Average-pooled encoder features (see :func:`pooled_encoder_features`).

        Returns
        -------
        losses : Tensor of shape (n,)
        """
        parts = torch.split(pooled, self.level_widths, dim=1)
        hidden = [level(part) for level, part in zip(self.levels, parts, strict=True)]
        return self.output(torch.cat(hidden, dim=1))[:, 0]


def pooled_encoder_features(segmenter: Any, X: Any) -> tuple[np.ndarray, list[int]]:
    """Global-average-pooled features of every UNet encoder level and the bottleneck.

    Parameters
    ----------
    segmenter : SegmentationLearner
        Fitted.
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images.

    Returns
    -------
    features : ndarray of shape (n_samples, sum(level_widths)), float32
        Levels concatenated from the first encoder level to the bottleneck.
    level_widths : list of int
        Channels of each level: ``base_channels · 2**level`` for level 0..depth.
    """
    if not is_fitted(segmenter):
        raise ValueError("segmenter is not fitted; fit it first")
    return segmenter.map_pool(segmenter.level_features_chunk,
                              segmenter.check_pool(X)), segmenter.level_widths()


def segmentation_losses(segmenter: Any, X: Any, y: Any) -> np.ndarray:
    """Per-image training loss of a fitted SegmentationLearner (eq. 4 of SID4DS).

    ``bce_weight · BCE + dice_weight · Dice`` of each image on its own (the soft Dice
    pooled over that image's pixels only), with the learner's weights.

    Parameters
    ----------
    segmenter : SegmentationLearner
        Fitted.
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        Images.
    y : array-like of shape (n_samples, height, width)
        Their binary masks.

    Returns
    -------
    losses : ndarray of shape (n_samples,), float64
    """
    return segmenter.image_losses(X, y)


def margin_ranking_loss(
    predicted: torch.Tensor, target: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Pairwise margin ranking loss of Yoo & Kweon (2019) over all pairs of a batch.

    For every pair ``i < j`` whose targets differ,
    ``max(0, margin − sign(target_i − target_j) · (predicted_i − predicted_j))``, averaged:
    only the order of the targets matters, not their scale.

    Parameters
    ----------
    predicted : Tensor of shape (n,)
        Predicted losses.
    target : Tensor of shape (n,)
        True losses.
    margin : float, default=1.0
        ξ of the paper.

    Returns
    -------
    loss : Tensor of shape ()
        0 (with a gradient) when no pair has different targets.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.baselines import margin_ranking_loss
    >>> target = torch.tensor([0.1, 0.5, 0.9])
    >>> float(margin_ranking_loss(torch.tensor([0.0, 2.0, 4.0]), target))
    0.0
    >>> float(margin_ranking_loss(torch.tensor([1.0, 1.0, 1.0]), target))
    1.0
    """
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(
            f"predicted and target must both have shape (n,); got {tuple(predicted.shape)} "
            f"and {tuple(target.shape)}"
        )
    sign = torch.sign(target[:, None] - target[None, :])
    difference = predicted[:, None] - predicted[None, :]
    upper = torch.ones_like(sign, dtype=torch.bool).triu(diagonal=1)
    pairs = upper & (sign != 0)
    if not bool(pairs.any()):
        return predicted.sum() * 0.0
    return torch.clamp(margin - sign * difference, min=0.0)[pairs].mean()


def fit_loss_prediction_head(
    features: Any,
    target_losses: Any,
    level_widths: Sequence[int],
    *,
    hidden_units: int = 32,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 1e-3,
    margin: float = 1.0,
    random_state: Any = None,
) -> tuple[LossPredictionHead, list[float]]:
    """Train a :class:`LossPredictionHead` with :func:`margin_ranking_loss` (on the CPU).

    Parameters
    ----------
    features : array-like of shape (n_samples, sum(level_widths))
        Pooled features of the labelled images (:func:`pooled_encoder_features`).
    target_losses : array-like of shape (n_samples,)
        Their true losses (:func:`segmentation_losses`).
    level_widths : sequence of int
        Widths of the levels in ``features``.
    hidden_units : int, default=32
    epochs : int, default=100
        Passes over the samples, shuffled each time.
    batch_size : int, default=16
        Samples per batch; every pair in a batch counts.
    lr : float, default=1e-3
        Adam learning rate.
    margin : float, default=1.0
        Ranking margin ξ.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation and shuffling (no global random state is used).

    Returns
    -------
    head : LossPredictionHead
        Trained, in eval mode.
    history : list of float
        Mean ranking loss of each epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import fit_loss_prediction_head, predict_losses
    >>> features = np.random.default_rng(0).random((32, 6))
    >>> head, history = fit_loss_prediction_head(features, features.sum(axis=1), [2, 4],
    ...                                          epochs=20, random_state=0)
    >>> predict_losses(head, features).shape, history[-1] < history[0]
    ((32,), True)
    """
    inputs = check_features(features, "features")
    targets = np.asarray(target_losses, dtype=np.float64)
    if targets.shape != (len(inputs),) or not np.isfinite(targets).all():
        raise ValueError(
            f"target_losses must hold one finite loss per sample, shape ({len(inputs)},); "
            f"got shape {targets.shape}"
        )
    widths = [check_int(width, "level_widths", minimum=1) for width in level_widths]
    if sum(widths) != inputs.shape[1]:
        raise ValueError(
            f"level_widths sum to {sum(widths)} but features has {inputs.shape[1]} columns"
        )
    if len(inputs) < 2:
        raise ValueError(
            f"the ranking loss needs at least 2 samples; got {len(inputs)}: label more "
            f"images first"
        )
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    lr = check_float(lr, "lr", low=0.0, include_low=False)
    margin = check_float(margin, "margin", low=0.0)
    rng = make_rng(random_state)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        head = LossPredictionHead(widths, hidden_units)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    inputs_t = torch.from_numpy(inputs.astype(np.float32))
    targets_t = torch.from_numpy(targets.astype(np.float32))
    history: list[float] = []
    head.train()
    for _ in range(epochs):
        order = rng.permutation(len(inputs))
        total, n_batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            rows = torch.from_numpy(order[start : start + batch_size])
            if len(rows) < 2:  # a lone sample has no pair
                continue
            loss = margin_ranking_loss(head(inputs_t[rows]), targets_t[rows], margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            n_batches += 1
        history.append(total / n_batches)
    head.eval()
    return head, history


def predict_losses(head: LossPredictionHead, features: Any) -> np.ndarray:
    """Predicted loss of each sample.

    Parameters
    ----------
    head : LossPredictionHead
        Trained (:func:`fit_loss_prediction_head`).
    features : array-like of shape (n_samples, sum(level_widths))

    Returns
    -------
    losses : ndarray of shape (n_samples,), float64
        Higher means a larger expected loss; only the order is meaningful.
    """
    inputs = check_features(features, "features")
    if inputs.shape[1] != sum(head.level_widths):
        raise ValueError(
            f"features has {inputs.shape[1]} columns but the head expects "
            f"{sum(head.level_widths)}"
        )
    head.eval()
    with torch.inference_mode():
        return head(torch.from_numpy(inputs.astype(np.float32))).double().numpy()


def learning_loss_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    hidden_units: int = 32,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 1e-3,
    margin: float = 1.0,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Learning loss: the pool images with the largest predicted segmentation loss.

    A :class:`LossPredictionHead` reads the global-average-pooled features of every UNet
    encoder level and the bottleneck of the learner's fitted segmentation learner
    (:func:`pooled_encoder_features`). It is trained on the labelled images, with the
    pairwise :func:`margin_ranking_loss`, to order them like their per-image segmentation
    losses (:func:`segmentation_losses`), then predicts the loss of every pool image. The
    trained head is left in ``learner.sid4ds_state.learning_loss_head`` and its epoch losses
    in ``.learning_loss_history``; it is retrained on every query, because the
    segmentation learner it reads changes with every ``teach``.

    Parameters
    ----------
    learner : modAL ActiveLearner
        Its ``estimator`` must be a fitted :class:`~sid4ds.SegmentationLearner`, and it
        must have at least 2 labelled images.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    hidden_units, epochs, batch_size, lr, margin
        Training of the head (see :func:`fit_loss_prediction_head`).
    random_state : int or None, default=None
        Seeds the head; None: the learner's estimator's int ``random_state``, if any.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest predicted loss first; ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their predicted losses (only the order is meaningful). All pool predictions are
        left in ``learner.sid4ds_state.pool_scores``.

    Notes
    -----
    Simplified from the paper: the head is trained after the segmentation learner is
    fitted, on its frozen features, instead of jointly with it (the loss gradient does not
    reach the UNet); its targets are the fitted learner's losses on its own training
    images; every pair in a batch is ranked, not only the paper's split-batch pairs.

    References
    ----------
    Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019.

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.baselines import learning_loss_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=24, image_size=16, defect_ratio=0.25,
    ...                               random_state=0)
    >>> learner = ActiveLearner(
    ...     SegmentationLearner(base_channels=4, depth=2, max_epochs=1, random_state=0),
    ...     query_strategy=learning_loss_sampling, X_training=X[:8], y_training=masks[:8])
    >>> indices, _ = learner.query(X[8:], n_instances=3, epochs=10)
    >>> len(indices), learner.sid4ds_state.pool_scores.shape
    (3, (16,))
    """
    images = as_pool(X_pool, name="X_pool")
    check_n_instances(n_instances, len(images))
    segmenter = fitted_segmenter(learner, "learning_loss_sampling")
    images = segmenter.check_pool(images, name="X_pool")
    X_labeled, y_labeled = labeled_set(learner, "learning_loss_sampling", minimum=2)
    X_labeled = check_images(X_labeled, name="learner.X_training",
                             n_channels=segmenter.n_channels_in_, depth=segmenter.depth)
    targets = segmentation_losses(segmenter, X_labeled, y_labeled)
    labeled_features, widths = pooled_encoder_features(segmenter, X_labeled)
    head, history = fit_loss_prediction_head(
        labeled_features, targets, widths, hidden_units=hidden_units, epochs=epochs,
        batch_size=batch_size, lr=lr, margin=margin,
        random_state=borrow_seed(learner, random_state))
    state = query_state(learner)
    state.learning_loss_head, state.learning_loss_history = head, history
    pool_features, _ = pooled_encoder_features(segmenter, images)
    return select_top(learner, predict_losses(head, pool_features),
                      tie_keys(content_keys(images)), n_instances)

