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

from sid4ds.stopping._audit import audit_size_needed, audit_weights, draw_audit
from sid4ds.stopping._bounds import defects_left_upper_bound, rate_upper_bound
from sid4ds.stopping._recall import RecallBound, audit_recall_bound, recall_bound

__all__ = ["RecallBound", "audit_recall_bound", "audit_size_needed", "audit_weights",
           "defects_left_upper_bound", "draw_audit", "rate_upper_bound", "recall_bound"]
