"""SegmentationLearner: the supervised segmentation learner S of SID4DS (paper §3.2).

S is trained on what SID4DS selects: a few hundred labelled images of which a few dozen are
defective, plus the fake normals. Its default training recipe is made for that (see
``docs/method.md``, *The training recipe of S*): a budget of optimiser steps whatever the
size of the training set (:mod:`sid4ds.nn.training`), batches of which half are defective
images, a one-cycle learning rate, flips with brightness/contrast changes, and a BCE +
Tversky loss; the paper's recipe is one parameter set away (:data:`PAPER_RECIPE`).

The estimator's parameters, fitting and predictions are here; its recipe checks, the
encoder it may start from and the loss of a training batch are in the private
``sid4ds.estimators._segmentation_recipe``, its chunk interface, pooled features and
per-image losses in ``sid4ds.estimators._segmentation_outputs`` (a mixin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.base import clone

from sid4ds._core.validation import check_images, check_int, check_masks
from sid4ds.estimators._segmentation_outputs import SegmentationOutputs
from sid4ds.estimators._segmentation_recipe import (
    check_recipe,
    check_rot90,
    load_encoder,
    segmentation_batch_loss,
)
from sid4ds.estimators.base import TorchEstimator
from sid4ds.metrics import defect_iou, defective_rows
from sid4ds.nn.augment import DEFAULT_AUGMENT, augment_batch, check_augment, crop_window
from sid4ds.nn.losses import soft_dice_loss

__all__ = ["PAPER_RECIPE", "SegmentationLearner", "augment_batch", "defect_iou",
           "soft_dice_loss"]

#: The paper's training recipe of S (§3.2, §4.2, Table 2), one ``set_params`` away:
#: ``SegmentationLearner(**PAPER_RECIPE)``. The paper trains 150 epochs on a GPU.
PAPER_RECIPE: dict[str, Any] = {
    "max_epochs": 150, "batch_size": 32, "lr": 1e-3,
    "lr_schedule": "constant", "optimizer": "sgd", "defect_share": 0.0,
    "loss": "bce_dice", "augment": ("brightness_contrast", "flip"), "best_window": 20,
}


class SegmentationLearner(SegmentationOutputs, TorchEstimator):
    """Pixel-wise defect segmentation with a dilated-VGG UNet, as a scikit-learn estimator.

    The segmentation learner S of SID4DS (paper §3.2). The default recipe trains for a
    budget of optimiser steps (``max_steps``), draws half of each batch from the defective
    images (``defect_share``), follows a one-cycle learning rate, flips the images and
    changes their brightness and contrast, and replaces the Dice term by a Tversky loss;
    ``SegmentationLearner(**PAPER_RECIPE)`` is the paper's (150 epochs of SGD at lr 1e-3,
    loss 0.5·BCE + 1·Dice, brightness/contrast augmentation, the lowest-loss weights of the
    last 20 epochs). ``docs/method.md`` has the measurements behind the defaults.

    Parameters
    ----------
    base_channels : int, default=16
        Channels of the first UNet level (doubling at each level).
    depth : int, default=3
        UNet depth; image height and width must be divisible by ``2**depth``.
    dilation : int, default=1
        Dilation of the 3×3 convolutions.
    max_steps : int or None, default=1000
        Optimiser steps per ``fit`` (and per ``partial_fit`` without ``epochs``), whatever
        the number of training images, unless ``max_epochs`` is set.
    max_epochs : int or None, default=None
        When set, each fit trains this many epochs (passes over the training images) and
        ``max_steps`` is not used. The paper trains 150 epochs on a GPU.
    batch_size : int, default=16
        Training batch size.
    lr : float or "auto", default="auto"
        Peak learning rate. ``"auto"`` follows the length of each fit and the batch
        (:func:`sid4ds.nn.training.auto_learning_rate`): ``1e-3 · min(3, sqrt(1000 /
        steps)) · sqrt(batch_size / 16)``, so 1e-3 for the default 1000 steps of 16 images,
        up to 3e-3 for fits of a few hundred steps or fewer, less for longer ones.
    lr_schedule : {"onecycle", "cosine", "constant", "multistep"}, default="onecycle"
        How the learning rate moves over a fit (:func:`sid4ds.nn.training.learning_rate`):
        one-cycle warms up over the first ``warmup`` share of the steps, then decays.
    warmup : float, default=0.1
        Share of the steps of the one-cycle warm-up.
    defect_share : float, default=0.5
        Least share of each training batch drawn from the defective images (those whose
        mask has a defect pixel): when they are rarer in the training set, each batch holds
        this share of them and the rest normal ones; when they are as common or more (or
        ``defect_share=0``), batches are uniformly shuffled
        (:func:`sid4ds.nn.training.batch_indices`).
    loss : {"bce_tversky", "bce_dice", "bce_dice_image", "focal_dice"}, default="bce_tversky"
        The loss (:data:`sid4ds.nn.losses.LOSSES`): ``bce_weight·BCE + dice_weight·Tversky``,
        which weighs missed defect pixels more than false alarms; ``"bce_dice"`` is the
        paper's eq. 4.
    bce_weight : float, default=0.5
        Weight β of the pixel term (BCE, or focal).
    dice_weight : float, default=1.0
        Weight γ of the overlap term (Dice, or Tversky).
    augment : bool or sequence of str, default=("paste", "brightness_contrast", "flip")
        Augmentations of :mod:`sid4ds.nn.augment`: ``"paste"`` (copies of the batch's
        defects pasted onto half of its normal images,
        :func:`sid4ds.nn.augment.paste_defects`; an addition to the paper, which lets a
        few labelled defects train S on many surfaces), ``"brightness_contrast"`` (the
        paper's), ``"flip"``, ``"rot90"`` (square images; it hurt on the magnetic tiles,
        whose defects have an orientation); True is the default, False none. sid4ds 0.2
        and before: ``("brightness_contrast", "flip")``.
    crop_size : int or None, default=None
        Train on a random ``crop_size`` × ``crop_size`` window of each image larger than
        that (a multiple of ``2**depth``); the window of a defective image holds one of its
        defect pixels (:func:`sid4ds.nn.augment.random_crops`). A step then costs the same
        whatever the image size, so the budget ``max_steps`` does too; ``predict`` still
        sees whole images. None trains on whole images.
    threshold : float, default=0.5
        Probability at or above which ``predict`` marks a pixel as defect.
    best_window : int, default=0
        Keep the weights with the lowest epoch loss among the last ``best_window`` epochs
        (the paper: 20). ``0`` keeps the last weights (the one-cycle schedule ends at a tiny
        learning rate).
    encoder_init : estimator or None, default=None
        A fitted sid4ds estimator with the same network size (``base_channels``, ``depth``,
        ``dilation``), e.g. the self-supervised :class:`~sid4ds.ReconstructionScorer` M,
        whose encoder and bottleneck weights start every cold fit. Cloning keeps the
        reference (the weights are read at fit time). An addition to the paper, which
        trains S from scratch.
    optimizer : {"adamw", "sgd"}, default="adamw"
        AdamW, or SGD with momentum as in the paper (Table 2).
    momentum : float, default=0.9
        SGD momentum (ignored by AdamW).
    weight_decay : float, default=5e-4
        Weight decay.
    warm_start : bool, default=False
        When True, ``fit`` continues from the weights of the previous ``fit`` (the paper's
        iterative stage) instead of re-initialising.
    inference_batch_size : int or None, default=None
        Images per forward pass in ``predict_proba``. ``None`` picks it from the image size
        and the device (about 64k pixels per batch on CPU).
    n_jobs : int or None, default=None
        Workers that run inference on chunks of the pool in parallel through joblib
        (``-1``: every core; ``None``: 1 unless a ``joblib.parallel_config`` context, e.g.
        the Dask backend, says otherwise). Outputs are identical for every ``n_jobs``.
    precision : {"fp32", "bf16", "fp16", "auto"}, default="fp32"
        Arithmetic of the forward passes: ``"bf16"``/``"fp16"`` run them under
        ``torch.autocast`` (mixed precision; ``"fp16"`` needs CUDA, where it also scales
        the training loss). ``"auto"`` trains in bf16 where that is faster (a GPU
        that supports it; a CPU with AMX tiles), in fp32 elsewhere, and predicts in fp32
        (what the exported network gives in plain PyTorch).
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState, Generator or None, default=None
        Seeds weight initialisation, batches and augmentation. The same value gives the
        same weights and outputs on the CPU.
    verbose : int, default=0
        Show a progress bar over the training steps when > 0.

    Attributes
    ----------
    module_ : sid4ds.nn.unet.UNet
        The trained network.
    history_ : list of dict
        One entry per epoch (``ceil(n_samples / batch_size)`` steps) trained: ``epoch``,
        ``steps``, ``loss``, ``lr``, ``duration`` (seconds).
    best_epoch_ : int
        The epoch (1-based, counted over ``history_``) whose weights were kept, when
        ``best_window`` > 0.
    n_channels_in_ : int
        Channels of the images seen in ``fit``.
    image_shape_ : tuple of int
        (height, width) of the images seen in ``fit``.
    device_ : torch.device
        The device the network lives on.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=16, image_size=16, defect_ratio=0.5,
    ...                               random_state=0)
    >>> learner = SegmentationLearner(base_channels=4, depth=2, max_steps=4, random_state=0)
    >>> learner.fit(X, masks).predict(X).shape
    (16, 16, 16)
    """

    _fitted_attributes = (*TorchEstimator._fitted_attributes, "best_epoch_")
    _needs_target = True
    _auto_lr = True

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        dilation: int = 1,
        max_steps: int | None = 1000,
        max_epochs: int | None = None,
        batch_size: int = 16,
        lr: float | str = "auto",
        lr_schedule: str = "onecycle",
        warmup: float = 0.1,
        defect_share: float = 0.5,
        loss: str = "bce_tversky",
        bce_weight: float = 0.5,
        dice_weight: float = 1.0,
        augment: Any = DEFAULT_AUGMENT,
        crop_size: int | None = None,
        threshold: float = 0.5,
        best_window: int = 0,
        encoder_init: Any = None,
        optimizer: str = "adamw",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
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
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.warmup = warmup
        self.defect_share = defect_share
        self.loss = loss
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.augment = augment
        self.crop_size = crop_size
        self.threshold = threshold
        self.best_window = best_window
        self.encoder_init = encoder_init
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.warm_start = warm_start
        self.inference_batch_size = inference_batch_size
        self.n_jobs = n_jobs
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_clone__(self) -> SegmentationLearner:
        """A clone that keeps ``encoder_init`` itself (a fitted model, read at fit time)."""
        params = {key: clone(value, safe=False)
                  for key, value in self.get_params(deep=False).items()
                  if key != "encoder_init"}
        return type(self)(**params, encoder_init=self.encoder_init)

    def _module_kwargs(self, n_channels: int | None = None) -> dict[str, Any]:
        channels = self.n_channels_in_ if n_channels is None else n_channels
        return {
            "in_channels": channels,
            "out_channels": 1,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "dilation": self.dilation,
            "skip_connections": True,
        }

    def _check_params(self) -> None:
        self._check_common_params()
        check_recipe(self)

    def _validate_training_data(
        self, X: Any, y: Any, *, continuing: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        images = check_images(
            X, n_channels=self.n_channels_in_ if continuing else None, depth=self.depth
        )
        masks = check_masks(
            y, n_samples=len(images), height=images.shape[2], width=images.shape[3]
        )
        return images, masks

    def _initialize(self, n_channels: int) -> None:
        super()._initialize(n_channels)
        if self.encoder_init is not None:
            load_encoder(self, getattr(self.encoder_init, "estimator", self.encoder_init))

    def fit(self, X: Any, y: Any, *,
            on_step: Callable[[int], bool | None] | None = None) -> SegmentationLearner:
        """Train on images and their defect masks.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images, floats in [0, 1] or uint8.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Binary defect masks (1 = defect pixel). All-zero masks are normal images.
        on_step : callable, optional
            ``on_step(steps_done)``, called after every optimiser step of this fit: it may
            use the network as it is then (e.g. ``predict_proba`` on validation images, to
            compare checkpoints, as
            :func:`sid4ds.estimators.final_model.cross_validate` does); when it
            returns True, the fit stops after that step (the learning-rate schedule is
            still the one of the whole budget).

        Returns
        -------
        self : SegmentationLearner
            Trained from scratch (its encoder from ``encoder_init`` when given), or from
            the previous weights when ``warm_start=True``.
        """
        self._check_params()
        continuing = bool(self.warm_start) and self._is_initialized()
        images, masks = self._validate_training_data(X, y, continuing=continuing)
        if not continuing:
            self._initialize(images.shape[1])
        return self._fit_steps(images, masks, self._n_steps(len(images)), on_step=on_step)

    def partial_fit(self, X: Any, y: Any, epochs: int | None = None) -> SegmentationLearner:
        """Train further without re-initialising (initialises on the first call).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Binary defect masks.
        epochs : int, optional
            Epochs to train; by default the budget of ``fit`` (``max_steps``, or
            ``max_epochs``).

        Returns
        -------
        self : SegmentationLearner
        """
        self._check_params()
        if epochs is not None:
            epochs = check_int(epochs, "epochs", minimum=1)
        initialized = self._is_initialized()
        images, masks = self._validate_training_data(X, y, continuing=initialized)
        if not initialized:
            self._initialize(images.shape[1])
        return self._fit_steps(images, masks, self._n_steps(len(images), epochs))

    def _trains_channels_last(self, device: torch.device) -> bool:
        # faster on CPUs too: 1.35x per training step at 64 and 128 px (measured)
        return device.type == "cpu"

    def _training_window(self, height: int, width: int) -> tuple[int, int]:
        if self.crop_size is None:
            return height, width
        return crop_window(int(self.crop_size), height, width)

    def _fit_steps(self, images: np.ndarray, masks: np.ndarray, n_steps: int,
                   on_step: Callable[[int], bool | None] | None = None) -> SegmentationLearner:
        self.image_shape_ = tuple(images.shape[2:])
        augmentations = check_augment(self.augment)
        check_rot90(augmentations, images)
        channels_last = self._trains_channels_last(self.device_)
        if channels_last:
            self.module_.to(memory_format=torch.channels_last)
        batch_loss = segmentation_batch_loss(
            self.module_, images, masks, device=self.device_, loss=self.loss,
            weights=(float(self.bce_weight), float(self.dice_weight)),
            crop_size=self.crop_size, augmentations=augmentations, channels_last=channels_last)
        defective = defective_rows(masks)
        self._train(len(images), batch_loss, "SegmentationLearner", n_steps=n_steps,
                    schedule=self.lr_schedule, warmup=float(self.warmup),
                    defective=defective, defect_share=float(self.defect_share),
                    best_window=int(self.best_window), on_step=on_step)
        if channels_last:  # inference in the format a restored network has: same outputs
            self.module_.to(memory_format=torch.contiguous_format)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Defect probability of every pixel.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images, floats in [0, 1] or uint8; also an ``np.memmap``, a sequence of image
            paths, a torch Dataset or an :class:`~sid4ds.datasets.pool.ImagePool`, read in chunks
            (the returned maps are still one array: use :meth:`predict` for 4× less memory,
            or the strategies, which keep one score per image).

        Returns
        -------
        probabilities : ndarray of shape (n_samples, height, width), float32
        """
        self._check_fitted()
        return self.map_pool(self.predict_proba_chunk, self.check_pool(X))

    def predict(self, X: Any) -> np.ndarray:
        """Binary defect masks: probability ≥ ``threshold``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images (or a lazily read pool, as in :meth:`predict_proba`).

        Returns
        -------
        masks : ndarray of shape (n_samples, height, width), uint8 in {0, 1}
        """
        self._check_fitted()
        return self.map_pool(self.predict_chunk, self.check_pool(X))

    def score(self, X: Any, y: Any) -> float:
        """Defect-class IoU of ``predict(X)`` against ``y``, pooled over all pixels.

        Images whose true mask and prediction are both empty add nothing to intersection or
        union; if all are empty the score is 1.0 (see
        :func:`sid4ds.estimators.segmentation.defect_iou`).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            True binary masks.

        Returns
        -------
        iou : float in [0, 1]
        """
        predicted = self.predict(X)
        masks = check_masks(
            y, n_samples=len(predicted), height=predicted.shape[1], width=predicted.shape[2]
        )
        return defect_iou(masks, predicted)

    def transform(self, X: Any) -> np.ndarray:
        """Bottleneck features, average-pooled over space (for core-set style strategies).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images (or a lazily read pool, as in :meth:`predict_proba`).

        Returns
        -------
        features : ndarray of shape (n_samples, base_channels * 2**depth), float32
        """
        self._check_fitted()
        return self.map_pool(self.transform_chunk, self.check_pool(X))
