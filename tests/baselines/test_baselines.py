"""Baseline query strategies (sid4ds.baselines): pure functions, then the strategies."""

import pickle
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from modAL.models import ActiveLearner
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.utils import estimator_checks

from sid4ds import DefectActiveLearner, SegmentationLearner
from sid4ds.baselines import (
    RotationPretextScorer,
    coreset_sampling,
    ensemble_uncertainty,
    entropy_sampling,
    entropy_scores,
    fit_loss_prediction_head,
    greedy_k_center,
    learning_loss_sampling,
    margin_ranking_loss,
    margin_sampling,
    margin_scores,
    max_cover_selection,
    pixel_entropy,
    pixel_margin,
    predict_losses,
    pt4al_assign_batches,
    pt4al_sampling,
    pt4al_split,
    random_sampling,
    reduce_per_image,
    rotation_confidence,
    segmentation_confidence,
    suggestive_annotation_sampling,
)
from sid4ds.ranking.selection import content_keys, query_state

from ..conftest import TINY_NET

N_LABELED = 12  # square_defects: 24 images, the first 8 defective; the pool is the last 12


# ====================================================================== pure functions
def test_pixel_entropy_is_maximal_at_one_half_and_zero_at_certainty():
    p = np.linspace(0.0, 1.0, 101)
    entropy = pixel_entropy(p)
    assert p[np.argmax(entropy)] == 0.5 and entropy.max() == pytest.approx(1.0)
    assert entropy[0] == 0.0 and entropy[-1] == 0.0
    assert np.allclose(entropy, entropy[::-1])  # H(p) = H(1 - p)
    assert np.all(np.diff(entropy[:51]) > 0)  # rises towards p = 0.5


def test_pixel_margin_is_zero_at_one_half_and_one_at_certainty():
    p = np.linspace(0.0, 1.0, 101)
    margin = pixel_margin(p)
    assert margin[50] == 0.0 and margin[0] == 1.0 and margin[-1] == 1.0
    assert np.all(np.diff(margin[:51]) < 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=20))
def test_entropy_and_margin_rank_uniform_images_alike(levels):
    probabilities = np.array(levels)[:, None, None] * np.ones((1, 2, 2))
    entropy, margin = entropy_scores(probabilities), margin_scores(probabilities)
    for i in range(len(levels)):
        for j in range(len(levels)):
            if entropy[i] > entropy[j] + 1e-9:
                assert margin[i] > margin[j]


def test_foreground_reduction_ignores_background_and_scores_empty_images_zero():
    probabilities = np.full((3, 4, 4), 0.05)
    probabilities[:2, 0, 0] = 0.8  # the same one foreground pixel in images 0 and 1
    probabilities[1, 1:, :] = 0.45  # image 1: uncertain background
    foreground = entropy_scores(probabilities, reduction="foreground")
    mean = entropy_scores(probabilities, reduction="mean")
    assert foreground[0] == pytest.approx(foreground[1]) and foreground[0] > 0
    assert mean[1] > mean[0]
    assert foreground[2] == 0.0 and margin_scores(probabilities, reduction="foreground")[2] == 0
    assert margin_scores(probabilities, reduction="foreground")[0] == pytest.approx(
        1 - abs(2 * 0.8 - 1))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_foreground_score_does_not_depend_on_background_pixels(seed):
    rng = np.random.default_rng(seed)
    probabilities = rng.random((3, 4, 4))
    changed = np.where(probabilities < 0.5, rng.random((3, 4, 4)) * 0.5, probabilities)
    assert np.allclose(entropy_scores(probabilities, reduction="foreground"),
                       entropy_scores(changed, reduction="foreground"))


def test_reduce_per_image_rejects_bad_input_naming_it():
    with pytest.raises(ValueError, match="needs probabilities="):
        reduce_per_image(np.ones((2, 4, 4)), reduction="foreground")
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'foreground'"):
        reduce_per_image(np.ones((2, 4, 4)), reduction="max")
    with pytest.raises(ValueError, match=r"probabilities has values in \[0.5, 1.5\]"):
        entropy_scores(np.array([[[0.5, 1.5]]]))


def brute_force_k_center(pool, labeled, n_instances):
    """Gonzalez's greedy k-center with the full distance matrix."""
    distances = cdist(pool, np.concatenate([labeled, pool]))
    centers = list(range(len(labeled)))
    picked = []
    for _ in range(n_instances):
        nearest = distances[:, centers].min(axis=1)
        nearest[picked] = -1
        pick = int(np.argmax(nearest))
        picked.append(pick)
        centers.append(len(labeled) + pick)
    return picked


@pytest.mark.parametrize("seed", range(4))
def test_greedy_k_center_matches_brute_force_for_any_chunk_size(seed):
    rng = np.random.default_rng(seed)
    pool, labeled = rng.standard_normal((40, 5)), rng.standard_normal((7, 5))
    expected = brute_force_k_center(pool, labeled, 10)
    results = [greedy_k_center(pool, labeled, 10, chunk_size=size) for size in (1, 3, 1024)]
    for indices, distances in results:
        assert indices.tolist() == expected
        assert np.allclose(distances, results[0][1])
    first = np.argmax(cdist(pool, labeled).min(axis=1))
    assert results[0][0][0] == first  # the farthest point from the labelled set comes first


def test_greedy_k_center_without_labels_starts_farthest_from_the_mean():
    pool = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]])
    indices, distances = greedy_k_center(pool, None, 2)
    assert indices[0] == 3
    assert distances[0] == pytest.approx(np.linalg.norm(pool[3] - pool.mean(axis=0)))


def test_greedy_k_center_never_builds_a_pool_by_pool_matrix():
    rng = np.random.default_rng(0)
    pool, labeled = rng.random((3000, 2)), rng.random((2000, 2))
    tracemalloc.start()
    greedy_k_center(pool, labeled, 3, chunk_size=64)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000  # a 3000 x 2000 float64 matrix would take 48 MB


@settings(max_examples=60, deadline=None)
@given(n_pool=st.integers(1, 30), n_labeled=st.integers(0, 5), n_instances=st.integers(1, 40),
       duplicates=st.booleans(), seed=st.integers(0, 1000))
def test_greedy_k_center_contract(n_pool, n_labeled, n_instances, duplicates, seed):
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 3, size=(n_pool, 2)).astype(float) if duplicates else rng.random(
        (n_pool, 2))
    labeled = rng.random((n_labeled, 2))
    indices, distances = greedy_k_center(pool, labeled, n_instances, chunk_size=4)
    assert len(indices) == min(n_instances, n_pool) == len(set(indices.tolist()))
    assert indices.min() >= 0 and indices.max() < n_pool
    assert np.all(distances[:-1] >= distances[1:])


def test_greedy_k_center_breaks_ties_by_key_so_the_order_follows_the_content():
    pool = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    indices, _ = greedy_k_center(pool, [[0.0]], 2, tie_keys=[5, 9, 1, 2])
    assert indices.tolist() == [1, 0]  # key 9 first, then the best key on the other side


def test_max_cover_prefers_diverse_candidates_over_duplicates():
    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    pool = np.concatenate([a + 0.05 * rng.random((10, 3)), b + 0.05 * rng.random((6, 3))])
    candidates = np.stack([a, a * 2.0, a + 0.01, b])  # three copies of a (cosine 1), one b
    positions, gains = max_cover_selection(candidates, pool, n_instances=2)
    assert positions[0] in (0, 1, 2) and positions[1] == 3
    assert gains[0] > gains[1] > 0


@settings(max_examples=60, deadline=None)
@given(n_candidates=st.integers(1, 12), n_pool=st.integers(1, 20), n_instances=st.integers(1, 15),
       seed=st.integers(0, 1000))
def test_max_cover_contract(n_candidates, n_pool, n_instances, seed):
    rng = np.random.default_rng(seed)
    positions, gains = max_cover_selection(rng.random((n_candidates, 3)),
                                           rng.random((n_pool, 3)), n_instances)
    assert len(positions) == min(n_instances, n_candidates) == len(set(positions.tolist()))
    assert positions.min() >= 0 and positions.max() < n_candidates
    assert np.all(gains[:-1] >= gains[1:] - 1e-12)  # submodular: gains never increase


def test_ensemble_uncertainty_is_the_pixel_variance_across_models():
    agree = np.full((3, 1, 4, 4), 0.3)
    disagree = np.stack([np.zeros((1, 4, 4)), np.ones((1, 4, 4)), np.zeros((1, 4, 4))])
    uncertainty = ensemble_uncertainty(np.concatenate([agree, disagree], axis=1))
    assert uncertainty[0] == 0.0 and uncertainty[1] == pytest.approx(np.var([0, 1, 0]))


@settings(max_examples=60, deadline=None)
@given(losses=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=1, max_size=40),
       n_batches=st.integers(1, 12), seed=st.integers(0, 1000))
def test_pt4al_split_gives_equal_batches_in_descending_loss(losses, n_batches, seed):
    losses = np.array(losses)  # many ties
    keys = np.random.default_rng(seed).permutation(len(losses))
    batches, bounds = pt4al_split(losses, n_batches, tie_keys=keys)
    n_split = min(n_batches, len(losses))
    sizes = np.bincount(batches, minlength=n_split)
    assert len(bounds) == n_split and sizes.max() - sizes.min() <= 1 and sizes.min() >= 1
    order = np.lexsort((keys, losses))[::-1]
    assert np.all(np.diff(batches[order]) >= 0)  # harder images in earlier batches
    assert np.all(bounds == [losses[batches == batch].min() for batch in range(n_split)])
    # a new image lands in the first batch whose lowest loss it reaches (else the last)
    new_losses = np.array([-1.0, 0.25, 0.5, 0.75, 3.0])
    placed = pt4al_assign_batches(new_losses, bounds)
    for loss, batch in zip(new_losses, placed, strict=True):
        reached = np.flatnonzero(bounds <= loss)
        assert batch == (reached[0] if len(reached) else n_split - 1)


def test_margin_ranking_loss_only_cares_about_the_order_of_the_targets():
    target = torch.tensor([0.1, 0.4, 0.3, 0.9])
    right_order = torch.tensor([0.0, 3.0, 2.0, 5.0])  # pairwise gaps all >= 1
    assert float(margin_ranking_loss(right_order, target)) == 0.0
    assert float(margin_ranking_loss(-right_order, target)) > 1.0
    assert float(margin_ranking_loss(-right_order, target)) == pytest.approx(
        float(margin_ranking_loss(-right_order, 10 * target + 3)))
    assert float(margin_ranking_loss(right_order, torch.ones(4))) == 0.0  # no usable pair


def test_loss_prediction_head_ranks_unseen_samples_better_than_chance():
    rng = np.random.default_rng(0)
    features = rng.random((96, 8))
    losses = features @ rng.standard_normal(8) + 0.05 * rng.standard_normal(96)
    head, history = fit_loss_prediction_head(features[:64], losses[:64], [4, 4], epochs=60,
                                             random_state=0)
    assert history[-1] < 0.5 * history[0]
    correlation = spearmanr(predict_losses(head, features[64:]), losses[64:]).statistic
    assert correlation > 0.5
    again, _ = fit_loss_prediction_head(features[:64], losses[:64], [4, 4], epochs=60,
                                        random_state=0)
    assert np.array_equal(predict_losses(again, features), predict_losses(head, features))


def test_rotation_pretext_learns_the_orientation_of_oriented_images():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.1, 0.9, 16)[:, None] * np.ones((1, 16))
    images = (ramp + 0.05 * rng.standard_normal((16, 1, 16, 16))).clip(0, 1)
    pretext = RotationPretextScorer(**TINY_NET, max_epochs=12, lr=1e-2, batch_size=8,
                                    random_state=0).fit(images)
    losses = [epoch["loss"] for epoch in pretext.history_]
    assert losses[-1] < 0.8 * losses[0]
    assert pretext.score_samples(images).mean() < np.log(4)  # better than guessing
    assert np.allclose(pretext.predict_proba(images[:2]).sum(axis=2), 1.0)


@pytest.mark.parametrize("check", ["check_no_attributes_set_in_init",
                                   "check_parameters_default_constructible",
                                   "check_get_params_invariance", "check_set_params",
                                   "check_estimator_cloneable"])
def test_rotation_pretext_scorer_follows_the_sklearn_contract(check):
    getattr(estimator_checks, check)("RotationPretextScorer", RotationPretextScorer())


def test_rotation_pretext_scorer_pickles_and_is_seeded(square_defects):
    images = square_defects[0][:8]
    pretext = RotationPretextScorer(**TINY_NET, max_epochs=1, random_state=0).fit(images)
    restored = pickle.loads(pickle.dumps(pretext))
    assert np.array_equal(restored.score_samples(images), pretext.score_samples(images))
    twin = RotationPretextScorer(**TINY_NET, max_epochs=1, random_state=0).fit(images)
    assert np.array_equal(twin.score_samples(images), pretext.score_samples(images))
    assert not np.array_equal(clone(twin).set_params(random_state=1).fit(images)
                              .score_samples(images), pretext.score_samples(images))


# ====================================================================== strategies
def pretext_model():
    return RotationPretextScorer(**TINY_NET, max_epochs=1, random_state=0)


# name: (strategy, kwargs factory, returns descending scores, leaves pool_scores_)
CASES = {
    "random": (random_sampling, lambda: {"random_state": 0}, True, False),
    "entropy": (entropy_sampling, dict, True, True),
    "entropy_foreground": (entropy_sampling, lambda: {"reduction": "foreground"}, True, True),
    "margin": (margin_sampling, dict, True, True),
    "margin_foreground": (margin_sampling, lambda: {"reduction": "foreground"}, True, True),
    "coreset": (coreset_sampling, lambda: {"chunk_size": 5}, True, False),
    "pt4al": (pt4al_sampling, lambda: {"pt4al_model": pretext_model(), "n_batches": 3},
              False, True),
    "suggestive_annotation": (suggestive_annotation_sampling,
                              lambda: {"n_models": 2, "max_epochs": 1, "random_state": 0},
                              True, True),
    "learning_loss": (learning_loss_sampling, lambda: {"epochs": 5, "random_state": 0},
                      True, True),
}


def make_learner(data, strategy, learner_class=ActiveLearner, **options):
    images, masks = data
    return learner_class(
        estimator=SegmentationLearner(**TINY_NET, max_epochs=1, random_state=0),
        query_strategy=strategy, X_training=images[:N_LABELED],
        y_training=masks[:N_LABELED], **options)


@pytest.mark.parametrize("n_instances", [3, 50])
@pytest.mark.parametrize("name", list(CASES))
def test_strategy_contract_in_a_plain_modal_learner(name, n_instances, square_defects):
    strategy, kwargs, descending, leaves_scores = CASES[name]
    images, _ = square_defects
    pool = images[N_LABELED:]
    learner = make_learner(square_defects, strategy)
    state = query_state(learner)  # the one place strategies keep what they leave
    state.pool_scores = np.zeros(99)  # stale scores from an earlier strategy
    indices, X_query, scores = learner.query(pool, n_instances=n_instances,
                                             return_metrics=True, **kwargs())
    n_expected = min(n_instances, len(pool))
    assert isinstance(indices, np.ndarray) and indices.dtype == np.int64
    assert isinstance(scores, np.ndarray) and scores.shape == (n_expected,)
    assert len(indices) == n_expected == len(set(indices.tolist()))
    assert indices.min() >= 0 and indices.max() < len(pool)
    assert np.array_equal(X_query, pool[indices])
    if descending:
        assert np.all(scores[:-1] >= scores[1:])
    if leaves_scores:
        assert state.pool_scores.shape == (len(pool),)
        assert all(keys.shape == (len(pool),) for keys in state.pool_tie_keys)
    else:
        assert state.pool_scores is None and state.pool_tie_keys is None


@pytest.mark.parametrize("name", list(CASES))
def test_strategy_is_deterministic_for_a_seed(name, square_defects):
    strategy, kwargs, _, _ = CASES[name]
    pool = square_defects[0][N_LABELED:]
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 - the legacy global RNG
    torch_state = torch.random.get_rng_state()
    runs = [make_learner(square_defects, strategy).query(pool, n_instances=4,
                                                         return_metrics=True, **kwargs())
            for _ in range(2)]
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    assert torch.equal(torch.random.get_rng_state(), torch_state)  # global RNGs untouched
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][2], runs[1][2])


@pytest.mark.parametrize("name", list(CASES))
def test_strategy_in_a_defect_active_learner_round(name, square_defects):
    strategy, kwargs, _, leaves_scores = CASES[name]
    images, masks = square_defects
    pool_indices = np.arange(N_LABELED, len(images))
    learner = make_learner(square_defects, strategy, DefectActiveLearner,
                           n_normal=2 if leaves_scores else "auto")
    options = kwargs()
    indices, X_query, fake_normals = learner.query(images[pool_indices], n_instances=3,
                                                   return_fake_normals=True, **options)
    assert len(indices) == 3 and np.array_equal(X_query, images[pool_indices][indices])
    assert len(fake_normals) == (2 if leaves_scores else 0)
    assert not set(indices.tolist()) & set(fake_normals.tolist())
    learner.teach(X_query, masks[pool_indices[indices]])
    remaining = np.delete(pool_indices, indices)
    options.pop("pt4al_model", None)  # the kept model is reused from now on
    again, _ = learner.query(images[remaining], n_instances=3, **options)
    assert len(again) == 3 == len(set(again.tolist()))


def test_random_sampling_seeds_and_default_seed(square_defects):
    pool = square_defects[0]

    class Learner:
        estimator = SegmentationLearner(random_state=7)

    first, _ = random_sampling(Learner(), pool, n_instances=5, random_state=0)
    other, _ = random_sampling(Learner(), pool, n_instances=5, random_state=1)
    assert not np.array_equal(first, other)
    default, _ = random_sampling(Learner(), pool, n_instances=5)
    assert np.array_equal(default, random_sampling(Learner(), pool, 5, random_state=7)[0])
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking the legacy global RNG
    torch_state = torch.random.get_rng_state()
    random_sampling(Learner(), pool, n_instances=5)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002 - untouched
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@pytest.mark.parametrize("strategy", [entropy_sampling, margin_sampling])
def test_uncertainty_sampling_takes_the_top_of_the_pixel_scores(strategy, square_defects):
    images, _ = square_defects
    pool = images[N_LABELED:]
    learner = make_learner(square_defects, strategy)
    indices, _, scores = learner.query(pool, n_instances=4, return_metrics=True)
    score = entropy_scores if strategy is entropy_sampling else margin_scores
    expected = score(learner.estimator.predict_proba(pool))
    assert np.allclose(scores, expected[indices])
    assert scores.min() >= np.delete(expected, indices).max()


def test_uncertainty_sampling_permuting_the_pool_permutes_the_selection(square_defects):
    images, _ = square_defects
    pool = images[N_LABELED:]
    learner = make_learner(square_defects, entropy_sampling)
    # an under-trained net predicts no foreground: every score is 0 and ties decide
    indices, _ = learner.query(pool, n_instances=4, reduction="foreground")
    permutation = np.random.default_rng(0).permutation(len(pool))
    permuted, _ = learner.query(pool[permutation], n_instances=4, reduction="foreground")
    assert np.array_equal(permutation[permuted], indices)


def test_coreset_sampling_is_greedy_k_center_from_the_labelled_images(square_defects):
    images, _ = square_defects
    pool = images[N_LABELED:]
    learner = make_learner(square_defects, coreset_sampling)
    indices, _, distances = learner.query(pool, n_instances=4, return_metrics=True)
    segmenter = learner.estimator
    expected = greedy_k_center(segmenter.transform(pool),
                               segmenter.transform(images[:N_LABELED]), 4)
    assert np.array_equal(indices, expected[0]) and np.allclose(distances, expected[1])


def pt4al_batches_of(model, images, n_batches):
    return pt4al_split(model.score_samples(images), n_batches, content_keys(images))[0]


def test_pt4al_walks_the_batches_in_order_and_keeps_its_pretext_model(square_defects):
    images, masks = square_defects
    learner = ActiveLearner(SegmentationLearner(**TINY_NET, random_state=0),
                            query_strategy=pt4al_sampling)  # no segmenter yet
    model = pretext_model()
    indices, _, scores = learner.query(images, n_instances=3, n_batches=4, pt4al_model=model,
                                       return_metrics=True)
    batches = pt4al_batches_of(model, images, 4)
    state = query_state(learner)
    assert np.all(batches[indices] == 0) and state.pt4al_batch == 1
    confidence = rotation_confidence(model.predict_proba(images[indices]))
    assert np.allclose(scores, 1 - confidence) and np.all(scores[:-1] >= scores[1:])
    in_first = np.flatnonzero(batches == 0)
    assert scores.min() >= np.max(1 - rotation_confidence(
        model.predict_proba(images[np.setdiff1d(in_first, indices)])), initial=0)
    n_epochs = len(model.history_)
    remaining = np.delete(np.arange(len(images)), indices)
    again, _ = learner.query(images[remaining], n_instances=2)
    assert state.pt4al_model is model and len(model.history_) == n_epochs  # not retrained
    assert np.all(batches[remaining[again]] == 1) and state.pt4al_batch == 2
    # once the segmenter is fitted, its confidence orders the batch
    learner.estimator.fit(images[:N_LABELED], masks[:N_LABELED])
    pool = images[np.delete(remaining, again)]
    third, _, third_scores = learner.query(pool, n_instances=2, return_metrics=True)
    expected = 1 - segmentation_confidence(learner.estimator.predict_proba(pool[third]))
    assert np.allclose(third_scores, expected)
    state.pt4al_model = None
    learner.query(pool, n_instances=1, n_batches=4)  # a fresh default model restarts at 0
    assert state.pt4al_model is not model and state.pt4al_batch == 1
    learner.query(pool, n_instances=1)  # n_batches=None keeps the split of 4
    assert state.pt4al_batch == 2 and len(state.pt4al_split[2]) == 4
    learner.query(pool, n_instances=1, n_batches=2)  # a new number re-splits, from batch 0
    assert state.pt4al_batch == 1 and len(state.pt4al_split[2]) == 2


def test_pt4al_fills_up_from_the_next_batches(square_defects):
    images, _ = square_defects
    learner = ActiveLearner(SegmentationLearner(**TINY_NET), query_strategy=pt4al_sampling)
    model = pretext_model().fit(images)
    batches = pt4al_batches_of(model, images, 4)
    indices, _ = learner.query(images, n_instances=8, n_batches=4, pt4al_model=model)
    assert sorted(batches[indices].tolist()) == [0] * 6 + [1] * 2  # 24 images: 6 per batch
    remaining = np.delete(np.arange(len(images)), indices)
    again, _ = learner.query(images[remaining], n_instances=8)
    assert sorted(batches[remaining[again]].tolist()) == [1] * 4 + [2] * 4


def test_suggestive_annotation_picks_among_the_most_uncertain(square_defects):
    images, _ = square_defects
    pool = images[N_LABELED:]
    learner = make_learner(square_defects, suggestive_annotation_sampling)
    indices, _ = learner.query(pool, n_instances=3, n_candidates=5, n_models=2, max_epochs=1,
                               random_state=0)
    uncertainty = query_state(learner).pool_scores
    fifth_highest = np.sort(uncertainty)[-5]
    assert np.all(uncertainty[indices] >= fifth_highest)
    with pytest.raises(ValueError, match="n_candidates=2 is smaller than the 3 images"):
        learner.query(pool, n_instances=3, n_candidates=2)


def test_learning_loss_sampling_ranks_by_the_trained_head(square_defects):
    images, _ = square_defects
    pool = images[N_LABELED:]
    learner = make_learner(square_defects, learning_loss_sampling)
    indices, _, scores = learner.query(pool, n_instances=4, return_metrics=True, epochs=30,
                                       random_state=0)
    state = query_state(learner)
    history = state.learning_loss_history
    assert len(history) == 30 and history[-1] < history[0]
    assert np.allclose(scores, state.pool_scores[indices])
    assert scores.min() >= np.delete(state.pool_scores, indices).max()


@pytest.mark.parametrize("strategy", [entropy_sampling, margin_sampling, coreset_sampling,
                                      learning_loss_sampling])
def test_strategies_needing_a_fitted_estimator_say_to_teach_it(strategy, square_defects):
    learner = ActiveLearner(SegmentationLearner(**TINY_NET), query_strategy=strategy)
    with pytest.raises(ValueError, match="is not fitted: teach the learner"):
        learner.query(square_defects[0], n_instances=2)


@pytest.mark.parametrize("strategy", [suggestive_annotation_sampling, learning_loss_sampling])
def test_strategies_needing_labels_say_so(strategy, square_defects):
    images, masks = square_defects
    segmenter = SegmentationLearner(**TINY_NET, max_epochs=1).fit(images[:4], masks[:4])
    learner = ActiveLearner(segmenter, query_strategy=strategy)
    with pytest.raises(ValueError, match="no X_training/y_training: teach it"):
        learner.query(images, n_instances=2)


@pytest.mark.parametrize("name", list(CASES))
def test_strategies_validate_the_pool_and_n_instances(name, square_defects):
    strategy, kwargs, _, _ = CASES[name]
    learner = make_learner(square_defects, strategy)
    with pytest.raises(ValueError, match="X_pool must have shape"):
        strategy(learner, np.zeros((4, 16)), 2, **kwargs())
    with pytest.raises(ValueError, match="n_instances must be >= 1; got 0"):
        strategy(learner, square_defects[0], 0, **kwargs())
    if name != "random":
        with pytest.raises(ValueError, match="X_pool has 3 channel"):
            strategy(learner, np.zeros((4, 3, 16, 16), np.float32), 2, **kwargs())
