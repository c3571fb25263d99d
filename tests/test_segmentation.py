import numpy as np
import pytest
import torch

from sid4ds import SegmentationLearner
from sid4ds.datasets import make_defect_images

from .conftest import TINY_NET


def tiny(**params):
    return SegmentationLearner(**{**TINY_NET, "random_state": 0, **params})


def test_shapes_and_dtypes_of_outputs(square_defects):
    images, masks = square_defects
    learner = tiny(max_epochs=1).fit(images, masks)
    probabilities = learner.predict_proba(images)
    assert probabilities.shape == (24, 16, 16) and probabilities.dtype == np.float32
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    predicted = learner.predict(images)
    assert predicted.dtype == np.uint8 and set(np.unique(predicted)) <= {0, 1}
    assert np.array_equal(predicted, (probabilities >= learner.threshold).astype(np.uint8))
    assert learner.transform(images).shape == (24, 16)
    assert [entry["epoch"] for entry in learner.history_] == [1]


def test_accepts_3d_uint8_images_and_flat_masks(square_defects):
    images, masks = square_defects
    uint8_images = (images[:, 0] * 255).astype(np.uint8)
    learner = tiny(max_epochs=1).fit(uint8_images, masks.reshape(24, -1))
    assert learner.n_channels_in_ == 1 and learner.image_shape_ == (16, 16)
    assert learner.predict(uint8_images).shape == (24, 16, 16)


def test_trained_learner_beats_an_untrained_one_on_held_out_images():
    X, masks = make_defect_images(n_samples=160, image_size=32, defect_ratio=0.5,
                                  random_state=1)
    X_test, masks_test = make_defect_images(n_samples=60, image_size=32, defect_ratio=0.5,
                                            random_state=2)
    untrained = SegmentationLearner(**TINY_NET, max_epochs=1, lr=1e-12, random_state=0)
    trained = SegmentationLearner(base_channels=8, depth=2, max_epochs=20, batch_size=8,
                                  random_state=0)
    untrained_iou = untrained.fit(X, masks).score(X_test, masks_test)
    trained_iou = trained.fit(X, masks).score(X_test, masks_test)
    assert trained_iou > 0.15
    assert trained_iou > untrained_iou + 0.1


@pytest.mark.parametrize("seed", [0, 2])
def test_new_recipe_beats_the_old_one_on_few_defects_at_the_same_budget(seed):
    """10% defective training images: the old recipe (release 0.x: epochs of uniform batches
    of 32, constant lr 1e-3) stays near "all background"; the new one, given the same number
    of images through the network (twice the steps at half the batch), finds defects."""
    X, masks = make_defect_images(n_samples=96, image_size=32, defect_ratio=0.1, random_state=1)
    X_test, masks_test = make_defect_images(n_samples=60, image_size=32, defect_ratio=0.5,
                                            random_state=2)
    old = SegmentationLearner(base_channels=8, depth=2, max_epochs=30, batch_size=32, lr=1e-3,
                              lr_schedule="constant", defect_share=0.0,
                              augment=("brightness_contrast", "flip"), best_window=20,
                              random_state=seed).fit(X, masks)
    old_steps = sum(entry["steps"] for entry in old.history_)
    new = SegmentationLearner(base_channels=8, depth=2, max_steps=2 * old_steps,
                              random_state=seed).fit(X, masks)
    assert new.batch_size * 2 * old_steps == old.batch_size * old_steps * 1  # same images seen
    assert new.score(X_test, masks_test) > old.score(X_test, masks_test) + 0.1


def test_best_window_keeps_the_lowest_loss_epoch(square_defects):
    images, masks = square_defects
    learner = tiny(max_epochs=6, best_window=3, lr=0.05).fit(images, masks)
    losses = [entry["loss"] for entry in learner.history_]
    assert learner.best_epoch_ == 4 + int(np.argmin(losses[3:]))


def test_warm_start_continues_and_cold_fit_restarts(square_defects):
    images, masks = square_defects
    cold = tiny(max_epochs=2).fit(images, masks)
    first_weights = {k: v.clone() for k, v in cold.module_.state_dict().items()}
    cold.fit(images, masks)
    assert len(cold.history_) == 2  # fresh history: restarted
    for key, value in cold.module_.state_dict().items():  # same seed: same weights again
        assert torch.equal(value, first_weights[key])

    warm = tiny(max_epochs=2, warm_start=True).fit(images, masks)
    warm.fit(images, masks)
    assert [entry["epoch"] for entry in warm.history_] == [1, 2, 3, 4]
    changed = any(not torch.equal(value, first_weights[key])
                  for key, value in warm.module_.state_dict().items())
    assert changed


def test_partial_fit_trains_further_without_reinitialising(square_defects):
    images, masks = square_defects
    learner = tiny(max_epochs=2).partial_fit(images, masks)
    assert len(learner.history_) == 2
    module = learner.module_
    learner.partial_fit(images, masks, epochs=3)
    assert learner.module_ is module and len(learner.history_) == 5


def test_same_random_state_same_outputs_and_no_global_rng_use(square_defects):
    images, masks = square_defects
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 - checking it is untouched
    torch_state = torch.random.get_rng_state().clone()
    first = tiny(max_epochs=2).fit(images, masks).predict_proba(images)
    second = tiny(max_epochs=2).fit(images, masks).predict_proba(images)
    other = SegmentationLearner(**TINY_NET, max_epochs=2, random_state=1).fit(
        images, masks).predict_proba(images)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"max_epochs": 0}, ValueError, "max_epochs must be >= 1; got 0"),
        ({"lr": -1.0}, ValueError, r"lr must be in \(0.0, inf\]; got -1.0"),
        ({"threshold": 1.5}, ValueError, r"threshold must be in \[0.0, 1.0\]; got 1.5"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer must be one of 'sgd', 'adamw'"),
        ({"device": "tpu:9"}, ValueError, "device must be 'auto', 'cpu'"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an int; got 2.5"),
        ({"bce_weight": 0, "dice_weight": 0}, ValueError, "both 0"),
        ({"random_state": "seed"}, TypeError, "random_state must be None, an int"),
    ],
)
def test_bad_parameters_are_reported_at_fit(square_defects, params, error, message):
    images, masks = square_defects
    learner = tiny(**params)  # __init__ accepts anything
    with pytest.raises(error, match=message):
        learner.fit(images, masks)


def test_bad_inputs_name_the_argument(square_defects):
    images, masks = square_defects
    learner = tiny(max_epochs=1)
    with pytest.raises(ValueError, match="y has 23 masks for 24 images"):
        learner.fit(images, masks[:-1])
    with pytest.raises(ValueError, match="y must hold 0 .* got values 2"):
        learner.fit(images, masks * 2)
    with pytest.raises(ValueError, match="X: image height 18 is not divisible by 2\\*\\*depth=4"):
        learner.fit(np.zeros((2, 1, 18, 16), np.float32), np.zeros((2, 18, 16)))
    learner.fit(images, masks)
    with pytest.raises(ValueError, match="X has 3 channel.* fitted on 1"):
        learner.predict(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="y has shape"):
        learner.score(images, masks[:, :8])


def test_cuda_unavailable_is_a_clear_error(square_defects, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    images, masks = square_defects
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        tiny(device="cuda").fit(images, masks)


@pytest.mark.cuda
def test_cuda_training_and_prediction(square_defects):
    images, masks = square_defects
    learner = tiny(max_epochs=2, device="cuda").fit(images, masks)
    assert learner.device_.type == "cuda"
    assert learner.predict_proba(images).dtype == np.float32
