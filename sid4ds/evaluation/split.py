"""The benchmark's held-out split: a test set drawn by source group, stratified by
defective/normal, that no strategy ever labels (:func:`split_held_out`), and the pool and
test set of one seed (:func:`pool_and_test`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_float, check_groups

__all__ = ["pool_and_test", "split_held_out"]


def split_held_out(
    is_defective: Any, test_share: float, random_state: Any = None, groups: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split the data into a pool and a held-out test set, stratified by defective/normal.

    ``round(test_share · n)`` source groups of each class (defective: a group with a
    defective image; normal) go to the test set, drawn at random; the rest is the pool. A
    group (the images cut from one source image, say) is never split between the two, so
    no test image has a sibling in the pool. Without ``groups`` every image is its own
    group, and the sizes depend on the counts only.

    Parameters
    ----------
    is_defective : array-like of shape (n_samples,), bool
        Which images have a defect.
    test_share : float in [0, 1)
        Share held out; 0 keeps every image in the pool.
    random_state : int, numpy Generator or None, default=None
        Seeds the draw.
    groups : array-like of shape (n_samples,), optional
        The source group of each image.

    Returns
    -------
    pool : ndarray of shape (n_pool,), int64
        Indices of the pool images, ascending.
    test : ndarray of shape (n_samples - n_pool,), int64
        Indices of the test images, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.evaluation import split_held_out
    >>> is_defective = np.array([True] * 10 + [False] * 90)
    >>> pool, test = split_held_out(is_defective, 0.2, random_state=0)
    >>> len(pool), len(test), int(is_defective[test].sum())
    (80, 20, 2)
    """
    labels = np.asarray(is_defective, dtype=bool)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(
            f"is_defective must have shape (n_samples,) with n_samples >= 1; got shape "
            f"{labels.shape}"
        )
    test_share = check_float(test_share, "test_share", low=0.0, high=1.0, include_high=False)
    sources = check_groups(groups, len(labels))
    group_of = (np.arange(len(labels)) if sources is None
                else np.unique(sources, return_inverse=True)[1].ravel())
    n_groups = int(group_of.max()) + 1
    group_defective = np.zeros(n_groups, dtype=bool)
    np.logical_or.at(group_defective, group_of, labels)
    rng = make_rng(random_state)
    test_groups = []
    for value in (True, False):
        members = np.flatnonzero(group_defective == value)
        n_test = int(round(test_share * len(members)))
        test_groups.append(rng.permutation(members)[:n_test])
    test = np.flatnonzero(np.isin(group_of, np.concatenate(test_groups))).astype(np.int64)
    pool = np.setdiff1d(np.arange(len(labels)), test).astype(np.int64)
    if len(pool) == 0:
        raise ValueError(
            f"test_share={test_share} leaves no image in the pool; pass a smaller test_share"
        )
    return pool, test


def pool_and_test(
    is_defective: Any, test_share: float, random_state: Any = None, groups: Any = None,
    test_only: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's pool and test set for one seed: :func:`split_held_out` of the images
    that may enter the pool, plus the ``test_only`` images in the test set.

    Parameters
    ----------
    is_defective : array-like of shape (n_samples,), bool
        Which images have a defect.
    test_share : float in [0, 1)
        Share of the eligible images held out.
    random_state : int, numpy Generator or None, default=None
        Seeds the draw.
    groups : array-like of shape (n_samples,), optional
        The source group of each image.
    test_only : array-like of shape (n_samples,), bool, optional
        Images that are never in the pool but always in the test set.

    Returns
    -------
    pool : ndarray of shape (n_pool,), int64
        Indices of the pool images, ascending.
    test : ndarray of shape (n_samples - n_pool,), int64
        Indices of the test images (the test-only ones included), ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.evaluation import pool_and_test
    >>> is_defective = np.array([True] * 12 + [False] * 90)
    >>> test_only = np.arange(102) < 2
    >>> pool, test = pool_and_test(is_defective, 0.2, random_state=0, test_only=test_only)
    >>> len(pool), len(test), bool(np.isin([0, 1], test).all())
    (80, 22, True)
    """
    labels = np.asarray(is_defective, dtype=bool)
    extra = (np.zeros(len(labels), dtype=bool) if test_only is None
             else np.asarray(test_only, dtype=bool))
    if extra.shape != labels.shape:
        raise ValueError(f"test_only has shape {extra.shape}; expected one flag per image, "
                         f"({len(labels)},)")
    eligible = np.flatnonzero(~extra)
    pool, test = split_held_out(labels[eligible], test_share, random_state=random_state,
                                groups=None if groups is None
                                else np.asarray(groups)[eligible])
    return (eligible[pool],
            np.sort(np.concatenate([eligible[test], np.flatnonzero(extra)])).astype(np.int64))
