"""The training recipe (sid4ds.nn.training) and the one training loop that follows it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sid4ds import ReconstructionScorer, SegmentationLearner
from sid4ds.nn.training import (
    auto_learning_rate,
    batch_indices,
    learning_rate,
    n_training_steps,
    peak_learning_rate,
    steps_per_epoch,
)

from ..conftest import TINY_NET


def test_multistep_schedule_is_the_papers_scaled_to_the_epochs():
    rates = [learning_rate(epoch * 3, 360, 0.1, "multistep", epoch_steps=3)
             for epoch in (0, 29, 30, 59, 60, 90, 119)]
    assert np.allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 1e-4, 1e-4])
    assert np.allclose([learning_rate(epoch, 8, 0.1, "multistep") for epoch in range(8)],
                       [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4])


def test_one_cycle_warms_up_peaks_and_decays_to_almost_nothing():
    rates = np.array([learning_rate(step, 1000, 3e-3, "onecycle", warmup=0.1)
                      for step in range(1000)])
    assert rates[0] == pytest.approx(3e-3 / 25)
    assert rates.argmax() == 100 and rates.max() == pytest.approx(3e-3)
    assert (np.diff(rates[:100]) > 0).all() and (np.diff(rates[100:]) <= 0).all()
    assert rates[-1] == pytest.approx(3e-7)
    cosine = [learning_rate(step, 10, 1.0, "cosine") for step in (0, 5)]
    assert cosine == pytest.approx([1.0, 0.5])


def test_the_auto_rate_falls_with_the_budget_rises_with_the_batch_and_is_capped():
    steps = [10, 111, 250, 1000, 2000, 4000]
    rates = [auto_learning_rate(n, 16) for n in steps]
    assert rates[:2] == pytest.approx([3e-3, 3e-3], rel=1e-3)  # short fits: the cap
    assert rates[2:] == pytest.approx([2e-3, 1e-3, 1e-3 / np.sqrt(2), 5e-4])
    assert auto_learning_rate(1000, 64) == pytest.approx(2e-3)  # sqrt of the batch
    assert auto_learning_rate(50, 64) == pytest.approx(6e-3)
    assert peak_learning_rate(0.01, 5, 16) == 0.01  # a number is used as given


def test_the_loop_trains_at_the_auto_rate_and_only_s_accepts_it(square_defects):
    images, masks = square_defects
    learner = SegmentationLearner(**TINY_NET, max_steps=150, batch_size=8, random_state=0)
    learner.fit(images, masks)
    peak = max(entry["lr"] for entry in learner.history_)
    assert peak == pytest.approx(auto_learning_rate(150, 8), rel=0.01)
    fixed = SegmentationLearner(**TINY_NET, max_steps=30, batch_size=8, lr=1e-3,
                                random_state=0).fit(images, masks)
    assert max(entry["lr"] for entry in fixed.history_) == pytest.approx(1e-3, rel=0.03)
    with pytest.raises(ValueError, match=r"lr must be a positive number; got 'auto'"):
        ReconstructionScorer(**TINY_NET, patch_size=4, n_blocks=4, max_epochs=1,
                             lr="auto").fit(images)


def test_a_step_budget_does_not_depend_on_the_training_set():
    assert n_training_steps(100, 16, None, 500) == n_training_steps(1000, 16, None, 500) == 500
    assert n_training_steps(100, 16, 3, None) == 3 * steps_per_epoch(100, 16) == 21


@settings(max_examples=25, deadline=None)
@given(n_defective=st.integers(1, 10), n_normal=st.integers(1, 40),
       batch_size=st.integers(2, 16), share=st.sampled_from([0.25, 0.5, 0.75]))
def test_defect_aware_batches_hold_the_share_and_visit_every_defect(n_defective, n_normal,
                                                                   batch_size, share):
    defective = np.arange(n_defective + n_normal) < n_defective
    epochs = batch_indices(np.random.default_rng(0), len(defective), batch_size, defective,
                           defect_share=share)
    if n_defective >= share * len(defective):  # not rare: uniform shuffling
        assert sorted(np.concatenate(next(epochs)).tolist()) == list(range(len(defective)))
        return
    per_batch = min(batch_size - 1, max(1, round(share * batch_size)))
    seen = []
    for _ in range(3):
        for batch in next(epochs):
            assert len(batch) == batch_size and int(defective[batch].sum()) == per_batch
            seen += batch.tolist()
    if 3 * steps_per_epoch(len(defective), batch_size) * per_batch >= n_defective:
        assert set(np.flatnonzero(defective)) <= set(seen)  # shuffled passes, none left out


def test_defects_as_common_as_the_share_are_not_drawn_less_often():
    # 30 of 40 defective: a batch share of 0.5 would under-sample them; batches stay uniform
    defective = np.arange(40) < 30
    uniform = batch_indices(np.random.default_rng(0), 40, 8)
    common = batch_indices(np.random.default_rng(0), 40, 8, defective, defect_share=0.5)
    assert all((a == b).all() for a, b in zip(next(uniform), next(common), strict=True))
    # 10 of 40: rarer than the share, so every batch holds 4 of them
    rare = batch_indices(np.random.default_rng(0), 40, 8, np.arange(40) < 10, 0.5)
    assert [int((batch < 10).sum()) for batch in next(rare)] == [4] * 5


def test_uniform_batches_are_one_permutation_per_epoch():
    epochs = batch_indices(np.random.default_rng(0), 10, 4)
    first = next(epochs)
    assert [len(batch) for batch in first] == [4, 4, 2]
    assert sorted(np.concatenate(first).tolist()) == list(range(10))
    # no defective image, or a share of 0: the same uniform shuffling
    same = batch_indices(np.random.default_rng(0), 10, 4, np.zeros(10, bool), 0.5)
    assert all((a == b).all() for a, b in zip(first, next(same), strict=True))


def test_segmentation_learner_trains_its_step_budget_whatever_the_set_size(square_defects):
    images, masks = square_defects
    for n_images in (8, 24):
        learner = SegmentationLearner(**TINY_NET, max_steps=7, batch_size=4,
                                      random_state=0).fit(images[:n_images], masks[:n_images])
        assert sum(entry["steps"] for entry in learner.history_) == 7
    by_epochs = SegmentationLearner(**TINY_NET, max_epochs=2, batch_size=4, random_state=0)
    by_epochs.fit(images, masks)
    assert [entry["steps"] for entry in by_epochs.history_] == [6, 6]


def test_reconstruction_scorer_takes_a_step_budget_too(square_defects):
    images, _ = square_defects
    scorer = ReconstructionScorer(**TINY_NET, patch_size=4, n_blocks=4, max_epochs=None,
                                  max_steps=5, batch_size=8, random_state=0).fit(images)
    assert sum(entry["steps"] for entry in scorer.history_) == 5
    with pytest.raises(ValueError, match="max_epochs and max_steps are both None"):
        ReconstructionScorer(max_epochs=None).fit(images)
