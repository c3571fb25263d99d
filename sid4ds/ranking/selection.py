"""How scores become a selection, and where the query strategies keep their state.

One rule turns scores into a selection everywhere in sid4ds (``run_sid4ds``, the labelling
session, the modAL strategies, the benchmark's baselines): :func:`rank_pool` sorts by score,
breaking ties by the keys of :func:`tie_keys` — the image's cold-start E_msmr when it is
known (with the paper's threshold rule, images that S marks nowhere share E_sdr = 0 and
keep the cold-start order, an addition to the paper), then a hash of its pixels
(:func:`content_keys`, so permuting the pool permutes the selection) — and takes the top K
and the bottom V.

What a query strategy keeps between calls lives in one place on the modAL learner, the
attribute ``learner.sid4ds_state`` (a :class:`QueryState`, made by :func:`query_state` on
first use): the SID4DS strategies' round engine, and the scores of the whole pool that
:func:`select_top` records there, where :class:`~sid4ds.DefectActiveLearner` reads them to
pick the fake normals of the other strategies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sid4ds._core.validation import check_int, check_n_instances
from sid4ds.datasets.pool import ImagePool, chunk_size_for

__all__ = [
    "QueryState",
    "content_keys",
    "estimator_of",
    "forget_pool_scores",
    "query_state",
    "rank_pool",
    "record_pool_scores",
    "select_top",
    "tie_keys",
]


# ---------------------------------------------------------------------- pure functions
def content_keys(X: Any) -> np.ndarray:
    """A reproducible key per image, computed from its pixels alone.

    Used to break score ties: the same image gets the same key wherever it sits in the pool,
    so permuting the pool permutes the selection.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...), or an ImagePool
        Images; a pool is read in chunks and hashed as the float32 images the networks see.

    Returns
    -------
    keys : ndarray of shape (n_samples,), uint64

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.selection import content_keys
    >>> images = np.arange(12, dtype=np.float32).reshape(3, 4)
    >>> bool(content_keys(images)[1] == content_keys(images[::-1])[1])
    True
    """
    if isinstance(X, ImagePool):
        return np.concatenate([content_keys(images)
                               for _, images in X.iter_chunks(chunk_size_for(X, 1))])
    array = np.ascontiguousarray(X)
    return np.array(
        [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little")
         for row in array],
        dtype=np.uint64,
    )


def rank_pool(
    scores: Any, n_instances: int, n_normal: int = 0, tie_keys: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n_instances`` and bottom-``n_normal`` of a score vector (Algorithm 1, lines 3–4).

    Parameters
    ----------
    scores : array-like of shape (n_pool,)
        Higher is more informative. NaN is not allowed.
    n_instances : int
        K, how many to select for labelling (capped at the pool size).
    n_normal : int, default=0
        V, how many of the lowest-scored remaining images become fake normals (capped at
        what is left after the top K).
    tie_keys : array-like of shape (n_pool,) or sequence of them, optional
        Sort keys for equal scores, the first deciding first (larger first among the top,
        smaller first among the bottom); e.g. :func:`content_keys`. Without them ties go to
        the lower index among the top and to the higher index among the bottom.

    Returns
    -------
    top : ndarray of shape (min(n_instances, n_pool),), int64
        Pool indices in descending score order.
    bottom : ndarray of shape (min(n_normal, n_pool - len(top)),), int64
        Pool indices in ascending score order; disjoint from ``top``.

    Examples
    --------
    >>> from sid4ds.ranking.selection import rank_pool
    >>> rank_pool([0.1, 0.9, 0.5, 0.2], n_instances=2, n_normal=1)
    (array([1, 2]), array([0]))
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be 1-D; got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN; a strategy must score every pool image")
    n_top = check_n_instances(n_instances, len(values))
    n_normal = check_int(n_normal, "n_normal", minimum=0)
    if tie_keys is None:
        key_list = [-np.arange(len(values), dtype=np.float64)]  # lower index wins ties
    elif isinstance(tie_keys, (list, tuple)):
        key_list = [np.asarray(keys) for keys in tie_keys]
    else:
        key_list = [np.asarray(tie_keys)]
    for keys in key_list:
        if keys.shape != values.shape:
            raise ValueError(
                f"tie_keys has shape {keys.shape} but scores has shape {values.shape}"
            )
    # lexsort: the last key is primary; sort descending by (score, key 1, key 2, ...)
    descending = np.lexsort((*reversed(key_list), values))[::-1]
    top = descending[:n_top].astype(np.int64)
    remaining = descending[n_top:][::-1]  # ascending score
    bottom = remaining[: min(n_normal, len(remaining))].astype(np.int64)
    return top, bottom


def tie_keys(content: np.ndarray, msmr: np.ndarray | None = None) -> list[np.ndarray]:
    """The tie-break keys of a ranking, first deciding first: E_msmr (when known), content.

    Parameters
    ----------
    content : ndarray of shape (n_pool,), uint64
        :func:`content_keys` of the pool images.
    msmr : ndarray of shape (n_pool,), optional
        Their cold-start E_msmr (NaN or -inf where unknown: those go after the known ones
        among the top). ``None`` breaks ties by content alone.

    Returns
    -------
    keys : list of ndarray
        To pass as ``rank_pool(..., tie_keys=keys)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.selection import rank_pool, tie_keys
    >>> keys = tie_keys(np.array([1, 2, 3], dtype=np.uint64), msmr=np.array([0.5, 0.1, 0.9]))
    >>> rank_pool([0.0, 0.0, 0.0], n_instances=2, tie_keys=keys)[0].tolist()
    [2, 0]
    """
    if msmr is None:
        return [np.asarray(content)]
    known = np.nan_to_num(np.asarray(msmr, dtype=np.float64), nan=-np.inf)
    return [known, np.asarray(content)]


@dataclass
class QueryState:
    """What sid4ds's query strategies keep on a modAL learner between queries.

    One instance lives at ``learner.sid4ds_state`` (see :func:`query_state`). Set a field
    to None to make the next query start it afresh (e.g. ``engine = None``: a new M and G,
    no kept scores).

    Attributes
    ----------
    engine : SID4DSRounds or None
        The round engine of the SID4DS strategies (:func:`sid4ds.modal.strategies.learner_engine`):
        M, G and every score they gave.
    n_queries : int
        Queries the engine has run (the next one's round index).
    last_round : RoundResult or None
        The last query's round, when a SID4DS strategy ran it: its stage, every score and
        its fake normals (which :class:`~sid4ds.DefectActiveLearner` keeps).
    pool_scores : ndarray of shape (n_pool,) or None
        The last query's scores of the whole queried pool (higher is more informative),
        or None when its strategy does not rank the pool.
    pool_tie_keys : list of ndarray or None
        Their tie-break keys (None when the round engine picked the fake normals itself).
    pt4al_model : RotationPretextScorer or None
        PT4AL's pretext model.
    pt4al_split : tuple or None
        PT4AL's batches: ``(model, n_batches, bounds, batch by content key)``.
    pt4al_batch : int
        The next PT4AL batch to query.
    learning_loss_head : LossPredictionHead or None
        The loss-prediction head of the last learning-loss query, and
    learning_loss_history : list of float
        its training losses.
    """

    engine: Any = None
    n_queries: int = 0
    last_round: Any = None
    pool_scores: np.ndarray | None = None
    pool_tie_keys: list[np.ndarray] | None = None
    pt4al_model: Any = None
    pt4al_split: tuple[Any, ...] | None = None
    pt4al_batch: int = 0
    learning_loss_head: Any = None
    learning_loss_history: list[float] = field(default_factory=list)


def query_state(learner: Any) -> QueryState:
    """The :class:`QueryState` of ``learner`` (``learner.sid4ds_state``), made on first use.

    Examples
    --------
    >>> from sid4ds.ranking.selection import query_state
    >>> class Learner:
    ...     pass
    >>> learner = Learner()
    >>> query_state(learner) is query_state(learner)
    True
    """
    state = getattr(learner, "sid4ds_state", None)
    if not isinstance(state, QueryState):
        state = QueryState()
        learner.sid4ds_state = state
    return state


def select_top(
    learner: Any, scores: np.ndarray, keys: Any, n_instances: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``n_instances`` of ``scores`` as a strategy returns them; recorded on the learner.

    The one selection helper of the strategies: the whole pool's scores and tie-break keys
    go to ``query_state(learner)`` (for the fake normals of a DefectActiveLearner), the top
    comes from :func:`rank_pool`.

    Parameters
    ----------
    learner : object
        The modAL learner (anything that accepts attributes).
    scores : ndarray of shape (n_pool,)
        Higher is more informative.
    keys : ndarray or list of ndarray of shape (n_pool,)
        Tie-break keys (:func:`tie_keys`).
    n_instances : int
        K.

    Returns
    -------
    indices : ndarray of shape (min(n_instances, n_pool),), int64
    scores : ndarray of shape (min(n_instances, n_pool),)
    """
    keys = record_pool_scores(learner, scores, keys)
    top, _ = rank_pool(scores, n_instances, tie_keys=keys)
    return top, scores[top]


def record_pool_scores(learner: Any, scores: np.ndarray,
                       keys: Any = None) -> list[np.ndarray] | None:
    """Keep the whole pool's scores and tie-break keys in ``query_state(learner)``.

    Returns the keys as a list (what :func:`rank_pool` takes), or None without keys.
    """
    state = query_state(learner)
    state.pool_scores = scores
    state.pool_tie_keys = None if keys is None else keys if isinstance(keys, list) else [keys]
    return state.pool_tie_keys


def estimator_of(learner: Any) -> Any:
    """The estimator of a modAL learner (``learner.estimator``), or ``learner`` itself."""
    return getattr(learner, "estimator", learner)


def forget_pool_scores(learner: Any) -> None:
    """Drop the pool scores and round of an earlier query (before a new one, and for
    strategies that do not rank the pool)."""
    state = query_state(learner)
    state.pool_scores = None
    state.pool_tie_keys = None
    state.last_round = None
