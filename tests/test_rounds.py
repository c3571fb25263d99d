"""The round engine (sid4ds.rounds): what a round says, reuses, orders and trains."""

from __future__ import annotations

import numpy as np
import pytest

from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds
from sid4ds.datasets import make_defect_images
from sid4ds.pool import as_pool
from sid4ds.rounds import (
    SID4DSRounds,
    labels_per_round,
    model_fingerprint,
    remaining_estimate,
    scores_key,
)
from sid4ds.selection import content_keys, rank_pool, tie_keys

from .conftest import TINY_NET

SCORER = {**TINY_NET, "patch_size": 4, "n_blocks": 4, "max_epochs": 1, "random_state": 0}
SEGMENTER = {**TINY_NET, "max_epochs": 1, "random_state": 0}


@pytest.fixture(scope="module")
def images():
    return make_defect_images(n_samples=32, image_size=16, defect_ratio=0.25, random_state=0)


def engine(messages=None, **options) -> SID4DSRounds:
    return SID4DSRounds(SegmentationLearner(**SEGMENTER), ReconstructionScorer(**SCORER),
                        say=None if messages is None else messages.append, **options)


def count_calls(monkeypatch, cls, method: str) -> list[int]:
    calls = [0]
    original = getattr(cls, method)

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, counted)
    return calls


def normal_labels(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 1, 16, 16), np.float32), np.zeros((n, 16, 16), np.uint8)


# ---------------------------------------------------------------------- E_msmr reuse
def test_e_msmr_is_reused_only_for_the_same_model_settings_and_pool(images, monkeypatch):
    X, _ = images
    rounds = engine()
    pool = as_pool(X)
    everything = np.arange(len(X))
    first = rounds.run_round(pool, everything, *normal_labels(0), 0, 4)
    assert not first.reused_scores and "score_msmr" in first.seconds
    scoring = count_calls(monkeypatch, ReconstructionScorer, "msmr_chunk")
    again = rounds.run_round(pool, everything[4:], *normal_labels(4), 1, 4)
    assert again.reused_scores and scoring == [0]
    assert np.array_equal(again.scores, first.scores[4:])
    # the same M on another pool (the same images in another order): scored afresh
    reordered = as_pool(X[::-1].copy())
    other = rounds.run_round(reordered, everything, *normal_labels(0), 2, 4)
    assert not other.reused_scores and scoring[0] > 0
    assert np.allclose(other.scores, first.scores[::-1], atol=1e-6)
    # a scoring setting changed without refitting: the cached scores no longer apply
    scoring[0] = 0
    rounds.msmr_scorer.set_params(error_region="image")
    changed = rounds.run_round(pool, everything, *normal_labels(0), 3, 4)
    assert not changed.reused_scores and scoring[0] > 0
    assert not np.allclose(changed.scores, first.scores)


def test_the_fingerprint_covers_weights_statistics_and_settings(images):
    X, _ = images
    scorer = ReconstructionScorer(**SCORER).fit(X)
    before = model_fingerprint(scorer)
    assert model_fingerprint(scorer.set_params(verbose=2, n_jobs=2)) == before
    scorer.pixel_std_ = scorer.pixel_std_ * 2  # a fitted statistic
    assert model_fingerprint(scorer) != before
    keys = content_keys(X)
    assert scores_key(scorer, keys) != scores_key(scorer, keys[::-1].copy())


# ---------------------------------------------------------------------- what a round says
def test_a_round_says_its_stage_and_reason_before_its_work(images):
    X, masks = images
    messages: list[str] = []
    rounds = engine(messages)
    pool = as_pool(X)
    rounds.run_round(pool, np.arange(len(X)), *normal_labels(0), 0, 4)
    assert messages[0] == ("round 0, cold start stage: no image is labelled yet: ranking by "
                           "E_msmr, the self-supervised cold start")
    assert messages[1].startswith("training the self-supervised reconstruction learner M")
    messages.clear()
    labelled = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    defective = int(masks[labelled].reshape(8, -1).any(axis=1).sum())
    assert 0 < defective < 8
    result = rounds.run_round(pool, np.arange(8, len(X)), X[labelled], masks[labelled], 1, 4)
    assert result.stage == "iterative"
    assert messages[0] == (f"round 1, iterative stage: {defective} defective and "
                           f"{8 - defective} normal images labelled (fake normals included): "
                           f"ranking by E_sdr, S's suspected defects reconstructed by G")
    assert messages[1].startswith("training the segmentation learner S on 8 images")
    scoring = next(message for message in messages if message.startswith("scoring"))
    assert "E_sdr" in scoring and "about" in scoring  # a time estimate before scoring
    assert messages.index(scoring) > messages.index(messages[1])


def test_a_round_with_only_defective_labels_stays_in_the_cold_start_and_says_why(images):
    X, masks = images
    rows = np.flatnonzero(masks.reshape(len(masks), -1).any(axis=1))[:3]
    rounds = engine()
    result = rounds.run_round(as_pool(X), np.setdiff1d(np.arange(len(X)), rows),
                              X[rows], masks[rows], 0, 4)
    assert result.stage == "cold_start" and result.score == "E_msmr"
    assert result.reason == ("all 3 labelled images are defective and there are no fake "
                             "normals: G needs a normal image, ranking by E_msmr again")


# ---------------------------------------------------------------------- the full order
def test_the_full_order_follows_the_selection_rule_ties_included(images):
    X, _ = images
    rounds = engine(tie_break="content")
    rounds.msmr_cache = _ConstantScores(len(X))  # every image ties
    result = rounds.run_round(as_pool(X), np.arange(len(X)), *normal_labels(0), 0, 5)
    assert sorted(result.order.tolist()) == list(range(len(X)))
    assert np.array_equal(result.order[:5], result.selected)
    expected, _ = rank_pool(result.scores, len(X), tie_keys=tie_keys(content_keys(X)))
    assert np.array_equal(result.order, expected)
    assert not np.array_equal(result.order, np.arange(len(X)))  # not the index order


class _ConstantScores(dict):
    """An E_msmr cache in which every image already has the score 1."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def get(self, key, default=None):
        return np.ones(self.n)


# ---------------------------------------------------------------------- no training after
@pytest.mark.parametrize("fit_final", [False, True])
def test_run_sid4ds_trains_s_after_the_last_selection_only_when_asked(images, monkeypatch,
                                                                     fit_final):
    X, masks = images
    fits = count_calls(monkeypatch, SegmentationLearner, "fit")
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=2, n_label=8,
                     segmenter=SegmentationLearner(**SEGMENTER),
                     scorer=ReconstructionScorer(**SCORER), fit_final=fit_final,
                     final_params={"max_steps": 4, "n_folds": 2, "n_checkpoints": 2},
                     random_state=0)
    iterative = sum(record["stage"] == "iterative" for record in run.rounds)
    assert iterative >= 1  # S was needed for the selection at least once
    # the final model: one fit per fold and the final one
    assert fits[0] == iterative + (3 if fit_final else 0)
    assert (run.final_model is None) is (not fit_final)
    if fit_final:
        cv = run.cross_validation
        assert run.final_model.threshold == cv.threshold and cv.defect_ratio == 0.05
        # validated on every labelled image once, never on the fake normals
        assert cv.n_defective.sum() + cv.n_normal.sum() == len(run.labeled_indices)
        assert run.segmenter is not run.final_model


def test_run_sid4ds_checks_the_final_settings_before_the_first_round(images):
    X, masks = images
    with pytest.raises(ValueError, match="unknown setting 'steps'"):
        run_sid4ds(X, lambda indices: masks[indices], n_rounds=2, n_label=8,
                   segmenter=SegmentationLearner(**SEGMENTER),
                   scorer=ReconstructionScorer(**SCORER), fit_final=True,
                   final_params={"steps": 4}, random_state=0)


def test_run_sid4ds_records_the_estimate_of_defects_left(images):
    X, masks = images
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=1, n_label=8,
                     expected_defect_ratio=0.25,
                     segmenter=SegmentationLearner(**SEGMENTER),
                     scorer=ReconstructionScorer(**SCORER), random_state=0)
    total = int(masks.reshape(len(masks), -1).any(axis=1).sum())
    for record in run.rounds:
        assert record["remaining_estimate"] == remaining_estimate(
            len(X), record["n_labeled"], record["cumulative_defective"],
            record["n_defective"], len(record["selected"]), 0.25)
    last = run.rounds[-1]
    assert last["remaining_estimate"]["expected"] == max(
        0.0, round(0.25 * len(X) - last["cumulative_defective"], 1))
    assert last["cumulative_defective"] <= total


@pytest.mark.parametrize(("label_share", "n_pool", "expected"),
                         [(0.1, 805, 80), (0.1, 1000, 100), (0.1, 4, 1), (1.0, 7, 7),
                          (0.25, 10, 2), (0.35, 10, 4)])
def test_labels_per_round_is_a_rounded_share_of_at_least_one_image(label_share, n_pool,
                                                                   expected):
    assert labels_per_round(label_share, n_pool) == expected


@pytest.mark.parametrize(("label_share", "n_pool", "message"),
                         [(0.0, 10, r"label_share must be in \(0.0, 1.0\]; got 0.0"),
                          (1.5, 10, r"label_share must be in \(0.0, 1.0\]; got 1.5"),
                          (0.1, 0, "n_pool must be >= 1; got 0")])
def test_labels_per_round_names_the_bad_argument(label_share, n_pool, message):
    with pytest.raises(ValueError, match=message):
        labels_per_round(label_share, n_pool)
