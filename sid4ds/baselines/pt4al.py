"""PT4AL (Yi et al. 2022): a rotation pretext task orders the pool into batches.

:class:`RotationPretextScorer` is the pretext model (a sid4ds estimator, so devices,
seeding, pickling and the state API are those of every learner); :func:`pt4al_sampling`
queries batch by batch in order of its loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sid4ds._core.random import borrow_seed
from sid4ds._core.validation import (
    check_divisible,
    check_int,
    check_n_instances,
    check_probabilities,
)
from sid4ds.baselines.uncertainty import pixel_margin, reduce_per_image
from sid4ds.datasets.pool import as_pool
from sid4ds.estimators.base import TorchEstimator, is_fitted
from sid4ds.ranking.selection import (
    content_keys,
    estimator_of,
    query_state,
    rank_pool,
    record_pool_scores,
)

__all__ = [
    "N_ROTATIONS",
    "RotationPretextScorer",
    "pt4al_assign_batches",
    "pt4al_sampling",
    "pt4al_split",
    "rotation_confidence",
    "segmentation_confidence",
]


#: Rotations of the pretext task: 0°, 90°, 180° and 270°, one class each.
N_ROTATIONS = 4


def _rotations(images: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
    """The 4 rotations of a batch, grouped by shape: [(rotation ids, stacked images)].

    Square images give one group (all 4 rotations in one forward pass, so BatchNorm sees
    every rotation in one batch); other images give two groups (0°/180° and 90°/270°).
    """
    groups: dict[tuple[int, ...], tuple[list[int], list[torch.Tensor]]] = {}
    for rotation in range(N_ROTATIONS):
        rotated = torch.rot90(images, rotation, dims=(2, 3))
        ids, parts = groups.setdefault(tuple(rotated.shape[2:]), ([], []))
        ids.append(rotation)
        parts.append(rotated)
    return [(ids, torch.cat(parts)) for ids, parts in groups.values()]


class RotationPretextScorer(TorchEstimator):
    """Rotation-prediction pretext task (0°, 90°, 180°, 270°) and its per-image loss.

    The pretext model of :func:`pt4al_sampling`. The network is the project's UNet
    (without skip connections) with 4 output maps, one per rotation, averaged over the
    image (global average pooling) into the 4 rotation logits: a fully convolutional
    classifier on the UNet encoder, so devices, seeding and pickling are those of every
    sid4ds learner. It is trained on unlabelled images with cross-entropy over all four
    rotations of each image (AdamW by default, no augmentation).

    Parameters
    ----------
    base_channels : int, default=16
        Channels of the first UNet level.
    depth : int, default=3
        UNet depth; height and width must be divisible by ``2**depth``.
    dilation : int, default=1
        Dilation of the 3×3 convolutions.
    max_epochs : int, default=10
        Training epochs.
    batch_size : int, default=32
        Images per training batch (each becomes 4 rotated copies).
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adamw", "sgd"}, default="adamw"
    momentum : float, default=0.9
        SGD momentum (ignored by AdamW).
    weight_decay : float, default=5e-4
    inference_batch_size : int or None, default=None
        Images (counting rotated copies) per forward pass at inference; None: automatic.
    n_jobs : int or None, default=None
        Workers that score chunks of the pool in parallel through joblib (see
        :class:`~sid4ds.ReconstructionScorer`); results are identical for every value.
    precision : {"fp32", "bf16", "fp16", "auto"}, default="fp32"
        Arithmetic of the forward passes (``torch.autocast`` for bf16/fp16; fp16 needs CUDA).
        ``"auto"`` trains in bf16 where that is faster (a GPU that
        supports it; a CPU with AMX tiles), in fp32 elsewhere, and predicts in fp32.
    device : str or torch.device, default="auto"
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation and shuffling; same value, same model on the CPU.
    verbose : int, default=0

    Attributes
    ----------
    module_ : sid4ds.nn.unet.UNet
        The trained network (4 output channels).
    history_ : list of dict
        One entry per epoch: ``epoch``, ``loss``, ``lr``, ``duration``.
    n_channels_in_ : int
    image_shape_ : tuple of int
    device_ : torch.device

    References
    ----------
    Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by Predicting Image
    Rotations", ICLR 2018; Yi et al., "Using Self-Supervised Pretext Tasks for Active
    Learning", ECCV 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import RotationPretextScorer
    >>> X = np.random.default_rng(0).random((8, 1, 16, 16))
    >>> pretext = RotationPretextScorer(base_channels=4, depth=2, max_epochs=1,
    ...                                 random_state=0).fit(X)
    >>> pretext.score_samples(X).shape, pretext.predict_proba(X).shape
    ((8,), (8, 4, 4))
    """

    def __init__(
        self,
        base_channels: int = 16,
        depth: int = 3,
        dilation: int = 1,
        max_epochs: int = 10,
        batch_size: int = 32,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
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
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.inference_batch_size = inference_batch_size
        self.n_jobs = n_jobs
        self.precision = precision
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self) -> None:
        self._check_common_params()

    def _module_kwargs(self, n_channels: int | None = None) -> dict[str, Any]:
        return {
            "in_channels": self.n_channels_in_ if n_channels is None else n_channels,
            "out_channels": N_ROTATIONS,
            "base_channels": self.base_channels,
            "depth": self.depth,
            "dilation": self.dilation,
            "skip_connections": False,
        }

    def _rotation_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (n, 4 true rotations, 4 predicted rotations)."""
        n_images = images.shape[0]
        result = images.new_empty((n_images, N_ROTATIONS, N_ROTATIONS))
        for rotation_ids, batch in _rotations(images):
            logits = self.module_(batch).float().mean(dim=(2, 3))
            result[:, rotation_ids] = logits.reshape(
                len(rotation_ids), n_images, N_ROTATIONS).transpose(0, 1)
        return result

    @staticmethod
    def _losses(log_probabilities: torch.Tensor) -> torch.Tensor:
        """Per-image cross-entropy, averaged over the 4 rotations."""
        return -torch.diagonal(log_probabilities, dim1=1, dim2=2).mean(dim=1)

    def fit(self, X: Any, y: Any = None) -> RotationPretextScorer:
        """Train the rotation classifier on unlabelled images.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images, floats in [0, 1] or uint8.
        y : None
            Ignored.

        Returns
        -------
        self : RotationPretextScorer
        """
        self.check_params()
        pool = as_pool(X)  # validated once
        try:
            check_divisible(*pool.image_shape[1:], self.depth)
        except ValueError as error:
            raise ValueError(f"X: {error}") from None
        self._initialize(pool.image_shape[0])
        self.image_shape_ = tuple(pool.image_shape[1:])
        if pool.lazy:  # out of core: each batch is read when drawn, same images, same model
            def read(indices: np.ndarray) -> torch.Tensor:
                return torch.from_numpy(pool[indices])
        else:
            images = torch.from_numpy(pool.to_numpy())

            def read(indices: np.ndarray) -> torch.Tensor:
                return images[torch.from_numpy(indices)]

        def batch_loss(indices: np.ndarray, generator: torch.Generator) -> torch.Tensor:
            batch = read(indices).to(self.device_)
            log_probabilities = F.log_softmax(self._rotation_logits(batch), dim=2)
            return self._losses(log_probabilities).mean()

        self._train(len(pool), batch_loss, "RotationPretextScorer",
                    n_steps=self._n_steps(len(pool)))
        return self

    def _log_probabilities(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return self.map_pool(self._log_probabilities_of, self.check_pool(X), copies=N_ROTATIONS)

    def _log_probabilities_of(self, images: np.ndarray) -> np.ndarray:
        result = np.empty((len(images), N_ROTATIONS, N_ROTATIONS), dtype=np.float64)
        batch_size = self.images_per_batch(*images.shape[2:], copies=N_ROTATIONS)
        self._prepare_module()
        with torch.inference_mode(), self._autocast():
            for rows, batch in self._iter_batches(images, batch_size):
                # float64 log-softmax: small differences between images are not rounded away
                logits = self._rotation_logits(batch).double()
                result[rows] = F.log_softmax(logits, dim=2).cpu().numpy()
        return result

    def predict_proba(self, X: Any) -> np.ndarray:
        """Predicted rotation probabilities of each rotated copy of each image.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images.

        Returns
        -------
        probabilities : ndarray of shape (n_samples, 4, 4)
            ``probabilities[i, r, c]``: image ``i`` rotated by ``r``·90° is predicted to be
            rotated by ``c``·90°.
        """
        return np.exp(self._log_probabilities(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """Pretext loss of each image: cross-entropy averaged over its 4 rotations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
            Images.

        Returns
        -------
        losses : ndarray of shape (n_samples,), float64
            Higher is harder (PT4AL queries those first).
        """
        log_probabilities = self._log_probabilities(X)
        return -np.diagonal(log_probabilities, axis1=1, axis2=2).mean(axis=1)


def rotation_confidence(probabilities: Any) -> np.ndarray:
    """Pretext confidence of each image: the mean over its rotations of the top probability.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, 4, 4)
        As returned by :meth:`RotationPretextScorer.predict_proba`.

    Returns
    -------
    confidence : ndarray of shape (n_samples,), float64 in [0.25, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import rotation_confidence
    >>> rotation_confidence(np.stack([np.eye(4), np.full((4, 4), 0.25)])).tolist()
    [1.0, 0.25]
    """
    p = check_probabilities(probabilities)
    if p.ndim != 3:
        raise ValueError(
            f"probabilities must have shape (n_samples, n_rotations, n_rotations); got "
            f"shape {p.shape}"
        )
    return p.max(axis=2).mean(axis=1)


def segmentation_confidence(probabilities: Any) -> np.ndarray:
    """Segmentation confidence of each image: the mean over pixels of ``max(p, 1 − p)``.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width)
        Defect probabilities.

    Returns
    -------
    confidence : ndarray of shape (n_samples,), float64 in [0.5, 1]

    Examples
    --------
    >>> from sid4ds.baselines import segmentation_confidence
    >>> segmentation_confidence([[[0.5, 0.5]], [[0.0, 0.75]]]).tolist()
    [0.5, 0.875]
    """
    return reduce_per_image(0.5 + 0.5 * pixel_margin(probabilities))


def pt4al_split(
    pretext_losses: Any, n_batches: int = 10, tie_keys: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split a pool into PT4AL batches by pretext loss, hardest first.

    The pool is sorted by loss, highest first (equal losses: larger tie key first, or lower
    index without keys), and cut into ``min(n_batches, n_pool)`` consecutive batches whose
    sizes differ by at most one; batch 0 holds the hardest images.

    Parameters
    ----------
    pretext_losses : array-like of shape (n_pool,)
        Pretext loss of every pool image.
    n_batches : int, default=10
        Number of batches.
    tie_keys : array-like of shape (n_pool,), optional
        Order of equal losses, e.g. :func:`~sid4ds.ranking.selection.content_keys`.

    Returns
    -------
    batches : ndarray of shape (n_pool,), int64
        Batch of every image.
    bounds : ndarray of shape (min(n_batches, n_pool),), float64
        Lowest loss in each batch (non-increasing), to place images that were not in this
        pool with :func:`pt4al_assign_batches`.

    Examples
    --------
    >>> from sid4ds.baselines import pt4al_split
    >>> batches, bounds = pt4al_split([0.1, 0.9, 0.5, 0.7, 0.3, 0.2], n_batches=3)
    >>> batches.tolist(), bounds.tolist()
    ([2, 0, 1, 0, 1, 2], [0.7, 0.3, 0.1])
    """
    losses = np.asarray(pretext_losses, dtype=np.float64)
    if losses.ndim != 1 or len(losses) == 0:
        raise ValueError(
            f"pretext_losses must have shape (n_pool,) with n_pool >= 1; got shape "
            f"{losses.shape}"
        )
    if not np.isfinite(losses).all():
        raise ValueError("pretext_losses contains NaN or infinite values")
    n_batches = check_int(n_batches, "n_batches", minimum=1)
    if tie_keys is not None and np.shape(tie_keys) != losses.shape:
        raise ValueError(
            f"tie_keys has shape {np.shape(tie_keys)} but pretext_losses has shape "
            f"{losses.shape}"
        )
    descending, _ = rank_pool(losses, len(losses), tie_keys=tie_keys)
    batches = np.empty(len(losses), dtype=np.int64)
    chunks = np.array_split(descending, min(n_batches, len(losses)))
    for batch, chunk in enumerate(chunks):
        batches[chunk] = batch
    return batches, np.array([losses[chunk].min() for chunk in chunks])


def pt4al_assign_batches(pretext_losses: Any, bounds: Any) -> np.ndarray:
    """Batch of images not seen in the split: the first whose lowest loss is at or below theirs.

    A loss below every bound goes to the last batch.

    Parameters
    ----------
    pretext_losses : array-like of shape (n_pool,)
    bounds : array-like of shape (n_batches,)
        From :func:`pt4al_split` (non-increasing).

    Returns
    -------
    batches : ndarray of shape (n_pool,), int64 in [0, n_batches)

    Examples
    --------
    >>> from sid4ds.baselines import pt4al_assign_batches
    >>> pt4al_assign_batches([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.0], [0.7, 0.3, 0.1]).tolist()
    [2, 0, 1, 0, 1, 2, 2]
    """
    losses = np.asarray(pretext_losses, dtype=np.float64)
    lower = np.asarray(bounds, dtype=np.float64)
    if lower.ndim != 1 or len(lower) == 0 or np.any(np.diff(lower) > 0):
        raise ValueError(
            f"bounds must be a non-empty, non-increasing 1-D array (from pt4al_split); "
            f"got {lower!r}"
        )
    ascending = lower[::-1]
    n_above = len(lower) - np.searchsorted(ascending, losses, side="right")
    return np.minimum(n_above, len(lower) - 1).astype(np.int64)


def pt4al_sampling(
    learner: Any,
    X_pool: Any,
    n_instances: int = 1,
    *,
    n_batches: int | None = None,
    pt4al_model: RotationPretextScorer | None = None,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """PT4AL: query batch by batch in order of pretext-task loss, least confident first.

    1. A rotation-prediction model (:class:`RotationPretextScorer`) is trained once, on the
       first pool it sees, and kept as ``learner.sid4ds_state.pt4al_model`` (found like the
       sid4ds scorers: ``pt4al_model=``, else the learner's state, else a default one sized
       like the learner's estimator and seeded by ``random_state``; assign
       ``learner.sid4ds_state.pt4al_model = None`` to train a fresh one).
    2. That first pool, sorted by pretext loss (highest first), is split once into
       ``n_batches`` batches of equal size (:func:`pt4al_split`). The batch of every image
       is remembered by its content (:func:`~sid4ds.ranking.selection.content_keys`), so later,
       smaller pools keep their images' batches; images not in that first pool are placed
       by their loss (:func:`pt4al_assign_batches`).
    3. Each query takes the next batch (``learner.sid4ds_state.pt4al_batch``, from 0,
       wrapping around after the last; empty batches are skipped) and returns its
       ``n_instances`` least confident images: lowest mean pixel ``max(p, 1 − p)`` of the
       learner's segmentation learner once it is fitted, lowest pretext confidence
       (:func:`rotation_confidence`) before. If the batch holds fewer images, the following
       batches fill up the query.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        Its estimator, if a fitted :class:`~sid4ds.SegmentationLearner`, gives the
        confidence within a batch.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K.
    n_batches : int, optional
        Number of pretext-loss batches (capped at the first pool's size). None: keep the
        current split, or 10 for a new one; a different number re-splits the pool in hand
        and restarts from batch 0.
    pt4al_model : RotationPretextScorer, optional
        A configured (unfitted) or fitted pretext model.
    random_state : int or None, default=None
        Seed of the default pretext model; None: the learner's estimator's int
        ``random_state``, if any.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices: the current batch's least confident first (then any fill-up from the
        next batches, each least confident first); ties broken by image content.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their uncertainty, ``1 −`` confidence (descending within each batch). The pretext
        losses of the whole pool are left in ``learner.sid4ds_state.pool_scores`` (the images PT4AL
        would query last are the fake normals of a DefectActiveLearner).

    Notes
    -----
    Simplified from the paper: the pretext task is rotation prediction only, with a small
    fully convolutional UNet classifier trained for a few epochs; the segmentation
    learner's mean pixel confidence replaces the classifier's top-class probability; the
    first query, before any segmentation learner exists, uses the pretext model's own
    confidence; the batch sequence wraps around instead of ending after ``n_batches``
    cycles.

    References
    ----------
    Yi, Seo, Lee, Kim, Lee & Choi, "Using Self-Supervised Pretext Tasks for Active
    Learning" (PT4AL), ECCV 2022.

    Examples
    --------
    >>> from modAL.models import ActiveLearner
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.baselines import RotationPretextScorer, pt4al_sampling
    >>> from sid4ds.datasets import make_defect_images
    >>> X, _ = make_defect_images(n_samples=24, image_size=16, random_state=0)
    >>> learner = ActiveLearner(SegmentationLearner(base_channels=4, depth=2),
    ...                         query_strategy=pt4al_sampling)
    >>> pretext = RotationPretextScorer(base_channels=4, depth=2, max_epochs=1,
    ...                                 random_state=0)
    >>> indices, _ = learner.query(X, n_instances=2, n_batches=4, pt4al_model=pretext)
    >>> state = learner.sid4ds_state
    >>> len(indices), state.pt4al_batch, state.pt4al_model is pretext
    (2, 1, True)
    """
    images = as_pool(X_pool, name="X_pool")
    n_selected = check_n_instances(n_instances, len(images))
    if n_batches is not None:
        n_batches = check_int(n_batches, "n_batches", minimum=1)
    segmenter = estimator_of(learner)
    segmenter_fitted = is_fitted(segmenter)
    if segmenter_fitted:
        images = segmenter.check_pool(images, name="X_pool")
    state = query_state(learner)
    model = pt4al_model if pt4al_model is not None else state.pt4al_model
    if model is None:
        sized_like = {name: getattr(segmenter, name) for name in
                      ("base_channels", "depth", "dilation", "device")
                      if hasattr(segmenter, name)}
        model = RotationPretextScorer(**sized_like,
                                      random_state=borrow_seed(learner, random_state))
    if not isinstance(model, RotationPretextScorer):
        raise TypeError(
            f"pt4al_model must be a RotationPretextScorer; got {type(model).__name__}"
        )
    if not is_fitted(model):
        model.fit(images)
    state.pt4al_model = model
    losses = model.score_samples(images)

    keys = content_keys(images)
    split = state.pt4al_split
    if split is not None and split[0] is model and n_batches is None:
        n_batches = split[1]
    if split is None or split[0] is not model or split[1] != n_batches:
        n_batches = 10 if n_batches is None else n_batches
        batches, bounds = pt4al_split(losses, n_batches, tie_keys=keys)
        known = dict(zip(keys.tolist(), batches.tolist(), strict=True))
        state.pt4al_split = split = (model, n_batches, bounds, known)
        state.pt4al_batch = 0
    _, _, bounds, known = split
    by_loss = pt4al_assign_batches(losses, bounds)
    batch_of = np.array([known.get(key, fallback)
                         for key, fallback in zip(keys.tolist(), by_loss.tolist(), strict=True)],
                        dtype=np.int64)
    n_split = len(bounds)

    start = state.pt4al_batch % n_split
    walk = [(start + step) % n_split for step in range(n_split)]
    needed: list[int] = []
    n_found = 0
    for batch in walk:
        n_members = int(np.count_nonzero(batch_of == batch))
        if n_members:
            needed.append(batch)
            n_found += n_members
        if n_found >= n_selected:
            break
    members = np.flatnonzero(np.isin(batch_of, needed))
    if segmenter_fitted:
        confidence = segmentation_confidence(segmenter.predict_proba(images[members]))
    else:
        confidence = rotation_confidence(model.predict_proba(images[members]))
    uncertainty = 1.0 - confidence
    record_pool_scores(learner, losses, keys)

    indices: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    n_left = n_selected
    for batch in needed:
        in_batch = batch_of[members] == batch
        top, _ = rank_pool(uncertainty[in_batch], n_left, tie_keys=keys[members[in_batch]])
        indices.append(members[in_batch][top])
        scores.append(uncertainty[in_batch][top])
        n_left -= len(top)
        if n_left == 0:
            break
    state.pt4al_batch = (needed[0] + 1) % n_split
    return np.concatenate(indices).astype(np.int64), np.concatenate(scores)

