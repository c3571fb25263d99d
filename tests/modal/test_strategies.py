import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modAL.models import ActiveLearner

from sid4ds import (
    DefectActiveLearner,
    ReconstructionScorer,
    SegmentationLearner,
    msmr_sampling,
    rank_pool,
    sdr_sampling,
    sdr_scores,
)
from sid4ds.modal.strategies import learner_engine
from sid4ds.ranking.score_cache import model_fingerprint
from sid4ds.ranking.scores import fuse_ranks, rank_below_marked
from sid4ds.ranking.selection import content_keys

from ..conftest import TINY_NET

SCORER = {**TINY_NET, "patch_size": 4, "n_blocks": 4, "max_epochs": 1, "random_state": 0}


def rows_of(images: np.ndarray, chunk: np.ndarray) -> list[int]:
    """Rows of ``images`` that hold each image of ``chunk`` (for fake segmenters)."""
    return [int(np.flatnonzero((images == image).all(axis=(1, 2, 3)))[0]) for image in chunk]

# score vectors with many ties: values drawn from a handful of levels, or constant
score_vectors = st.integers(1, 40).flatmap(
    lambda n: st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, np.inf]), min_size=n, max_size=n)
)


@settings(max_examples=200, deadline=None)
@given(scores=score_vectors, n_instances=st.integers(1, 50), n_normal=st.integers(0, 50))
def test_rank_pool_invariants(scores, n_instances, n_normal):
    scores = np.array(scores)
    keys = np.arange(len(scores))[::-1] * 7 % 11  # arbitrary keys with repeats
    top, bottom = rank_pool(scores, n_instances, n_normal, tie_keys=keys)
    n = len(scores)
    assert len(top) == min(n_instances, n)
    assert len(set(top)) == len(top) and len(set(bottom)) == len(bottom)
    assert all(0 <= index < n for index in [*top, *bottom])
    assert not set(top) & set(bottom)
    assert len(bottom) == min(n_normal, n - len(top))
    unselected = np.setdiff1d(np.arange(n), top)
    if len(unselected):
        assert scores[top].min() >= scores[unselected].max()
    ordered = scores[top]
    assert all(ordered[i] >= ordered[i + 1] for i in range(len(ordered) - 1))  # best first
    rest = np.setdiff1d(unselected, bottom)
    if len(bottom) and len(rest):
        assert scores[bottom].max() <= scores[rest].min()


@settings(max_examples=200, deadline=None)
@given(scores=score_vectors, n_instances=st.integers(1, 50), n_normal=st.integers(0, 50),
       seed=st.integers(0, 10_000))
def test_permuting_the_pool_permutes_the_selection(scores, n_instances, n_normal, seed):
    scores = np.array(scores)
    images = np.random.default_rng(seed).random((len(scores), 1, 2, 2))
    keys = content_keys(images)
    top, bottom = rank_pool(scores, n_instances, n_normal, tie_keys=keys)
    permutation = np.random.default_rng(seed + 1).permutation(len(scores))
    top_p, bottom_p = rank_pool(scores[permutation], n_instances, n_normal,
                                tie_keys=content_keys(images[permutation]))
    assert np.array_equal(permutation[top_p], top)
    assert np.array_equal(permutation[bottom_p], bottom)


def test_ties_are_broken_reproducibly_without_keys():
    top, bottom = rank_pool(np.zeros(6), 2, 2)
    assert top.tolist() == [0, 1] and bottom.tolist() == [5, 4]


@pytest.mark.parametrize(("n_instances", "error", "message"), [
    (0, ValueError, "n_instances must be >= 1; got 0"),
    (-3, ValueError, "n_instances must be >= 1; got -3"),
    (2.0, TypeError, "n_instances must be an int"),
])
def test_invalid_n_instances(n_instances, error, message):
    with pytest.raises(error, match=message):
        rank_pool(np.ones(4), n_instances)


def test_empty_pool_and_nan_scores_are_errors():
    with pytest.raises(ValueError, match="X_pool is empty"):
        rank_pool(np.array([]), 1)
    with pytest.raises(ValueError, match="scores contain NaN"):
        rank_pool(np.array([0.1, np.nan]), 1)


def test_msmr_sampling_in_a_plain_modal_learner_trains_the_scorer_once(square_defects):
    images, _ = square_defects
    learner = ActiveLearner(estimator=SegmentationLearner(**TINY_NET),
                            query_strategy=msmr_sampling)
    indices, X_query = learner.query(images, n_instances=5,
                                     scorer=ReconstructionScorer(**SCORER))
    assert indices.shape == (5,) and np.array_equal(X_query, images[indices])
    scorer = learner.sid4ds_state.engine.msmr_scorer  # the one place a strategy keeps M
    history_length = len(scorer.history_)
    again, _ = learner.query(images, n_instances=5)  # no scorer=: the kept one, not retrained
    assert learner.sid4ds_state.engine.msmr_scorer is scorer
    assert len(scorer.history_) == history_length
    assert np.array_equal(again, indices)
    expected = np.argsort(-scorer.score_samples(images), kind="stable")[:5]
    assert set(indices) == set(expected)


def test_msmr_sampling_with_no_arguments_fits_a_default_scorer(square_defects):
    images, _ = square_defects
    learner = ActiveLearner(estimator=SegmentationLearner(**TINY_NET, random_state=3),
                            query_strategy=msmr_sampling)
    indices, _ = learner.query(images[:, :, :16, :16], n_instances=2)
    assert len(indices) == 2
    scorer = learner.sid4ds_state.engine.msmr_scorer
    assert isinstance(scorer, ReconstructionScorer)
    assert scorer.random_state == 3  # seeded from the learner's estimator
    assert scorer.get_params()["n_blocks"] == ReconstructionScorer().n_blocks


def test_n_instances_larger_than_the_pool_returns_the_whole_pool(square_defects):
    images, _ = square_defects
    learner = ActiveLearner(estimator=SegmentationLearner(**TINY_NET),
                            query_strategy=msmr_sampling)
    indices, _ = learner.query(images[:3], n_instances=10, scorer=ReconstructionScorer(**SCORER))
    assert sorted(indices.tolist()) == [0, 1, 2]


def test_sdr_sampling_needs_a_fitted_segmenter(square_defects):
    images, _ = square_defects
    learner = ActiveLearner(estimator=SegmentationLearner(**TINY_NET),
                            query_strategy=sdr_sampling)
    with pytest.raises(ValueError, match="needs a fitted segmentation learner"):
        learner.query(images, n_instances=2)


def test_sdr_sampling_ranks_by_region_error_and_starts_g_from_m(square_defects):
    images, masks = square_defects
    learner = DefectActiveLearner(
        SegmentationLearner(**TINY_NET, max_epochs=1, random_state=0),
        query_strategy=sdr_sampling, X_training=images[:12], y_training=masks[:12])
    learner.msmr_scorer = ReconstructionScorer(**SCORER).fit(images)
    indices, _, scores = learner.query(images[12:], n_instances=3, return_metrics=True,
                                       fusion=None)
    G = learner.sdr_scorer
    assert G.fit_mode_ == "label_guided" and G is not learner.msmr_scorer
    assert len(G.history_) == 2  # M's epoch plus G's own
    pseudolabels = learner.estimator.predict(images[12:])
    expected = G.score_samples(images[12:], regions=pseudolabels)
    assert np.allclose(scores, expected[indices])
    assert scores.min() >= np.delete(expected, indices).max()
    # the default fuses E_sdr with S's mean probability by rank
    _, _, fused = learner.query(images[12:], n_instances=3, return_metrics=True)
    assert ((fused > 0) & (fused <= 1)).all() and (np.diff(fused) <= 0).all()  # rank shares
    assert learner.sid4ds_state.last_round.score == "E_sdr+S"
    with pytest.raises(ValueError, match=r"fusion must be one of None, 'rank'; got 'max'"):
        learner.query(images[12:], n_instances=3, fusion="max")


def test_sdr_ties_follow_the_remembered_e_msmr(square_defects):
    images, masks = square_defects

    class NothingFound:  # a fitted segmenter that flags no pixel: every E_sdr is 0
        module_ = object()

        def predict(self, X):
            return np.zeros((len(X), 16, 16), np.uint8)

    class Learner:
        estimator = NothingFound()

    learner = Learner()
    engine = learner_engine(learner)
    engine.sdr_scorer = ReconstructionScorer(**SCORER).fit(images, masks)
    engine.msmr_scorer = ReconstructionScorer(**SCORER).fit(images)
    msmr = np.random.default_rng(0).random(len(images))  # E_msmr kept from a cold start
    engine.score_cache.store("E_msmr", model_fingerprint(engine.msmr_scorer),
                             content_keys(images), msmr)
    indices, scores = sdr_sampling(learner, images, n_instances=5, fusion=None)
    assert (scores == 0).all()
    assert indices.tolist() == np.argsort(-msmr)[:5].tolist()


def test_e_sdr_ranks_defects_first_when_s_is_weak(square_defects):
    """A weak S (every probability below 0.5, a little higher on the defects): the paper's
    regions are empty, so E_sdr ties at 0; the adaptive rule keeps S's evidence."""
    from sklearn.metrics import roc_auc_score

    images, masks = square_defects
    rng = np.random.default_rng(1)

    class WeakSegmenter:  # probabilities 0.1–0.3 everywhere, +0.1 on the defect pixels
        module_ = object()
        threshold = 0.5

        def predict_proba_chunk(self, chunk):
            rows = rows_of(images, chunk)
            noise = 0.1 + 0.2 * rng.random((len(chunk), 16, 16))
            return (noise + 0.1 * masks[rows]).astype(np.float32)

    G = ReconstructionScorer(**SCORER).fit(images, masks)
    defective = masks.reshape(len(masks), -1).any(axis=1)
    paper = sdr_scores(WeakSegmenter(), G, images, region="threshold")
    assert (paper == 0).all()
    adaptive = sdr_scores(WeakSegmenter(), G, images)
    assert roc_auc_score(defective, adaptive) > 0.8


def test_adaptive_e_sdr_ranks_images_s_marks_above_the_fallback_regions(square_defects):
    """S marks one background pixel of each defective image and nothing in the normal ones,
    where its probability is flat, so the adaptive fallback region of a normal image is the
    whole image: its summed error dwarfs the single marked pixel. The images S marks must
    still come first, with the paper's E_sdr; the unmarked keep their own order."""
    from sklearn.metrics import roc_auc_score

    images, masks = square_defects
    defective = masks.reshape(len(masks), -1).any(axis=1)

    class OnePixelSegmenter:
        module_ = object()
        threshold = 0.5

        def predict_proba_chunk(self, chunk):
            rows = rows_of(images, chunk)
            probabilities = np.full((len(chunk), 16, 16), 0.4, dtype=np.float32)
            probabilities[defective[rows], 15, 15] = 0.9  # a corner, never the square
            return probabilities

    G = ReconstructionScorer(**SCORER).fit(images, masks)
    scores = sdr_scores(OnePixelSegmenter(), G, images)
    paper = sdr_scores(OnePixelSegmenter(), G, images, region="threshold")
    assert scores[defective].min() > scores[~defective].max()
    assert roc_auc_score(defective, scores) == 1.0
    np.testing.assert_allclose(scores[defective], paper[defective])
    whole_image = G.score_samples(images, np.ones_like(masks))  # the normals' fallback region
    assert whole_image[~defective].min() > paper[defective].max()  # what used to win
    np.testing.assert_array_equal(np.argsort(scores[~defective]),
                                  np.argsort(whole_image[~defective]))
    assert ((scores[~defective] >= -1) & (scores[~defective] < 0)).all()


def test_rank_below_marked_is_monotone_within_each_group():
    rng = np.random.default_rng(3)
    errors = rng.random(50) * rng.choice([1e-4, 1.0, 100.0], size=50)
    marked = rng.random(50) < 0.3
    scores = rank_below_marked(errors, marked)
    assert scores[marked].min() > scores[~marked].max()
    for group in (marked, ~marked):
        np.testing.assert_array_equal(np.argsort(scores[group], kind="stable"),
                                      np.argsort(errors[group], kind="stable"))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=2, max_size=30), st.integers(0, 2**32 - 1))
def test_fuse_ranks_follows_either_score_when_the_other_says_nothing(values, seed):
    esdr = np.array(values)
    evidence = np.random.default_rng(seed).permutation(len(esdr)).astype(float)
    flat = np.zeros(len(esdr))
    for fused, follows in ((fuse_ranks(esdr, flat), esdr), (fuse_ranks(flat, evidence),
                                                            evidence)):
        # the same order as the informative score (ties stay ties)
        assert (np.sign(np.subtract.outer(fused, fused))
                == np.sign(np.subtract.outer(follows, follows))).all()
    both = fuse_ranks(esdr, evidence, weight=0.25)
    assert ((both > 0) & (both <= 1)).all()
    np.testing.assert_allclose(fuse_ranks(esdr, evidence, weight=0.0),
                               fuse_ranks(esdr, flat, weight=0.0))
    with pytest.raises(ValueError, match="weight must be in"):
        fuse_ranks(esdr, evidence, weight=1.5)
    with pytest.raises(ValueError, match="1-d arrays of one score per image"):
        fuse_ranks(esdr, evidence[:-1])


def test_fused_e_sdr_ranks_by_both_g_error_and_s_mean_probability(square_defects):
    """fusion="rank": the rank mean of E_sdr and S's mean probability. Images S sees as
    widely suspect (a large region below S's threshold, away from where G errs most) move
    up against E_sdr's order, to the top of the fused ranking."""
    from scipy.stats import rankdata

    images, masks = square_defects
    defective = masks.reshape(len(masks), -1).any(axis=1)

    class SuspectSegmenter:  # 0.45 on the defective images' background, 0.1 elsewhere
        module_ = object()
        threshold = 0.5

        def predict_proba_chunk(self, chunk):
            rows = rows_of(images, chunk)
            probabilities = np.full((len(chunk), 16, 16), 0.1, dtype=np.float32)
            suspect = defective[rows][:, None, None] & (masks[rows] == 0)
            probabilities[suspect] = 0.45
            return probabilities

    G = ReconstructionScorer(**SCORER).fit(images, masks)
    esdr = sdr_scores(SuspectSegmenter(), G, images)
    fused = sdr_scores(SuspectSegmenter(), G, images, fusion="rank")
    mean_probability = np.where(defective, (240 * 0.45 + 16 * 0.1) / 256, 0.1)
    np.testing.assert_allclose(fused, fuse_ranks(esdr, mean_probability), rtol=1e-6)
    assert rankdata(fused)[defective].mean() > rankdata(esdr)[defective].mean() + 2
    assert fused[defective].min() > np.median(fused[~defective])
    with pytest.raises(ValueError, match="fusion must be one of None, 'rank'"):
        sdr_scores(SuspectSegmenter(), G, images, fusion="max")
