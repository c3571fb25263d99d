"""Scores remembered per image: by what computed them and by the image's content.

A score of SID4DS depends on the models that computed it and on the image, nothing else:
E_msmr on M, E_sdr on S, G and the region rule. :func:`model_fingerprint` digests what a
fitted model computes (weights, fitted statistics, every setting that changes an output),
and a :class:`ScoreCache` keeps scores by ``(score, fingerprint)`` and by the image's
content key (:func:`sid4ds.ranking.selection.content_keys`). So a model that has not changed never
scores an image twice, wherever the image sits in the pool and whichever pool it is in
(a pool that grows, the shrinking pool a modAL user passes each query), and a changed
model or setting never reuses a score.

The round engine (:class:`sid4ds.engine.rounds.SID4DSRounds`) asks its cache for every score it
needs before it computes any: :class:`MemoryScoreCache` (a dict, the default) or the
labelling session's store on disk (``sid4ds.session.store``), which implements the same
two methods.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["MemoryScoreCache", "ScoreCache", "ScoreTable", "lookup_scores", "model_fingerprint",
           "models_fingerprint", "store_scores"]

#: Parameters that never change what a fitted estimator computes.
_NOT_SCORING = frozenset({"verbose", "n_jobs", "warm_start", "device", "inference_batch_size"})


def model_fingerprint(estimator: Any) -> str:
    """A hex digest of what a fitted estimator computes: weights, fitted statistics, settings.

    Equal digests mean equal scores for equal images: the network's weights, the fitted
    attributes (e.g. M's pixel mean and standard deviation) and every parameter that can
    change an output (e.g. ``n_blocks``, ``error_region``; not ``verbose``, ``n_jobs``,
    ``warm_start``, ``device`` or ``inference_batch_size``) go into it.

    Parameters
    ----------
    estimator : fitted sid4ds estimator
        Anything with :meth:`~sid4ds.estimators.base.TorchEstimator.get_state`.

    Returns
    -------
    fingerprint : str
        A hex digest.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.ranking.score_cache import model_fingerprint
    >>> X, _ = make_defect_images(n_samples=8, image_size=16, random_state=0)
    >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=1, random_state=0).fit(X)
    >>> before = model_fingerprint(M)
    >>> before == model_fingerprint(M.set_params(verbose=1))
    True
    >>> before == model_fingerprint(M.set_params(error_region="image"))
    False
    """
    state = estimator.get_state()
    digest = hashlib.sha256()
    settings = {key: value for key, value in state["params"].items() if key not in _NOT_SCORING}
    digest.update(repr(sorted(settings.items())).encode())
    for group in ("fitted", "module"):
        for name, value in sorted(state[group].items()):
            digest.update(name.encode())
            if hasattr(value, "detach"):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()


def models_fingerprint(*models: Any, settings: Any = ()) -> str | None:
    """One digest of several fitted models and the settings of a score that uses them.

    Parameters
    ----------
    *models : fitted sid4ds estimators
        E.g. S and G for E_sdr.
    settings : object, default=()
        Anything else that changes the score (its ``repr`` is digested), e.g. the region
        rule of E_sdr.

    Returns
    -------
    fingerprint : str or None
        None when a model cannot be fingerprinted (it has no ``get_state``, e.g. a
        stand-in segmenter): its scores are then never cached.
    """
    digest = hashlib.sha256(repr(settings).encode())
    for model in models:
        if not hasattr(model, "get_state"):
            return None
        digest.update(model_fingerprint(model).encode())
    return digest.hexdigest()


@runtime_checkable
class ScoreCache(Protocol):
    """Where the round engine keeps scores, by model fingerprint and image content key."""

    def lookup(self, score: str, fingerprint: str, keys: np.ndarray) -> np.ndarray:
        """The kept scores of the images with content ``keys``; NaN where none is kept.

        Parameters
        ----------
        score : str
            The score's name, e.g. ``"E_msmr"``.
        fingerprint : str
            What computed it (:func:`model_fingerprint`, :func:`models_fingerprint`).
        keys : ndarray of shape (n_images,), uint64
            The images' content keys.

        Returns
        -------
        scores : ndarray of shape (n_images,), float64
        """
        ...  # pragma: no cover - protocol

    def store(self, score: str, fingerprint: str, keys: np.ndarray,
              values: np.ndarray) -> None:
        """Keep ``values`` (shape (n_images,)) for the images with content ``keys``."""
        ...  # pragma: no cover - protocol


def lookup_scores(cache: ScoreCache, fingerprint: str | None, scores: tuple[str, ...],
                  keys: np.ndarray) -> np.ndarray:
    """Several scores of the images with content ``keys``, as kept in ``cache``.

    Parameters
    ----------
    cache : ScoreCache
    fingerprint : str or None
        What computed them; None (no fingerprint: nothing can be reused) gives all NaN.
    scores : tuple of str
        The scores' names, one column each.
    keys : ndarray of shape (n_images,), uint64

    Returns
    -------
    values : ndarray of shape (n_images, len(scores)), float64
        NaN where a score is not kept.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.score_cache import MemoryScoreCache, lookup_scores, store_scores
    >>> cache, keys = MemoryScoreCache(), np.array([5, 7], dtype=np.uint64)
    >>> store_scores(cache, "M1", ("E_msmr",), keys[:1], np.array([[0.5]]))
    >>> lookup_scores(cache, "M1", ("E_msmr",), keys).ravel().tolist()
    [0.5, nan]
    """
    values = np.full((len(keys), len(scores)), np.nan)
    if fingerprint is not None:
        for column, score in enumerate(scores):
            values[:, column] = cache.lookup(score, fingerprint, keys)
    return values


def store_scores(cache: ScoreCache, fingerprint: str | None, scores: tuple[str, ...],
                 keys: np.ndarray, values: np.ndarray) -> None:
    """Keep several scores of the images with content ``keys`` in ``cache``.

    Parameters
    ----------
    cache : ScoreCache
    fingerprint : str or None
        What computed them; None keeps nothing.
    scores : tuple of str
        The scores' names, one per column of ``values``.
    keys : ndarray of shape (n_images,), uint64
    values : ndarray of shape (n_images, len(scores))

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.score_cache import MemoryScoreCache, lookup_scores, store_scores
    >>> cache, keys = MemoryScoreCache(), np.array([5, 7], dtype=np.uint64)
    >>> store_scores(cache, "M1", ("E_msmr", "drift_error"), keys, np.array([[1, 2], [3, 4]]))
    >>> lookup_scores(cache, "M1", ("drift_error",), keys).ravel().tolist()
    [2.0, 4.0]
    """
    if fingerprint is not None and len(keys):
        for column, score in enumerate(scores):
            cache.store(score, fingerprint, keys, values[:, column])


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
    >>> from sid4ds.ranking.score_cache import ScoreTable
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
    """A :class:`ScoreCache` in memory: one :class:`ScoreTable` per ``(score, fingerprint)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.score_cache import MemoryScoreCache
    >>> cache = MemoryScoreCache()
    >>> cache.store("E_msmr", "abc", np.array([7, 9], np.uint64), np.array([0.5, 0.25]))
    >>> cache.lookup("E_msmr", "abc", np.array([9, 8], np.uint64)).tolist()
    [0.25, nan]
    >>> cache.lookup("E_msmr", "another model", np.array([9], np.uint64)).tolist()
    [nan]
    """

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], ScoreTable] = {}

    def lookup(self, score: str, fingerprint: str, keys: np.ndarray) -> np.ndarray:
        table = self.tables.get((score, fingerprint))
        if table is None:
            return np.full(np.shape(keys), np.nan)
        return table.lookup(keys)

    def store(self, score: str, fingerprint: str, keys: np.ndarray,
              values: np.ndarray) -> None:
        key = (score, fingerprint)
        self.tables[key] = self.tables.get(key, ScoreTable()).merged(keys, values)
