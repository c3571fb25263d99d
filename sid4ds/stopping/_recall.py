"""The recall of a campaign with a lower confidence bound: :class:`RecallBound`.

A part of :mod:`sid4ds.stopping` (its names are imported from there): :func:`recall_bound`
turns the counts of a campaign and its audit into a :class:`RecallBound` (the estimate, the
bound from :func:`defects_left_upper_bound` and a sentence saying what is guaranteed and
assumed), and :func:`audit_recall_bound` is the one rule that counts an audit's labels.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from sid4ds._core.validation import check_audit_size, check_float, check_int
from sid4ds.stopping._bounds import TOLERANCE, check_confidence, defects_left_upper_bound

__all__ = ["RecallBound", "audit_recall_bound", "recall_bound"]


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
        return self.lower >= target - TOLERANCE

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
    confidence = check_confidence(confidence)
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
