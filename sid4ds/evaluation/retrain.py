"""Train S again on what a finished benchmark run labelled, with other settings.

A run's ``labeled.csv`` holds every image each strategy labelled, in order. With it part (c)
(:func:`~sid4ds.evaluation.iou.iou_records`) can be measured again, e.g. with another
learning rate of S or at another labelled share, without running the selection again:
:func:`retrain_iou` on arrays, :func:`retrain_folder` on a run's output folder
(``benchmarks/retrain_segmenter.py`` is its command line). With S's settings unchanged, on
the machine that made the run, it gives the run's own ``iou.csv`` again.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sid4ds._core.validation import check_float, check_images, check_masks
from sid4ds.engine.rounds import labels_per_round
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.evaluation.data import DATA_ARGUMENTS, load_run_data
from sid4ds.evaluation.iou import iou_records, labels_at
from sid4ds.evaluation.output import read_csvs
from sid4ds.evaluation.protocol import BenchmarkResult, check_protocol, pool_and_test
from sid4ds.evaluation.records import histories_from_labeled
from sid4ds.evaluation.settings import machine_versions, read_settings
from sid4ds.metrics import defective_rows

__all__ = ["DATA_PATHS", "retrain_folder", "retrain_iou"]

#: The arguments of a run that say where its data lies: the only ones a retraining may
#: change (when the data has moved), since any other changes the images or the split.
DATA_PATHS = ("npz", "images", "masks")

#: The arguments of a run, besides those of its data, that fix its pool and held-out images.
_SPLIT_ARGUMENTS = ("label_share", "test_share", "iou_shares")


def retrain_iou(
    labeled: Sequence[Mapping[str, Any]],
    X: Any,
    masks: Any,
    *,
    segmenter: SegmentationLearner | None = None,
    iou_shares: Sequence[float] = (0.1, 0.2, 0.3),
    label_share: float = 0.1,
    test_share: float = 0.2,
    groups: Any = None,
    test_only: Any = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Part (c) again: a fresh S trained on what each strategy of a run labelled.

    For every seed in ``labeled`` the run's pool and held-out images are drawn again
    (:func:`~sid4ds.evaluation.pool_and_test`, the same seed), the labelled images are
    checked against them, and :func:`~sid4ds.evaluation.iou.iou_records` trains S on the
    first ``share`` of the pool each strategy labelled, and on the whole pool.

    Parameters
    ----------
    labeled : sequence of mapping
        The run's labelled records (the rows of its ``labeled.csv``, or
        ``BenchmarkResult.labeled``), one or several seeds and strategies.
    X : array-like of shape (n_samples, n_channels, height, width) or (n_samples, height, width)
        The images the run was given.
    masks : array-like of shape (n_samples, height, width)
        Their true masks.
    segmenter : SegmentationLearner, optional
        Configuration of S (cloned; seeded with each seed when its ``random_state`` is
        None). Default ``SegmentationLearner()``.
    iou_shares : sequence of float, default=(0.1, 0.2, 0.3)
        Labelled shares of the pool to train on; every strategy must have labelled that
        many images.
    label_share, test_share : float
        The run's K as a share of the pool, and its held-out share.
    groups, test_only : array-like of shape (n_samples,), optional
        The run's source groups and test-only images (:func:`~sid4ds.evaluation.load_dataset`).
    progress : bool, default=False
        Show a tqdm progress bar.

    Returns
    -------
    records : list of dict
        With the keys of :data:`~sid4ds.evaluation.IOU_COLUMNS`, seed by seed.

    Raises
    ------
    ValueError
        When a labelled image is not the image of that pool index here (other images, or
        another split, than the run's), or a strategy labelled fewer images than a share
        needs.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds.evaluation import retrain_iou, run_benchmark
    >>> from sid4ds.datasets import make_defect_images
    >>> X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.2,
    ...                               random_state=0)
    >>> tiny = SegmentationLearner(base_channels=4, depth=2, max_steps=5)
    >>> run = run_benchmark(X, masks, strategies=["random"], n_rounds=1, seeds=[0],
    ...                     segmenter=tiny, iou=True, iou_shares=[0.2])
    >>> again = retrain_iou(run.labeled, X, masks, segmenter=tiny, iou_shares=[0.2])
    >>> [record["iou"] for record in again] == [record["iou"] for record in run.iou]
    True
    """
    images = check_images(X, name="X")
    truth = check_masks(masks, name="masks", n_samples=len(images), height=images.shape[2],
                        width=images.shape[3])
    label_share = check_float(label_share, "label_share", low=0.0, high=1.0,
                              include_low=False)
    test_share, shares = check_protocol(0, label_share, test_share, False, iou_shares)
    if not shares:
        raise ValueError("iou_shares is empty; pass at least one share, e.g. [0.3]")
    if not labeled:
        raise ValueError("labeled holds no records; pass the rows of a run's labeled.csv")
    segmenter = SegmentationLearner() if segmenter is None else segmenter
    histories = histories_from_labeled(labeled)
    is_defective = defective_rows(truth)
    seeds = sorted({seed for seed, _ in histories})
    by_seed: dict[int, list[Mapping[str, Any]]] = {seed: [] for seed in seeds}
    for record in labeled:
        by_seed[int(record["seed"])].append(record)

    from tqdm.std import tqdm

    strategies = {seed: [name for key, name in histories if key == seed] for seed in seeds}
    total = sum(len(names) * len(shares) + 1 for names in strategies.values())
    records: list[dict[str, Any]] = []
    with tqdm(total=total, disable=not progress, desc="retrain S", unit="fit") as bar:
        for seed in seeds:
            pool, test = pool_and_test(is_defective, test_share, random_state=seed,
                                       groups=groups, test_only=test_only)
            _check_labeled_in_split(by_seed[seed], pool, is_defective)
            n_label = labels_per_round(label_share, len(pool))
            seed_histories = {name: histories[seed, name] for name in strategies[seed]}
            _check_enough_labels(seed_histories, shares, len(pool), n_label, label_share, seed)
            bar.set_description(f"retrain S, seed {seed}")
            records += iou_records(seed_histories, images, truth, pool, test, shares,
                                   segmenter, seed=seed, n_label=n_label,
                                   label_share=label_share, on_training=lambda: bar.update(1))
    return records


def _check_labeled_in_split(records: Sequence[Mapping[str, Any]], pool: np.ndarray,
                            is_defective: np.ndarray) -> None:
    """Every labelled record names the image its pool index is here, with its defect flag."""
    for record in records:
        pool_index, image_index = int(record["pool_index"]), int(record["image_index"])
        here = int(pool[pool_index]) if 0 <= pool_index < len(pool) else None
        if here != image_index or bool(record["defective"]) != bool(is_defective[image_index]):
            found = ("outside the pool of " + str(len(pool)) if here is None
                     else f"image {here} here")
            raise ValueError(
                f"the labelled images do not match these images and this split: seed "
                f"{record['seed']}, strategy {record['strategy']!r} labelled pool image "
                f"{pool_index}, image {image_index} in the run (defective="
                f"{int(record['defective'])}), but pool image {pool_index} is {found}; pass "
                f"the images, masks, groups, test_only and test_share the run had (its "
                f"settings.json)"
            )


def _check_enough_labels(histories: Mapping[str, Sequence[np.ndarray]], shares: Sequence[float],
                         n_pool: int, n_label: int, label_share: float, seed: int) -> None:
    for share in shares:
        needed = labels_at(share, n_pool, n_label, label_share)
        for strategy, history in histories.items():
            labelled = sum(len(part) for part in history)
            if labelled < needed:
                raise ValueError(
                    f"iou_shares holds {share:g}, {needed} labels of the pool of {n_pool}, but "
                    f"strategy {strategy!r} labelled {labelled} images in seed {seed}; pass "
                    f"shares up to {math.floor(100 * labelled / n_pool) / 100:g}"
                )


def retrain_folder(
    folder: str | Path,
    *,
    segmenter_params: Mapping[str, Any] | None = None,
    iou_shares: Sequence[float] | None = None,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    data_paths: Mapping[str, str] | None = None,
    progress: bool = False,
) -> tuple[BenchmarkResult, dict[str, Any]]:
    """Part (c) again for a run's output folder, with S's settings changed.

    Reads the run's ``settings.json`` (its data, split and S) and ``labeled.csv``, loads its
    images (:func:`~sid4ds.evaluation.load_run_data`), and runs :func:`retrain_iou` with S's
    recorded parameters updated by ``segmenter_params``.

    Parameters
    ----------
    folder : str or path-like
        Output folder of ``python -m sid4ds.evaluation`` (or of a join of its runs) with
        ``settings.json`` and ``labeled.csv``.
    segmenter_params : mapping, optional
        Parameters of :class:`~sid4ds.SegmentationLearner` to change, e.g.
        ``{"lr": 1e-3}``; none gives the run's S.
    iou_shares : sequence of float, optional
        Default: the run's.
    strategies, seeds : sequence, optional
        Only these (default: every strategy and seed in ``labeled.csv``).
    data_paths : mapping, optional
        New locations of the run's data (keys of :data:`DATA_PATHS`), when it has moved.
    progress : bool, default=False

    Returns
    -------
    result : BenchmarkResult
        ``iou`` the new records; ``labeled`` and ``selection`` the run's (what S was trained
        on), for the chosen strategies and seeds.
    settings : dict
        The run's settings with S's new parameters, the shares, strategies and seeds, this
        machine's versions and a ``"retrained"`` entry naming the folder and the changes.
    """
    folder = Path(folder)
    settings = read_settings(folder)
    source = read_csvs([folder])
    if not source.labeled:
        raise ValueError(
            f"{folder} has no labeled.csv (runs before sid4ds wrote it, with benchmark run "
            f"10, lack it); run python -m sid4ds.evaluation again for those seeds"
        )
    arguments = dict(settings.get("arguments", {}))
    moved = dict(data_paths or {})
    unknown = sorted(set(moved) - set(DATA_PATHS))
    if unknown:
        raise ValueError(f"data_paths has {unknown}; expected some of {list(DATA_PATHS)} "
                         f"(any other argument changes the images or the split)")
    arguments.update(moved)
    missing = [name for name in (*DATA_ARGUMENTS, *_SPLIT_ARGUMENTS) if name not in arguments]
    if missing:
        raise ValueError(
            f"{folder}/settings.json records no {missing} among its arguments; pass the "
            f"folder of a run of python -m sid4ds.evaluation"
        )
    recorded = dict(settings.get("models", {}).get("segmenter_S", {}))
    known = SegmentationLearner().get_params()
    foreign = sorted(set(recorded) - set(known))
    if foreign:
        raise ValueError(
            f"{folder}/settings.json records S parameters this sid4ds lacks: {foreign}; "
            f"retrain with the sid4ds version that made the run "
            f"({settings.get('versions', {}).get('sid4ds', 'not recorded')})"
        )
    changes = dict(segmenter_params or {})
    segmenter = SegmentationLearner(**recorded).set_params(**changes)

    labeled = _chosen(source.labeled, strategies, seeds, "labeled.csv", folder)
    selection = _chosen(source.selection, strategies, seeds, "selection.csv", folder)
    shares = list(arguments["iou_shares"] if iou_shares is None else iou_shares)
    data = load_run_data(arguments)
    started = time.perf_counter()
    records = retrain_iou(
        labeled, data.X, data.masks, segmenter=segmenter, iou_shares=shares,
        label_share=arguments["label_share"], test_share=arguments["test_share"],
        groups=data.groups, test_only=data.test_only, progress=progress)
    seconds = round(time.perf_counter() - started, 1)
    chosen_strategies = list(dict.fromkeys(row["strategy"] for row in labeled))
    result = BenchmarkResult(strategies=chosen_strategies, selection=selection,
                             labeled=labeled, iou=records)
    retrained = copy.deepcopy(settings)
    retrained["arguments"] = {**arguments, "iou_shares": sorted(shares),
                              "strategies": chosen_strategies,
                              "seeds": sorted({int(row["seed"]) for row in labeled})}
    retrained.setdefault("models", {})["segmenter_S"] = segmenter.get_params()
    retrained["versions"] = machine_versions()
    retrained["retrained"] = {"from": str(folder), "segmenter_params": changes,
                              "data_paths": moved, "seconds": seconds,
                              "finished": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    return result, retrained


def _chosen(records: list[dict[str, Any]], strategies: Sequence[str] | None,
            seeds: Sequence[int] | None, name: str, folder: Path) -> list[dict[str, Any]]:
    """The records of the chosen strategies and seeds; raise when one is not in them."""
    for wanted, column in ((strategies, "strategy"), (seeds, "seed")):
        if wanted is None:
            continue
        present = {row[column] for row in records}
        missing = [value for value in wanted if value not in present]
        if missing:
            raise ValueError(f"{folder}/{name} has no {column} {missing}; it holds "
                             f"{sorted(present)}")
    return [row for row in records
            if (strategies is None or row["strategy"] in strategies)
            and (seeds is None or row["seed"] in seeds)]
