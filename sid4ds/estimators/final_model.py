"""The model to take home: S trained on every label, its threshold and training length
chosen by cross-validation, and an estimate of how well it will do on new images.

The segmentation learner S of the rounds is trained for ranking the pool, at a fixed
threshold of 0.5. The final model is its own step: a fresh S trained on every labelled
image (and, optionally, the last round's fake normals) for a budget of its own, whose
decision threshold and checkpoint (the number of optimiser steps it trains) are chosen by
k-fold cross-validation over the labelled images:

1. :func:`fold_assignment` splits the labelled images into folds, stratified by
   defective/normal and grouped by source image (tiles of one image stay in one fold).
   Fake normals are never validated on (their masks are a guess); they are trained on in
   every fold except the one holding a sibling tile.
2. :func:`cross_validate` trains S on all folds but one for the whole budget and, at
   ``n_checkpoints`` evenly spaced steps, predicts the held-out fold and counts, for every
   threshold of a grid, what :func:`detection_counts` counts: defect pixels found and
   missed, pixels falsely marked on normal images, defective images found and normal
   images flagged.
3. :func:`detection_scores` turns the counts into the three figures a user reads: defect
   IoU (pooled over pixels, at the share of defective images ``defect_ratio`` new images
   are expected to have), the share of defective images found (image recall) and the share
   of normal images flagged. The checkpoint and threshold with the best mean IoU over the
   folds are chosen, and the estimate is the mean and std over the folds there.
4. :func:`fit_final_model` trains S on every label with the same budget, stops at the
   chosen checkpoint and sets the chosen threshold.

Everything is seeded (``random_state``, through :func:`sid4ds._core.random.make_rng`) and
touches no global random state. The labelling session (``sid4ds train``),
:func:`sid4ds.run_sid4ds` (``fit_final=True``) and ``benchmarks/final_model.py`` all call
:func:`train_final_model`, which applies the final model's settings
(:func:`check_final_settings`) and calls :func:`fit_final_model`.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import draw_seed, make_rng
from sid4ds._core.validation import (
    check_choice,
    check_float,
    check_images,
    check_int,
    check_masks,
    check_probabilities,
)
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.metrics import defective_rows

__all__ = [
    "FINAL_DEFAULTS",
    "SELECTION_KEYS",
    "THRESHOLDS",
    "CrossValidation",
    "check_final_settings",
    "cross_validate",
    "detection_counts",
    "detection_scores",
    "final_segmenter",
    "fit_final_model",
    "fold_assignment",
    "train_final_model",
]

#: The threshold grid of the cross-validation: 0.01, 0.02, 0.03, then 0.05, 0.10, ..., 0.95,
#: then 0.97, 0.98, 0.99 (S is often far from calibrated: on magnetic tiles the best
#: threshold was 0.05-0.10 when the grid began at 0.05).
THRESHOLDS: tuple[float, ...] = ((0.01, 0.02, 0.03)
                                 + tuple(round(0.05 * k, 2) for k in range(1, 20))
                                 + (0.97, 0.98, 0.99))

#: The settings of the final model that are not parameters of S, and their defaults:
#: ``n_folds`` (k of the cross-validation; fewer when the labels hold fewer defective source
#: images), ``n_checkpoints`` (evenly spaced training lengths compared), ``fake_normals``
#: (train on the last round's fake normals too), ``start`` (``"scratch"``: a fresh S;
#: ``"in_loop"``: S of the rounds trained further, whose estimate is optimistic since that
#: S has seen the validation images).
SELECTION_KEYS: tuple[str, ...] = ("n_folds", "n_checkpoints", "fake_normals", "start")

#: Defaults of the final model's settings: the selection keys and the parameters of S it
#: changes from the S of the rounds (any other parameter of S may be set too).
FINAL_DEFAULTS: dict[str, Any] = {
    "n_folds": 3, "n_checkpoints": 5, "fake_normals": True, "start": "scratch",
    "max_steps": 800,
}

# Parameters of S the final model always sets: the budget is counted in steps (so that the
# folds' checkpoints are the final fit's), checkpoints replace best_window, and the fit
# starts afresh (or from the in-loop S, by ``init``).
_FIXED = {"max_epochs": None, "best_window": 0, "warm_start": False}
_START_RULES = ("scratch", "in_loop")

_COUNTS = ("intersection", "union", "false_pixels", "found", "flagged")


# ---------------------------------------------------------------------- settings
def check_final_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The final model's settings, validated, with the defaults filled in.

    Parameters
    ----------
    settings : mapping or None
        Keys of :data:`SELECTION_KEYS` and parameters of
        :class:`~sid4ds.SegmentationLearner` (which override the S of the rounds', e.g.
        ``{"max_steps": 2000, "lr": 1e-3}``).

    Returns
    -------
    settings : dict
        :data:`FINAL_DEFAULTS` updated by ``settings``.

    Raises
    ------
    ValueError, TypeError
        For an unknown key or a bad value, naming it.

    Examples
    --------
    >>> from sid4ds.estimators.final_model import check_final_settings
    >>> check_final_settings({"n_folds": 5})["n_folds"]
    5
    >>> check_final_settings({"folds": 5})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown setting 'folds' of the final model; use n_folds, ...
    """
    merged = {**FINAL_DEFAULTS, **dict(settings or {})}
    known = SegmentationLearner().get_params(deep=False)
    for key in merged:
        if key not in SELECTION_KEYS and key not in known:
            raise ValueError(
                f"unknown setting {key!r} of the final model; use "
                f"{', '.join(SELECTION_KEYS[:-1])}, {SELECTION_KEYS[-1]} or a parameter of "
                f"SegmentationLearner (max_steps, lr, ...)"
            )
        if key in _FIXED or key in ("device", "verbose", "encoder_init"):
            raise ValueError(
                f"the final model does not take {key!r}: its budget is counted in steps "
                f"(max_steps) and checkpoints are chosen by cross-validation; device and "
                f"verbosity are chosen per command"
            )
    check_int(merged["n_folds"], "n_folds", minimum=2)
    check_int(merged["n_checkpoints"], "n_checkpoints", minimum=1)
    if not isinstance(merged["fake_normals"], bool):
        raise TypeError(f"fake_normals must be True or False; got {merged['fake_normals']!r}")
    check_choice(merged["start"], "start", _START_RULES)
    if merged["max_steps"] is None:
        raise ValueError("max_steps of the final model must be an int: its budget is "
                         "counted in optimiser steps")
    SegmentationLearner(**{key: value for key, value in merged.items()
                           if key not in SELECTION_KEYS}).check_params()
    return merged


def final_segmenter(segmenter_params: Mapping[str, Any],
                    settings: Mapping[str, Any] | None = None) -> SegmentationLearner:
    """The configuration of the final model: S's parameters, changed by the final settings.

    Parameters
    ----------
    segmenter_params : mapping
        Parameters of the S of the rounds (e.g. ``get_params()`` or a session's settings).
    settings : mapping, optional
        The final model's settings (:func:`check_final_settings`).

    Returns
    -------
    segmenter : SegmentationLearner
        Unfitted, counted in steps, ``best_window=0``, ``warm_start=False``.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.estimators.final_model import final_segmenter
    >>> final = final_segmenter(SegmentationLearner(lr=1e-3, max_steps=300).get_params(),
    ...                         {"max_steps": 1500})
    >>> final.lr, final.max_steps
    (0.001, 1500)
    """
    checked = check_final_settings(settings)
    params = {key: value for key, value in dict(segmenter_params).items()
              if key != "encoder_init"}
    params.update({key: value for key, value in checked.items() if key not in SELECTION_KEYS})
    params.update(_FIXED)
    return SegmentationLearner(**{key: tuple(value) if isinstance(value, list) else value
                                  for key, value in params.items()})


# ---------------------------------------------------------------------- folds
def fold_assignment(
    is_defective: Any,
    n_folds: int,
    *,
    groups: Any = None,
    train_only: Any = None,
    random_state: Any = None,
) -> np.ndarray:
    """The cross-validation fold of each image, by source group, stratified by class.

    The groups with a defective image (that may be validated on) are dealt to the folds
    in a random order, then the other groups, so that each fold holds about as many of
    each. With fewer defective groups than ``n_folds``, there are as many folds as
    defective groups.

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
    only = (np.zeros(n_samples, bool) if train_only is None
            else np.asarray(train_only, dtype=bool))
    if only.shape != defective.shape:
        raise ValueError(f"train_only has shape {only.shape}; expected one flag per image, "
                         f"({n_samples},)")
    if groups is None:
        group_of = np.arange(n_samples)
    else:
        group_of = np.unique(np.asarray(groups).astype(str), return_inverse=True)[1].ravel()
        if group_of.shape != defective.shape:
            raise ValueError(f"groups has {len(group_of)} entries for {n_samples} images; "
                             f"pass one group per image")
    n_groups = int(group_of.max()) + 1 if n_samples else 0
    validated = np.zeros(n_groups, bool)
    np.logical_or.at(validated, group_of[~only], True)
    group_defective = np.zeros(n_groups, bool)
    np.logical_or.at(group_defective, group_of[~only], defective[~only])
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
        order = rng.permutation(members)
        fold_of_group[order] = (start + np.arange(len(order))) % n_used
        start = (start + len(order)) % n_used
    return fold_of_group[group_of]


# ---------------------------------------------------------------------- counting
def detection_counts(probabilities: Any, masks: Any,
                     thresholds: Sequence[float] = THRESHOLDS) -> dict[str, np.ndarray]:
    """What a segmenter finds at each threshold, counted over a set of images.

    Parameters
    ----------
    probabilities : array-like of shape (n_samples, height, width)
        Defect probabilities.
    masks : array-like of shape (n_samples, height, width)
        True binary masks.
    thresholds : sequence of float, default=THRESHOLDS
        Probability at or above which a pixel is marked.

    Returns
    -------
    counts : dict
        Arrays of shape (n_thresholds,): ``intersection`` and ``union`` (pixels, summed
        over the defective images), ``false_pixels`` (pixels marked on normal images),
        ``found`` (defective images with a marked pixel) and ``flagged`` (normal images
        with a marked pixel); ints ``n_defective`` and ``n_normal``.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.estimators.final_model import detection_counts
    >>> truth = np.array([[[1, 0]], [[0, 0]]])
    >>> probability = np.array([[[0.3, 0.1]], [[0.2, 0.0]]])
    >>> counts = detection_counts(probability, truth, thresholds=[0.15, 0.5])
    >>> counts["intersection"].tolist(), counts["false_pixels"].tolist()
    ([1, 0], [1, 0])
    """
    values = check_probabilities(probabilities, "probabilities")
    if values.ndim != 3:
        raise ValueError(f"probabilities must have shape (n_samples, height, width); got "
                         f"{values.shape}")
    truth = check_masks(masks, name="masks", n_samples=len(values), height=values.shape[1],
                        width=values.shape[2]).astype(bool)
    cuts = np.asarray(thresholds, dtype=np.float64)
    defective = defective_rows(truth)

    def at_or_above(sample: np.ndarray) -> np.ndarray:
        ordered = np.sort(sample.ravel())
        return (len(ordered) - np.searchsorted(ordered, cuts, side="left")).astype(np.int64)

    on_defects = values[defective]
    intersection = at_or_above(on_defects[truth[defective]])
    marked = at_or_above(on_defects)
    return {
        "intersection": intersection,
        "union": marked + int(truth.sum()) - intersection,
        "false_pixels": at_or_above(values[~defective]),
        "found": at_or_above(on_defects.reshape(len(on_defects), -1).max(axis=1)
                             if len(on_defects) else on_defects.reshape(0)),
        "flagged": at_or_above(values[~defective].reshape(int((~defective).sum()), -1)
                               .max(axis=1) if (~defective).any() else values[:0].reshape(0)),
        "n_defective": int(defective.sum()), "n_normal": int((~defective).sum()),
    }


def detection_scores(counts: Mapping[str, Any],
                     defect_ratio: float | None = None) -> dict[str, np.ndarray]:
    """Defect IoU, share of defective images found and of normal images flagged.

    Parameters
    ----------
    counts : mapping
        As :func:`detection_counts` returns, or arrays of any shape of such counts (e.g.
        per fold, checkpoint and threshold) with ``n_defective`` and ``n_normal``
        broadcasting against them.
    defect_ratio : float in (0, 1), optional
        The share of defective images of the images the IoU is meant for: the defective
        images' pixel counts and the normal images' false pixels are weighted to that mix.
        None: as counted (pooled over the images, as :func:`sid4ds.metrics.defect_iou`).

    Returns
    -------
    scores : dict
        ``iou``, ``detected`` (share of the defective images found; NaN without any) and
        ``false_alarms`` (share of the normal images flagged; NaN without any).

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.estimators.final_model import detection_scores
    >>> counts = {"intersection": 6, "union": 8, "false_pixels": 4, "found": 2,
    ...           "flagged": 1, "n_defective": 2, "n_normal": 4}
    >>> {key: float(value) for key, value in detection_scores(counts).items()}
    {'iou': 0.5, 'detected': 1.0, 'false_alarms': 0.25}
    >>> round(float(detection_scores(counts, defect_ratio=0.5)["iou"]), 3)
    0.6
    """
    parts = {key: np.asarray(counts[key], dtype=np.float64)
             for key in (*_COUNTS, "n_defective", "n_normal")}
    n_defective, n_normal = parts["n_defective"], parts["n_normal"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if defect_ratio is None:
            weight_defect, weight_normal = 1.0, 1.0
        else:
            ratio = check_float(defect_ratio, "defect_ratio", low=0.0, high=1.0,
                                include_low=False, include_high=False)
            weight_defect = np.where(n_defective > 0, ratio / n_defective, np.nan)
            weight_normal = np.where(n_normal > 0, (1.0 - ratio) / n_normal, 0.0)
        found = parts["intersection"] * weight_defect
        union = (parts["union"] * weight_defect if defect_ratio is None
                 else np.nan_to_num(parts["union"] * weight_defect, nan=0.0))
        union = union + parts["false_pixels"] * weight_normal
        iou = np.where(union > 0, found / np.where(union > 0, union, 1.0), 1.0)
        if defect_ratio is not None:
            iou = np.where(n_defective > 0, iou, np.nan)
        detected = np.where(n_defective > 0, parts["found"] / n_defective, np.nan)
        false_alarms = np.where(n_normal > 0, parts["flagged"] / n_normal, np.nan)
    return {"iou": iou, "detected": detected, "false_alarms": false_alarms}


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
        :func:`detection_counts` of each fold's held-out images at each checkpoint.
    n_defective, n_normal : ndarray of shape (n_folds,), int
        Held-out defective and normal images per fold.
    n_training : ndarray of shape (n_folds,), int
        Images each fold's model was trained on.
    defect_ratio : float or None
        The share of defective images the IoU is for (None: as in the held-out folds).
    threshold : float
        The chosen threshold.
    n_steps : int
        The chosen checkpoint (optimiser steps of the final fit).
    seconds : float
        Wall time of the cross-validation.
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
    threshold: float = 0.5
    n_steps: int = 0
    seconds: float = 0.0
    seed: int | None = None
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n_folds(self) -> int:
        """The number of folds."""
        return len(self.n_defective)

    def scores(self, defect_ratio: Any = "same") -> dict[str, np.ndarray]:
        """Per fold, checkpoint and threshold: ``iou``, ``detected``, ``false_alarms``.

        Parameters
        ----------
        defect_ratio : float, None or "same", default="same"
            The mix the IoU is for (see :func:`detection_scores`); ``"same"``: the
            cross-validation's own.

        Returns
        -------
        scores : dict of str to ndarray of shape (n_folds, n_checkpoints, n_thresholds)
        """
        if isinstance(defect_ratio, str) and defect_ratio == "same":
            if not self._scores:
                self._scores = self._compute(self.defect_ratio)
            return self._scores
        return self._compute(defect_ratio)

    def _compute(self, defect_ratio: float | None) -> dict[str, np.ndarray]:
        shape = (-1, 1, 1)
        return detection_scores({**self.counts,
                                 "n_defective": self.n_defective.reshape(shape),
                                 "n_normal": self.n_normal.reshape(shape)}, defect_ratio)

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

    def estimate(self, defect_ratio: Any = "same") -> dict[str, dict[str, float]]:
        """Mean and std over the folds at the chosen checkpoint and threshold.

        Parameters
        ----------
        defect_ratio : float, None or "same", default="same"
            As in :meth:`scores`.

        Returns
        -------
        estimate : dict
            ``iou``, ``detected``, ``false_alarms``: each ``{"mean": ..., "std": ...}``
            (NaN where no fold has such images).
        """
        checkpoint, threshold = self._index()
        result = {}
        for key, values in self.scores(defect_ratio).items():
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
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CrossValidation:
        """The :class:`CrossValidation` of :meth:`to_dict` (``estimate`` is recomputed)."""
        return cls(
            thresholds=np.asarray(values["thresholds"], dtype=np.float64),
            steps=np.asarray(values["steps"], dtype=np.int64),
            counts={key: np.asarray(value, dtype=np.int64)
                    for key, value in values["counts"].items()},
            n_defective=np.asarray(values["n_defective"], dtype=np.int64),
            n_normal=np.asarray(values["n_normal"], dtype=np.int64),
            n_training=np.asarray(values["n_training"], dtype=np.int64),
            defect_ratio=values["defect_ratio"], threshold=float(values["threshold"]),
            n_steps=int(values["n_steps"]), seconds=float(values.get("seconds", 0.0)),
            seed=values.get("seed"))

    def summary(self) -> str:
        """One line for messages: the chosen threshold and length, and the estimate."""
        estimate = self.estimate()
        mix = ("" if self.defect_ratio is None else
               f" (on images {self.defect_ratio:.0%} defective)")

        def part(key: str) -> str:
            value = estimate[key]
            return f"{value['mean']:.0%} ± {value['std']:.0%}"

        return (f"threshold {self.threshold:g}, {self.n_steps} steps; estimated over "
                f"{self.n_folds} folds: defect IoU {estimate['iou']['mean']:.3f} ± "
                f"{estimate['iou']['std']:.3f}{mix}, defective images found "
                f"{part('detected')}, normal images flagged {part('false_alarms')}")


# ---------------------------------------------------------------------- training
def _checkpoints(n_steps: int, n_checkpoints: int) -> np.ndarray:
    """``n_checkpoints`` evenly spaced steps ending at ``n_steps`` (fewer when short)."""
    steps = np.round(np.arange(1, n_checkpoints + 1) * n_steps / n_checkpoints).astype(np.int64)
    return np.unique(steps[steps >= 1])


def _fresh(segmenter: SegmentationLearner, init: SegmentationLearner | None,
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


def _check_training_set(X: Any, y: Any, groups: Any, train_only: Any,
                        depth: int) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
    images = check_images(X, depth=depth)
    masks = check_masks(y, n_samples=len(images), height=images.shape[2],
                        width=images.shape[3])
    only = (np.zeros(len(images), bool) if train_only is None
            else np.asarray(train_only, dtype=bool))
    if only.shape != (len(images),):
        raise ValueError(f"train_only has shape {only.shape}; expected one flag per image, "
                         f"({len(images)},)")
    if groups is not None and len(np.asarray(groups)) != len(images):
        raise ValueError(f"groups has {len(np.asarray(groups))} entries for {len(images)} "
                         f"images; pass one group per image")
    return images, masks, groups, only


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
    init: SegmentationLearner | None = None,
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
        :func:`detection_scores`); default: as in the labelled images.
    init : SegmentationLearner, optional
        A fitted S to start every fold from instead of a fresh network (the S of the
        rounds): the estimate is then optimistic when ``init`` has seen the held-out images.
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
    >>> cv = cross_validate(tiny, X, masks, n_folds=2, n_checkpoints=2, random_state=0)
    >>> cv.n_folds, cv.steps.tolist(), sorted(cv.estimate())
    (2, [2, 4], ['detected', 'false_alarms', 'iou'])
    """
    if not isinstance(segmenter, SegmentationLearner):
        raise TypeError(f"segmenter must be a SegmentationLearner; got "
                        f"{type(segmenter).__name__}")
    segmenter.check_params()
    if segmenter.max_epochs is not None:
        raise ValueError(
            f"segmenter has max_epochs={segmenter.max_epochs}; the cross-validation counts "
            f"checkpoints in optimiser steps: set max_epochs=None and max_steps"
        )
    images, masks, groups, only = _check_training_set(X, y, groups, train_only,
                                                      segmenter.depth)
    n_checkpoints = check_int(n_checkpoints, "n_checkpoints", minimum=1)
    cuts = np.unique(check_probabilities(thresholds, "thresholds"))
    if defect_ratio is not None:
        check_float(defect_ratio, "defect_ratio", low=0.0, high=1.0, include_low=False,
                    include_high=False)
    speak = say or (lambda message: None)
    rng = make_rng(random_state)
    seed = draw_seed(rng)
    folds = fold_assignment(defective_rows(masks), n_folds, groups=groups, train_only=only,
                            random_state=rng)
    steps = _checkpoints(int(segmenter.max_steps), n_checkpoints)
    n_used = int(folds.max()) + 1
    counts = {key: np.zeros((n_used, len(steps), len(cuts)), np.int64) for key in _COUNTS}
    n_defective = np.zeros(n_used, np.int64)
    n_normal = np.zeros(n_used, np.int64)
    n_training = np.zeros(n_used, np.int64)
    position = {int(step): index for index, step in enumerate(steps)}
    started = time.perf_counter()
    for fold in range(n_used):
        held_out = np.flatnonzero((folds == fold) & ~only)
        train = np.flatnonzero(folds != fold)
        model = _fresh(segmenter, init, seed)

        def score(done: int, model: SegmentationLearner = model,
                  held_out: np.ndarray = held_out, fold: int = fold) -> bool:
            if done in position:
                found = detection_counts(model.predict_proba(images[held_out]),
                                         masks[held_out], cuts)
                for key in _COUNTS:
                    counts[key][fold, position[done]] = found[key]
            return False

        speak(f"cross-validation, fold {fold + 1} of {n_used}: training S on {len(train)} "
              f"images, checking {len(steps)} checkpoints on {len(held_out)} held-out ones")
        model.fit(images[train], masks[train], on_step=score)
        defective = defective_rows(masks[held_out])
        n_defective[fold], n_normal[fold] = int(defective.sum()), int((~defective).sum())
        n_training[fold] = len(train)
    cv = CrossValidation(thresholds=cuts, steps=steps, counts=counts,
                         n_defective=n_defective, n_normal=n_normal, n_training=n_training,
                         defect_ratio=None if defect_ratio is None else float(defect_ratio),
                         seed=seed)
    cv.choose()
    cv.seconds = time.perf_counter() - started
    return cv


def fit_final_model(
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
    init: SegmentationLearner | None = None,
    random_state: Any = None,
    say: Callable[[str], None] | None = None,
) -> tuple[SegmentationLearner, CrossValidation]:
    """Cross-validate, then train the final model on every image up to the chosen step.

    Parameters
    ----------
    segmenter, X, y, groups, train_only, n_folds, n_checkpoints, thresholds
        As in :func:`cross_validate`.
    defect_ratio, init, random_state, say
        As in :func:`cross_validate`. The final fit trains on all of ``X`` (train-only
        images included) with the budget ``segmenter.max_steps`` and stops at the chosen
        checkpoint, as the folds' models were scored.

    Returns
    -------
    model : SegmentationLearner
        Fitted; its ``threshold`` is the chosen one.
    cv : CrossValidation
        The cross-validation, with the estimate of how well ``model`` does.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.estimators.final_model import fit_final_model
    >>> X, masks = make_defect_images(n_samples=12, image_size=16, defect_ratio=0.5,
    ...                               random_state=0)
    >>> tiny = SegmentationLearner(base_channels=4, depth=2, max_steps=4, random_state=0)
    >>> model, cv = fit_final_model(tiny, X, masks, n_folds=2, n_checkpoints=2,
    ...                             random_state=0)
    >>> model.threshold == cv.threshold, sum(e["steps"] for e in model.history_) == cv.n_steps
    (True, True)
    """
    cv = cross_validate(segmenter, X, y, groups=groups, train_only=train_only,
                        n_folds=n_folds, n_checkpoints=n_checkpoints, thresholds=thresholds,
                        defect_ratio=defect_ratio, init=init, random_state=random_state,
                        say=say)
    (say or (lambda message: None))(
        f"training the final model on {len(np.asarray(y))} images for {cv.n_steps} steps")
    images, masks, _, _ = _check_training_set(X, y, None, None, segmenter.depth)
    model = _fresh(segmenter, init, cv.seed)
    model.fit(images, masks, on_step=lambda done: done >= cv.n_steps)
    model.set_params(threshold=cv.threshold)
    return model, cv


def train_final_model(
    segmenter: SegmentationLearner,
    X: Any,
    y: Any,
    *,
    train_only: Any = None,
    groups: Any = None,
    settings: Mapping[str, Any] | None = None,
    defect_ratio: float | None = None,
    random_state: Any = None,
    say: Callable[[str], None] | None = None,
) -> tuple[SegmentationLearner, CrossValidation]:
    """The final model of a SID4DS run, by its settings: the one entry point of the session,
    :func:`sid4ds.run_sid4ds` and the benchmark.

    Parameters
    ----------
    segmenter : SegmentationLearner
        The S of the rounds: its parameters are the recipe (changed by ``settings``); it
        must be fitted when ``settings["start"]`` is ``"in_loop"``.
    X : array-like of shape (n_samples, n_channels, height, width)
        Every labelled image, then the fake normals.
    y : array-like of shape (n_samples, height, width)
        Their masks (all zero for the fake normals).
    train_only : array-like of shape (n_samples,), bool, optional
        Which rows are fake normals: never validated on, and left out unless
        ``settings["fake_normals"]``.
    groups : array-like of shape (n_samples,), optional
        Source of each image (see :func:`fold_assignment`).
    settings : mapping, optional
        The final model's settings (:func:`check_final_settings`).
    defect_ratio : float in (0, 1), optional
        Share of defective images the IoU is estimated for.
    random_state : int, Generator, RandomState or None, default=None
        Seeds the folds (the models keep S's own ``random_state`` when it has one).
    say : callable, optional
        Progress messages.

    Returns
    -------
    model : SegmentationLearner
        The final model, fitted, with the chosen threshold.
    cv : CrossValidation
    """
    checked = check_final_settings(settings)
    config = final_segmenter(segmenter.get_params(deep=False), checked)
    only = None if train_only is None else np.asarray(train_only, dtype=bool)
    if only is not None and not checked["fake_normals"]:
        keep = ~only
        X, y = np.asarray(X)[keep], np.asarray(y)[keep]
        groups = None if groups is None else np.asarray(groups)[keep]
        only = None
    init = None
    if checked["start"] == "in_loop":
        if getattr(segmenter, "module_", None) is None:
            raise ValueError("start='in_loop' trains the S of the rounds further, but it is "
                             "not fitted: use start='scratch'")
        init = segmenter
    return fit_final_model(config, X, y, groups=groups, train_only=only,
                           n_folds=checked["n_folds"],
                           n_checkpoints=checked["n_checkpoints"], defect_ratio=defect_ratio,
                           init=init, random_state=random_state, say=say)
