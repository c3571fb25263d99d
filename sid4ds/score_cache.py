"""Scores kept per image: by the models that computed them and the image's content key.

A score (E_msmr of M, E_sdr of S and G) depends on the image and the models alone, so it is
kept per image under two keys: a *model key* (a fingerprint of every model and setting that
changes the score, :func:`sid4ds.rounds.score_model_key`) and the image's *content key*
(:func:`~sid4ds.selection.content_keys`, a hash of its pixels). The round engine asks a
cache for the scores of the unlabelled images, scores only those it lacks and hands those
back. So when a pool grows (``sid4ds add``) and the models stay as they are, only the new
images are scored; where an image sits in the pool does not matter, and a changed model
never reuses a score.

:class:`ScoreCache` is the interface the engine uses; :class:`MemoryScoreCache` keeps the
scores in memory (the engine's default); a labelling session keeps them on disk (its
``scores/`` folder). :class:`ScoreTable` is one model's scores, as both keep them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["MemoryScoreCache", "ScoreCache", "ScoreTable"]


@runtime_checkable
class ScoreCache(Protocol):
    """Where the round engine keeps scores per model key and image content key."""

    def lookup(self, model: str, keys: np.ndarray) -> np.ndarray:
        """The scores ``model`` gave the images with content ``keys``: float64 of shape
        (len(keys),), NaN where none is kept."""

    def update(self, model: str, keys: np.ndarray, scores: np.ndarray) -> None:
        """Keep the ``scores`` that ``model`` gave the images with content ``keys``."""


class ScoreTable:
    """One model's scores, by content key (sorted, one score per key).

    Parameters
    ----------
    keys : ndarray of shape (n,), uint64, optional
        Content keys.
    scores : ndarray of shape (n,), optional
        Their scores.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.score_cache import ScoreTable
    >>> table = ScoreTable().merged(np.array([7, 3], np.uint64), np.array([0.7, 0.3]))
    >>> table.lookup(np.array([3, 5, 7], np.uint64)).tolist()
    [0.3, nan, 0.7]
    """

    def __init__(self, keys: np.ndarray | None = None, scores: np.ndarray | None = None) -> None:
        keys = np.zeros(0, np.uint64) if keys is None else np.asarray(keys, dtype=np.uint64)
        scores = np.zeros(0) if scores is None else np.asarray(scores, dtype=np.float64)
        if keys.shape != scores.shape or keys.ndim != 1:
            raise ValueError(f"keys and scores must be 1-D arrays of one length; got shapes "
                             f"{keys.shape} and {scores.shape}")
        order = np.argsort(keys, kind="stable")
        self.keys, self.scores = keys[order], scores[order]
        if len(self.keys) > 1 and not np.all(np.diff(self.keys) > 0):
            raise ValueError("keys must be unique")

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Scores of ``keys``, NaN where the table has none."""
        keys = np.asarray(keys, dtype=np.uint64)
        out = np.full(keys.shape, np.nan)
        if not len(self.keys) or not keys.size:
            return out
        position = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[position] == keys
        out[found] = self.scores[position[found]]
        return out

    def merged(self, keys: np.ndarray, scores: np.ndarray) -> ScoreTable:
        """A table with ``scores`` for ``keys`` added (they win over scores kept for the
        same keys; among repeated keys the last wins)."""
        keys = np.concatenate([np.asarray(keys, dtype=np.uint64)[::-1], self.keys])
        scores = np.concatenate([np.asarray(scores, dtype=np.float64)[::-1], self.scores])
        unique, first = np.unique(keys, return_index=True)
        return ScoreTable(unique, scores[first])


class MemoryScoreCache:
    """A :class:`ScoreCache` in memory: one :class:`ScoreTable` per model key.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.score_cache import MemoryScoreCache
    >>> cache = MemoryScoreCache()
    >>> cache.update("M", np.array([1, 2], np.uint64), np.array([0.5, 0.25]))
    >>> cache.lookup("M", np.array([2, 9], np.uint64)).tolist()
    [0.25, nan]
    >>> cache.lookup("another model", np.array([2], np.uint64)).tolist()
    [nan]
    """

    def __init__(self) -> None:
        self.tables: dict[str, ScoreTable] = {}

    def lookup(self, model: str, keys: np.ndarray) -> np.ndarray:
        table = self.tables.get(model)
        if table is None:
            return np.full(np.shape(keys), np.nan)
        return table.lookup(keys)

    def update(self, model: str, keys: np.ndarray, scores: np.ndarray) -> None:
        self.tables[model] = self.tables.get(model, ScoreTable()).merged(keys, scores)
