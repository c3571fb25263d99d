"""The cross-validation of the final model: folds grouped by source image and stratified
by class (:func:`plan_folds`), one model per fold scored at every checkpoint and threshold
(:func:`fold_counts`), the fits run in turn or side by side (:func:`run_fits`), and the
result (:class:`CrossValidation`) with the choice of threshold and training length.

A part of :mod:`sid4ds.estimators.final_model`, which re-exports :func:`fold_assignment`,
:func:`cross_validate` and :class:`CrossValidation` and documents the procedure; the
counting rules are :mod:`sid4ds.estimators.detection`.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.device import resolve_device
from sid4ds._core.parallel import fit_workers, run_side_by_side
from sid4ds._core.random import draw_seed, make_rng
from sid4ds._core.validation import (
    check_choice,
    check_flags,
    check_float,
    check_groups,
    check_images,
    check_int,
    check_masks,
    check_probabilities,
    check_weights,
)
from sid4ds.estimators.detection import COUNT_KEYS, THRESHOLDS, detection_counts, detection_scores
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows

__all__ = ["CrossValidation", "FoldPlan", "check_training_set", "checkpoints",
           "cross_validate", "describe_estimate", "fold_assignment", "fold_counts",
           "fresh_model", "plan_folds", "run_fits"]


# ---------------------------------------------------------------------- folds
def fold_assignment(
    is_defective: Any,
    n_folds: int,
    *,
    groups: Any = None,
    train_only: Any = None,
    weights: Any = None,
    random_state: Any = None,
) -> np.ndarray:
    """The cross-validation fold of each image, by source group, stratified by class.

    The groups with a defective image (that may be validated on) are dealt to the folds
    in a random order, then the other groups, so that each fold holds about as many of
    each. With fewer defective groups than ``n_folds``, there are as many folds as
    defective groups. With ``weights``, each class is dealt weight by weight (lowest
    first), so that each fold also holds about as many images of each weight.

    Parameters
    ----------
    is_defective : array-like of shape (n_samples,), bool
        Which images show a defect.
    n_folds : int
        The number of folds wanted, at least 2.
    groups : array-like of shape (n_samples,), optional
        The source of each image (e.g. the file its tile was cut from); images of one
        group share a fold. Default: every image is its own group.
    train_only : array-like of shape (n_samples,), bool, optional
        Images never validated on (e.g. fake normals); their group's fold when it has
        one (they are then left out of that fold's training), else -1.
    weights : array-like of shape (n_samples,), optional
        The images' weights in the estimate (see
        :func:`~sid4ds.estimators.detection.detection_counts`): a group's is the highest
        of its validated images'.
    random_state : int, Generator, RandomState or None, default=None
        Seeds the order.

    Returns
    -------
    folds : ndarray of shape (n_samples,), int64
        Fold of each image in ``0 .. n_used - 1``, or -1 for train-only images of groups
        without a validated image.

    Raises
    ------
    ValueError
        With fewer than two groups holding a defective image that may be validated on.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.estimators.final_model import fold_assignment
    >>> defective = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    >>> folds = fold_assignment(defective, 3, random_state=0)
    >>> sorted(np.bincount(folds[defective]).tolist()), sorted(np.bincount(folds).tolist())
    ([1, 1, 1], [3, 3, 4])
    """
    defective = np.asarray(is_defective, dtype=bool)
    n_folds = check_int(n_folds, "n_folds", minimum=2)
    n_samples = len(defective)
    only = check_flags(train_only, n_samples, "train_only")
    sources = check_groups(groups, n_samples)
    group_of = (np.arange(n_samples) if sources is None
                else np.unique(sources.astype(str), return_inverse=True)[1].ravel())
    n_groups = int(group_of.max()) + 1 if n_samples else 0
    validated = np.zeros(n_groups, bool)
    np.logical_or.at(validated, group_of[~only], True)
    group_defective = np.zeros(n_groups, bool)
    np.logical_or.at(group_defective, group_of[~only], defective[~only])
    weight = check_weights(weights, n_samples, "weights")
    group_weight = np.zeros(n_groups)
    if weight is not None:
        np.maximum.at(group_weight, group_of[~only], weight[~only])
    defect_groups = np.flatnonzero(validated & group_defective)
    normal_groups = np.flatnonzero(validated & ~group_defective)
    if len(defect_groups) < 2:
        raise ValueError(
            f"cross-validation needs defective images from at least 2 source images to "
            f"validate on; got {len(defect_groups)}: label more defective images"
        )
    n_used = min(n_folds, len(defect_groups))
    rng = make_rng(random_state)
    fold_of_group = np.full(n_groups, -1, dtype=np.int64)
    start = 0
    for members in (defect_groups, normal_groups):
        for value in np.unique(group_weight[members]):
            order = rng.permutation(members[group_weight[members] == value])
            fold_of_group[order] = (start + np.arange(len(order))) % n_used
            start = (start + len(order)) % n_used
    return fold_of_group[group_of]


# ---------------------------------------------------------------------- the result
@dataclass
class CrossValidation:
    """What the cross-validation of the final model measured, and what it chose.

    Attributes
    ----------
    thresholds : ndarray of shape (n_thresholds,)
        The threshold grid.
    steps : ndarray of shape (n_checkpoints,), int
        Optimiser steps at each checkpoint.
    counts : dict of str to ndarray of shape (n_folds, n_checkpoints, n_thresholds)
        :func:`~sid4ds.estimators.detection.detection_counts` of each fold's held-out
        images at each checkpoint.
    n_defective, n_normal : ndarray of shape (n_folds,), int
        Held-out defective and normal images per fold.
    n_training : ndarray of shape (n_folds,), int
        Images each fold's model was trained on.
    defect_ratio : float or None
        The share of defective images the IoU is for (None: as in the held-out folds).
    weighted_counts : dict of str to ndarray, or None
        With estimate weights (:func:`cross_validate`'s ``estimate_weight``): the counts
        weighted so, shape (n_folds, n_checkpoints, n_thresholds), float, with
        ``n_defective`` and ``n_normal`` of shape (n_folds,), their weighted numbers of
        held-out images; else None.
    threshold : float
        The chosen threshold.
    n_steps : int
        The chosen checkpoint (optimiser steps of the final fit).
    seconds : float
        Wall time of the cross-validation (with the final fit when it trained beside the
        folds).
    seed : int or None
        The ``random_state`` given to the models whose own was None (the final fit uses
        it too).
    """

    thresholds: np.ndarray
    steps: np.ndarray
    counts: dict[str, np.ndarray]
    n_defective: np.ndarray
    n_normal: np.ndarray
    n_training: np.ndarray
    defect_ratio: float | None
    weighted_counts: dict[str, np.ndarray] | None = None
    threshold: float = 0.5
    n_steps: int = 0
    seconds: float = 0.0
    seed: int | None = None
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _weighted_scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_folds(self) -> int:
        """The number of folds."""
        return len(self.n_defective)

    @property
    def weighted(self) -> bool:
        """Whether the cross-validation has weighted counts (an estimate for the
        population the weights describe)."""
        return self.weighted_counts is not None

    def scores(self, defect_ratio: Any = "same", weighted: bool = False
               ) -> dict[str, np.ndarray]:
        """Per fold, checkpoint and threshold: ``iou``, ``detected``, ``false_alarms``.

        Parameters
        ----------
        defect_ratio : float, None or "same", default="same"
            The mix the IoU is for (see
            :func:`~sid4ds.estimators.detection.detection_scores`); ``"same"``: the
            cross-validation's own.
        weighted : bool, default=False
            From the weighted counts (needs :attr:`weighted`): the scores on the
            population the estimate weights describe, not on the labelled images.

        Returns
        -------
        scores : dict of str to ndarray of shape (n_folds, n_checkpoints, n_thresholds)
        """
        if weighted and self.weighted_counts is None:
            raise ValueError("weighted=True needs a cross-validation with estimate weights "
                             "(cross_validate's estimate_weight); this one has none")
        if isinstance(defect_ratio, str) and defect_ratio == "same":
            cache = self._weighted_scores if weighted else self._scores
            if not cache:
                cache.update(self._compute(self.defect_ratio, weighted))
            return cache
        return self._compute(defect_ratio, weighted)

    def _compute(self, defect_ratio: float | None, weighted: bool) -> dict[str, np.ndarray]:
        shape = (-1, 1, 1)
        source = self.weighted_counts if weighted and self.weighted_counts is not None else {
            **self.counts, "n_defective": self.n_defective, "n_normal": self.n_normal}
        return detection_scores({**{key: source[key] for key in COUNT_KEYS},
                                 "n_defective": np.reshape(source["n_defective"], shape),
                                 "n_normal": np.reshape(source["n_normal"], shape)},
                                defect_ratio)

    def choose(self) -> CrossValidation:
        """Set ``threshold`` and ``n_steps`` to the best mean IoU over the folds.

        Ties go to the earlier checkpoint, then the lower threshold.
        """
        mean = np.nanmean(self.scores()["iou"], axis=0)
        checkpoint, threshold = np.unravel_index(int(np.nanargmax(mean)), mean.shape)
        self.n_steps = int(self.steps[checkpoint])
        self.threshold = float(self.thresholds[threshold])
        return self

    def _index(self) -> tuple[int, int]:
        checkpoint = int(np.flatnonzero(self.steps == self.n_steps)[0])
        threshold = int(np.argmin(np.abs(self.thresholds - self.threshold)))
        return checkpoint, threshold

    def estimate(self, defect_ratio: Any = "same", weighted: bool = False
                 ) -> dict[str, dict[str, float]]:
        """Mean and std over the folds at the chosen checkpoint and threshold.

        Parameters
        ----------
        defect_ratio : float, None or "same", default="same"
            As in :meth:`scores`.
        weighted : bool, default=False
            As in :meth:`scores`: the estimate for the population the weights describe.

        Returns
        -------
        estimate : dict
            ``iou``, ``detected``, ``false_alarms``: each ``{"mean": ..., "std": ...}``
            (NaN where no fold has such images).
        """
        checkpoint, threshold = self._index()
        result = {}
        for key, values in self.scores(defect_ratio, weighted).items():
            column = values[:, checkpoint, threshold]
            column = column[np.isfinite(column)]
            result[key] = {"mean": float(column.mean()) if len(column) else float("nan"),
                           "std": float(column.std()) if len(column) else float("nan")}
        return result

    def curve(self, along: str) -> dict[str, np.ndarray]:
        """Mean and std over the folds along the thresholds (at the chosen checkpoint) or
        along the checkpoints (at the chosen threshold).

        Parameters
        ----------
        along : {"threshold", "steps"}

        Returns
        -------
        curve : dict
            ``x`` (thresholds or steps) and, for each score, ``KEY`` (mean) and
            ``KEY_std``, each of shape (n_points,).
        """
        check_choice(along, "along", ("threshold", "steps"))
        checkpoint, threshold = self._index()
        curve: dict[str, np.ndarray] = {
            "x": self.thresholds if along == "threshold" else self.steps}
        for key, values in self.scores().items():
            part = values[:, checkpoint, :] if along == "threshold" else values[:, :, threshold]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a score no fold measures
                curve[key] = np.nanmean(part, axis=0)
                curve[f"{key}_std"] = np.nanstd(part, axis=0)
        return curve

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists and numbers); :meth:`from_dict` reads them back."""
        return {
            "thresholds": [float(value) for value in self.thresholds],
            "steps": [int(value) for value in self.steps],
            "counts": {key: value.astype(int).tolist() for key, value in self.counts.items()},
            "n_defective": self.n_defective.astype(int).tolist(),
            "n_normal": self.n_normal.astype(int).tolist(),
            "n_training": self.n_training.astype(int).tolist(),
            "defect_ratio": self.defect_ratio, "threshold": self.threshold,
            "n_steps": self.n_steps, "seconds": self.seconds, "seed": self.seed,
            "estimate": self.estimate(),
            **({} if self.weighted_counts is None else {
                "weighted_counts": {key: np.asarray(value, dtype=np.float64).tolist()
                                    for key, value in self.weighted_counts.items()},
                "weighted_estimate": self.estimate(weighted=True)}),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CrossValidation:
        """The :class:`CrossValidation` of :meth:`to_dict` (the estimates are recomputed)."""
        return cls(
            thresholds=np.asarray(values["thresholds"], dtype=np.float64),
            steps=np.asarray(values["steps"], dtype=np.int64),
            counts={key: np.asarray(value, dtype=np.int64)
                    for key, value in values["counts"].items()},
            n_defective=np.asarray(values["n_defective"], dtype=np.int64),
            n_normal=np.asarray(values["n_normal"], dtype=np.int64),
            n_training=np.asarray(values["n_training"], dtype=np.int64),
            defect_ratio=values["defect_ratio"],
            weighted_counts=None if values.get("weighted_counts") is None else {
                key: np.asarray(value, dtype=np.float64)
                for key, value in values["weighted_counts"].items()},
            threshold=float(values["threshold"]),
            n_steps=int(values["n_steps"]), seconds=float(values.get("seconds", 0.0)),
            seed=values.get("seed"))

    def summary(self) -> str:
        """One line for messages: the chosen threshold and length, and the estimate (and
        the weighted one, when there are weights)."""
        mix = ("" if self.defect_ratio is None else
               f" (on images {self.defect_ratio:.0%} defective)")
        line = (f"threshold {self.threshold:g}, {self.n_steps} steps; estimated over "
                f"{self.n_folds} folds on the labelled images: "
                f"{describe_estimate(self.estimate(), mix)}")
        if self.weighted:
            line += (f"; weighted to the population the images stand for: "
                     f"{describe_estimate(self.estimate(weighted=True))}")
        return line


def describe_estimate(estimate: Mapping[str, Mapping[str, float]], iou_note: str = "") -> str:
    """An estimate of :meth:`CrossValidation.estimate` in words.

    Parameters
    ----------
    estimate : mapping
        ``iou``, ``detected``, ``false_alarms``: each ``{"mean": ..., "std": ...}``.
    iou_note : str, default=""
        Said right after the IoU (e.g. the mix it is for).

    Returns
    -------
    text : str
        Defect IoU, defective images found, normal images flagged, each mean ± std ("–"
        where no fold measured it).

    Examples
    --------
    >>> from sid4ds.estimators.final_model import describe_estimate
    >>> describe_estimate({"iou": {"mean": 0.5, "std": 0.1},
    ...                    "detected": {"mean": 0.8, "std": 0.05},
    ...                    "false_alarms": {"mean": float("nan"), "std": float("nan")}})
    'defect IoU 0.500 ± 0.100, defective images found 80% ± 5%, normal images flagged –'
    """
    def value(key: str, percent: bool) -> str:
        mean, std = estimate[key]["mean"], estimate[key]["std"]
        if mean != mean:  # NaN: no fold had such images
            return "–"
        return f"{mean:.0%} ± {std:.0%}" if percent else f"{mean:.3f} ± {std:.3f}"

    return (f"defect IoU {value('iou', False)}{iou_note}, defective images found "
            f"{value('detected', True)}, normal images flagged {value('false_alarms', True)}")


# ---------------------------------------------------------------------- training
def checkpoints(n_steps: int, n_checkpoints: int) -> np.ndarray:
    """The steps at which the cross-validation scores its fold models.

    Parameters
    ----------
    n_steps : int
        The budget (``max_steps``).
    n_checkpoints : int
        How many evenly spaced training lengths are compared.

    Returns
    -------
    steps : ndarray of shape (n_used,), int64
        ``n_checkpoints`` evenly spaced steps ending at ``n_steps`` (fewer, without
        repeats, when ``n_steps < n_checkpoints``).

    Examples
    --------
    >>> from sid4ds.estimators.final_model import checkpoints
    >>> checkpoints(1600, 5).tolist()
    [320, 640, 960, 1280, 1600]
    >>> checkpoints(3, 5).tolist()
    [1, 2, 3]
    """
    steps = np.round(np.arange(1, n_checkpoints + 1) * n_steps / n_checkpoints).astype(np.int64)
    return np.unique(steps[steps >= 1])


def fresh_model(segmenter: SegmentationLearner, init: SegmentationLearner | None,
           seed: Any) -> SegmentationLearner:
    """A model to train: a clone of ``segmenter`` (seeded), or ``init`` to train further."""
    if init is None:
        model = clone(segmenter)
        if model.random_state is None:
            model.set_params(random_state=seed)
        return model
    params = segmenter.get_params(deep=False)
    for name in ("base_channels", "depth", "dilation"):
        if params[name] != getattr(init, name):
            raise ValueError(
                f"init has {name}={getattr(init, name)!r} but segmenter has "
                f"{params[name]!r}; training init further keeps its network: set {name} "
                f"alike, or start from scratch (init=None)"
            )
    params.pop("encoder_init", None)
    return copy.deepcopy(init).set_params(**{**params, "warm_start": True})


def check_training_set(X: Any, y: Any, groups: Any, train_only: Any,
                        depth: int) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
    images = check_images(X, depth=depth)
    masks = check_masks(y, n_samples=len(images), height=images.shape[2],
                        width=images.shape[3])
    only = check_flags(train_only, len(images), "train_only")
    check_groups(groups, len(images))
    return images, masks, groups, only


@dataclass
class FoldPlan:
    """The checked inputs of a cross-validation and its folds: what each fold trains on and
    is scored on (:func:`plan_folds`).

    Attributes
    ----------
    images : ndarray of shape (n_samples, n_channels, height, width)
    masks : ndarray of shape (n_samples, height, width)
    folds : ndarray of shape (n_samples,), int
        :func:`fold_assignment`.
    train_only : ndarray of shape (n_samples,), bool
    steps : ndarray of shape (n_checkpoints,), int
        :func:`checkpoints`.
    thresholds : ndarray of shape (n_thresholds,)
    defect_ratio : float or None
    seed : int
        Seeds the models whose ``random_state`` is None.
    estimate_weight : ndarray of shape (n_samples,) or None
        Each image's weight in the weighted estimate (None: no weighted estimate).
    """

    images: np.ndarray
    masks: np.ndarray
    folds: np.ndarray
    train_only: np.ndarray
    steps: np.ndarray
    thresholds: np.ndarray
    defect_ratio: float | None
    seed: int
    estimate_weight: np.ndarray | None = None

    @property
    def n_folds(self) -> int:
        """The number of folds used."""
        return int(self.folds.max()) + 1

    def fold_rows(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows fold ``fold``'s model trains on, and the rows it is scored on."""
        return (np.flatnonzero(self.folds != fold),
                np.flatnonzero((self.folds == fold) & ~self.train_only))

    def fold_tasks(self, segmenter: SegmentationLearner, init: SegmentationLearner | None, *,
                   quiet: bool = False) -> list[Callable[[], dict[str, np.ndarray]]]:
        """One task per fold: train a fresh model (:func:`fresh_model`; ``quiet``: without
        progress bars) and count what it finds on the held-out rows at every checkpoint
        (:func:`fold_counts`)."""
        tasks = []
        for fold in range(self.n_folds):
            train, held_out = self.fold_rows(fold)
            model = fresh_model(segmenter, init, self.seed)
            if quiet:
                model.set_params(verbose=0)
            tasks.append(partial(fold_counts, model, self.images, self.masks, train,
                                 held_out, self.steps, self.thresholds,
                                 self.estimate_weight))
        return tasks

    def fold_messages(self) -> list[str]:
        """What each fold task does, in words (for progress messages)."""
        messages = []
        for fold in range(self.n_folds):
            train, held_out = self.fold_rows(fold)
            messages.append(
                f"cross-validation, fold {fold + 1} of {self.n_folds}: training S on "
                f"{len(train)} images, checking {len(self.steps)} checkpoints on "
                f"{len(held_out)} held-out ones")
        return messages

    def result(self, fold_results: Sequence[Mapping[str, np.ndarray]],
               seconds: float) -> CrossValidation:
        """The :class:`CrossValidation` of the folds' counts (in fold order), with the
        threshold and checkpoint chosen."""
        counts = {key: np.stack([found[key] for found in fold_results]).astype(np.int64)
                  for key in COUNT_KEYS}
        n_defective = np.zeros(self.n_folds, np.int64)
        n_normal = np.zeros(self.n_folds, np.int64)
        n_training = np.zeros(self.n_folds, np.int64)
        weighted: dict[str, np.ndarray] | None = None
        if self.estimate_weight is not None:
            weighted = {key: np.stack([found[f"weighted_{key}"] for found in fold_results])
                        for key in COUNT_KEYS}
            weighted["n_defective"] = np.zeros(self.n_folds)
            weighted["n_normal"] = np.zeros(self.n_folds)
        for fold in range(self.n_folds):
            train, held_out = self.fold_rows(fold)
            defective = defective_rows(self.masks[held_out])
            n_defective[fold], n_normal[fold] = int(defective.sum()), int((~defective).sum())
            n_training[fold] = len(train)
            if weighted is not None and self.estimate_weight is not None:
                weight = self.estimate_weight[held_out]
                weighted["n_defective"][fold] = float(weight[defective].sum())
                weighted["n_normal"][fold] = float(weight[~defective].sum())
        cv = CrossValidation(thresholds=self.thresholds, steps=self.steps, counts=counts,
                             n_defective=n_defective, n_normal=n_normal,
                             n_training=n_training, defect_ratio=self.defect_ratio,
                             weighted_counts=weighted, seed=self.seed)
        cv.choose()
        cv.seconds = seconds
        return cv


def fold_counts(model: SegmentationLearner, images: np.ndarray, masks: np.ndarray,
                train: np.ndarray, held_out: np.ndarray, steps: np.ndarray,
                thresholds: np.ndarray, estimate_weight: np.ndarray | None = None
                ) -> dict[str, np.ndarray]:
    """Train ``model`` on the ``train`` rows and count what it finds on the ``held_out``
    rows at each of the ``steps``.

    Returns
    -------
    counts : dict of str to ndarray of shape (n_checkpoints, n_thresholds)
        :func:`~sid4ds.estimators.detection.detection_counts` at each checkpoint (int64);
        with ``estimate_weight`` (one weight per row of ``images``), also
        ``weighted_KEY``: the counts weighted so (float64).
    """
    position = {int(step): index for index, step in enumerate(steps)}
    passes: dict[str, np.ndarray | None] = {"": None}
    if estimate_weight is not None:
        passes["weighted_"] = estimate_weight[held_out]
    counts = {f"{prefix}{key}": np.zeros((len(steps), len(thresholds)),
                                         np.float64 if prefix else np.int64)
              for prefix in passes for key in COUNT_KEYS}

    def score(done: int) -> bool:
        if done in position:
            probabilities = model.predict_proba(images[held_out])
            for prefix, weight in passes.items():
                found = detection_counts(probabilities, masks[held_out], thresholds, weight)
                for key in COUNT_KEYS:
                    counts[f"{prefix}{key}"][position[done]] = found[key]
        return False

    model.fit(images[train], masks[train], on_step=score)
    return counts


def plan_folds(
    segmenter: SegmentationLearner,
    X: Any,
    y: Any,
    *,
    groups: Any = None,
    train_only: Any = None,
    n_folds: int = 3,
    n_checkpoints: int = 5,
    thresholds: Sequence[float] = THRESHOLDS,
    defect_ratio: float | None = None,
    estimate_weight: Any = None,
    random_state: Any = None,
) -> FoldPlan:
    """Check the inputs of :func:`cross_validate` (same parameters) and deal the folds."""
    if not isinstance(segmenter, SegmentationLearner):
        raise TypeError(f"segmenter must be a SegmentationLearner; got "
                        f"{type(segmenter).__name__}")
    segmenter.check_params()
    if segmenter.max_epochs is not None:
        raise ValueError(
            f"segmenter has max_epochs={segmenter.max_epochs}; the cross-validation counts "
            f"checkpoints in optimiser steps: set max_epochs=None and max_steps"
        )
    images, masks, groups, only = check_training_set(X, y, groups, train_only,
                                                      segmenter.depth)
    n_checkpoints = check_int(n_checkpoints, "n_checkpoints", minimum=1)
    cuts = np.unique(check_probabilities(thresholds, "thresholds"))
    if defect_ratio is not None:
        check_float(defect_ratio, "defect_ratio", low=0.0, high=1.0, include_low=False,
                    include_high=False)
    weight = check_weights(estimate_weight, len(images), "estimate_weight")
    if weight is not None and not weight[~only & defective_rows(masks)].any():
        raise ValueError("estimate_weight gives every defective image that is validated on a "
                         "weight of 0: the weighted estimate would measure nothing; give "
                         "the images that stand for the population a weight > 0")
    rng = make_rng(random_state)
    seed = draw_seed(rng)
    folds = fold_assignment(defective_rows(masks), n_folds, groups=groups, train_only=only,
                            weights=weight, random_state=rng)
    return FoldPlan(images=images, masks=masks, folds=folds, train_only=only,
                    steps=checkpoints(int(segmenter.max_steps), n_checkpoints),
                    thresholds=cuts,
                    defect_ratio=None if defect_ratio is None else float(defect_ratio),
                    seed=seed, estimate_weight=weight)


def run_fits(tasks: Sequence[Callable[[], Any]], messages: Sequence[str], workers: int,
             threads: int, say: Callable[[str], None] | None) -> list[Any]:
    """Run the fit tasks (:func:`sid4ds._core.parallel.run_side_by_side`), telling ``say``
    each one's message as it starts, or what runs side by side."""
    speak = say or (lambda message: None)
    if workers <= 1:
        results = []
        for task, message in zip(tasks, messages, strict=True):
            speak(message)
            results.append(task())
        return results
    speak(f"{len(tasks)} fits side by side, {workers} at a time in worker processes "
          f"({threads} torch thread{'s' if threads > 1 else ''} each):")
    for message in messages:
        speak(f"  {message}")
    return run_side_by_side(tasks, workers, threads)


def cross_validate(
    segmenter: SegmentationLearner,
    X: Any,
    y: Any,
    *,
    groups: Any = None,
    train_only: Any = None,
    n_folds: int = 3,
    n_checkpoints: int = 5,
    thresholds: Sequence[float] = THRESHOLDS,
    defect_ratio: float | None = None,
    estimate_weight: Any = None,
    init: SegmentationLearner | None = None,
    parallel_fits: Any = "auto",
    random_state: Any = None,
    say: Callable[[str], None] | None = None,
) -> CrossValidation:
    """Choose the threshold and training length of ``segmenter`` by k-fold cross-validation.

    See the module docstring. Each fold's model is a clone of ``segmenter`` (or ``init``
    trained further) trained for its ``max_steps`` on the other folds' images (and the
    train-only images), and scored on its fold at each checkpoint and threshold.

    Parameters
    ----------
    segmenter : SegmentationLearner
        The configuration (unfitted; its ``max_steps`` is the budget; ``max_epochs`` must
        be None). Seeded from ``random_state`` when its ``random_state`` is None.
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        The labelled images (and fake normals).
    y : array-like of shape (n_samples, height, width)
        Their binary masks.
    groups : array-like of shape (n_samples,), optional
        Source of each image (tiles of one image share one); see :func:`fold_assignment`.
    train_only : array-like of shape (n_samples,), bool, optional
        Images trained on but never validated on (fake normals).
    n_folds : int, default=3
        Folds wanted (fewer when fewer source images hold a defect).
    n_checkpoints : int, default=5
        Training lengths compared: ``max_steps · j / n_checkpoints``, j = 1 .. n.
    thresholds : sequence of float, default=THRESHOLDS
        The threshold grid.
    defect_ratio : float in (0, 1), optional
        Share of defective images the IoU is estimated for (see
        :func:`~sid4ds.estimators.detection.detection_scores`); default: as in the labelled images.
    estimate_weight : array-like of shape (n_samples,), optional
        How many images of the population each image stands for (finite, >= 0), for a
        second, weighted estimate (:attr:`CrossValidation.weighted_counts`) beside the
        estimate on the labelled images: e.g. 1 for the images a ranking chose (each
        stands for itself), the number of images a random audit was drawn from over its
        size for the audit's images, 0 for images that stand for none. A ranked labelled
        set holds the clearest defects, so the plain estimate is for images like them;
        the weighted one is for the pool. The folds are dealt weight by weight; the
        choice of threshold and checkpoint stays with the plain estimate.
    init : SegmentationLearner, optional
        A fitted S to start every fold from instead of a fresh network (the S of the
        rounds): the estimate is then optimistic when ``init`` has seen the held-out images.
    parallel_fits : "auto" or int >= 1, default="auto"
        How many folds train at once, each in a worker process with its share of torch's
        threads (:func:`sid4ds._core.parallel.fit_workers`; ``"auto"``: as many as torch's
        threads on a CPU for fits in bf16 of 200 steps or more, else one at a time;
        1: in turn in this process). The counts
        agree up to the rounding of a different thread count.
    random_state : int, Generator, RandomState or None, default=None
        Seeds the folds (and ``segmenter`` when it has no ``random_state``).
    say : callable, optional
        ``say(message)`` for progress messages.

    Returns
    -------
    cv : CrossValidation
        With the chosen ``threshold`` and ``n_steps``.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.estimators.final_model import cross_validate
    >>> X, masks = make_defect_images(n_samples=12, image_size=16, defect_ratio=0.5,
    ...                               random_state=0)
    >>> tiny = SegmentationLearner(base_channels=4, depth=2, max_steps=4, random_state=0)
    >>> cv = cross_validate(tiny, X, masks, n_folds=2, n_checkpoints=2, parallel_fits=1,
    ...                     random_state=0)
    >>> cv.n_folds, cv.steps.tolist(), sorted(cv.estimate())
    (2, [2, 4], ['detected', 'false_alarms', 'iou'])
    """
    plan = plan_folds(segmenter, X, y, groups=groups, train_only=train_only, n_folds=n_folds,
                      n_checkpoints=n_checkpoints, thresholds=thresholds,
                      defect_ratio=defect_ratio, estimate_weight=estimate_weight,
                      random_state=random_state)
    workers, threads = fit_workers(parallel_fits, plan.n_folds,
                                   resolve_device(segmenter.device), int(segmenter.max_steps),
                                   segmenter.precision)
    started = time.perf_counter()
    tasks = plan.fold_tasks(segmenter, init, quiet=workers > 1)
    counts = run_fits(tasks, plan.fold_messages(), workers, threads, say)
    return plan.result(counts, time.perf_counter() - started)
