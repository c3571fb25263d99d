"""What a fitted reconstruction learner (M or G) computes: the chunk interface of its
scores (E_msmr's block errors, E_sdr's region errors) and reconstructions to look at.

A part of :class:`sid4ds.estimators.reconstruction.ReconstructionScorer` (a mixin over
:class:`~sid4ds.estimators.base.TorchEstimator`); the masks it hides come from
:mod:`sid4ds.estimators._masking`; see :mod:`sid4ds.estimators.base` for the chunk
interface.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sid4ds._core.validation import check_images, check_masks
from sid4ds.estimators._masking import block_errors, block_masks, masked_copies

__all__ = ["ReconstructionOutputs"]


class ReconstructionOutputs:
    """Chunk scores and reconstructions of M and G (a part of ``ReconstructionScorer``)."""

    def _pixel_scale(self) -> torch.Tensor:
        """Per-channel factor that turns standardised differences back into [0, 1] units."""
        return torch.from_numpy(self.pixel_std_).to(self.device_).view(1, -1, 1, 1)

    def msmr_chunk(self, images: np.ndarray) -> np.ndarray:
        """E_msmr of one chunk: each image's largest block error (the chunk interface).

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.

        Returns
        -------
        scores : ndarray of shape (n,), float64
        """
        return self.block_errors_chunk(images).max(axis=1)

    def block_errors_chunk(self, images: np.ndarray) -> np.ndarray:
        """Block errors of one chunk, Z = ``n_blocks`` per image (the chunk interface).

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.

        Returns
        -------
        errors : ndarray of shape (n, n_blocks), float64
        """
        standardized = self._standardize(images)
        n, channels, height, width = standardized.shape
        n_blocks = self.n_blocks
        blocks = torch.from_numpy(block_masks(height, width, n_blocks)).to(self.device_)
        hidden = blocks[:, None].float()  # (Z, 1, H, W), built once per chunk
        visible = 1.0 - hidden
        block_pixels = blocks.flatten(1).sum(dim=1).float() * channels  # (Z,)
        scale = self._pixel_scale()
        per_forward = self._inputs_per_forward(height, width)
        image_batch = max(1, per_forward // n_blocks)
        errors = np.empty((n, n_blocks), dtype=np.float64)
        self._prepare_module()
        with torch.inference_mode():
            for rows, batch in self._iter_batches(standardized, image_batch):
                copies = masked_copies(batch, visible)  # (b·Z, C, H, W)
                reconstructions = torch.cat([
                    self._forward(copies[start : start + per_forward])
                    for start in range(0, len(copies), per_forward)
                ]).view(len(batch), n_blocks, channels, height, width)
                squared = ((reconstructions - batch[:, None]) * scale[:, None]) ** 2
                batch_errors = block_errors(squared, hidden, block_pixels, self.error_region)
                errors[rows] = batch_errors.double().cpu().numpy()
        return errors

    def region_errors_chunk(self, images: np.ndarray, region_masks: np.ndarray) -> np.ndarray:
        """E_sdr of one chunk: the reconstruction error inside each image's region.

        Parameters
        ----------
        images : ndarray of shape (n, n_channels, height, width), float32
            Checked by :meth:`check_pool`.
        region_masks : ndarray of shape (n, height, width)
            1 inside the suspected defect, 0 elsewhere.

        Returns
        -------
        scores : ndarray of shape (n,), float64
        """
        standardized = self._standardize(images)
        n, channels, height, width = standardized.shape
        regions_t = torch.from_numpy(region_masks.astype(np.float32))[:, None]
        scale = self._pixel_scale()
        scores = np.empty(n, dtype=np.float64)
        self._prepare_module()
        with torch.inference_mode():
            for rows, batch in self._iter_batches(standardized,
                                                  self.images_per_batch(height, width)):
                region = regions_t[rows].to(self.device_)
                squared = (region * (self._forward(batch) - batch) * scale) ** 2  # eq. 8
                scores[rows] = (squared.sum(dim=(1, 2, 3)) / (channels * height * width)
                                ).double().cpu().numpy()
        return scores

    def reconstruct(self, X: Any, mask: Any = None) -> np.ndarray:
        """Reconstruct images, optionally with pixels hidden, for looking at.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images.
        mask : None or array-like of shape (height, width) or (n_samples, height, width)
            Binary; pixels marked 1 are hidden (set to the training mean) before
            reconstruction. ``None`` hides nothing.

        Returns
        -------
        reconstructions : ndarray of shape (n_samples, n_channels, height, width), float32
            In [0, 1] pixel units, clipped to [0, 1].
        """
        self._check_fitted()
        images = check_images(X, n_channels=self.n_channels_in_, depth=self.depth)
        standardized = self._standardize(images)
        n, _, height, width = images.shape
        if mask is None:
            hidden = np.zeros((n, height, width), dtype=np.uint8)
        else:
            mask_array = np.asarray(mask)
            if mask_array.ndim == 2:
                mask_array = np.broadcast_to(mask_array, (n, height, width))
            hidden = check_masks(mask_array, name="mask", n_samples=n, height=height,
                                 width=width)
        masked = standardized * (1.0 - hidden[:, None].astype(np.float32))
        mean = self.pixel_mean_[None, :, None, None]
        std = self.pixel_std_[None, :, None, None]
        output = np.empty_like(images)
        self._prepare_module()
        with torch.inference_mode():
            for rows, batch in self._iter_batches(masked, self.images_per_batch(height, width)):
                output[rows] = self._forward(batch).cpu().numpy()
        return np.clip(output * std + mean, 0.0, 1.0).astype(np.float32)
