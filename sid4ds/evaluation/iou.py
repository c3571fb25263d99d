"""Part (c) of the benchmark: S trained on what each strategy labelled, scored held out.

:func:`iou_records` trains a fresh segmentation learner on the first 10%, 20%, … of the
pool each strategy labelled, and on the whole pool, and scores it on the held-out images;
:func:`~sid4ds.evaluation.run_benchmark` calls it after each seed, and
:mod:`sid4ds.evaluation.retrain` calls it again on a finished run's ``labeled.csv``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from sid4ds._core.random import seed_if_unset
from sid4ds.engine.rounds import labels_per_round
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.evaluation.records import WHOLE_POOL, labeled_prefix
from sid4ds.metrics import defect_iou, defective_rows, image_detection

__all__ = ["iou_records", "labels_at"]


def iou_records(
    histories: Mapping[str, Sequence[Any]],
    images: np.ndarray,
    truth: np.ndarray,
    pool: np.ndarray,
    test: np.ndarray,
    shares: Sequence[float],
    segmenter: SegmentationLearner,
    *,
    seed: int,
    n_label: int,
    label_share: float,
    on_training: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Part (c): train a fresh S on each labelled prefix, score it on the test images.

    Each record holds the pooled pixel IoU and the image-level view
    (:func:`sid4ds.metrics.image_detection`): the share of held-out defective images in
    which S finds a defect and the share of held-out normal images it flags. The last
    record is S trained on the whole pool (strategy :data:`WHOLE_POOL`). One training set
    trains one S, however many strategies labelled it.

    Parameters
    ----------
    histories : mapping of str to sequence of array-like of int
        Each strategy's pool indices selected in each round, round 0 first.
    images : ndarray of shape (n_samples, n_channels, height, width)
    truth : ndarray of shape (n_samples, height, width)
        True masks of ``images``.
    pool, test : ndarray of int
        Indices into ``images`` of the pool and of the held-out images
        (:func:`pool_and_test`).
    shares : sequence of float
        Labelled shares of the pool to train on; a strategy that labelled fewer images is
        left out at that share.
    segmenter : SegmentationLearner
        Configuration of S (cloned; seeded with ``seed`` when its ``random_state`` is None).
    seed : int
    n_label : int
        Images labelled per round, K.
    label_share : float
        K as a share of the pool (:func:`labels_at`).
    on_training : callable, optional
        Called after each share of each strategy (e.g. to advance a progress bar).

    Returns
    -------
    records : list of dict
        With the keys of :data:`~sid4ds.evaluation.IOU_COLUMNS`.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.evaluation import iou_records, pool_and_test
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.metrics import defective_rows
    >>> X, masks = make_defect_images(n_samples=30, image_size=16, defect_ratio=0.2,
    ...                               random_state=0)
    >>> pool, test = pool_and_test(defective_rows(masks), 0.2, random_state=0)
    >>> records = iou_records({"first six": [[0, 1, 2], [3, 4, 5]]}, X, masks, pool, test,
    ...                       [0.2], SegmentationLearner(base_channels=4, depth=2,
    ...                                                  max_steps=5),
    ...                       seed=0, n_label=3, label_share=0.1)
    >>> [(record["strategy"], record["n_labeled"], record["n_test"]) for record in records]
    [('first six', 6, 6), ('whole pool', 24, 6)]
    """
    on_training = (lambda: None) if on_training is None else on_training
    X_pool, masks_pool = images[pool], truth[pool]
    X_test, masks_test = images[test], truth[test]
    defective_pool = defective_rows(masks_pool)
    n_defective_test = int(defective_rows(masks_test).sum())
    if n_defective_test == 0:
        warnings.warn(
            "the held-out images hold no defective image, so the IoU only says whether S "
            "predicts defects where there are none; hold out more (--test-share)",
            UserWarning, stacklevel=3)
    scored: dict[tuple[int, ...], dict[str, float]] = {}  # a training set gives one S

    def score(indices: np.ndarray) -> dict[str, float]:
        key = tuple(sorted(indices.tolist()))
        if key not in scored:
            model = seed_if_unset(clone(segmenter).set_params(warm_start=False), seed)
            model.fit(X_pool[indices], masks_pool[indices])
            predicted = model.predict(X_test)
            rates = image_detection(masks_test, predicted)
            scored[key] = {"iou": defect_iou(masks_test, predicted),
                           "detected": rates["detected"],
                           "false_alarms": rates["false_alarms"]}
        on_training()
        return scored[key]

    def record(strategy: str, share: float, indices: np.ndarray) -> dict[str, Any]:
        return {"seed": seed, "strategy": strategy, "labeled_share": share,
                "n_labeled": len(indices),
                "n_defective_labeled": int(defective_pool[indices].sum()),
                "n_test": len(test), "n_defective_test": n_defective_test,
                **score(indices)}

    records = []
    for strategy, history in histories.items():
        for share in shares:
            indices = labeled_prefix(history, labels_at(share, len(pool), n_label,
                                                        label_share))
            if indices is None:  # the pool ran out before this share: nothing to train on
                on_training()
                continue
            records.append(record(strategy, share, indices))
    records.append(record(WHOLE_POOL, 1.0, np.arange(len(pool))))
    return records


def labels_at(share: float, n_pool: int, n_label: int, label_share: float) -> int:
    """How many labels make ``share`` of the pool: whole rounds when it is a multiple of
    ``label_share`` (3 rounds of K = round(0.1·805) = 80 give 240, not round(0.3·805)).

    Examples
    --------
    >>> from sid4ds.evaluation.iou import labels_at
    >>> labels_at(0.3, 805, 80, 0.1), labels_at(0.25, 805, 80, 0.1)
    (240, 201)
    """
    rounds = share / label_share
    if abs(rounds - round(rounds)) < 1e-9:
        return int(round(rounds)) * n_label
    return labels_per_round(share, n_pool)

