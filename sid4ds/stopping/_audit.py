"""The audit: how large it must be, the one rule that draws it, and the weights it gives.

A part of :mod:`sid4ds.stopping` (its names are imported from there):
:func:`audit_size_needed` plans an audit for the bound of :func:`recall_bound`,
:func:`draw_audit` draws one, uniformly at random without replacement, and
:func:`audit_weights` says how many images of the pool each labelled image stands for by
it (for estimates over the pool, e.g. the final model's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import hypergeom

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_audit_size, check_float, check_int
from sid4ds.stopping._bounds import TOLERANCE, check_confidence, defects_left_upper_bound

__all__ = ["audit_size_needed", "audit_weights", "draw_audit"]


def draw_audit(candidates: Any, audit_size: int, random_state: Any = None) -> np.ndarray:
    """Draw an audit: ``audit_size`` of ``candidates``, uniformly at random, without replacement.

    The one audit rule of sid4ds. The candidates are sorted first, so the draw depends on
    the seed and on which images are candidates, never on their order (a ranking cannot
    leak into it).

    Parameters
    ----------
    candidates : array-like of shape (n_candidates,)
        The audit's population: every image without a human label (pool rows or names),
        less a ranked batch listed with the audit.
    audit_size : int
        Images to draw; at most ``n_candidates``.
    random_state : None, int, sequence of int or numpy Generator, default=None
        The seed (a session passes its own seed and the audit's number, e.g.
        ``[seed, 1, audit_number]``).

    Returns
    -------
    audit : ndarray of shape (audit_size,)
        The drawn candidates, in the order drawn.

    Examples
    --------
    >>> from sid4ds.stopping import draw_audit
    >>> audit = draw_audit(range(100), 5, random_state=0)
    >>> audit.tolist() == draw_audit(list(range(100))[::-1], 5, random_state=0).tolist()
    True
    >>> len(set(audit.tolist()))
    5
    """
    population = np.sort(np.asarray(list(candidates)))
    audit_size = check_audit_size(audit_size, len(population))
    return make_rng(random_state).choice(population, size=audit_size, replace=False)


def audit_weights(rows: Any, census: Any, audit: Any, population: int) -> np.ndarray:
    """How many images of the pool each of ``rows`` stands for, by one audit.

    When the audit was drawn, the pool was two strata: the images labelled then or listed
    with the audit (the ``census``: each stands for itself) and the other ``population``
    images, of which the audit is a uniform random sample (each labelled audit image stands
    for ``population / n_audit_labelled`` of them). Any other row (labelled later by a
    ranking, or added later) stands for none: the audit already speaks for it. Weighted
    sums over the rows estimate sums over the pool without bias, whatever chose the census.

    Parameters
    ----------
    rows : array-like of shape (n_rows,)
        The labelled images to weigh (pool rows or names).
    census : array-like
        The images labelled when the audit was drawn, and the batch listed with it.
    audit : array-like
        The audit's images that are labelled (all of them once they are).
    population : int
        The images the audit was drawn from.

    Returns
    -------
    weights : ndarray of shape (n_rows,), float64
        1 for census rows, ``population / len(audit)`` for audit rows, 0 for the others.

    Examples
    --------
    >>> from sid4ds.stopping import audit_weights
    >>> audit_weights(["a", "b", "c", "d"], census=["a"], audit=["b", "c"], population=10)
    array([1., 5., 5., 0.])
    """
    population = check_int(population, "population", minimum=0)
    audited = set(np.asarray(audit).tolist())
    outside = set(np.asarray(census).tolist())
    each = population / len(audited) if audited else 0.0
    return np.array([1.0 if row in outside else each if row in audited else 0.0
                     for row in np.asarray(rows).tolist()], dtype=np.float64)


def _certified_share(n_found: int, n_unlabelled: int, audit_size: int, defects_left: int,
                     target: float, confidence: float) -> float:
    """Chance that an audit of ``audit_size`` certifies ``target`` when the ``n_unlabelled``
    images hold ``defects_left`` defective ones (the audit's finds counted as found)."""
    counts = np.arange(min(defects_left, audit_size) + 1)
    upper = defects_left_upper_bound(counts, audit_size, n_unlabelled, confidence)
    total = n_found + np.maximum(upper, counts)
    found = n_found + counts
    certified = np.where(total > 0, found >= target * total - TOLERANCE, True)
    chances = hypergeom.pmf(counts, n_unlabelled, defects_left, audit_size)
    return float(chances[certified].sum())


def audit_size_needed(
    n_found: int,
    n_unlabelled: int,
    *,
    target_recall: float = 0.95,
    confidence: float = 0.95,
    defects_left: int = 0,
    power: float = 0.8,
) -> int:
    """How many audit images the bound of :func:`recall_bound` needs to certify a recall.

    With ``defects_left=0`` (the default) the answer assumes nothing: it is the smallest
    audit that can certify ``target_recall`` at all, the one that finds no defective image;
    no smaller audit can, whatever it finds. An audit that finds defective images needs to
    be larger; that cannot be planned without a guess of how many the unlabelled images
    hold, ``defects_left`` (an assumption: for example the defect ratio expected in the
    pool, ``round(ratio * n_pool) - n_found``, or the last round's defect rate times
    ``n_unlabelled``). With it, the answer is the audit size that certifies the target with
    probability at least ``power``.

    Parameters
    ----------
    n_found : int
        Defective images labelled so far.
    n_unlabelled : int
        Images unlabelled now, from which the audit will be drawn.
    target_recall : float, default=0.95
        In (0, 1].
    confidence : float, default=0.95
        In (0, 1).
    defects_left : int, default=0
        Assumed defective images among the ``n_unlabelled``.
    power : float, default=0.8
        In (0, 1): the wanted chance of certifying, used when ``defects_left > 0``.

    Returns
    -------
    audit_size : int
        At most ``n_unlabelled`` (labelling every unlabelled image certifies any recall).
        Found by bisection over the audit size: the chance of certifying grows with it but
        not strictly (the counts are integers), so an audit a little smaller may do too.

    Examples
    --------
    >>> from sid4ds.stopping import audit_size_needed
    >>> audit_size_needed(50, 700, target_recall=0.9)   # the least audit that can do it
    275
    >>> audit_size_needed(50, 700, target_recall=0.9, defects_left=2)
    419
    """
    n_found = check_int(n_found, "n_found", minimum=0)
    n_unlabelled = check_int(n_unlabelled, "n_unlabelled", minimum=0)
    target = check_float(target_recall, "target_recall", low=0.0, high=1.0,
                         include_low=False)
    confidence = check_confidence(confidence)
    defects_left = check_int(defects_left, "defects_left", minimum=0)
    power = check_float(power, "power", low=0.0, high=1.0, include_low=False,
                        include_high=False)
    if defects_left > n_unlabelled:
        raise ValueError(f"defects_left={defects_left} is larger than n_unlabelled="
                         f"{n_unlabelled}: at most every unlabelled image is defective")
    if n_unlabelled == 0:
        return 0

    def enough(size: int) -> bool:
        return _certified_share(n_found, n_unlabelled, size, defects_left, target,
                                confidence) >= power - TOLERANCE

    low, high = 0, n_unlabelled              # enough(n_unlabelled) always holds
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return 0 if enough(0) else high
