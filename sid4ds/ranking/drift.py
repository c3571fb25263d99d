"""Drift: does a new batch of images look like the pool, and what the next round does if not.

A production line keeps sending images, and after a tool change, a new lamp or another
camera they look different. The reconstruction learner M was trained on the pool; on images
unlike the pool it reconstructs worse. :func:`check_drift` measures that with M's E_msmr,
and :func:`assess_drift` is the test itself, a pure function of two score vectors:

- **the statistic**: the share of the new batch whose score exceeds the pool's
  ``quantile`` (95% by default) of the same score;
- **what no drift looks like**: if the batch and the pool were drawn alike
  (*exchangeable*: the same line, the same mix of defects, scored by one model), that share
  is about ``1 - quantile`` (5%) whatever the scores' scale and the share of defects; the
  number above the pool's quantile then follows a beta-binomial law (exact for continuous
  scores), from which the test's p-value comes;
- **the threshold**: a batch is flagged when at least ``min_share`` (25%) of it lies above
  the pool's quantile *and* that many would happen by chance with probability below
  ``max_p_value`` (0.001). The first condition asks for a change a labeller would notice
  (a quarter of the batch, five times the usual share), the second for evidence (a batch of
  four images is never flagged on one unusual image).

What it assumes, and where it errs: M scored the pool and the batch with the same weights;
M was *trained* on (most of) the pool, so the pool's own images reconstruct slightly better
than new images of the same kind, which raises the share a little above 5% with no drift
(measured on generated images in ``docs/production_line.md``); a drift that touches fewer
than a quarter of a batch, or one M does not notice (a change M reconstructs as well, such
as a uniform brightness shift its standardisation absorbs), is not flagged. A batch made
mostly of defects would be flagged too: it does not look like the pool either.

The rule the next round applies to a flagged batch lives in the round engine
(:class:`sid4ds.engine.rounds.SID4DSRounds`, ``drift_rule``); :func:`reserve_order` is its
selection part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_float, check_int
from sid4ds.datasets.pool import ImagePool, as_pool
from sid4ds.ranking.score_cache import lookup_scores, model_fingerprint, store_scores
from sid4ds.ranking.scores import msmr_evidence

__all__ = [
    "DRIFT_CACHE_SCORE",
    "DRIFT_MAX_P_VALUE",
    "DRIFT_MIN_SHARE",
    "DRIFT_QUANTILE",
    "DriftReport",
    "assess_drift",
    "check_drift",
    "drift_scores",
    "exceedance_p_value",
    "pool_sample",
    "reserve_order",
]

#: The pool's quantile a new image is compared with.
DRIFT_QUANTILE = 0.95
#: The least share of a batch above that quantile that counts as drift.
DRIFT_MIN_SHARE = 0.25
#: The largest chance of that share without drift that still counts as drift.
DRIFT_MAX_P_VALUE = 1e-3
#: The name of the score :func:`check_drift` compares.
DRIFT_SCORE = "M's mean reconstruction error"


@dataclass(frozen=True)
class DriftReport:
    """Whether a new batch looks like the pool, with the numbers and a message in words.

    Attributes
    ----------
    drifted : bool
        True when the batch does not look like the pool (see :func:`assess_drift`).
    message : str
        What was found, in plain words for the user.
    n_batch, n_pool : int
        Images compared (images without a score left out).
    n_above : int
        Batch images whose score exceeds ``threshold``.
    share_above : float
        ``n_above / n_batch``: the statistic.
    expected_share : float
        The share expected without drift, about ``1 - quantile``.
    p_value : float
        The chance of ``n_above`` or more without drift.
    threshold : float
        The pool's ``quantile`` of the score.
    quantile, min_share, max_p_value : float
        The settings of the test.
    score : str
        What was compared (:data:`DRIFT_SCORE` for :func:`check_drift`).
    batch_scores : ndarray of shape (n_batch_given,)
        The batch's scores as given (NaN where an image had none), to keep.
    n_scored : int or None
        Images M scored for the check (:func:`check_drift`; the others' scores were
        kept from before); None for :func:`assess_drift`.
    """

    drifted: bool
    message: str
    n_batch: int
    n_pool: int
    n_above: int
    share_above: float
    expected_share: float
    p_value: float
    threshold: float
    quantile: float
    min_share: float
    max_p_value: float
    score: str
    batch_scores: np.ndarray
    n_scored: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (``batch_scores`` left out), e.g. for a manifest.

        Examples
        --------
        >>> import numpy as np
        >>> from sid4ds.ranking.drift import assess_drift
        >>> report = assess_drift(np.arange(100.0), np.arange(100.0, 120.0))
        >>> report.as_dict()["drifted"], report.as_dict()["n_above"]
        (True, 20)
        """
        return {
            "drifted": bool(self.drifted), "message": self.message,
            "n_batch": int(self.n_batch), "n_pool": int(self.n_pool),
            "n_above": int(self.n_above), "share_above": float(self.share_above),
            "expected_share": float(self.expected_share), "p_value": float(self.p_value),
            "threshold": float(self.threshold), "quantile": float(self.quantile),
            "min_share": float(self.min_share), "max_p_value": float(self.max_p_value),
            "score": self.score,
            "n_scored": None if self.n_scored is None else int(self.n_scored),
        }


def exceedance_p_value(n_above: int, n_batch: int, n_pool: int, rank: int) -> float:
    """The chance that ``n_above`` or more of a batch exceed the ``rank``-th largest pool score.

    With ``n_pool`` pool scores and ``n_batch`` batch scores all drawn alike (exchangeable,
    continuous), the share of the score distribution above the pool's ``rank``-th largest
    score is Beta(rank, n_pool − rank + 1), so the number of batch scores above it is
    beta-binomial with those parameters; this is its upper tail, exact for any sizes.

    Parameters
    ----------
    n_above : int
        Batch scores above the pool's ``rank``-th largest.
    n_batch, n_pool : int
        Sizes, at least 1.
    rank : int
        In [1, n_pool].

    Returns
    -------
    p_value : float
        In [0, 1].

    Examples
    --------
    >>> from sid4ds.ranking.drift import exceedance_p_value
    >>> exceedance_p_value(0, 20, 100, 5)
    1.0
    >>> round(exceedance_p_value(1, 1, 99, 5), 3)  # one new score above the 5th largest of 99
    0.05
    """
    n_batch = check_int(n_batch, "n_batch", minimum=1)
    n_pool = check_int(n_pool, "n_pool", minimum=1)
    rank = check_int(rank, "rank", minimum=1)
    n_above = check_int(n_above, "n_above", minimum=0)
    if rank > n_pool or n_above > n_batch:
        raise ValueError(f"need 1 <= rank <= n_pool and n_above <= n_batch; got rank={rank}, "
                         f"n_pool={n_pool}, n_above={n_above}, n_batch={n_batch}")
    if n_above == 0:
        return 1.0
    alpha, beta = float(rank), float(n_pool - rank + 1)
    k = np.arange(n_above, n_batch + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_terms = (lgamma(n_batch + 1.0) - lgamma(k + 1.0) - lgamma(n_batch - k + 1.0)
                 + lgamma(k + alpha) + lgamma(n_batch - k + beta)
                 - lgamma(n_batch + alpha + beta)
                 - (math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)))
    peak = float(log_terms.max())
    return float(min(1.0, math.exp(peak) * float(np.exp(log_terms - peak).sum())))


def assess_drift(
    pool_scores: Any,
    batch_scores: Any,
    *,
    quantile: float = DRIFT_QUANTILE,
    min_share: float = DRIFT_MIN_SHARE,
    max_p_value: float = DRIFT_MAX_P_VALUE,
    score: str = "score",
) -> DriftReport:
    """Does a batch look like the pool? The drift test on two score vectors (see the module).

    Parameters
    ----------
    pool_scores : array-like of shape (n_pool,)
        A score of the pool's images, higher meaning less like what the model learned
        (e.g. M's E_msmr); NaN (no score) is left out.
    batch_scores : array-like of shape (n_batch,)
        The same score of the new batch; NaN is left out.
    quantile : float, default=0.95
        The pool's quantile a batch image is compared with, in (0, 1).
    min_share : float, default=0.25
        Least share of the batch above it that counts as drift, in (0, 1].
    max_p_value : float, default=0.001
        Largest chance of that share without drift that counts as drift, in (0, 1).
    score : str, default="score"
        The score's name, for the message.

    Returns
    -------
    report : DriftReport

    Raises
    ------
    ValueError
        When either side has no score, or a setting is out of its range.

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.drift import assess_drift
    >>> rng = np.random.default_rng(0)
    >>> pool = rng.normal(1.0, 0.1, 400)
    >>> assess_drift(pool, rng.normal(1.0, 0.1, 100)).drifted
    False
    >>> report = assess_drift(pool, rng.normal(1.5, 0.1, 100))
    >>> report.drifted, report.n_above
    (True, 100)
    """
    quantile = check_float(quantile, "quantile", low=0.0, high=1.0, include_low=False,
                           include_high=False)
    min_share = check_float(min_share, "min_share", low=0.0, high=1.0, include_low=False)
    max_p_value = check_float(max_p_value, "max_p_value", low=0.0, high=1.0,
                              include_low=False, include_high=False)
    given = np.asarray(batch_scores, dtype=np.float64).ravel()
    pool = _known(pool_scores, "pool_scores")
    batch = _known(given, "batch_scores")
    n_pool, n_batch = len(pool), len(batch)
    rank = max(1, int(math.ceil((1.0 - quantile) * n_pool)))  # the rank-th largest score
    threshold = float(np.sort(pool)[n_pool - rank])
    n_above = int((batch > threshold).sum())
    share = n_above / n_batch
    p_value = exceedance_p_value(n_above, n_batch, n_pool, rank)
    expected = rank / (n_pool + 1.0)
    drifted = share >= min_share and p_value < max_p_value
    found = (f"{n_above} of the {n_batch} new images ({share:.0%}) score above "
             f"{quantile:.0%} of the pool's {n_pool} images ({score} > {threshold:.4g}); in a "
             f"batch like the pool about {expected:.0%} would")
    if drifted:
        message = (f"the new images do not look like the pool: {found} (the chance of "
                   f"{share:.0%} or more by luck is {p_value:.1g}). The line may have "
                   f"changed (texture, lighting, camera): the ranking learned on the pool "
                   f"may miss their defects.")
    else:
        message = f"the new images look like the pool: {found}."
    return DriftReport(drifted=bool(drifted), message=message, n_batch=n_batch, n_pool=n_pool,
                       n_above=n_above, share_above=share, expected_share=expected,
                       p_value=p_value, threshold=threshold, quantile=quantile,
                       min_share=min_share, max_p_value=max_p_value, score=score,
                       batch_scores=given)


def _known(scores: Any, name: str) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    known = values[~np.isnan(values)]
    if len(known) == 0:
        raise ValueError(f"{name} has no score (it is empty or all NaN); the drift check "
                         f"needs at least one scored image on each side")
    return known


def drift_scores(scorer: Any, X: Any) -> np.ndarray:
    """M's mean reconstruction error of each image: the score the drift check compares.

    The mean over the ``n_blocks`` blocks of the error with that block masked
    (:meth:`~sid4ds.ReconstructionScorer.block_errors`): how well M paints the image's
    surface from its surroundings, everywhere. E_msmr, the maximum over the blocks, ranks
    defects (one badly reconstructed block is enough); the mean follows the surface as a
    whole, which is what a drift changes (on generated images it flags a new texture that
    E_msmr misses: ``docs/production_line.md``).

    Parameters
    ----------
    scorer : ReconstructionScorer
        M, fitted (self-supervised) on the pool.
    X : array-like of shape (n_images, n_channels, height, width) or (n_images, height, width)
        Or any pool :func:`~sid4ds.datasets.pool.as_pool` takes (read in chunks).

    Returns
    -------
    scores : ndarray of shape (n_images,), float64

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.ranking.drift import drift_scores
    >>> X, _ = make_defect_images(n_samples=8, image_size=16, random_state=0)
    >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=1, random_state=0).fit(X)
    >>> drift_scores(M, X).shape
    (8,)
    """
    return np.asarray(scorer.block_errors(X), dtype=np.float64).mean(axis=1)


def check_drift(
    scorer: Any,
    pool_images: Any,
    new_images: Any,
    *,
    max_pool: int = 1000,
    quantile: float = DRIFT_QUANTILE,
    min_share: float = DRIFT_MIN_SHARE,
    max_p_value: float = DRIFT_MAX_P_VALUE,
    random_state: Any = 0,
    pool_keys: Any = None,
    new_keys: Any = None,
    score_cache: Any = None,
) -> DriftReport:
    """Do new images look like the pool to M? The drift check to run when a batch arrives.

    Scores both sides with :func:`drift_scores` (M's mean reconstruction error) and tests
    them with :func:`assess_drift`. A pool larger than ``max_pool`` is compared through a
    uniform random sample of ``max_pool`` of its images (seeded by ``random_state``): the
    test needs the pool's 95th percentile, not every image, and a sample keeps the check's
    cost flat as the line grows. Given the images' content keys and a score cache, scores
    M computed before are reused (see ``score_cache``).

    Parameters
    ----------
    scorer : ReconstructionScorer
        M, fitted self-supervised on the pool (before the new images arrived).
    pool_images : array-like of shape (n_pool, n_channels, height, width) or an ImagePool
        The images M was trained on (the pool before the batch; labelled ones included).
    new_images : array-like of shape (n_new, n_channels, height, width) or an ImagePool
        The batch that just arrived.
    max_pool : int, default=1000
        Most pool images scored.
    quantile, min_share, max_p_value : float
        The test's settings (:func:`assess_drift`).
    random_state : int, Generator, RandomState or None, default=0
        Draws the pool sample (:func:`pool_sample`).
    pool_keys, new_keys : array-like of uint64, optional
        The images' content keys (:func:`~sid4ds.ranking.selection.content_keys`): the
        pool sample is then the stable one of :func:`pool_sample`.
    score_cache : ScoreCache, optional
        Where scores are kept by M's fingerprint and content key
        (:mod:`sid4ds.ranking.score_cache`; needs the keys): kept drift scores are reused,
        and those computed are kept, with the E_msmr of the same block errors (the round
        engine's score). A second check with M unchanged scores only the new images.

    Returns
    -------
    report : DriftReport
        ``report.drifted`` and ``report.message`` (plain words) for the user; pass the
        batch's pool rows to the next round when it is drifted
        (:meth:`~sid4ds.SID4DSRounds.run_round`, ``drifted``).

    Examples
    --------
    >>> from sid4ds import ReconstructionScorer
    >>> from sid4ds.datasets import make_defect_images
    >>> from sid4ds.ranking.drift import check_drift
    >>> X, _ = make_defect_images(n_samples=32, image_size=16, random_state=0)
    >>> M = ReconstructionScorer(base_channels=4, depth=2, patch_size=4, n_blocks=4,
    ...                          max_epochs=20, random_state=0).fit(X)
    >>> X_new, _ = make_defect_images(n_samples=16, image_size=16, random_state=10,
    ...                               drift="noise")  # another camera
    >>> report = check_drift(M, X, X_new)
    >>> report.drifted, report.n_above
    (True, 11)
    """
    max_pool = check_int(max_pool, "max_pool", minimum=1)
    pool = as_pool(pool_images, name="pool_images")
    new = as_pool(new_images, name="new_images")
    if (pool_keys is None) != (new_keys is None) or (score_cache is not None
                                                      and pool_keys is None):
        raise ValueError("pass pool_keys and new_keys together (and both with "
                         "score_cache): the content keys of pool_images and new_images")
    if pool_keys is not None:
        pool_keys = _keys_of(pool_keys, len(pool), "pool_keys", "pool_images")
        new_keys = _keys_of(new_keys, len(new), "new_keys", "new_images")
    rows = pool_sample(len(pool), max_pool, random_state, keys=pool_keys)
    if len(rows) < len(pool):
        pool = pool.subset(rows)
    if score_cache is None:
        pool_scores, batch_scores, n_scored = (drift_scores(scorer, pool),
                                               drift_scores(scorer, new), len(pool) + len(new))
    else:
        (pool_scores, batch_scores), n_scored = _cached_drift_scores(
            scorer, [(pool, pool_keys[rows]), (new, new_keys)], score_cache)
    report = assess_drift(pool_scores, batch_scores, quantile=quantile, min_share=min_share,
                          max_p_value=max_p_value, score=DRIFT_SCORE)
    return replace(report, n_scored=n_scored)


def pool_sample(n_pool: int, max_pool: int, random_state: Any = 0,
                keys: Any = None) -> np.ndarray:
    """The rows of the pool the drift check compares: all, or a uniform sample of ``max_pool``.

    Without ``keys``, ``max_pool`` rows drawn at random. With the images' content keys
    (:func:`~sid4ds.ranking.selection.content_keys`, hashes of the pixels), the
    ``max_pool`` images whose keys, mixed with a seeded salt, are the smallest: as uniform
    a sample, and a *stable* one as the pool grows (an image leaves it only for one whose
    key is smaller), so that scores kept from the last check are mostly reused.

    Parameters
    ----------
    n_pool, max_pool : int
        Pool size; most rows kept (at least 1).
    random_state : int, Generator, RandomState or None, default=0
        Draws the sample (or the salt).
    keys : array-like of shape (n_pool,), uint64, optional
        Content keys of the pool's images.

    Returns
    -------
    rows : ndarray of int64, sorted

    Examples
    --------
    >>> import numpy as np
    >>> from sid4ds.ranking.drift import pool_sample
    >>> keys = np.arange(1, 101, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    >>> before = set(pool_sample(90, 10, keys=keys[:90]).tolist())
    >>> after = set(pool_sample(100, 10, keys=keys).tolist())
    >>> len(before & after) >= 8  # the pool grew by 10 of 100: few of the 10 change
    True
    """
    max_pool = check_int(max_pool, "max_pool", minimum=1)
    rng = make_rng(random_state)
    if n_pool <= max_pool:
        return np.arange(n_pool, dtype=np.int64)
    if keys is None:
        return np.sort(rng.choice(n_pool, max_pool, replace=False)).astype(np.int64)
    salt = rng.integers(0, np.iinfo(np.int64).max, dtype=np.int64).astype(np.uint64)
    mixed = np.asarray(keys, dtype=np.uint64) ^ salt
    return np.sort(np.argsort(mixed, kind="stable")[:max_pool]).astype(np.int64)


#: The names under which :func:`check_drift` keeps scores in a score cache: the drift
#: score (the mean block error), and E_msmr (the maximum); the round engine keeps both too
#: (:func:`~sid4ds.ranking.scores.msmr_evidence`), so each is computed once per image and M.
DRIFT_CACHE_SCORE = "drift_error"
MSMR_CACHE_SCORE = "E_msmr"


def _keys_of(keys: Any, n: int, name: str, of: str) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64)
    if keys.shape != (n,):
        raise ValueError(f"{name} must hold one content key per image of {of} ({n}); got "
                         f"shape {keys.shape}")
    return keys


def _cached_drift_scores(scorer: Any, parts: list[tuple[ImagePool, np.ndarray]],
                         cache: Any) -> tuple[list[np.ndarray], int]:
    """Drift scores of each (images, keys) part, those kept in ``cache`` for M's
    fingerprint reused; the block errors of the others give their E_msmr too, kept for the
    round engine. Returns the scores of each part and how many images M scored."""
    fingerprint = model_fingerprint(scorer)
    columns = (MSMR_CACHE_SCORE, DRIFT_CACHE_SCORE)  # msmr_evidence's two columns
    scores, new_keys, new_values = [], [], []
    for images, keys in parts:
        drift = lookup_scores(cache, fingerprint, (DRIFT_CACHE_SCORE,), keys)[:, 0]
        missing = np.flatnonzero(np.isnan(drift))
        if len(missing):
            evidence = msmr_evidence(scorer, images.subset(missing))
            drift[missing] = evidence[:, 1]
            new_keys.append(keys[missing])
            new_values.append(evidence)
        scores.append(drift)
    if new_keys:
        store_scores(cache, fingerprint, columns, np.concatenate(new_keys),
                     np.concatenate(new_values))
    return scores, sum(len(part) for part in new_keys)


def reserve_order(order: Any, reserved: Any, n_label: int) -> np.ndarray:
    """A ranking whose first ``n_label`` hold the ``reserved`` positions.

    The selection part of the drift rule: of the K images a round labels, some are
    reserved for the batch the drift check flagged (its best by the cold-start score); the
    rest are the best of the round's ranking as usual. When the top K already hold them the
    ranking is returned unchanged.

    Parameters
    ----------
    order : array-like of int, shape (n,)
        Positions, best first (:attr:`sid4ds.engine.rounds.RoundResult.order`).
    reserved : array-like of int
        Positions that must be among the first K (at most K of them).
    n_label : int
        K.

    Returns
    -------
    order : ndarray of int64, shape (n,)
        The first K (in the given ranking's order), then the others (likewise).

    Examples
    --------
    >>> from sid4ds.ranking.drift import reserve_order
    >>> reserve_order([0, 1, 2, 3, 4], reserved=[4], n_label=2).tolist()
    [0, 4, 1, 2, 3]
    """
    order = np.asarray(order, dtype=np.int64)
    reserved = np.unique(np.asarray(reserved, dtype=np.int64))
    n_label = check_int(n_label, "n_label", minimum=1)
    if len(reserved) > n_label or not np.isin(reserved, order).all():
        raise ValueError(f"reserved must be at most n_label={n_label} positions of order; "
                         f"got {reserved.tolist()}")
    others = order[~np.isin(order, reserved)]
    chosen = np.concatenate([reserved, others[: n_label - len(reserved)]])
    in_top = np.isin(order, chosen)
    return np.concatenate([order[in_top], order[~in_top]])
