"""Scores remembered per image: by what computed them and by the image's content.

A score of SID4DS depends on the models that computed it and on the image, nothing else:
E_msmr on M, E_sdr on S, G and the region rule. :func:`model_fingerprint` digests what a
fitted model computes (weights, fitted statistics, every setting that changes an output),
and a :class:`ScoreCache` keeps scores by ``(score, fingerprint)`` and by the image's
content key (:func:`sid4ds.selection.content_keys`). So a model that has not changed never
scores an image twice, wherever the image sits in the pool and whichever pool it is in
(a pool that grows, the shrinking pool a modAL user passes each query), and a changed
model or setting never reuses a score.

The round engine (:class:`sid4ds.rounds.SID4DSRounds`) asks its cache for every score it
needs before it computes any: :class:`MemoryScoreCache` (a dict, the default) or the
labelling session's store on disk (``sid4ds.session.store``), which implements the same
two methods.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["MemoryScoreCache", "ScoreCache", "model_fingerprint", "models_fingerprint"]

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
        Anything with :meth:`~sid4ds._torch.TorchEstimator.get_state`.

    Returns
    -------
    fingerprint : str
        A hex digest.

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.score_cache import model_fingerprint
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


class MemoryScoreCache:
    """A :class:`ScoreCache` in memory: a dict per ``(score, fingerprint)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.score_cache import MemoryScoreCache
    >>> cache = MemoryScoreCache()
    >>> cache.store("E_msmr", "abc", np.array([7, 9], np.uint64), np.array([0.5, 0.25]))
    >>> cache.lookup("E_msmr", "abc", np.array([9, 8], np.uint64)).tolist()
    [0.25, nan]
    """

    def __init__(self) -> None:
        self._scores: dict[tuple[str, str], dict[int, float]] = {}

    def lookup(self, score: str, fingerprint: str, keys: np.ndarray) -> np.ndarray:
        kept = self._scores.get((score, fingerprint), {})
        return np.array([kept.get(key, np.nan) for key in np.asarray(keys).tolist()],
                        dtype=np.float64)

    def store(self, score: str, fingerprint: str, keys: np.ndarray,
              values: np.ndarray) -> None:
        kept = self._scores.setdefault((score, fingerprint), {})
        kept.update(zip(np.asarray(keys).tolist(), np.asarray(values, np.float64).tolist(),
                        strict=True))
