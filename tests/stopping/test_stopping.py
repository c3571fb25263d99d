"""The recall bound of sid4ds.stopping: exact, valid on simulated reviews, and usable.

The simulated reviews come from ``benchmarks/recall_bound_validity.py`` (one home for the
simulator; the benchmark runs a larger grid of the same).
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from scipy.stats import hypergeom

from benchmarks.recall_bound_validity import RANKINGS, simulate_reviews
from sid4ds.stopping import (
    RecallBound,
    audit_recall_bound,
    audit_size_needed,
    audit_weights,
    defects_left_upper_bound,
    draw_audit,
    recall_bound,
)


# --------------------------------------------------------------------------- exactness
def failure_chance(n_unlabelled: int, audit_size: int, confidence: float) -> np.ndarray:
    """For every true number D of defective unlabelled images, the exact chance that the
    bound falls below D (all audit outcomes summed)."""
    defects = np.arange(n_unlabelled + 1)
    found = np.arange(audit_size + 1)
    upper = defects_left_upper_bound(found, audit_size, n_unlabelled, confidence)
    chances = hypergeom.pmf(found[None, :], n_unlabelled, defects[:, None], audit_size)
    return (chances * (upper[None, :] < defects[:, None])).sum(axis=1)


@pytest.mark.parametrize(("n_unlabelled", "audit_size", "confidence"),
                         [(120, 10, 0.95), (120, 60, 0.95), (300, 40, 0.9), (300, 150, 0.99)])
def test_the_upper_bound_fails_at_most_one_minus_confidence_for_every_truth(
        n_unlabelled, audit_size, confidence):
    fails = failure_chance(n_unlabelled, audit_size, confidence)
    assert fails.max() <= 1 - confidence + 1e-9
    # ... and is the tightest such bound: some truth comes close to the allowed chance.
    assert fails.max() > 0.6 * (1 - confidence)


def test_one_less_would_not_be_a_valid_bound():
    found = np.arange(11)
    upper = defects_left_upper_bound(found, 100, 1000)
    # The truth D = upper + 1 would show at most `found` with chance at most 5%:
    assert (hypergeom.cdf(found, 1000, upper + 1, 100) <= 0.05).all()
    assert (hypergeom.cdf(found, 1000, upper, 100) > 0.05).all()


def test_bound_edges():
    assert int(defects_left_upper_bound(0, 0, 500)) == 500        # no audit: anything
    assert int(defects_left_upper_bound(3, 500, 500)) == 3         # all labelled: exact
    assert int(defects_left_upper_bound(40, 40, 100)) == 100       # all defective so far
    with pytest.raises(TypeError, match="audit_defective must be an int"):
        defects_left_upper_bound(0.5, 10, 100)
    with pytest.raises(ValueError, match="audit_size > n_unlabelled"):
        defects_left_upper_bound(0, 200, 100)


# --------------------------------------------------------------------------- validity
def simulated_runs():
    """600 reviews: five rankings from much better than random to worse, 1-10% defective,
    pools of 300-3000, audits of 5-40% of the unlabelled images, with and without more
    ranked labelling after the audit."""
    settings = itertools.product([300, 3000], [0.01, 0.04, 0.10], RANKINGS,
                                 [(0.1, 0.4, 0.0), (0.3, 0.05, 0.1)])
    for index, (n_pool, ratio, ranking, (labelled, audit, after)) in enumerate(settings):
        n_labelled = round(labelled * n_pool)
        audit_size = round(audit * (n_pool - n_labelled))
        n_after = round(after * n_pool)
        counts = simulate_reviews(n_pool, ratio, ranking, n_labelled, audit_size, n_after,
                                  n_runs=10, random_state=index)
        for run in range(10):
            bound = recall_bound(n_labelled, int(counts["n_found"][run]),
                                 n_pool - n_labelled, audit_size,
                                 int(counts["audit_defective"][run]),
                                 labelled_since=n_after,
                                 found_since=int(counts["found_since"][run]))
            yield (ranking, n_pool, ratio, audit), counts["true_recall"][run], bound


@pytest.fixture(scope="module")
def runs():
    return list(simulated_runs())


def test_true_recall_is_below_the_95_percent_bound_in_at_most_5_percent_of_runs(runs):
    assert len(runs) >= 500
    below = np.array([truth < bound.lower - 1e-12 for _, truth, bound in runs])
    assert below.mean() <= 0.05
    # Rankings better and worse than random are both in it, with recalls far apart.
    truths = {ranking: np.mean([truth for name, truth, _ in runs if name[0] == ranking])
              for ranking in RANKINGS}
    assert truths["strong"] > 0.6 > truths["worse"]


def test_the_simulation_catches_a_bound_that_is_not_one(runs):
    # The point estimate is no bound: the truth falls below it in a large share of runs.
    estimate_above = np.array([truth < bound.recall - 1e-12 for _, truth, bound in runs])
    assert estimate_above.mean() > 0.2


def test_the_bound_closes_in_on_the_truth_as_the_audit_grows(runs):
    # A strong ranking, 10% defective in 3000 images (with 3 defective images in 300 no
    # bound can be close): a larger audit brings the bound closer to the truth.
    def gap(audit):
        chosen = [(truth, bound.lower) for name, truth, bound in runs
                  if name == ("strong", 3000, 0.10, audit)]
        truths, lowers = np.array(chosen).T
        assert truths.mean() > 0.85
        return np.mean(truths - lowers)

    assert 0 < gap(0.4) < 0.5 * gap(0.05)


# --------------------------------------------------------------------------- recall_bound
def test_more_defective_audit_images_lower_the_bound_and_a_larger_clean_audit_raises_it():
    lowers = [recall_bound(300, 48, 700, 300, found).lower for found in range(6)]
    assert all(a > b for a, b in itertools.pairwise(lowers))
    clean = [recall_bound(300, 48, 700, size, 0).lower for size in (50, 200, 400, 700)]
    assert all(a < b for a, b in itertools.pairwise(clean))
    assert clean[-1] == 1.0                                       # nothing left unlabelled


def test_without_an_audit_the_bound_assumes_nothing():
    bound = recall_bound(300, 48, 700, 0, 0)
    assert bound.lower == pytest.approx(48 / (48 + 700))
    assert math.isnan(bound.recall)
    assert "assumes nothing" in bound.statement


def test_the_statement_says_what_is_guaranteed_and_what_is_assumed():
    bound = recall_bound(300, 48, 700, 300, 1, confidence=0.9)
    text = str(bound)
    assert text == bound.statement
    shown = float(re.match(r"With 90% confidence at least ([0-9.]+)% ", text).group(1))
    assert bound.lower * 100 - 0.1 < shown <= bound.lower * 100    # never overstated
    for words in ("uniformly at random", "700 images unlabelled", "every label is right",
                  "images added since", "1000 images in the pool"):
        assert words in text


def test_later_rounds_raise_the_bound_and_defects_to_find_is_exact():
    bound = recall_bound(300, 48, 700, 300, 1)
    needed = bound.defects_to_find(0.95)
    assert needed > 0 and not bound.certifies(0.95)
    for found_since, certified in ((needed - 1, False), (needed, True)):
        later = recall_bound(300, 48, 700, 300, 1, labelled_since=100,
                             found_since=found_since)
        assert later.certifies(0.95) is certified
        assert later.lower > bound.lower
    assert later.defects_to_find(0.95) == 0


def test_a_review_that_finds_more_than_the_audit_allowed_is_reported():
    bound = recall_bound(300, 48, 700, 300, 0, labelled_since=200, found_since=12)
    assert bound.lower == 1.0 and bound.defects_left_max == 0
    assert "unusually clean; draw a new one" in bound.statement


def test_images_waiting_for_a_label_count_as_defective_until_labelled():
    complete = recall_bound(300, 48, 700, 300, 1)
    # 20 audit images not labelled yet: as if all 20 were defective.
    partial = recall_bound(300, 48, 700, 300, 1, audit_missing=20)
    assert partial.lower == pytest.approx(
        49 / (48 + int(defects_left_upper_bound(21, 300, 700))))
    # A ranked batch of 50 listed with the audit, not labelled yet: 50 more possible.
    waiting = recall_bound(300, 48, 700, 300, 1, n_waiting=50)
    assert waiting.lower == pytest.approx(49 / (48 + 50 + complete.defects_upper))
    assert partial.lower < complete.lower and waiting.lower < complete.lower
    assert "counts the 50 images still waiting for a label" in waiting.statement
    assert waiting.n_pool == 1050
    with pytest.raises(ValueError, match="audit_defective \\+ audit_missing=301 is larger"):
        recall_bound(300, 48, 700, 300, 1, audit_missing=300)


def test_a_pool_without_defects_has_recall_one():
    bound = recall_bound(100, 0, 100, 100, 0)
    assert bound.lower == 1.0 and bound.recall == 1.0 and bound.n_found == 0


@pytest.mark.parametrize(("arguments", "message"), [
    ((300, 48, 700, 800, 0), "audit_size asks for 800 images but only 700 are unlabelled"),
    ((300, 301, 700, 100, 0), "n_found=301 is larger than n_labelled=300"),
    ((300, 48, 700, 100, 101), "audit_missing=101 is larger than audit_size=100"),
    ((300, 48, 700, 100, -1), "audit_defective must be >= 0"),
])
def test_impossible_counts_raise_naming_them(arguments, message):
    with pytest.raises(ValueError, match=message):
        recall_bound(*arguments)


def test_impossible_follow_up_counts_and_bad_confidence_raise():
    with pytest.raises(ValueError, match="labelled_since=650 is larger than the images the "
                                         "audit left unlabelled"):
        recall_bound(300, 48, 700, 100, 0, labelled_since=650)
    with pytest.raises(ValueError, match="found_since=5 is larger than labelled_since=4"):
        recall_bound(300, 48, 700, 100, 0, labelled_since=4, found_since=5)
    with pytest.raises(ValueError, match=r"confidence must be in \(0.0, 1.0\); got 1.0"):
        recall_bound(300, 48, 700, 100, 0, confidence=1.0)
    with pytest.raises(TypeError, match="n_found must be an int"):
        recall_bound(300, 48.0, 700, 100, 0)


def test_recall_bound_is_a_frozen_dataclass():
    bound = recall_bound(300, 48, 700, 300, 1)
    assert isinstance(bound, RecallBound)
    with pytest.raises(AttributeError):
        bound.lower = 1.0


# --------------------------------------------------------------------------- audit size
@pytest.mark.parametrize(("n_found", "n_unlabelled", "target"),
                         [(50, 700, 0.9), (500, 7000, 0.95), (10, 700, 0.95)])
def test_the_least_audit_is_the_first_size_that_can_certify(n_found, n_unlabelled, target):
    size = audit_size_needed(n_found, n_unlabelled, target_recall=target)
    assert recall_bound(n_found, n_found, n_unlabelled, size, 0).certifies(target)
    assert not recall_bound(n_found, n_found, n_unlabelled, size - 1, 0).certifies(target)


def test_planned_audit_certifies_with_the_wanted_chance():
    n_found, n_unlabelled, left = 97, 700, 3
    size = audit_size_needed(n_found, n_unlabelled, defects_left=left, power=0.8)
    assert size > audit_size_needed(n_found, n_unlabelled)        # finds cost labels

    def chance(audit_size):
        return sum(hypergeom.pmf(found, n_unlabelled, left, audit_size)
                   for found in range(left + 1)
                   if recall_bound(n_found, n_found, n_unlabelled, audit_size,
                                   found).certifies(0.95))

    assert chance(size) >= 0.8 > chance(size - 10)


def test_audit_size_needed_edges_and_errors():
    assert audit_size_needed(5, 0) == 0 and recall_bound(5, 5, 0, 0, 0).lower == 1.0
    assert audit_size_needed(0, 50) == 48        # nothing found: prove (almost) none left
    with pytest.raises(ValueError, match="defects_left=80 is larger than n_unlabelled=50"):
        audit_size_needed(5, 50, defects_left=80)
    with pytest.raises(ValueError, match=r"power must be in \(0.0, 1.0\)"):
        audit_size_needed(5, 50, power=1.0)


# --------------------------------------------------------------------------- the audit
def test_draw_audit_is_uniform_seeded_and_blind_to_the_order():
    candidates = np.arange(20)
    draws = np.array([draw_audit(candidates, 5, random_state=seed) for seed in range(2000)])
    assert all(len(set(draw)) == 5 for draw in draws[:50])
    inclusion = np.bincount(draws.ravel(), minlength=20) / 2000
    assert np.abs(inclusion - 0.25).max() < 0.04           # each image: 5/20 of the draws
    assert (draw_audit(candidates[::-1], 5, [3, 1, 0]) == draw_audit(candidates, 5,
                                                                       [3, 1, 0])).all()
    assert not (draw_audit(candidates, 5, [3, 1, 0]) == draw_audit(candidates, 5,
                                                                     [3, 1, 1])).all()
    names = draw_audit(["b.png", "a.png", "c.png"], 3, random_state=0)
    assert sorted(names.tolist()) == ["a.png", "b.png", "c.png"]
    with pytest.raises(ValueError, match="asks for 4 images but only 3 are unlabelled"):
        draw_audit(["b.png", "a.png", "c.png"], 4)


def test_audit_recall_bound_counts_the_labels_as_they_are_now():
    outside = [f"r{i}" for i in range(300)]
    audit = [f"a{i}" for i in range(300)]
    labels = {name: i < 48 for i, name in enumerate(outside[:290])}    # 10 still waiting
    labels.update({name: i == 0 for i, name in enumerate(audit[:280])})  # 20 missing
    labels.update({f"p{i}": i < 2 for i in range(50)})                 # labelled since
    bound = audit_recall_bound(labels, outside, 700, audit)
    expected = recall_bound(290, 48, 700, 300, 1, labelled_since=50, found_since=2,
                            n_waiting=10, audit_missing=20)
    assert bound == expected
    labels["a0"] = False                                  # a mask replaced since
    assert audit_recall_bound(labels, outside, 700, audit).audit_defective == 0
    with pytest.raises(ValueError, match="1 images are both outside the audit's population "
                                         "and in the audit"):
        audit_recall_bound(labels, [*outside, "a5"], 700, audit)


def test_audit_weights_make_weighted_sums_unbiased_for_the_pool_whatever_the_ranking():
    rng = np.random.default_rng(0)
    defective = np.zeros(200, bool)
    defective[rng.choice(200, 30, replace=False)] = True
    # a ranking that put 20 of the 30 defective images among the 50 it labelled
    census = np.r_[np.flatnonzero(defective)[:20], np.flatnonzero(~defective)[:30]]
    rest = np.setdiff1d(np.arange(200), census)
    estimates = []
    for seed in range(2000):
        audit = draw_audit(rest, 20, random_state=seed)
        unaudited = np.setdiff1d(rest, audit)
        later = unaudited[defective[unaudited]][:5]  # ranked after the audit: stand for none
        rows = np.r_[census, audit, later]
        weights = audit_weights(rows, census, audit, population=len(rest))
        estimates.append(weights @ defective[rows])
    assert abs(np.mean(estimates) - 30) < 0.5  # the pool's 30 defective images
    assert audit_weights([1, 2], census=[1], audit=[], population=10).tolist() == [1.0, 0.0]
