"""ReconstructionScorer: the reconstruction learners M and G of SID4DS (paper §3.1, §3.3).

One estimator, two ways to fit:

* ``fit(X)`` — self-supervised masked reconstruction (learner M, eq. 2). Its
  ``score_samples(X)`` is the maximum sequential-mask reconstruction error E_msmr (eq. 3).
* ``fit(X, y)`` with defect masks — label-guided reconstruction (learner G, eq. 5–7): it
  learns to paint normal texture over labelled defects. Its ``score_samples(X, regions=R)``
  is the suspected-defect-region error E_sdr (eq. 8–9) inside binary regions ``R`` (the
  segmentation learner's pseudolabels).

To start G from M's weights, as the paper does, fit a copy of M with ``warm_start=True``::

    G = copy.deepcopy(M).set_params(warm_start=True).fit(X_labeled, masks_labeled)

The masking schemes (:func:`random_patch_masks`, :func:`block_masks`, the block errors and
G's input and target) are pure functions of the private ``sid4ds.estimators._masking``;
the chunk scores and reconstructions are in ``sid4ds.estimators._reconstruction_outputs``
(a mixin).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sid4ds._core.validation import (
    check_choice,
    check_divisible,
    check_float,
    check_images,
    check_int,
    check_masks,
)
from sid4ds.datasets.pool import as_pool, channel_statistics
from sid4ds.estimators._masking import (
    ERROR_REGIONS,
    block_masks,
    guided_pair,
    random_patch_masks,
)
from sid4ds.estimators._reconstruction_outputs import ReconstructionOutputs
from sid4ds.estimators.base import TorchEstimator
from sid4ds.metrics import defective_rows
from sid4ds.nn.augment import random_flips
from sid4ds.nn.training import LR_SCHEDULES

__all__ = ["ReconstructionScorer", "block_masks", "random_patch_masks"]


class ReconstructionScorer(ReconstructionOutputs, TorchEstimator):
    """Masked-reconstruction anomaly scorer: SID4DS learners M (self-supervised) and G.

    Parameters
    ----------
    base_channels : int, default=16
        Channels of the first UNet level.
    depth : int, default=3
        UNet depth; image sides must be divisible by ``2**depth``.
    dilation : int, default=2
        Dilation of the 3×3 convolutions (the paper's dilated kernels).
    skip_connections : bool, default=True
        UNet skip connections (paper §3.1.2: optional).
    patch_size : int, default=8
        Side of the square patches masked during self-supervised training.
    mask_ratio : float, default=0.75
        Share of patches masked during self-supervised training (the paper: ≥ 0.7).
    n_blocks : int, default=16
        Number Z of sequential blocks for E_msmr (a near-square grid, 4×4 for 16).
    error_region : {"block_max", "block", "image"}, default="block_max"
        How E_msmr measures each block's reconstruction error: the mean squared error over
        the masked block only (``"block"``), the largest squared pixel error inside the
        masked block (``"block_max"``), or the mean over the whole image as in eq. 3
        (``"image"``). See ``docs/method.md`` for the measurements behind the default.
    max_epochs : int or None, default=12
        Training epochs (passes over the training images). The paper trains 120 epochs on
        a GPU. None counts the training in steps instead (``max_steps``).
    max_steps : int or None, default=None
        A budget of optimiser steps per fit, used when ``max_epochs`` is None (see
        :mod:`sid4ds.nn.training`).
    batch_size : int, default=32
        Training batch size.
    lr : float, default=2e-3
        Base learning rate. The paper's is 0.1 with SGD.
    lr_schedule : {"constant", "multistep", "onecycle", "cosine"}, default="constant"
        ``"multistep"`` is the paper's schedule (×0.1 at epochs 30, 60, 90 of 120), scaled
        to ``max_epochs`` (×0.1 after 25%, 50% and 75% of the epochs); ``"onecycle"`` and
        ``"cosine"`` as in :func:`sid4ds.nn.training.learning_rate`.
    optimizer : {"adamw", "sgd"}, default="adamw"
        AdamW, or SGD as in the paper (Table 2). The paper's recipe is
        ``optimizer="sgd", lr=0.1, lr_schedule="multistep"``; at CPU-sized epoch counts
        AdamW at 2e-3 ranks defects better (``docs/method.md``), so it is the default.
    momentum : float, default=0.9
        SGD momentum.
    weight_decay : float, default=5e-4
        Weight decay.
    augment : bool, default=True
        Random horizontal and vertical flips during training.
    n_normal_mean : int, default=8
        B in eq. 5: how many random normal images are averaged into the normal image I0
        (label-guided fit only).
    alphas : tuple of float, default=(0.8, 0.7)
        α0 and α1 of eq. 6, the input mixing weights (label-guided fit only).
    warm_start : bool, default=False
        When True, ``fit`` continues from the current weights (and pixel statistics). This
        is how the label-guided learner G starts from the self-supervised M.
    inference_batch_size : int or None, default=None
        Network inputs per forward pass when scoring (each image becomes ``n_blocks``
        inputs for E_msmr). ``None`` picks it from the image size and the device.
    n_jobs : int or None, default=None
        Workers that score chunks of the pool in parallel through joblib (``-1``: every
        core; ``None``: 1 unless a ``joblib.parallel_config`` context, e.g. the Dask
        backend, says otherwise). Scores are identical for every ``n_jobs``.
    precision : {"fp32", "bf16", "fp16", "auto"}, default="fp32"
        Arithmetic of the forward passes: ``"bf16"``/``"fp16"`` run them under
        ``torch.autocast`` (mixed precision; ``"fp16"`` needs CUDA, where it also scales
        the training loss). Scores then differ from fp32 in the last digits.
        ``"auto"`` trains in bf16 where that is faster (a GPU that
        supports it; a CPU with AMX tiles), in fp32 elsewhere, and predicts in fp32.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation, shuffling, masking and mixing.
    verbose : int, default=0
        Show a progress bar over epochs when > 0.

    Attributes
    ----------
    module_ : sid4ds.nn.unet.UNet
        The trained network (it sees images standardised with ``pixel_mean_``/``pixel_std_``).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``lr``, ``duration``.
    fit_mode_ : {"self_supervised", "label_guided"}
        How the last ``fit`` trained.
    pixel_mean_, pixel_std_ : ndarray of shape (n_channels,)
        Per-channel statistics of the images of the first (cold) fit.
    n_channels_in_ : int
        Channels of the training images.
    device_ : torch.device
        Where the network lives.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=16, image_size=16, random_state=0)
    >>> scorer = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                               max_epochs=1, random_state=0).fit(X)
    >>> scorer.score_samples(X).shape
    (16,)
    """

    _fitted_attributes = (*TorchEstimator._fitted_attributes, "fit_mode_", "pixel_mean_",
                          "pixel_std_")

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        dilation: int = 2,
        skip_connections: bool = True,
        patch_size: int = 8,
        mask_ratio: float = 0.75,
        n_blocks: int = 16,
        error_region: str = "block_max",
        max_epochs: int | None = 12,
        max_steps: int | None = None,
        batch_size: int = 32,
        lr: float = 2e-3,
        lr_schedule: str = "constant",
        optimizer: str = "adamw",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        augment: bool = True,
        n_normal_mean: int = 8,
        alphas: tuple[float, float] = (0.8, 0.7),
        warm_start: bool = False,
        inference_batch_size: int | None = None,
        n_jobs: int | None = None,
        precision: str = "fp32",
        device: Any = "auto",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.base_channels = base_channels
        self.depth = depth
        self.dilation = dilation
        self.skip_connections = skip_connections
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio
        self.n_blocks = n_blocks
        self.error_region = error_region
        self.max_epochs = max_epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.augment = augment
        self.n_normal_mean = n_normal_mean
        self.alphas = alphas
        self.warm_start = warm_start
        self.inference_batch_size = inference_batch_size
        self.n_jobs = n_jobs
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ parameters
    def _module_kwargs(self, n_channels: int | None = None) -> dict[str, Any]:
        channels = self.n_channels_in_ if n_channels is None else n_channels
        return {
            "in_channels": channels,
            "out_channels": channels,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "dilation": self.dilation,
            "skip_connections": bool(self.skip_connections),
        }

    def _check_params(self) -> None:
        self._check_common_params()
        check_int(self.patch_size, "patch_size", minimum=1)
        check_float(self.mask_ratio, "mask_ratio", low=0.0, high=1.0, include_low=False,
                    include_high=False)
        check_int(self.n_blocks, "n_blocks", minimum=1)
        check_choice(self.error_region, "error_region", ERROR_REGIONS)
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        check_int(self.n_normal_mean, "n_normal_mean", minimum=1)
        alphas = self.alphas
        if not (isinstance(alphas, (tuple, list)) and len(alphas) == 2):
            raise ValueError(f"alphas must be a pair (alpha0, alpha1); got {alphas!r}")
        for position, alpha in enumerate(alphas):
            check_float(alpha, f"alphas[{position}]", low=0.0, high=1.0)

    def _recipe(self, n_samples: int) -> dict[str, Any]:
        return {"n_steps": self._n_steps(n_samples), "schedule": self.lr_schedule}

    # ------------------------------------------------------------------ fitting
    def guided_copy(self, max_epochs: int | None = None) -> ReconstructionScorer:
        """G made from this fitted M: a copy that continues from M's weights when fitted.

        The paper's G is M trained further, label-guided (§3.3): fit the copy with
        ``fit(X_labelled, masks)``. M itself is left as it is.

        Parameters
        ----------
        max_epochs : int, optional
            The copy's epochs (default: M's).

        Returns
        -------
        guided : ReconstructionScorer
            A deep copy with ``warm_start=True``.

        Examples
        --------
        >>> from sid4ds import ReconstructionScorer
        >>> from sid4ds.datasets import make_defect_images
        >>> X, masks = make_defect_images(n_samples=8, image_size=16, defect_ratio=0.5,
        ...                               random_state=0)
        >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
        ...                          max_epochs=1, random_state=0).fit(X)
        >>> G = M.guided_copy().fit(X, masks)
        >>> G.fit_mode_, M.fit_mode_
        ('label_guided', 'self_supervised')
        """
        guided = copy.deepcopy(self).set_params(warm_start=True)
        if max_epochs is not None:
            guided.set_params(max_epochs=max_epochs)
        return guided

    def fit(self, X: Any, y: Any = None) -> ReconstructionScorer:
        """Train self-supervised (``y=None``) or label-guided (``y`` = defect masks).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images, floats in [0, 1] or uint8.
        y : None or array-like of shape (n_samples, height, width) or (n_samples, height * width)
            ``None``: masked self-supervised reconstruction of ``X`` (learner M, eq. 2).
            Binary masks: label-guided reconstruction (learner G, eq. 5–7); at least one
            image must be normal (all-zero mask) to build the normal image I0. Start from a
            fitted self-supervised scorer with ``warm_start=True``.

        Returns
        -------
        self : ReconstructionScorer
        """
        self._check_params()
        continuing = bool(self.warm_start) and self._is_initialized()
        pool = as_pool(X)  # validates an in-memory array once; a lazy pool per chunk
        n_samples, (channels, height, width) = len(pool), pool.image_shape
        if continuing and channels != self.n_channels_in_:
            check_images(pool[:1], n_channels=self.n_channels_in_)  # raises, naming X
        try:
            check_divisible(height, width, self.depth)
        except ValueError as error:
            raise ValueError(f"X: {error}") from None
        # out of core (self-supervised on a lazy pool): training batches read when drawn
        images: Any = pool if (pool.lazy and y is None) else pool.to_numpy()
        masks = None
        if y is not None:
            masks = check_masks(y, n_samples=n_samples, height=height, width=width)
            if defective_rows(masks).all():
                raise ValueError(
                    "y has a defect in every mask; label-guided fitting needs at least one "
                    "normal image (all-zero mask) to build the normal image I0 (eq. 5)"
                )
        if not continuing:
            self._initialize(channels)
            self.pixel_mean_, self.pixel_std_ = channel_statistics(as_pool(images))
        self.image_shape_ = (height, width)
        if masks is None:
            self.fit_mode_ = "self_supervised"
            if isinstance(images, np.ndarray):
                standardized = torch.from_numpy(self._standardize(images))

                def read(indices: np.ndarray) -> torch.Tensor:
                    return standardized[torch.from_numpy(indices)]
            else:
                def read(indices: np.ndarray) -> torch.Tensor:
                    return torch.from_numpy(self._standardize(images[indices]))
            self._fit_self_supervised(read, n_samples, height, width)
        else:
            self.fit_mode_ = "label_guided"
            standardized = torch.from_numpy(self._standardize(images))
            self._fit_label_guided(standardized, torch.from_numpy(masks.astype(np.float32)))
        return self

    def _standardize(self, images: np.ndarray) -> np.ndarray:
        mean = self.pixel_mean_[None, :, None, None]
        std = self.pixel_std_[None, :, None, None]
        return ((images - mean) / std).astype(np.float32)

    def _flip(self, tensors: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
        return random_flips(tensors, generator) if self.augment else tensors

    def _fit_self_supervised(self, read: Callable[[np.ndarray], torch.Tensor], n_samples: int,
                             height: int, width: int) -> None:

        def batch_loss(indices: np.ndarray, generator: torch.Generator) -> torch.Tensor:
            (originals,) = self._flip(
                [read(indices).to(self.device_)], generator
            )
            hidden = random_patch_masks(
                len(indices), height, width, self.patch_size, self.mask_ratio, generator,
                self.device_,
            )
            masked_images = originals * (1.0 - hidden)  # masked pixels = dataset mean
            return F.mse_loss(self.module_(masked_images), originals)

        self._train(n_samples, batch_loss, "ReconstructionScorer (M)",
                    **self._recipe(n_samples))

    def _fit_label_guided(self, standardized: torch.Tensor, masks: torch.Tensor) -> None:
        is_normal = masks.flatten(1).amax(dim=1) == 0
        normals = standardized[is_normal].to(self.device_)
        n_mean = min(int(self.n_normal_mean), len(normals))
        alphas = (float(self.alphas[0]), float(self.alphas[1]))
        defect_masks = masks[:, None]

        def batch_loss(indices: np.ndarray, generator: torch.Generator) -> torch.Tensor:
            index = torch.from_numpy(indices)
            images, defect_region = self._flip(
                [standardized[index].to(self.device_), defect_masks[index].to(self.device_)],
                generator,
            )
            mixed_input, target = guided_pair(images, defect_region, normals, n_mean, alphas,
                                              generator, self.device_)
            return F.mse_loss(self.module_(mixed_input), target)

        self._train(len(standardized), batch_loss, "ReconstructionScorer (G)",
                    **self._recipe(len(standardized)))

    # ------------------------------------------------------------------ scoring
    def score_samples(self, X: Any, regions: Any = None) -> np.ndarray:
        """Anomaly score per image: E_msmr, or E_sdr inside ``regions``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images, floats in [0, 1] or uint8; also an ``np.memmap``, a sequence of image
            paths, a torch Dataset or an :class:`~sid4ds.datasets.pool.ImagePool`, read in chunks.
        regions : None or array-like of shape (n_samples, height, width), optional
            ``None``: E_msmr (eq. 3), the maximum over ``n_blocks`` sequential block masks of
            the reconstruction error (in [0, 1] pixel units). The masked copies are built
            on the device from block masks made once and go through the network in passes
            of about 64k pixels on a CPU (more on a GPU), never one image at a time.
            Binary regions (1 = suspected defect, e.g. the segmentation learner's
            pseudolabels): E_sdr (eq. 8–9), the squared reconstruction error of the unmasked
            image inside the region, summed and divided by H·W.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            Higher means more likely defective.
        """
        self._check_fitted()
        pool = self.check_pool(X)
        if regions is not None:
            _, height, width = pool.image_shape
            region_masks = check_masks(regions, name="regions", n_samples=len(pool),
                                       height=height, width=width)
            return self.map_pool(self.region_errors_chunk, pool, extras=(region_masks,))
        return self.map_pool(self.msmr_chunk, pool, copies=self.n_blocks)

    def block_errors(self, X: Any) -> np.ndarray:
        """Reconstruction error of each image with each of the ``n_blocks`` blocks masked.

        ``score_samples(X)`` (E_msmr) is the maximum of these over the blocks.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images (or a lazily read pool, as in :meth:`score_samples`).

        Returns
        -------
        errors : ndarray of shape (n_samples, n_blocks), float64
            Squared error in [0, 1] pixel units, reduced as ``error_region`` says. Block
            ``z`` is ``block_masks(H, W, Z)[z]``.
        """
        self._check_fitted()
        return self.map_pool(self.block_errors_chunk, self.check_pool(X), copies=self.n_blocks)
