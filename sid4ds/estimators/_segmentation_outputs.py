"""What a fitted segmentation learner S computes besides ``predict``: the chunk interface
(probability maps, masks and pooled encoder features of one chunk) and the loss of each
image.

A part of :class:`sid4ds.estimators.segmentation.SegmentationLearner` (a mixin over
:class:`~sid4ds.estimators.base.TorchEstimator`); see :mod:`sid4ds.estimators.base` for the
chunk interface.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sid4ds._core.validation import check_images, check_masks
from sid4ds.nn.losses import per_image_loss

__all__ = ["SegmentationOutputs"]


class SegmentationOutputs:
    """The chunk interface and per-image losses of S (a part of ``SegmentationLearner``)."""

    def predict_proba_chunk(self, images: np.ndarray) -> np.ndarray:
        """Probability maps of one chunk (see :mod:`sid4ds.estimators.base`, the chunk interface).

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.

        Returns
        -------
        probabilities : ndarray of shape (n, height, width), float32
        """
        probabilities = np.empty((len(images), *images.shape[2:]), dtype=np.float32)
        batch_size = self.images_per_batch(*images.shape[2:])
        self._prepare_module()
        with torch.inference_mode():
            for rows, batch in self._iter_batches(images, batch_size):
                probabilities[rows] = torch.sigmoid(self._forward(batch)[:, 0]).cpu().numpy()
        return probabilities

    def predict_chunk(self, images: np.ndarray) -> np.ndarray:
        """Binary masks of one chunk: probability ≥ ``threshold`` (the chunk interface).

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.

        Returns
        -------
        masks : ndarray of shape (n, height, width), uint8 in {0, 1}
        """
        return (self.predict_proba_chunk(images) >= self.threshold).astype(np.uint8)

    def transform_chunk(self, images: np.ndarray) -> np.ndarray:
        """Pooled bottleneck features of one chunk (the chunk interface).

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.

        Returns
        -------
        features : ndarray of shape (n, base_channels·2**depth), float32
        """
        features = np.empty((len(images), self.base_channels * 2**self.depth), dtype=np.float32)
        self._prepare_module()
        with torch.inference_mode(), self._autocast():
            for rows, batch in self._iter_batches(images, self.images_per_batch(*images.shape[2:])):
                features[rows] = self.module_.encode(batch).mean(dim=(2, 3)).float().cpu().numpy()
        return features

    def level_features_chunk(self, images: np.ndarray) -> np.ndarray:
        """Average-pooled features of every encoder level and the bottleneck, one chunk.

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.

        Returns
        -------
        features : ndarray of shape (n, base_channels·(2**(depth + 1) − 1)), float32
            Levels concatenated from the first encoder level (``base_channels`` columns) to
            the bottleneck (``base_channels·2**depth``), as :func:`level_widths` lists them.
        """
        widths = self.level_widths()
        features = np.empty((len(images), sum(widths)), dtype=np.float32)
        self._prepare_module()
        with torch.inference_mode(), self._autocast():
            for rows, batch in self._iter_batches(images, self.images_per_batch(*images.shape[2:])):
                bottleneck, skips = self.module_.encode_levels(batch)
                pooled = [level.mean(dim=(2, 3)) for level in (*skips, bottleneck)]
                features[rows] = torch.cat(pooled, dim=1).float().cpu().numpy()
        return features

    def level_widths(self) -> list[int]:
        """Channels of each encoder level and the bottleneck: ``base_channels·2**level``."""
        return [self.base_channels * 2**level for level in range(self.depth + 1)]

    def image_losses(self, X: Any, y: Any) -> np.ndarray:
        """The training loss (``loss``) of each image on its own, with the current weights.

        E.g. ``bce_weight·BCE + dice_weight·Dice`` (eq. 4) of each image, the soft Dice
        pooled over that image's pixels only; no augmentation.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Their binary masks.

        Returns
        -------
        losses : ndarray of shape (n_samples,), float64
        """
        self._check_fitted()
        images = check_images(X, n_channels=self.n_channels_in_, depth=self.depth)
        masks = check_masks(y, n_samples=len(images), height=images.shape[2],
                            width=images.shape[3])
        losses = np.empty(len(images), dtype=np.float64)
        masks_t = torch.from_numpy(masks.astype(np.float32))[:, None]
        weights = (float(self.bce_weight), float(self.dice_weight))
        self._prepare_module()
        with torch.inference_mode():
            for rows, batch in self._iter_batches(images, self.images_per_batch(*images.shape[2:])):
                logits = self._forward(batch).cpu()
                losses[rows] = per_image_loss(self.loss, logits, masks_t[rows],
                                              *weights).double().numpy()
        return losses
