"""SegmentationLearner: the supervised segmentation learner S of SID4DS (paper §3.2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import Tags

from sid4ds._torch import TorchEstimator
from sid4ds._validation import check_float, check_images, check_int, check_masks

__all__ = ["SegmentationLearner", "soft_dice_loss", "defect_iou"]


def soft_dice_loss(logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - (2·Σpg + s) / (Σp + Σg + s)`` over the whole batch.

    Pooling over the batch keeps the loss defined for batches of normal images (no defect
    pixel), where it pushes the predicted probabilities towards 0.
    """
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * masks).sum()
    return 1.0 - (2.0 * intersection + smooth) / (probabilities.sum() + masks.sum() + smooth)


def defect_iou(masks_true: np.ndarray, masks_pred: np.ndarray) -> float:
    """Defect-class IoU pooled over all pixels of all images.

    Intersection and union are summed over the whole set before dividing, so an image whose
    true mask and prediction are both empty adds nothing to either: it neither helps nor
    hurts. If every mask and every prediction is empty the IoU is 1.0 (nothing to find,
    nothing falsely found).

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.segmentation import defect_iou
    >>> truth = np.array([[[0, 1], [1, 0]]])
    >>> defect_iou(truth, np.array([[[0, 1], [0, 0]]]))
    0.5
    """
    truth = np.asarray(masks_true).astype(bool)
    predicted = np.asarray(masks_pred).astype(bool)
    union = np.logical_or(truth, predicted).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(truth, predicted).sum() / union)


class SegmentationLearner(TorchEstimator):
    """Pixel-wise defect segmentation with a dilated-VGG UNet, as a scikit-learn estimator.

    The segmentation learner S of SID4DS (paper §3.2): loss ``bce_weight·BCE +
    dice_weight·Dice`` (eq. 4), weight decay 5e-4, random brightness/contrast augmentation,
    and the weights with the lowest training loss over the last ``best_window`` epochs are
    kept. The paper's optimiser (SGD, momentum 0.9, Table 2) is ``optimizer="sgd"``.

    Parameters
    ----------
    base_channels : int, default=16
        Channels of the first UNet level (doubling at each level).
    depth : int, default=3
        UNet depth; image height and width must be divisible by ``2**depth``.
    dilation : int, default=1
        Dilation of the 3×3 convolutions.
    max_epochs : int, default=30
        Epochs per ``fit`` (and per ``partial_fit`` unless it is given ``epochs``). The
        paper trains 150 epochs on a GPU; 30 suits a CPU.
    batch_size : int, default=32
        Training batch size.
    lr : float, default=1e-3
        Learning rate (constant, as in the paper).
    bce_weight : float, default=0.5
        Weight β of the binary cross-entropy term.
    dice_weight : float, default=1.0
        Weight γ of the Dice term.
    augment : bool, default=True
        Random brightness and contrast changes, plus horizontal and vertical flips applied to
        image and mask together.
    threshold : float, default=0.5
        Probability at or above which ``predict`` marks a pixel as defect.
    best_window : int, default=20
        Keep the weights with the lowest epoch loss among the last ``best_window`` epochs
        (paper §3.2). ``0`` keeps the last epoch's weights.
    optimizer : {"adamw", "sgd"}, default="adamw"
        AdamW, or SGD with momentum as in the paper (Table 2). With the paper's lr=1e-3,
        SGD needs the paper's 150 GPU epochs; at CPU-sized epoch counts AdamW learns far
        faster (measured in ``docs/method.md``), so it is the default.
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
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Arithmetic of the forward passes: ``"bf16"``/``"fp16"`` run them under
        ``torch.autocast`` (mixed precision; ``"fp16"`` needs CUDA, where it also scales
        the training loss).
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState, Generator or None, default=None
        Seeds weight initialisation, shuffling and augmentation. The same value gives the
        same weights and outputs on the CPU.
    verbose : int, default=0
        Show a progress bar over epochs when > 0.

    Attributes
    ----------
    module_ : sid4ds.nets.UNet
        The trained network.
    history_ : list of dict
        One entry per epoch trained: ``epoch``, ``loss``, ``lr``, ``duration`` (seconds).
    best_epoch_ : int
        The epoch (1-based, counted over ``history_``) whose weights were kept.
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
    >>> learner = SegmentationLearner(base_channels=4, depth=2, max_epochs=2, random_state=0)
    >>> learner.fit(X, masks).predict(X).shape
    (16, 16, 16)
    """

    _best_window_attr = "best_window"

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        dilation: int = 1,
        max_epochs: int = 30,
        batch_size: int = 32,
        lr: float = 1e-3,
        bce_weight: float = 0.5,
        dice_weight: float = 1.0,
        augment: bool = True,
        threshold: float = 0.5,
        best_window: int = 20,
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
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.augment = augment
        self.threshold = threshold
        self.best_window = best_window
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

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

    def _module_kwargs(self) -> dict[str, Any]:
        return {
            "in_channels": self.n_channels_in_,
            "out_channels": 1,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "dilation": self.dilation,
            "skip_connections": True,
        }

    def _check_params(self) -> None:
        self._check_common_params()
        check_float(self.bce_weight, "bce_weight", low=0.0)
        check_float(self.dice_weight, "dice_weight", low=0.0)
        if self.bce_weight == 0 and self.dice_weight == 0:
            raise ValueError("bce_weight and dice_weight are both 0: the loss would be zero")
        check_float(self.threshold, "threshold", low=0.0, high=1.0)
        check_int(self.best_window, "best_window", minimum=0)

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

    def fit(self, X: Any, y: Any) -> SegmentationLearner:
        """Train on images and their defect masks.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images, floats in [0, 1] or uint8.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Binary defect masks (1 = defect pixel). All-zero masks are normal images.

        Returns
        -------
        self : SegmentationLearner
            Trained from scratch, or from the previous weights when ``warm_start=True``.
        """
        self._check_params()
        continuing = bool(self.warm_start) and self._is_initialized()
        images, masks = self._validate_training_data(X, y, continuing=continuing)
        if not continuing:
            self._initialize(images.shape[1])
        return self._fit_epochs(images, masks, self.max_epochs)

    def partial_fit(self, X: Any, y: Any, epochs: int | None = None) -> SegmentationLearner:
        """Train further without re-initialising (initialises on the first call).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images.
        y : array-like of shape (n_samples, height, width) or (n_samples, height * width)
            Binary defect masks.
        epochs : int, optional
            Epochs to train; ``max_epochs`` when omitted.

        Returns
        -------
        self : SegmentationLearner
        """
        self._check_params()
        n_epochs = self.max_epochs if epochs is None else check_int(epochs, "epochs", minimum=1)
        initialized = self._is_initialized()
        images, masks = self._validate_training_data(X, y, continuing=initialized)
        if not initialized:
            self._initialize(images.shape[1])
        return self._fit_epochs(images, masks, n_epochs)

    def _fit_epochs(
        self, images: np.ndarray, masks: np.ndarray, n_epochs: int
    ) -> SegmentationLearner:
        self.image_shape_ = tuple(images.shape[2:])
        images_t = torch.from_numpy(images)
        masks_t = torch.from_numpy(masks.astype(np.float32))[:, None]
        bce_weight, dice_weight = float(self.bce_weight), float(self.dice_weight)

        def batch_loss(indices: np.ndarray, generator: torch.Generator) -> torch.Tensor:
            index = torch.from_numpy(indices)
            batch_images = images_t[index].to(self.device_)
            batch_masks = masks_t[index].to(self.device_)
            if self.augment:
                batch_images, batch_masks = augment_batch(batch_images, batch_masks, generator)
            logits = self.module_(batch_images)
            loss = bce_weight * F.binary_cross_entropy_with_logits(logits, batch_masks)
            return loss + dice_weight * soft_dice_loss(logits, batch_masks)

        self._train(len(images), n_epochs, batch_loss, "SegmentationLearner")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Defect probability of every pixel.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_channels, height, width)
            Images, floats in [0, 1] or uint8; also an ``np.memmap``, a sequence of image
            paths, a torch Dataset or an :class:`~sid4ds.pool.ImagePool`, read in chunks
            (the returned maps are still one array: use :meth:`predict` for 4× less memory,
            or the strategies, which keep one score per image).

        Returns
        -------
        probabilities : ndarray of shape (n_samples, height, width), float32
        """
        self._check_fitted()
        return self._map_pool(self._proba_of, self._as_pool(X))

    def _proba_of(self, images: np.ndarray) -> np.ndarray:
        """Probability maps (n, H, W) of validated float32 images (one chunk)."""
        probabilities = np.empty((len(images), *images.shape[2:]), dtype=np.float32)
        batch_size = self._batch_size_for(*images.shape[2:])
        self._prepare_module()
        with torch.inference_mode():
            for rows, batch in self._iter_batches(images, batch_size):
                probabilities[rows] = torch.sigmoid(self._forward(batch)[:, 0]).cpu().numpy()
        return probabilities

    def _predict_of(self, images: np.ndarray) -> np.ndarray:
        return (self._proba_of(images) >= self.threshold).astype(np.uint8)

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
        return self._map_pool(self._predict_of, self._as_pool(X))

    def score(self, X: Any, y: Any) -> float:
        """Defect-class IoU of ``predict(X)`` against ``y``, pooled over all pixels.

        Images whose true mask and prediction are both empty add nothing to intersection or
        union; if all are empty the score is 1.0 (see :func:`sid4ds.segmentation.defect_iou`).

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
        return self._map_pool(self._features_of, self._as_pool(X))

    def _features_of(self, images: np.ndarray) -> np.ndarray:
        features = np.empty((len(images), self.base_channels * 2**self.depth), dtype=np.float32)
        self._prepare_module()
        with torch.inference_mode(), self._autocast():
            for rows, batch in self._iter_batches(images, self._batch_size_for(*images.shape[2:])):
                features[rows] = self.module_.encode(batch).mean(dim=(2, 3)).float().cpu().numpy()
        return features


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random brightness (±0.1), contrast (×0.8–1.2 about the image mean) and flips.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    masks : Tensor of shape (n, 1, H, W)
    generator : torch.Generator on the same device

    Returns
    -------
    augmented_images, augmented_masks : Tensors of the same shapes
    """
    n = images.shape[0]
    shape = (n, 1, 1, 1)
    options = {"device": images.device, "generator": generator}
    brightness = (torch.rand(shape, **options) - 0.5) * 0.2
    contrast = 0.8 + 0.4 * torch.rand(shape, **options)
    means = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images - means) * contrast + means + brightness).clamp(0.0, 1.0)
    flip_rows = torch.rand(shape, **options) < 0.5
    flip_cols = torch.rand(shape, **options) < 0.5
    images = torch.where(flip_rows, images.flip(2), images)
    masks = torch.where(flip_rows, masks.flip(2), masks)
    images = torch.where(flip_cols, images.flip(3), images)
    masks = torch.where(flip_cols, masks.flip(3), masks)
    return images, masks
