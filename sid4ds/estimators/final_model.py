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
   threshold of a grid, what :func:`~sid4ds.estimators.detection.detection_counts`
   counts: defect pixels found and missed, pixels falsely marked on normal images,
   defective images found and normal images flagged.
3. :func:`~sid4ds.estimators.detection.detection_scores` turns the counts into the three
   figures a user reads: defect IoU (pooled over pixels, at the share of defective images
   ``defect_ratio`` new images are expected to have), the share of defective images found
   (image recall) and the share of normal images flagged. The checkpoint and threshold
   with the best mean IoU over the folds are chosen, and the estimate is the mean and std
   over the folds there.
4. :func:`fit_final_model` trains S on every label with the same budget, stops at the
   chosen checkpoint and sets the chosen threshold.

The fits are independent: on a CPU in bf16 they train side by side in worker processes, with
torch's threads shared out among them (``parallel_fits``, :mod:`sid4ds._core.parallel`),
the final fit for the whole budget beside the folds, its state kept at every checkpoint
(the one chosen is the model); on a GPU one after another.

Everything is seeded (``random_state``, through :func:`sid4ds._core.random.make_rng`) and
touches no global random state. The labelling session (``sid4ds train``),
:func:`sid4ds.run_sid4ds` (``fit_final=True``) and ``benchmarks/final_model.py`` all call
:func:`train_final_model`, which applies the final model's settings
(:func:`check_final_settings`) and calls :func:`fit_final_model`.

This module holds the settings and the user-facing steps (4 and the entry point); the
folds and the cross-validation (1, 2 and its result :class:`CrossValidation`) live in the
private ``sid4ds.estimators._cross_validation``, the counting rules (2, 3) in
:mod:`sid4ds.estimators.detection`, and every name is importable from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from sid4ds._core.device import resolve_device
from sid4ds._core.parallel import check_parallel_fits, fit_workers, torch_threads
from sid4ds._core.validation import check_choice, check_int, check_weights
from sid4ds.estimators._cross_validation import (
    CrossValidation,
    checkpoints,
    cross_validate,
    describe_estimate,
    fold_assignment,
    fresh_model,
    plan_folds,
    run_fits,
)
from sid4ds.estimators.detection import THRESHOLDS, detection_counts, detection_scores
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.nn.augment import check_augment

__all__ = [
    "FINAL_DEFAULTS",
    "SELECTION_KEYS",
    "THRESHOLDS",
    "CrossValidation",
    "check_final_settings",
    "checkpoints",
    "cross_validate",
    "describe_estimate",
    "detection_counts",
    "detection_scores",
    "final_model_seconds",
    "final_segmenter",
    "fit_final_model",
    "fold_assignment",
    "train_final_model",
]

#: The settings of the final model that are not parameters of S, and their defaults:
#: ``n_folds`` (k of the cross-validation; fewer when the labels hold fewer defective source
#: images), ``n_checkpoints`` (evenly spaced training lengths compared), ``fake_normals``
#: (train on the last round's fake normals too), ``start`` (``"scratch"``: a fresh S;
#: ``"in_loop"``: S of the rounds trained further, whose estimate is optimistic since that
#: S has seen the validation images), ``parallel_fits`` (how many of the fits train at
#: once, each in a worker process: ``"auto"``, as many as torch's threads on a CPU for
#: fits in bf16 of 200 steps or more; see
#: :func:`fit_final_model`), ``paste_defects`` (the copy-paste of defects,
#: :func:`sid4ds.nn.augment.paste_defects`, among the final model's augmentations or not,
#: whatever S's own say).
SELECTION_KEYS: tuple[str, ...] = ("n_folds", "n_checkpoints", "fake_normals", "start",
                                   "paste_defects", "parallel_fits")

#: Defaults of the final model's settings: the selection keys and the parameters of S it
#: changes from the S of the rounds (any other parameter of S may be set too). The budget,
#: 1600 steps, is measured on magnetic tile 29%: a fresh S on SID4DS's 30% reached held-out
#: IoU 0.24-0.31 after 800 steps and 0.44-0.58 after 1600 (``docs/method.md``). The
#: precision ``"auto"`` trains in bf16 where that is faster (half the time on a CPU with
#: AMX, at the same held-out IoU within the seeds' spread) and in fp32 elsewhere. Pasting
#: copies of the labelled defects onto normal images (``paste_defects``) raised the final
#: model's held-out IoU on magnetic tile 29% from 0.555 to 0.618 (three seeds, and on every
#: other labelled set tried) and S's on magnetic tile 5% from 0.19 to 0.25
#: (``docs/method.md``).
FINAL_DEFAULTS: dict[str, Any] = {
    "n_folds": 3, "n_checkpoints": 5, "fake_normals": True, "start": "scratch",
    "paste_defects": True, "parallel_fits": "auto", "max_steps": 1600, "precision": "auto",
}

# Parameters of S the final model always sets: the budget is counted in steps (so that the
# folds' checkpoints are the final fit's), checkpoints replace best_window, and the fit
# starts afresh (or from the in-loop S, by ``init``).
_FIXED = {"max_epochs": None, "best_window": 0, "warm_start": False}
_START_RULES = ("scratch", "in_loop")


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
    for key in ("fake_normals", "paste_defects"):
        if not isinstance(merged[key], bool):
            raise TypeError(f"{key} must be True or False; got {merged[key]!r}")
    check_choice(merged["start"], "start", _START_RULES)
    check_parallel_fits(merged["parallel_fits"])
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
        Unfitted, counted in steps, ``best_window=0``, ``warm_start=False``; with
        ``"paste"`` first among its augmentations when ``paste_defects`` is True, without
        it when False (S's others, or those the settings set, kept).

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.estimators.final_model import final_segmenter
    >>> in_loop = SegmentationLearner(lr=1e-3, max_steps=300, augment=("flip",))
    >>> final = final_segmenter(in_loop.get_params(), {"max_steps": 1500})
    >>> final.lr, final.max_steps, final.augment
    (0.001, 1500, ('paste', 'flip'))
    >>> final_segmenter(SegmentationLearner().get_params(), {"paste_defects": False}).augment
    ('brightness_contrast', 'flip')
    """
    checked = check_final_settings(settings)
    params = {key: value for key, value in dict(segmenter_params).items()
              if key != "encoder_init"}
    params.update({key: value for key, value in checked.items() if key not in SELECTION_KEYS})
    params.update(_FIXED)
    others = tuple(name for name in check_augment(params.get("augment", True))
                   if name != "paste")
    params["augment"] = ("paste", *others) if checked["paste_defects"] else others
    return SegmentationLearner(**{key: tuple(value) if isinstance(value, list) else value
                                  for key, value in params.items()})


def final_model_seconds(segmenter: SegmentationLearner, n_images: int,
                        image_shape: tuple[int, int, int],
                        settings: Mapping[str, Any] | None = None) -> float:
    """How long :func:`train_final_model` would take: the cross-validation's ``n_folds``
    fits and the final fit, each timed by
    :meth:`~sid4ds.estimators.base.TorchEstimator.estimate_seconds` of the final model's
    configuration (its budget and precision) on this device, with a worker's threads when
    they run side by side (``parallel_fits``; then in rounds of as many fits as workers).

    Parameters
    ----------
    segmenter : SegmentationLearner
        The S of the rounds (its parameters are the recipe).
    n_images : int
        Training images (labelled images and fake normals).
    image_shape : (int, int, int)
        (n_channels, height, width).
    settings : mapping, optional
        The final model's settings (:func:`check_final_settings`).

    Returns
    -------
    seconds : float
        For fits one after another, an upper bound when the cross-validation chooses an
        earlier checkpoint (the final fit then stops there); side by side, the final fit
        trains the whole budget whatever the choice.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.estimators.final_model import final_model_seconds
    >>> tiny = SegmentationLearner(base_channels=4, depth=2)
    >>> final_model_seconds(tiny, 20, (1, 16, 16), {"max_steps": 10, "n_folds": 2}) > 0
    True
    """
    checked = check_final_settings(settings)
    config = final_segmenter(segmenter.get_params(deep=False), checked)
    n_fits = checked["n_folds"] + 1
    workers, threads = fit_workers(checked["parallel_fits"], n_fits,
                                   resolve_device(config.device), int(config.max_steps),
                                   config.precision)
    if workers <= 1:
        return config.estimate_seconds(n_images, image_shape, train=True) * n_fits
    with torch_threads(threads):  # a fit as one worker runs it
        per_fit = config.estimate_seconds(n_images, image_shape, train=True)
    return per_fit * math.ceil(n_fits / workers)


# ---------------------------------------------------------------------- training
def _fit_whole_budget(model: SegmentationLearner, images: np.ndarray, masks: np.ndarray,
                      steps: Sequence[int]) -> tuple[SegmentationLearner, dict[int, Any]]:
    """Train ``model`` for its whole budget, keeping its state at each of the earlier
    ``steps``: what a fit stopped there leaves (a function of this module: a task a worker
    can unpickle)."""
    earlier = set(int(step) for step in steps[:-1])
    states: dict[int, Any] = {}

    def keep(done: int) -> bool:
        if done in earlier:
            states[done] = model.get_state()
        return False

    return model.fit(images, masks, on_step=keep), states


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
    estimate_weight: Any = None,
    init: SegmentationLearner | None = None,
    parallel_fits: Any = "auto",
    random_state: Any = None,
    say: Callable[[str], None] | None = None,
) -> tuple[SegmentationLearner, CrossValidation]:
    """Cross-validate, then train the final model on every image up to the chosen step.

    Parameters
    ----------
    segmenter, X, y, groups, train_only, n_folds, n_checkpoints, thresholds
        As in :func:`cross_validate`.
    defect_ratio, estimate_weight, init, random_state, say
        As in :func:`cross_validate`. The final fit trains on all of ``X`` (train-only
        images included) with the budget ``segmenter.max_steps`` and stops at the chosen
        checkpoint, as the folds' models were scored.
    parallel_fits : "auto" or int >= 1, default="auto"
        How many of the fits (the folds' and the final one) train at once, each in a worker
        process with its share of torch's threads (:func:`sid4ds._core.parallel.fit_workers`;
        ``"auto"``: as many as torch's threads on a CPU for fits in bf16 of 200 steps or
        more, else one at a time, as on a GPU; 1: in turn in this process, the final fit after
        the cross-validation). Side by side, the final fit trains for the whole budget
        beside the folds and keeps its state at every checkpoint
        (:meth:`~sid4ds.estimators.base.TorchEstimator.get_state`): the model is its state
        at the chosen one, what a fit stopped there leaves.

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
    ...                             parallel_fits=1, random_state=0)
    >>> model.threshold == cv.threshold, sum(e["steps"] for e in model.history_) == cv.n_steps
    (True, True)
    """
    plan = plan_folds(segmenter, X, y, groups=groups, train_only=train_only, n_folds=n_folds,
                      n_checkpoints=n_checkpoints, thresholds=thresholds,
                      defect_ratio=defect_ratio, estimate_weight=estimate_weight,
                      random_state=random_state)
    speak = say or (lambda message: None)
    workers, threads = fit_workers(parallel_fits, plan.n_folds + 1,
                                   resolve_device(segmenter.device), int(segmenter.max_steps),
                                   segmenter.precision)
    tasks = plan.fold_tasks(segmenter, init, quiet=workers > 1)
    messages = plan.fold_messages()
    started = time.perf_counter()
    whole_budget = None
    if workers > 1:  # the final fit for the whole budget, beside the folds
        final = fresh_model(segmenter, init, plan.seed).set_params(verbose=0)
        tasks.append(partial(_fit_whole_budget, final, plan.images, plan.masks,
                             plan.steps.tolist()))
        messages.append(f"the final model on {len(plan.images)} images, for the whole "
                        f"budget of {int(plan.steps[-1])} steps, kept at every checkpoint")
        *counts, whole_budget = run_fits(tasks, messages, workers, threads, say)
    else:
        counts = run_fits(tasks, messages, workers, threads, say)
    cv = plan.result(counts, time.perf_counter() - started)
    if whole_budget is not None:
        model, states = whole_budget
        if cv.n_steps != int(plan.steps[-1]):
            model.set_state(states[cv.n_steps])
        model.set_params(verbose=segmenter.verbose)
    else:
        speak(f"training the final model on {len(plan.images)} images for {cv.n_steps} "
              f"steps")
        model = fresh_model(segmenter, init, plan.seed)
        model.fit(plan.images, plan.masks, on_step=lambda done: done >= cv.n_steps)
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
    estimate_weight: Any = None,
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
    estimate_weight : array-like of shape (n_samples,), optional
        Each row's weight in a second, weighted estimate (see :func:`cross_validate`; the
        fake normals' are not used).
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
    estimate_weight = check_weights(estimate_weight, len(X), "estimate_weight")
    if only is not None and not checked["fake_normals"]:
        keep = ~only
        X, y = np.asarray(X)[keep], np.asarray(y)[keep]
        groups = None if groups is None else np.asarray(groups)[keep]
        estimate_weight = (None if estimate_weight is None
                           else np.asarray(estimate_weight)[keep])
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
                           estimate_weight=estimate_weight, init=init,
                           parallel_fits=checked["parallel_fits"],
                           random_state=random_state, say=say)
