"""The round engine (sid4ds.engine.rounds): what a round says, reuses, orders and trains."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from sid4ds import (
    DefectActiveLearner,
    ReconstructionScorer,
    SegmentationLearner,
    run_sid4ds,
    sid4ds_sampling,
)
from sid4ds.datasets import load_image_folder, make_defect_images
from sid4ds.datasets.pool import as_pool
from sid4ds.engine.rounds import SID4DSRounds, configure_models, labels_per_round
from sid4ds.ranking.score_cache import MemoryScoreCache, model_fingerprint
from sid4ds.ranking.selection import content_keys, rank_pool, tie_keys
from sid4ds.stopping import audit_recall_bound

from ..conftest import TINY_NET, TINY_SCORER, TINY_SEGMENTER, answer_round, new_session

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


# ---------------------------------------------------------------------- score reuse
def test_a_score_is_computed_once_per_image_and_model(images, monkeypatch):
    X, _ = images
    rounds = engine()
    pool = as_pool(X[:24])
    everything = np.arange(24)
    first = rounds.run_round(pool, everything, *normal_labels(0), 0, 4)
    assert first.n_scored == 24 and "score_msmr" in first.seconds
    scored = []
    original = ReconstructionScorer.block_errors_chunk  # all M's scoring goes through it
    monkeypatch.setattr(ReconstructionScorer, "block_errors_chunk",
                        lambda self, chunk: scored.append(len(chunk)) or original(self, chunk))
    again = rounds.run_round(pool, everything[4:], *normal_labels(4), 1, 4)
    assert again.reused_scores and again.n_scored == 0 and scored == []
    assert np.array_equal(again.scores, first.scores[4:])
    # the same images in another order, and 8 new ones: only the new ones are scored
    grown = as_pool(np.concatenate([X[:24][::-1], X[24:]]))
    other = rounds.run_round(grown, np.arange(32), *normal_labels(0), 2, 4)
    assert other.n_scored == 8 and sum(scored) == 8
    assert np.array_equal(other.scores[:24], first.scores[::-1])
    alone = ReconstructionScorer.score_samples(rounds.msmr_scorer, X[24:])
    assert np.allclose(other.scores[24:], alone, atol=1e-6)
    # a scoring setting changed without refitting: the kept scores no longer apply
    scored.clear()
    rounds.msmr_scorer.set_params(error_region="image")
    changed = rounds.run_round(pool, everything, *normal_labels(0), 3, 4)
    assert changed.n_scored == 24 and sum(scored) == 24
    assert not np.allclose(changed.scores, first.scores)


def test_the_fingerprint_covers_weights_statistics_and_settings(images):
    X, _ = images
    scorer = ReconstructionScorer(**SCORER).fit(X)
    before = model_fingerprint(scorer)
    assert model_fingerprint(scorer.set_params(verbose=2, n_jobs=2)) == before
    scorer.pixel_std_ = scorer.pixel_std_ * 2  # a fitted statistic
    assert model_fingerprint(scorer) != before


@pytest.mark.parametrize("fusion", [None, "rank"])
def test_e_sdr_is_kept_until_s_or_g_change(images, monkeypatch, fusion):
    X, masks = images
    rounds = engine(fusion=fusion)
    pool = as_pool(X)
    labelled = np.arange(8)
    rest = np.arange(8, 32)
    first = rounds.run_round(pool, rest, X[labelled], masks[labelled], 0, 4)
    assert first.stage == "iterative" and first.n_scored == 24
    assert first.score == ("E_sdr" if fusion is None else "E_sdr+S")
    again = rounds.run_round(pool, rest[4:], X[labelled], masks[labelled], 0, 4)
    assert again.n_scored == 0  # E_sdr and S's probability are kept for both rules
    if fusion is None:  # a fused score depends on the other images ranked with it
        assert np.array_equal(again.scores, first.scores[4:])
    # new labels: S is trained again, so every image is scored again
    more = np.arange(12)
    later = rounds.run_round(pool, np.arange(12, 32), X[more], masks[more], 1, 4)
    assert later.trained == ["S"] and later.n_scored == 20


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
                           f"ranking by E_sdr, S's suspected defects reconstructed by G, "
                           f"fused by rank with S's mean probability")
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
    rounds = engine(tie_break="content", score_cache=_ConstantScores())  # every image ties
    result = rounds.run_round(as_pool(X), np.arange(len(X)), *normal_labels(0), 0, 5)
    assert sorted(result.order.tolist()) == list(range(len(X)))
    assert np.array_equal(result.order[:5], result.selected)
    expected, _ = rank_pool(result.scores, len(X), tie_keys=tie_keys(content_keys(X)))
    assert np.array_equal(result.order, expected)
    assert not np.array_equal(result.order, np.arange(len(X)))  # not the index order


class _ConstantScores(MemoryScoreCache):
    """A score cache in which every image already has the score 1."""

    def lookup(self, score, fingerprint, keys):
        return np.ones(len(keys))


# ---------------------------------------------------------------------- no training after
@pytest.mark.parametrize("fit_final", [False, True])
def test_run_sid4ds_trains_s_after_the_last_selection_only_when_asked(images, monkeypatch,
                                                                     fit_final):
    X, masks = images
    fits = count_calls(monkeypatch, SegmentationLearner, "fit")
    continued = count_calls(monkeypatch, SegmentationLearner, "partial_fit")
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=2, n_label=8,
                     segmenter=SegmentationLearner(**SEGMENTER),
                     scorer=ReconstructionScorer(**SCORER), fit_final=fit_final,
                     # the final model's fits in this process, where fit is counted
                     final_params={"max_steps": 4, "n_folds": 2, "n_checkpoints": 2,
                                   "parallel_fits": 1},
                     random_state=0)
    iterative = sum(record.stage == "iterative" for record in run.rounds)
    assert iterative >= 1  # S was needed for the selection at least once
    # S of the rounds: fitted once, then continued with partial_fit (its setting untouched);
    # the final model: one fresh fit per fold and the final one
    assert fits[0] == 1 + (3 if fit_final else 0) and continued[0] == iterative - 1
    assert run.segmenter.warm_start is False
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


def test_run_sid4ds_audits_each_round_and_records_a_recall_bound_that_holds(images):
    X, masks = images
    defective = masks.reshape(len(masks), -1).any(axis=1)
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=1, n_label=8, audit=6,
                     segmenter=SegmentationLearner(**SEGMENTER),
                     scorer=ReconstructionScorer(**SCORER), fit_final=True,
                     final_params={"max_steps": 4, "n_folds": 2, "n_checkpoints": 1},
                     random_state=0)
    labelled: dict[int, bool] = {}
    for record in run.rounds:
        audit = record.audit.tolist()
        # drawn from the images the ranking left: none ranked, none labelled before
        assert len(audit) == len(set(audit)) == 6
        assert not set(audit) & {*record.selected.tolist(), *labelled}
        outside = [*labelled, *record.selected.tolist()]
        population = len(X) - len(outside)
        labelled.update((row, bool(defective[row]))
                        for row in [*record.selected.tolist(), *audit])
        assert record.n_labeled == len(labelled)  # audit images are labelled too
        assert record.audit_defective == int(defective[audit].sum())
        assert record.cumulative_defective == sum(labelled.values())
        # the bound is stopping's, for the same counts, and it holds
        assert record.recall == audit_recall_bound(labelled, outside, population, audit)
        assert record.recall.lower <= record.cumulative_defective / defective.sum()
        assert str(record.recall).startswith("With 95% confidence at least")
    assert run.labeled_indices.tolist() == list(labelled)
    # the final model's estimate is weighted by the last audit: the images labelled before
    # it count once, its own images for the images it was drawn from
    last = run.rounds[-1]
    census = [row for row in labelled if row not in set(last.audit.tolist())]
    each = (len(X) - len(census)) / len(last.audit)
    weighted_defective = (sum(defective[row] for row in census)
                          + each * defective[last.audit].sum())
    cv = run.cross_validation
    assert cv.weighted
    assert cv.weighted_counts["n_defective"].sum() == pytest.approx(weighted_defective)
    # the same seed draws the same audits
    again = run_sid4ds(X, lambda indices: masks[indices], n_rounds=0, n_label=8, audit=6,
                       segmenter=SegmentationLearner(**SEGMENTER),
                       scorer=ReconstructionScorer(**SCORER), random_state=0)
    assert again.rounds[0].audit.tolist() == run.rounds[0].audit.tolist()
    assert "share found ≥ (95%, audit)" in run.table()


def test_run_sid4ds_without_audit_records_no_bound_and_refuses_a_too_large_audit(images):
    X, masks = images
    with pytest.raises(ValueError, match=r"audit asks for 25 images but only 24 are "
                                         r"unlabelled besides this round's 8 ranked"):
        run_sid4ds(X, lambda indices: masks[indices], n_rounds=0, n_label=8, audit=25)
    with pytest.raises(ValueError, match="audit must be >= 0; got -1"):
        run_sid4ds(X, lambda indices: masks[indices], n_rounds=0, n_label=8, audit=-1)
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=0, n_label=8,
                     scorer=ReconstructionScorer(**SCORER), random_state=0)
    assert run.rounds[0].recall is None and len(run.rounds[0].audit) == 0


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


# ---------------------------------------------------------------------- one engine, every door
def test_modal_run_sid4ds_and_a_session_pick_the_same_images(tmp_path, pool_folder):
    """The three doors of sid4ds, answered by the same oracle, pick alike round by round."""
    images, truth = pool_folder
    X, _, names = load_image_folder(images)
    masks = np.stack([truth[name] for name in names])
    segmenter, scorer = configure_models(SegmentationLearner(**TINY_SEGMENTER),
                                         ReconstructionScorer(**TINY_SCORER), random_state=3)
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=2, n_label=4,
                     segmenter=segmenter, scorer=scorer, random_state=3)
    assert [record.stage for record in run.rounds] == ["cold_start", "iterative", "iterative"]

    learner = DefectActiveLearner(clone(segmenter), query_strategy=sid4ds_sampling)
    learner.msmr_scorer = clone(scorer)
    unlabeled = np.arange(len(X))
    modal = []
    for _ in run.rounds:
        positions, X_query, scores, fake = learner.query(
            X[unlabeled], n_instances=4, return_metrics=True, return_fake_normals=True)
        modal.append((unlabeled[positions], scores, unlabeled[fake],
                      learner.sid4ds_state.last_round.stage))
        learner.teach(X_query, masks[unlabeled[positions]])
        unlabeled = np.setdiff1d(unlabeled, unlabeled[positions])

    session = new_session(tmp_path, images, seed=3)
    for expected, (chosen, scores, fake, stage) in zip(run.rounds, modal, strict=True):
        record = session.query(n_label=4)
        assert stage == record["stage"] == expected.stage
        assert record["scores"] == scores.tolist() == expected.scores.tolist()
        assert ([names.index(name) for name in record["selected"]] == chosen.tolist()
                == expected.selected.tolist())
        assert ([names.index(name) for name in record["fake_normals"]] == fake.tolist()
                == expected.fake_normals.tolist())
        answer_round(session, record, truth, tmp_path / f"answers{record['round']}")


# ---------------------------------------------------------------------- drift
def _drift_round(images, stage, drifted=None, **options):
    """A round on 32 images, the first 8 labelled, the last 8 a (so-called) new batch."""
    X, masks = images
    rounds = engine(**options)
    pool = as_pool(X)
    unlabeled = np.arange(8, 32)
    kwargs = {} if drifted is None else {"drifted": drifted}
    result = rounds.run_round(pool, unlabeled, X[:8], masks[:8], 0, 4, stage=stage, **kwargs)
    return rounds, result


def _same_round(first, second) -> None:
    for name in ("selected", "fake_normals", "order", "scores"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


BATCH = np.arange(24, 32)


@pytest.mark.parametrize("stage", ["cold_start", "iterative"])
def test_without_a_drifted_batch_a_round_is_the_round_without_drift(images, stage):
    _, plain = _drift_round(images, stage)
    for drifted, rule in ((np.zeros(0, np.int64), "fake_normals"), (BATCH, "none")):
        _, other = _drift_round(images, stage, drifted, drift_rule=rule)
        _same_round(plain, other)
        assert len(other.drift_normals) == 0 and len(other.reserved) == 0


def test_fake_normals_rule_trains_s_on_the_batch_images_m_reconstructs_best(images,
                                                                            monkeypatch):
    sizes = []
    original = SegmentationLearner.fit

    def fit(self, X, y=None, **kwargs):
        sizes.append(len(X))
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(SegmentationLearner, "fit", fit)
    rounds, result = _drift_round(images, "iterative", BATCH, drift_rule="fake_normals",
                                  drift_normal_share=0.25)
    flagged = np.flatnonzero(np.isin(np.arange(8, 32), BATCH))  # positions among unlabelled
    assert len(result.drift_normals) == 2 and np.isin(result.drift_normals, flagged).all()
    msmr = rounds.msmr_of(as_pool(images[0]))[8:][flagged]
    assert set(result.drift_normals) == set(flagged[np.argsort(msmr)[:2]])  # lowest E_msmr
    assert sizes == [8 + 2]  # S saw the labelled set and the two
    assert not np.isin(result.fake_normals, flagged).any()  # the batch gives no fake normal
    _, plain = _drift_round(images, "iterative")
    assert len(result.fake_normals) == len(plain.fake_normals)


def test_refresh_rule_retrains_m_and_reserves_labels_for_the_batch(images):
    first = engine()
    first.run_round(as_pool(images[0]), np.arange(8, 32), images[0][:8], images[1][:8], 0, 4,
                    stage="cold_start")
    old_m = first.msmr_scorer
    messages: list[str] = []
    result = SID4DSRounds(first.segmenter, old_m, drift_rule="refresh", reserve_share=0.5,
                          say=messages.append).run_round(
        as_pool(images[0]), np.arange(8, 32), images[0][:8], images[1][:8], 1, 4,
        stage="cold_start", drifted=BATCH)
    flagged = np.flatnonzero(np.isin(np.arange(8, 32), BATCH))
    assert "M" in result.trained  # trained again on the grown pool
    assert len(result.reserved) == 2 and np.isin(result.reserved, result.selected).all()
    assert np.isin(result.reserved, flagged).all()
    assert not np.isin(result.fake_normals, flagged).any()
    assert any("does not look like the pool" in message for message in messages)


def test_fake_normals_msmr_rule_ranks_the_batch_by_m_in_the_places_it_had(images):
    rounds, result = _drift_round(images, "iterative", BATCH, drift_rule="fake_normals_msmr")
    _, plain = _drift_round(images, "iterative", BATCH, drift_rule="fake_normals")
    flagged = np.isin(np.arange(8, 32), BATCH)
    # the same S (the batch's quarter as normals) and scores: only the batch's order moves
    np.testing.assert_array_equal(result.scores, plain.scores)
    np.testing.assert_array_equal(result.drift_normals, plain.drift_normals)
    np.testing.assert_array_equal(flagged[result.order], flagged[plain.order])
    np.testing.assert_array_equal(result.order[~flagged[result.order]],
                                  plain.order[~flagged[plain.order]])
    msmr = rounds.msmr_of(as_pool(images[0]))[8:]
    batch_order = result.order[flagged[result.order]]
    assert (np.diff(msmr[batch_order]) <= 0).all()  # highest E_msmr first
    assert not (np.diff(msmr[plain.order[flagged[plain.order]]]) <= 0).all()
    np.testing.assert_array_equal(result.selected, result.order[:4])
    assert not np.isin(result.fake_normals, np.flatnonzero(flagged)).any()


def test_fake_normals_reserve_rule_gives_a_share_of_k_to_the_batchs_top(images):
    _, result = _drift_round(images, "iterative", BATCH, drift_rule="fake_normals_reserve",
                             reserve_share=0.5)
    flagged = np.isin(np.arange(8, 32), BATCH)
    batch_order = result.order[flagged[result.order]]
    assert len(result.drift_normals) == 2
    np.testing.assert_array_equal(np.sort(result.reserved), np.sort(batch_order[:2]))
    assert np.isin(result.reserved, result.selected).all() and len(result.selected) == 4
    assert flagged[result.selected].sum() >= 2
    with pytest.raises(ValueError, match="drift_rule"):
        engine(drift_rule="refit").run_round(as_pool(images[0]), np.arange(8, 32),
                                             *normal_labels(0), 0, 4, drifted=BATCH)
