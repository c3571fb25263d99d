"""Tests of the drift check: the statistic, its p-value, and M's scores on small data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sid4ds import ReconstructionScorer
from sid4ds.datasets import make_defect_images
from sid4ds.ranking.drift import (
    DRIFT_CACHE_SCORE,
    DRIFT_SCORE,
    assess_drift,
    check_drift,
    drift_scores,
    exceedance_p_value,
    pool_sample,
    reserve_order,
)
from sid4ds.ranking.score_cache import MemoryScoreCache, model_fingerprint
from sid4ds.ranking.selection import content_keys

SMALL_M = {"base_channels": 4, "depth": 2, "patch_size": 4, "n_blocks": 4, "max_epochs": 20}


# ---------------------------------------------------------------------- the statistic
def test_a_shifted_batch_is_flagged_and_a_like_one_is_not() -> None:
    rng = np.random.default_rng(0)
    pool = rng.gamma(2.0, 1.0, 500)
    like = assess_drift(pool, rng.gamma(2.0, 1.0, 200))
    shifted = assess_drift(pool, rng.gamma(2.0, 1.0, 200) * 1.8)
    assert not like.drifted and like.share_above < 0.1
    assert shifted.drifted and shifted.share_above > 0.25
    assert shifted.p_value < 1e-6 < like.p_value
    assert "do not look like the pool" in shifted.message
    assert "look like the pool" in like.message and "do not" not in like.message
    assert like.expected_share == pytest.approx(0.05, abs=0.002)


def test_false_alarms_are_rare_when_batches_are_drawn_like_the_pool() -> None:
    rng = np.random.default_rng(1)
    flagged = [assess_drift(rng.normal(size=n_pool), rng.normal(size=n_batch)).drifted
               for n_pool in (20, 200) for n_batch in (1, 5, 50, 300) for _ in range(50)]
    assert np.mean(flagged) <= 0.01


def test_the_p_value_is_the_chance_of_that_many_above_without_drift() -> None:
    # simulate exchangeable pools and batches; compare the tail with the formula
    rng = np.random.default_rng(2)
    n_pool, n_batch, rank = 40, 12, 2
    draws = rng.random((20000, n_pool + n_batch))
    threshold = np.sort(draws[:, :n_pool], axis=1)[:, n_pool - rank]
    above = (draws[:, n_pool:] > threshold[:, None]).sum(axis=1)
    for n_above in (1, 2, 4):
        simulated = float((above >= n_above).mean())
        assert exceedance_p_value(n_above, n_batch, n_pool, rank) == pytest.approx(
            simulated, abs=0.01)


def test_both_conditions_are_needed() -> None:
    pool = np.arange(1000.0)
    # every one of 3 images above: large share, but 3 of 3 happens by luck 1 time in 10^4
    small = assess_drift(pool, np.array([2000.0, 2000.0, 2000.0]), max_p_value=1e-6)
    assert small.share_above == 1.0 and not small.drifted
    # 20% of a large batch above: strong evidence, but below the least share
    batch = np.concatenate([np.full(200, 2000.0), np.full(800, 10.0)])
    modest = assess_drift(pool, batch)
    assert modest.p_value < 1e-10 and not modest.drifted
    assert assess_drift(pool, batch, min_share=0.15).drifted


def test_scores_without_a_value_are_left_out() -> None:
    pool = np.concatenate([np.arange(100.0), [np.nan] * 50])
    report = assess_drift(pool, np.array([np.nan, 500.0, 600.0, 700.0, 800.0]))
    assert (report.n_pool, report.n_batch, report.n_above) == (100, 4, 4)
    assert len(report.batch_scores) == 5
    assert json.loads(json.dumps(report.as_dict()))["n_above"] == 4


@pytest.mark.parametrize(
    ("arguments", "pattern"),
    [
        ({"pool_scores": []}, r"pool_scores has no score"),
        ({"batch_scores": [np.nan]}, r"batch_scores has no score"),
        ({"quantile": 1.0}, r"quantile must be in \(0.0, 1.0\)"),
        ({"min_share": 0.0}, r"min_share must be in \(0.0, 1.0\]"),
        ({"max_p_value": 2.0}, r"max_p_value must be in"),
    ],
)
def test_bad_settings_raise_naming_them(arguments: dict, pattern: str) -> None:
    given = {"pool_scores": [1.0, 2.0], "batch_scores": [1.0]} | arguments
    with pytest.raises(ValueError, match=pattern):
        assess_drift(given.pop("pool_scores"), given.pop("batch_scores"), **given)


def test_p_value_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rank <= n_pool"):
        exceedance_p_value(1, 5, 10, 11)
    # all five above the smallest of ten: the smallest of the fifteen is in the pool
    assert exceedance_p_value(5, 5, 10, 10) == pytest.approx(10 / 15)


# ---------------------------------------------------------------------- with M
@pytest.fixture(scope="module")
def small_m() -> tuple[ReconstructionScorer, np.ndarray]:
    X, _ = make_defect_images(n_samples=32, image_size=16, random_state=0)
    return ReconstructionScorer(**SMALL_M, random_state=0).fit(X), X


@pytest.mark.parametrize("kind", ["noise", "lighting"])
def test_m_flags_a_drifted_batch_and_not_a_like_one(small_m, kind: str) -> None:
    M, X = small_m
    like, _ = make_defect_images(n_samples=16, image_size=16, random_state=10)
    drifted, _ = make_defect_images(n_samples=16, image_size=16, random_state=10, drift=kind)
    like_report, drift_report = check_drift(M, X, like), check_drift(M, X, drifted)
    assert not like_report.drifted
    assert drift_report.drifted
    assert drift_report.share_above > like_report.share_above + 0.3
    assert drift_report.score == DRIFT_SCORE and DRIFT_SCORE in drift_report.message


def test_drift_scores_are_the_mean_block_error(small_m) -> None:
    M, X = small_m
    np.testing.assert_allclose(drift_scores(M, X[:4]), M.block_errors(X[:4]).mean(axis=1))


def test_a_large_pool_is_compared_through_a_seeded_sample(small_m) -> None:
    M, X = small_m
    new, _ = make_defect_images(n_samples=8, image_size=16, random_state=11)
    sampled = check_drift(M, X, new, max_pool=16, random_state=3)
    assert sampled.n_pool == 16
    assert check_drift(M, X, new, max_pool=16, random_state=3).threshold == sampled.threshold
    assert check_drift(M, X, new).n_pool == 32


def test_a_second_check_with_m_unchanged_scores_only_the_new_images(small_m) -> None:
    M, X = small_m
    first, _ = make_defect_images(n_samples=8, image_size=16, random_state=11)
    second, _ = make_defect_images(n_samples=6, image_size=16, random_state=12)
    cache = MemoryScoreCache()
    cached = check_drift(M, X, first, pool_keys=content_keys(X), new_keys=content_keys(first),
                         score_cache=cache)
    plain = check_drift(M, X, first)
    assert cached.n_scored == 40 and plain.n_scored == 40
    assert (cached.n_above, cached.threshold) == (plain.n_above, plain.threshold)
    grown = np.concatenate([X, first])
    again = check_drift(M, grown, second, pool_keys=content_keys(grown),
                        new_keys=content_keys(second), score_cache=cache)
    assert again.n_scored == 6  # the pool's 40 were kept from the first check
    assert again.as_dict() == {**check_drift(M, grown, second).as_dict(), "n_scored": 6}
    # the same block errors gave E_msmr, kept for the round engine's next ranking
    kept = cache.lookup("E_msmr", model_fingerprint(M), content_keys(second))
    np.testing.assert_allclose(kept, M.score_samples(second), rtol=1e-6)
    assert not np.isnan(cache.lookup(DRIFT_CACHE_SCORE, model_fingerprint(M),
                                     content_keys(grown))).any()


def test_the_sample_by_content_key_is_stable_as_the_pool_grows() -> None:
    keys = content_keys(np.random.default_rng(0).random((2000, 4)))
    before = pool_sample(1800, 200, keys=keys[:1800])
    after = pool_sample(2000, 200, keys=keys)
    assert len(before) == len(after) == 200
    assert len(np.intersect1d(before, after)) >= 160  # ~10% of the sample leaves at most
    assert abs(np.mean(after) - 1000) < 150  # spread over the pool, not its first rows
    assert not np.array_equal(pool_sample(2000, 200, 1, keys=keys), after)  # the seed counts
    assert pool_sample(50, 200, keys=keys[:50]).tolist() == list(range(50))


def test_keys_must_come_together_and_match_the_images(small_m) -> None:
    M, X = small_m
    with pytest.raises(ValueError, match="pool_keys and new_keys together"):
        check_drift(M, X, X[:4], pool_keys=content_keys(X))
    with pytest.raises(ValueError, match="pool_keys and new_keys together"):
        check_drift(M, X, X[:4], score_cache=MemoryScoreCache())
    with pytest.raises(ValueError, match=r"new_keys must hold one content key per image of "
                                         r"new_images \(4\); got shape \(3,\)"):
        check_drift(M, X, X[:4], pool_keys=content_keys(X), new_keys=content_keys(X[:3]))


# ---------------------------------------------------------------------- the reserve rule
def test_reserve_order_puts_the_reserved_images_in_the_first_k() -> None:
    order = np.arange(10)  # position 0 ranks best
    reordered = reserve_order(order, reserved=[8, 3], n_label=4)
    assert reordered[:4].tolist() == [0, 1, 3, 8]  # kept in the ranking's order
    assert reordered[4:].tolist() == [2, 4, 5, 6, 7, 9]


def test_reserve_order_changes_nothing_when_the_top_already_holds_them() -> None:
    order = np.array([5, 2, 0, 4, 1, 3])
    np.testing.assert_array_equal(reserve_order(order, [2, 5], 3), order)
    np.testing.assert_array_equal(reserve_order(order, [], 3), order)
    with pytest.raises(ValueError, match="at most n_label=1 positions"):
        reserve_order(order, [1, 3], 1)
