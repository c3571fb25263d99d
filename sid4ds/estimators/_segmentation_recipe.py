"""How the segmentation learner S trains: the checks of its recipe, the encoder it may
start from, and the loss of one training batch.

Pure functions of :class:`sid4ds.estimators.segmentation.SegmentationLearner`'s parameters
and network; the estimator calls them from ``_check_params``, ``_initialize`` and its fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sid4ds._core.validation import check_choice, check_float, check_int
from sid4ds.estimators.base import is_fitted
from sid4ds.nn.augment import augment_batch, check_augment, random_crops
from sid4ds.nn.losses import LOSSES, segmentation_loss
from sid4ds.nn.training import LR_SCHEDULES

__all__ = ["check_recipe", "check_rot90", "load_encoder", "segmentation_batch_loss"]


def check_recipe(learner: Any) -> None:
    """Check the parameters of S beyond those every sid4ds estimator shares.

    Parameters
    ----------
    learner : SegmentationLearner
        Its parameters are read, never changed.
    """
    check_choice(learner.lr_schedule, "lr_schedule", LR_SCHEDULES)
    check_float(learner.warmup, "warmup", low=0.0, high=1.0, include_high=False)
    check_float(learner.defect_share, "defect_share", low=0.0, high=1.0, include_high=False)
    check_choice(learner.loss, "loss", LOSSES)
    check_float(learner.bce_weight, "bce_weight", low=0.0)
    check_float(learner.dice_weight, "dice_weight", low=0.0)
    if learner.bce_weight == 0 and learner.dice_weight == 0:
        raise ValueError("bce_weight and dice_weight are both 0: the loss would be zero")
    check_augment(learner.augment)
    if learner.crop_size is not None:
        depth = learner.depth
        check_int(learner.crop_size, "crop_size", minimum=1)
        if learner.crop_size % 2**depth:
            raise ValueError(
                f"crop_size must be a multiple of 2**depth={2**depth} (the UNet "
                f"halves it {depth} times); got {learner.crop_size}: set crop_size="
                f"{max(1, round(learner.crop_size / 2**depth)) * 2**depth}")
    check_float(learner.threshold, "threshold", low=0.0, high=1.0)
    check_int(learner.best_window, "best_window", minimum=0)
    if learner.encoder_init is not None and not is_fitted(
            getattr(learner.encoder_init, "estimator", learner.encoder_init)):
        raise ValueError(
            f"encoder_init must be a fitted sid4ds estimator (e.g. the self-supervised "
            f"ReconstructionScorer M) or None; got an unfitted "
            f"{type(learner.encoder_init).__name__}: fit it first"
        )


def load_encoder(learner: Any, source: Any) -> None:
    """Copy the encoder and bottleneck weights of a fitted estimator into ``learner``'s network.

    Parameters
    ----------
    learner : SegmentationLearner
        Initialised (it has ``module_``); its network is changed in place.
    source : fitted sid4ds estimator
        With the same ``base_channels``, ``depth``, ``dilation`` and ``n_channels_in_``.
    """
    for name in ("base_channels", "depth", "dilation", "n_channels_in_"):
        if getattr(source, name, None) != getattr(learner, name):
            raise ValueError(
                f"encoder_init has {name}={getattr(source, name, None)!r} but this "
                f"SegmentationLearner has {getattr(learner, name)!r}; the encoder weights fit "
                f"only a network of the same size: set {name} alike"
            )
    own = learner.module_.state_dict()
    shared = {key: value for key, value in source.module_.state_dict().items()
              if key.startswith(("encoder.", "bottleneck.")) and key in own
              and own[key].shape == value.shape}
    own.update({key: value.detach().to(own[key].device).clone()
                for key, value in shared.items()})
    learner.module_.load_state_dict(own)


def check_rot90(augmentations: tuple[str, ...], images: np.ndarray) -> None:
    """Raise when ``"rot90"`` is asked for on images that are not square."""
    if "rot90" in augmentations and images.shape[2] != images.shape[3]:
        raise ValueError(
            f"augment holds 'rot90', which needs square images; X has images of "
            f"{images.shape[2]}x{images.shape[3]}: leave 'rot90' out of augment"
        )


def segmentation_batch_loss(
    module: torch.nn.Module,
    images: np.ndarray,
    masks: np.ndarray,
    *,
    device: torch.device,
    loss: str,
    weights: tuple[float, float],
    crop_size: int | None,
    augmentations: tuple[str, ...],
    channels_last: bool,
) -> Callable[[np.ndarray, torch.Generator], torch.Tensor]:
    """The loss of one training batch of S, as the training loop calls it.

    Parameters
    ----------
    module : torch.nn.Module
        The network being trained.
    images : ndarray of shape (n_samples, n_channels, height, width), float32
        The training images.
    masks : ndarray of shape (n_samples, height, width)
        Their binary masks.
    device : torch.device
        Where the network lives.
    loss : str
        A key of :data:`sid4ds.nn.losses.LOSSES`.
    weights : (float, float)
        ``bce_weight`` and ``dice_weight``.
    crop_size : int or None
        Side of the random training window, or None for whole images.
    augmentations : tuple of str
        The checked augmentations (:func:`sid4ds.nn.augment.check_augment`).
    channels_last : bool
        Feed the network channels-last batches.

    Returns
    -------
    batch_loss : callable
        ``batch_loss(indices, generator)``: crops, then augments the images ``indices``
        and their masks with ``generator``, and returns the loss of the network on them.
    """
    images_t = torch.from_numpy(images)
    masks_t = torch.from_numpy(masks.astype(np.float32))[:, None]

    def batch_loss(indices: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        index = torch.from_numpy(indices)
        batch_images = images_t[index].to(device)
        batch_masks = masks_t[index].to(device)
        if crop_size is not None:
            batch_images, batch_masks = random_crops(
                batch_images, batch_masks, (crop_size, crop_size), generator)
        if augmentations:
            batch_images, batch_masks = augment_batch(batch_images, batch_masks, generator,
                                                      augmentations)
        if channels_last:
            batch_images = batch_images.contiguous(memory_format=torch.channels_last)
        logits = module(batch_images).float()
        return segmentation_loss(loss, logits, batch_masks, *weights)

    return batch_loss
