"""The exact bounds beneath the stopping rule: defective images left, and a rate.

A part of :mod:`sid4ds.stopping` (its names are imported from there):
:func:`defects_left_upper_bound`, the exact one-sided bound on the defective images among the
unlabelled ones from a random audit (hypergeometric, without replacement), and
:func:`rate_upper_bound`, the Clopper-Pearson bound of a rate (with replacement).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta, hypergeom

from sid4ds._core.validation import check_float

__all__ = ["TOLERANCE", "check_confidence", "defects_left_upper_bound", "rate_upper_bound"]

# Slack for comparing a recall (a ratio of ints) with a target given as a float.
TOLERANCE = 1e-12


def check_confidence(confidence: Any, name: str = "confidence") -> float:
    """``confidence`` checked: a float in (0, 1)."""
    return check_float(confidence, name, low=0.0, high=1.0, include_low=False,
                       include_high=False)


def defects_left_upper_bound(audit_defective: Any, audit_size: Any, n_unlabelled: Any,
                             confidence: float = 0.95) -> np.ndarray:
    """Upper confidence bound on the defective images among the unlabelled ones.

    An audit of ``audit_size`` images drawn uniformly at random without replacement from
    ``n_unlabelled`` images held ``audit_defective`` defective ones. The bound is the
    largest number ``D`` of defective images among the ``n_unlabelled`` (audit included)
    under which a hypergeometric draw shows at most ``audit_defective`` with probability
    above ``1 - confidence``: the exact one-sided (Clopper-Pearson) bound for sampling
    without replacement. Whatever the true number, it exceeds the bound with probability
    at most ``1 - confidence``.

    Parameters
    ----------
    audit_defective : int or array-like of int
        Defective images found in the audit.
    audit_size : int or array-like of int
        Images in the audit (0: no audit, and the bound is ``n_unlabelled``).
    n_unlabelled : int or array-like of int
        Images unlabelled when the audit was drawn, the audit's images included.
    confidence : float, default=0.95
        In (0, 1).

    Returns
    -------
    upper : ndarray of int64
        The bound, of the broadcast shape of the three counts (0-d for scalars; ``int()``
        turns it into a Python int). Between ``audit_defective`` and
        ``n_unlabelled - (audit_size - audit_defective)``.

    Examples
    --------
    >>> from sid4ds.stopping import defects_left_upper_bound
    >>> int(defects_left_upper_bound(0, 300, 1000))  # none in 300 of 1000: at most 8
    8
    >>> defects_left_upper_bound([0, 1, 5], 300, 1000).tolist()
    [8, 13, 31]
    """
    confidence = check_confidence(confidence)
    k, n, total = np.broadcast_arrays(*(np.asarray(value) for value in
                                        (audit_defective, audit_size, n_unlabelled)))
    for value, name in ((k, "audit_defective"), (n, "audit_size"), (total, "n_unlabelled")):
        if not np.issubdtype(value.dtype, np.integer):
            raise TypeError(f"{name} must be an int or an array of ints; got dtype "
                            f"{value.dtype}")
        if np.any(value < 0):
            raise ValueError(f"{name} must be >= 0; got {value.min()}")
    if np.any(n > total) or np.any(k > n):
        raise ValueError("an audit holds at most n_unlabelled images and at most audit_size "
                         "defective ones; got audit_defective > audit_size or audit_size > "
                         "n_unlabelled")
    alpha = 1.0 - confidence
    k, n, total = (value.astype(np.int64) for value in (k, n, total))

    def plausible(defects: np.ndarray) -> np.ndarray:
        # Could ``defects`` defective images among ``total`` show at most ``k`` in ``n``?
        return hypergeom.cdf(k, total, defects, n) > alpha

    low = k.copy()                        # plausible: P(at most k | D = k) = 1
    high = total - (n - k)                # the most defective images the audit allows
    done = plausible(high)
    low = np.where(done, high, low)
    # A narrower start for the bisection: the binomial (with replacement) bound, which is
    # wider than the hypergeometric one; kept only where it is indeed not plausible.
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.nan_to_num(beta.ppf(confidence, k + 1, np.maximum(n - k, 1)), nan=1.0)
    guess = np.clip(np.ceil(share * total).astype(np.int64) + 1, low, high)
    narrower = ~done & (guess < high) & ~plausible(guess)
    high = np.where(narrower, guess, high)
    # Invariant where not done: plausible(low), not plausible(high).
    while True:
        active = ~done & (high - low > 1)
        if not active.any():
            break
        middle = (low + high) // 2
        ok = plausible(np.where(active, middle, low))
        low = np.where(active & ok, middle, low)
        high = np.where(active & ~ok, middle, high)
    return low


def rate_upper_bound(found: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate: ``found`` of ``n`` observed.

    For a sample drawn with replacement (or from a large population); for a random
    audit of a finite pool, :func:`defects_left_upper_bound` is exact and tighter.

    Parameters
    ----------
    found, n : int
        Successes (e.g. defective images) among ``n`` observed; ``n`` ≥ 1.
    confidence : float, default=0.95

    Returns
    -------
    rate : float
        The largest rate that gives ``found`` or fewer with probability ≥ 1 − confidence.

    Examples
    --------
    >>> from sid4ds.stopping import rate_upper_bound
    >>> round(rate_upper_bound(0, 59), 4)  # none in 59: at most 5% at 95% confidence
    0.0495
    """
    if found >= n:
        return 1.0
    return float(beta.ppf(confidence, found + 1, n - found))
