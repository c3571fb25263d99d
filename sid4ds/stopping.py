"""When to stop labelling: the share of defective images found, with a guarantee.

The ranked review (the images sid4ds put first, and any other image labelled) proves
nothing about the defective images it missed: a ranking that is worse than believed looks
exactly like a pool that has run out of defects. What does prove it is a small **audit**:
images drawn uniformly at random from the images still unlabelled, and labelled too. This
module turns an audit into a lower confidence bound on the recall (the share of all
defective images that are labelled), in the way of the statistical stopping rules of
technology-assisted review (TAR): Callaghan & Müller-Hansen's hypothesis test on a random
sample of the unscreened documents, an exact form of the elusion test of e-discovery
(references in ``docs/method.md``, "When to stop labelling").

The method, in numbers: when the audit was drawn, ``n_unlabelled`` images were unlabelled and
held some unknown number ``D`` of defective images; the ``audit_size`` images drawn from
them uniformly without replacement hold ``audit_defective`` defective ones, a
hypergeometric draw. The exact one-sided upper ``confidence`` bound on ``D`` is the largest
``D`` under which so few defective audit images still had a chance above
``1 - confidence`` (:func:`defects_left_upper_bound`; the Clopper-Pearson construction, for
sampling without replacement). Every defective image is either labelled already or among
those ``D``, so with ``n_found`` defective images labelled before the audit, the recall is at
least ``found / (n_found + D_upper)``, ``found`` counting every defective image labelled by
then (the audit's own, and those the review labels after the audit).

Why this one: it is exact (no normal approximation, so it holds at 1% prevalence and in
pools of a few hundred images), it holds however good or bad the ranking is (it is a
statement about the unlabelled images, whatever chose them), it samples only where the
uncertainty is (the images the review labelled cost nothing), and its labels can go on to
train the models, since the bound rests on the draw alone. Cormack & Grossman's target
method (review until every defective image of a random "target" sample is found) and
quantile-based certification (Lewis, Yang & Frieder's QBCB, which generalises it) draw
their sample from the whole pool and need a number of defective images in it (59 for 95%
recall at 95% confidence with QBCB): in ``benchmarks/recall_bound_validity.py`` QBCB
costs as many new labels or more, and cannot certify at all when the pool holds fewer
defective images than that.

One audit's statement ("the unlabelled images held at most ``D_upper`` defective ones") is
one event, so the bound stays valid for every later round of ranked review at once: after
an audit, the review can go on and stop at the first round whose bound reaches the target
(:meth:`RecallBound.defects_to_find`); that is the earliest stop the audit allows, and
no overshoot beyond it is needed. What it does not cover: images added to the pool after
the audit, and audits repeated until one passes (each audit may be wrong with chance
``1 - confidence``; the chances add up).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import beta, hypergeom

from sid4ds._core.random import make_rng
from sid4ds._core.validation import check_audit_size, check_float, check_int

__all__ = ["RecallBound", "audit_recall_bound", "audit_size_needed",
           "defects_left_upper_bound", "draw_audit", "rate_upper_bound", "recall_bound"]

# Slack for comparing a recall (a ratio of ints) with a target given as a float.
_TOLERANCE = 1e-12


def _check_confidence(confidence: Any, name: str = "confidence") -> float:
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
    confidence = _check_confidence(confidence)
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


@dataclass(frozen=True)
class RecallBound:
    """The share of defective images labelled (recall), with a one-sided confidence bound.

    Made by :func:`recall_bound`; ``str(bound)`` is :attr:`statement`.

    Attributes
    ----------
    recall : float
        Point estimate of the recall (``nan`` without an audit).
    lower : float
        With probability at least ``confidence``, the true recall is at least this.
    confidence : float
        The confidence of ``lower``.
    n_found : int
        Defective images labelled: before the audit, in it and since.
    defects_left_max : int
        Upper bound (at ``confidence``) on the defective images still unlabelled among the
        images in the pool when the audit was drawn.
    n_found_before : int
        Defective images outside the audit's population (labelled before it was drawn, or
        in a ranked batch listed with it), counting those still waiting for a label.
    defects_upper : int
        Upper bound on the defective images among the images unlabelled when the audit was
        drawn (:func:`defects_left_upper_bound`).
    n_pool : int
        Images in the pool when the audit was drawn (labelled and unlabelled).
    n_unlabelled : int
        Images unlabelled when the audit was drawn: the audit's population.
    audit_size, audit_defective : int
        The audit, and the defective images it held.
    statement : str
        What is guaranteed and what is assumed, in plain words.

    Examples
    --------
    >>> from sid4ds.stopping import recall_bound
    >>> bound = recall_bound(300, 48, 700, audit_size=200, audit_defective=0)
    >>> bound.lower >= 0.8, bound.certifies(0.8), bound.certifies(0.95)
    (True, True, False)
    """

    recall: float
    lower: float
    confidence: float
    n_found: int
    defects_left_max: int
    n_found_before: int
    defects_upper: int
    n_pool: int
    n_unlabelled: int
    audit_size: int
    audit_defective: int
    statement: str

    def __str__(self) -> str:
        return self.statement

    def certifies(self, target_recall: float) -> bool:
        """Whether the bound shows a recall of at least ``target_recall``.

        Parameters
        ----------
        target_recall : float
            In (0, 1].

        Returns
        -------
        certified : bool

        Examples
        --------
        >>> from sid4ds.stopping import recall_bound
        >>> recall_bound(300, 48, 700, audit_size=200, audit_defective=0).certifies(0.8)
        True
        """
        target = check_float(target_recall, "target_recall", low=0.0, high=1.0,
                             include_low=False)
        return self.lower >= target - _TOLERANCE

    def defects_to_find(self, target_recall: float) -> int:
        """Defective images the review must still label for this audit to certify a recall.

        After an audit the ranked review can go on: each defective image it labels raises
        the bound (the audit's bound on what was unlabelled stays), and the first round
        whose bound reaches ``target_recall`` is the earliest stop this audit allows. When
        the number is larger than the defective images the unlabelled images really hold,
        only a new, larger audit can certify the target.

        Parameters
        ----------
        target_recall : float
            In (0, 1].

        Returns
        -------
        n_defects : int
            0 when the target is certified already.

        Examples
        --------
        >>> from sid4ds.stopping import recall_bound
        >>> bound = recall_bound(300, 48, 700, audit_size=200, audit_defective=1)
        >>> bound.certifies(0.75), bound.certifies(0.9), bound.defects_to_find(0.9)
        (True, False, 7)
        """
        target = check_float(target_recall, "target_recall", low=0.0, high=1.0,
                             include_low=False)
        needed = math.ceil(target * (self.n_found_before + self.defects_upper) - 1e-9)
        return max(0, needed - self.n_found)


def _percent(share: float, down: bool = False) -> str:
    """A share in percent to 0.1; ``down``: rounded down (a bound is never overstated)."""
    tenths = math.floor(share * 1000 + 1e-9) if down else round(share * 1000)
    return f"{tenths / 10:g}%"


def recall_bound(
    n_labelled: int,
    n_found: int,
    n_unlabelled: int,
    audit_size: int,
    audit_defective: int,
    *,
    labelled_since: int = 0,
    found_since: int = 0,
    n_waiting: int = 0,
    audit_missing: int = 0,
    confidence: float = 0.95,
) -> RecallBound:
    """The share of defective images labelled, with a lower bound from a random audit.

    Valid whatever chose the labelled images (a ranking better or worse than random, or
    none), because it rests only on the audit: images drawn uniformly at random, without
    replacement, from the images unlabelled at the time, then labelled. The bound is
    ``found / (n_found + n_waiting + D_upper)``, ``D_upper`` the exact upper confidence
    bound of :func:`defects_left_upper_bound` on the defective images that were unlabelled,
    and ``found`` every defective image labelled (``n_found`` + ``audit_defective`` +
    ``found_since``).

    Parameters
    ----------
    n_labelled : int
        Images labelled outside the audit's population: those labelled when the audit was
        drawn (by the ranked review or otherwise), and those of a ranked batch listed with
        the audit and labelled since.
    n_found : int
        Defective images among them (an image with any defect pixel is defective).
    n_unlabelled : int
        Images unlabelled when the audit was drawn, the audit's images included: the
        population it was drawn from. Fake normals (images given an all-zero mask by the
        method, not by a person) count as unlabelled.
    audit_size : int
        Images in the audit (0: no audit, the bound then assumes nothing and is
        ``n_found / (n_found + n_waiting + n_unlabelled)``).
    audit_defective : int
        Defective images among the audit's labelled images.
    labelled_since : int, default=0
        Images labelled after the audit was drawn from its population, the audit's own
        left out.
    found_since : int, default=0
        Defective images among them.
    n_waiting : int, default=0
        Images outside the audit's population without a label yet (a ranked batch listed
        with the audit): each counts as possibly defective.
    audit_missing : int, default=0
        Audit images without a label yet: each counts as a defective audit image (the worst
        case, so the bound stays valid whichever are missing and why).
    confidence : float, default=0.95
        In (0, 1): the bound fails with probability at most ``1 - confidence``.

    Returns
    -------
    bound : RecallBound
        The estimate, the bound and a sentence saying what is guaranteed and assumed.

    Raises
    ------
    ValueError
        For counts that cannot be (more defective images than images, an audit larger than
        the unlabelled images...), naming the counts.

    Examples
    --------
    The ranked review labelled 300 images of 1000 and found 48 defective ones; an audit of
    300 of the 700 others finds 1 more:

    >>> from sid4ds.stopping import recall_bound
    >>> bound = recall_bound(300, 48, 700, audit_size=300, audit_defective=1)
    >>> round(bound.recall, 3), round(bound.lower, 3), bound.defects_left_max
    (0.974, 0.875, 7)
    >>> print(bound.statement)  # doctest: +NORMALIZE_WHITESPACE
    With 95% confidence at least 87.5% of the defective images among the 1000 images in
    the pool when the audit was drawn are labelled (estimate 97.4%: 49 found, at most 7
    still unlabelled). This assumes that the 300 audit images were drawn uniformly at
    random from the 700 images unlabelled at that time and that every label is right; it
    says nothing of images added since, and holds for this one audit (drawing audits until
    one passes weakens it).

    The review goes on; once it has labelled 5 more defective images this audit certifies
    95%:

    >>> bound.defects_to_find(0.95)
    5
    >>> later = recall_bound(300, 48, 700, audit_size=300, audit_defective=1,
    ...                      labelled_since=100, found_since=5)
    >>> later.certifies(0.95), round(later.lower, 3)
    (True, 0.964)
    """
    n_labelled = check_int(n_labelled, "n_labelled", minimum=0)
    n_found = check_int(n_found, "n_found", minimum=0)
    n_unlabelled = check_int(n_unlabelled, "n_unlabelled", minimum=0)
    audit_size = check_audit_size(audit_size, n_unlabelled)
    audit_defective = check_int(audit_defective, "audit_defective", minimum=0)
    labelled_since = check_int(labelled_since, "labelled_since", minimum=0)
    found_since = check_int(found_since, "found_since", minimum=0)
    n_waiting = check_int(n_waiting, "n_waiting", minimum=0)
    audit_missing = check_int(audit_missing, "audit_missing", minimum=0)
    confidence = _check_confidence(confidence)
    for part, part_name, whole, whole_name in (
            (n_found, "n_found", n_labelled, "n_labelled"),
            (audit_defective + audit_missing, "audit_defective + audit_missing", audit_size,
             "audit_size"),
            (found_since, "found_since", labelled_since, "labelled_since"),
            (labelled_since, "labelled_since", n_unlabelled - audit_size,
             "the images the audit left unlabelled (n_unlabelled - audit_size)")):
        if part > whole:
            raise ValueError(f"{part_name}={part} is larger than {whole_name}={whole}: a "
                             f"count of images cannot exceed the images it counts from")
    upper = int(defects_left_upper_bound(audit_defective + audit_missing, audit_size,
                                         n_unlabelled, confidence))
    found = n_found + audit_defective + found_since
    known = audit_defective + found_since      # defective images of the population, labelled
    contradicted = upper < known               # the audit was unusually clean
    total_upper = n_found + n_waiting + max(upper, known)
    lower = found / total_upper if total_upper else 1.0
    n_audited = audit_size - audit_missing
    if n_audited:
        estimate_total = n_found + n_waiting * n_found / max(n_labelled, 1) + max(
            known, (n_unlabelled - audit_missing) * audit_defective / n_audited)
        recall = found / estimate_total if estimate_total else 1.0
    else:
        recall = math.nan
    left_max = total_upper - found
    n_pool = n_labelled + n_waiting + n_unlabelled
    estimate = (f"estimate {_percent(recall)}: " if n_audited else "no estimate without an "
                "audit: ")
    statement = (
        f"With {confidence:.0%} confidence at least {_percent(lower, down=True)} of the "
        f"defective images among the {n_pool} images in the pool when the audit was drawn "
        f"are labelled ({estimate}{found} found, at most {left_max} still unlabelled). ")
    if audit_size:
        statement += (
            f"This assumes that the {audit_size} audit images were drawn uniformly at random "
            f"from the {n_unlabelled} images unlabelled at that time and that every label is "
            f"right; it says nothing of images added since, and holds for this one audit "
            f"(drawing audits until one passes weakens it).")
    else:
        statement += ("Without an audit this assumes nothing, and counts every unlabelled "
                      "image as possibly defective.")
    if audit_missing or n_waiting:
        statement += (f" It counts the {audit_missing + n_waiting} images still waiting for a "
                      f"label ({audit_missing} of them in the audit) as defective: label them "
                      f"to raise it.")
    if contradicted:
        statement += (f" The review has since found more defective images ({known}) than the "
                      f"audit allowed for ({upper}): the audit was unusually clean; draw a "
                      f"new one.")
    return RecallBound(recall=recall, lower=lower, confidence=confidence, n_found=found,
                       defects_left_max=left_max, n_found_before=n_found + n_waiting,
                       defects_upper=upper, n_pool=n_pool, n_unlabelled=n_unlabelled,
                       audit_size=audit_size, audit_defective=audit_defective,
                       statement=statement)


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


def audit_recall_bound(labels: Mapping[Hashable, bool], outside: Iterable[Hashable],
                       n_population: int, audit: Iterable[Hashable], *,
                       confidence: float = 0.95) -> RecallBound:
    """:func:`recall_bound` of an audit, counted from the labels as they are now.

    The one counting rule for a session's status and report and for ``run_sid4ds``'s
    records. Images are keys (names or pool rows); what was recorded when the audit was
    drawn is ``outside`` and ``n_population`` and ``audit``, and everything else is read
    from ``labels``, so a mask replaced since counts as it is now.

    Parameters
    ----------
    labels : mapping of image to bool
        Every image with a human label now, to whether it is defective; only images that
        were in the pool when the audit was drawn (leave out images added since).
    outside : iterable of images
        The images outside the audit's population: labelled when it was drawn, or in the
        ranked batch listed with it.
    n_population : int
        Images the audit was drawn from (those without a label then, less ``outside``).
    audit : iterable of images
        The audit's images.
    confidence : float, default=0.95
        In (0, 1).

    Returns
    -------
    bound : RecallBound
        Audit images and ``outside`` images without a label yet count as defective.

    Examples
    --------
    >>> from sid4ds.stopping import audit_recall_bound
    >>> labels = {f"ranked{i}": i < 48 for i in range(300)}
    >>> labels.update({f"audit{i}": i == 0 for i in range(300)})
    >>> bound = audit_recall_bound(labels, [f"ranked{i}" for i in range(300)], 700,
    ...                            [f"audit{i}" for i in range(300)])
    >>> round(bound.lower, 3)
    0.875
    """
    outside, audit = set(outside), set(audit)
    if outside & audit:
        raise ValueError(f"{len(outside & audit)} images are both outside the audit's "
                         f"population and in the audit (e.g. {next(iter(outside & audit))!r})"
                         f": an audit is drawn from the other images")
    labelled_outside = [labels[key] for key in outside if key in labels]
    labelled_audit = [labels[key] for key in audit if key in labels]
    since = [defective for key, defective in labels.items()
             if key not in outside and key not in audit]
    return recall_bound(
        len(labelled_outside), int(sum(labelled_outside)), n_population, len(audit),
        int(sum(labelled_audit)), labelled_since=len(since), found_since=int(sum(since)),
        n_waiting=len(outside) - len(labelled_outside),
        audit_missing=len(audit) - len(labelled_audit), confidence=confidence)


def _certified_share(n_found: int, n_unlabelled: int, audit_size: int, defects_left: int,
                     target: float, confidence: float) -> float:
    """Chance that an audit of ``audit_size`` certifies ``target`` when the ``n_unlabelled``
    images hold ``defects_left`` defective ones (the audit's finds counted as found)."""
    counts = np.arange(min(defects_left, audit_size) + 1)
    upper = defects_left_upper_bound(counts, audit_size, n_unlabelled, confidence)
    total = n_found + np.maximum(upper, counts)
    found = n_found + counts
    certified = np.where(total > 0, found >= target * total - _TOLERANCE, True)
    chances = hypergeom.pmf(counts, n_unlabelled, defects_left, audit_size)
    return float(chances[certified].sum())


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
    from scipy.stats import beta

    if found >= n:
        return 1.0
    return float(beta.ppf(confidence, found + 1, n - found))


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
    confidence = _check_confidence(confidence)
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
                                confidence) >= power - _TOLERANCE

    low, high = 0, n_unlabelled              # enough(n_unlabelled) always holds
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return 0 if enough(0) else high
