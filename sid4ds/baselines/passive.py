"""Passive learning: random sampling, the lower bound every active strategy must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from sid4ds._core.random import borrow_seed, make_rng
from sid4ds._core.validation import check_n_instances
from sid4ds.datasets.pool import as_pool
from sid4ds.ranking.selection import forget_pool_scores

__all__ = ["random_sampling"]


def random_sampling(
    learner: Any, X_pool: Any, n_instances: int = 1, *, random_state: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick pool images uniformly at random, without replacement.

    Each pool image draws a uniform priority in [0, 1); the ``n_instances`` highest are
    returned. No network is used, so it works before anything is labelled. It leaves no
    ``learner.sid4ds_state.pool_scores`` (the priorities say nothing about the images), so
    :class:`~sid4ds.DefectActiveLearner` picks no fake normals with ``n_normal="auto"``.

    Parameters
    ----------
    learner : modAL ActiveLearner (or any object that accepts attributes)
        Only its estimator's int ``random_state`` is read, when ``random_state`` is None.
    X_pool : array-like of shape (n_pool, n_channels, height, width) or (n_pool, height, width)
        Unlabelled images; or a memmap, image paths, a torch Dataset or an ImagePool.
    n_instances : int, default=1
        K; more than the pool returns the whole pool; < 1 is an error.
    random_state : int, RandomState, Generator or None, default=None
        Seed of the draw. None: the learner's estimator's int ``random_state`` if it has
        one, else fresh entropy. The global random state is not used.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices, highest priority first.
    scores : ndarray of shape (min(n_instances, n_pool),)
        Their random priorities (descending).

    References
    ----------
    Passive learning: the baseline every active-learning paper compares against (e.g.
    Settles, "Active Learning Literature Survey", 2009).

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.baselines import random_sampling
    >>> class Learner:  # anything that accepts attributes
    ...     pass
    >>> pool = np.random.default_rng(0).random((10, 1, 16, 16))
    >>> first, _ = random_sampling(Learner(), pool, n_instances=3, random_state=0)
    >>> again, _ = random_sampling(Learner(), pool, n_instances=3, random_state=0)
    >>> len(set(first.tolist())), bool((first == again).all())
    (3, True)
    """
    images = as_pool(X_pool, name="X_pool")
    n_selected = check_n_instances(n_instances, len(images))
    rng = make_rng(borrow_seed(learner, random_state))
    priorities = rng.random(len(images))
    order = np.argsort(-priorities, kind="stable")[:n_selected].astype(np.int64)
    forget_pool_scores(learner)
    return order, priorities[order]

