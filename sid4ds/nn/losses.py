"""Losses of the segmentation learner S: the paper's BCE + Dice and three alternatives.

A loss that a few defect pixels can satisfy by predicting "all background" is the failure
of small, imbalanced label sets; :data:`LOSSES` are the candidates measured against it
(``docs/method.md``). Each takes logits and masks of shape (n, 1, H, W) and returns the
batch's loss; :func:`per_image_loss` gives one value per image with the same rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "focal_loss", "image_dice_loss", "per_image_loss", "segmentation_loss",
           "soft_dice_loss", "tversky_loss"]

#: The losses :class:`~sid4ds.SegmentationLearner` takes (its ``loss`` parameter):
#: ``"bce_dice"`` is the paper's eq. 4, ``bce_weight·BCE + dice_weight·Dice`` with the Dice
#: pooled over the batch; ``"bce_dice_image"`` averages the Dice of each image that has a
#: defect pixel; ``"focal_dice"`` replaces the BCE by a focal loss (γ = 2, α = 0.75);
#: ``"bce_tversky"`` replaces the Dice by a Tversky loss that weighs missed defect pixels
#: more than false alarms (α = 0.3, β = 0.7).
LOSSES = ("bce_dice", "bce_dice_image", "focal_dice", "bce_tversky")


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2·Σpg + s) / (Σp + Σg + s)`` over the whole batch.

    Pooling over the batch keeps the loss defined for batches of normal images (no defect
    pixel), where it pushes the predicted probabilities towards 0.
    """
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * masks).sum()
    return 1.0 - (2.0 * intersection + smooth) / (probabilities.sum() + masks.sum() + smooth)


def _dice_per_image(logits: torch.Tensor, masks: torch.Tensor, smooth: float) -> torch.Tensor:
    probabilities = torch.sigmoid(logits).flatten(1)
    truth = masks.flatten(1)
    intersection = (probabilities * truth).sum(dim=1)
    return 1.0 - (2.0 * intersection + smooth) / (
        probabilities.sum(dim=1) + truth.sum(dim=1) + smooth)


def image_dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice of each image with a defect pixel, averaged; pooled Dice without any."""
    has_defect = masks.flatten(1).amax(dim=1) > 0
    if not bool(has_defect.any()):
        return soft_dice_loss(logits, masks, smooth)
    return _dice_per_image(logits[has_defect], masks[has_defect], smooth).mean()


def focal_loss(logits: torch.Tensor, masks: torch.Tensor, gamma: float = 2.0,
               alpha: float = 0.75) -> torch.Tensor:
    """Focal loss (Lin et al. 2017): BCE down-weighted on pixels already classified well.

    ``α`` weighs defect pixels, ``1 − α`` normal ones; scaled by 10 so that its size is
    that of the BCE it replaces on these images.
    """
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    probabilities = torch.sigmoid(logits)
    correct = torch.where(masks > 0, probabilities, 1.0 - probabilities)
    weights = torch.where(masks > 0, alpha, 1.0 - alpha)
    return 10.0 * (weights * (1.0 - correct) ** gamma * bce).mean()


def tversky_loss(logits: torch.Tensor, masks: torch.Tensor, alpha: float = 0.3,
                 beta: float = 0.7, smooth: float = 1.0) -> torch.Tensor:
    """Tversky loss ``1 − (TP + s) / (TP + α·FP + β·FN + s)`` over the batch (soft counts)."""
    probabilities = torch.sigmoid(logits)
    true_positive = (probabilities * masks).sum()
    false_positive = (probabilities * (1.0 - masks)).sum()
    false_negative = ((1.0 - probabilities) * masks).sum()
    return 1.0 - (true_positive + smooth) / (
        true_positive + alpha * false_positive + beta * false_negative + smooth)


def segmentation_loss(loss: str, logits: torch.Tensor, masks: torch.Tensor,
                      bce_weight: float = 0.5, dice_weight: float = 1.0) -> torch.Tensor:
    """The batch loss ``loss`` (one of :data:`LOSSES`) of logits against masks.

    Parameters
    ----------
    loss : str
        One of :data:`LOSSES`.
    logits, masks : Tensor of shape (n, 1, height, width)
        Network outputs and binary float masks.
    bce_weight, dice_weight : float
        Weights of the pixel term (BCE or focal) and the overlap term (Dice or Tversky).

    Returns
    -------
    loss : Tensor of shape ()
    """
    if loss == "focal_dice":
        pixel = focal_loss(logits, masks)
    else:
        pixel = F.binary_cross_entropy_with_logits(logits, masks)
    if loss == "bce_dice_image":
        overlap = image_dice_loss(logits, masks)
    elif loss == "bce_tversky":
        overlap = tversky_loss(logits, masks)
    else:
        overlap = soft_dice_loss(logits, masks)
    return bce_weight * pixel + dice_weight * overlap


def per_image_loss(loss: str, logits: torch.Tensor, masks: torch.Tensor,
                   bce_weight: float = 0.5, dice_weight: float = 1.0) -> torch.Tensor:
    """:func:`segmentation_loss` of each image on its own, shape (n,)."""
    return torch.stack([segmentation_loss(loss, logits[i : i + 1], masks[i : i + 1],
                                          bce_weight, dice_weight)
                        for i in range(len(logits))])
