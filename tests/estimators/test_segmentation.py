import numpy as np
import pytest
import torch

from sid4ds import SegmentationLearner
from sid4ds.datasets import make_defect_images
from sid4ds.metrics import defect_iou
from sid4ds.nn.augment import random_crops
from sid4ds.nn.training import auto_learning_rate

from ..conftest import TINY_NET


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


def bright_squares(n_images: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Noisy grey images; every fourth carries a bright 4x4 square, marked in its mask."""
    rng = np.random.default_rng(seed)
    images = (0.4 + 0.1 * rng.standard_normal((n_images, 1, size, size))).clip(0, 1)
    masks = np.zeros((n_images, size, size), dtype=np.uint8)
    for index in range(0, n_images, 4):
        row, col = rng.integers(0, size - 4, size=2)
        masks[index, row : row + 4, col : col + 4] = 1
        images[index, 0, row : row + 4, col : col + 4] = 0.8
    return images.astype(np.float32), masks


@pytest.mark.parametrize(("n_images", "max_steps"), [(40, 120), (1000, 400)])
def test_the_default_rate_learns_a_short_small_fit_and_a_long_large_one(n_images, max_steps):
    """lr="auto": the rate follows the budget, so neither a 40-image fit of 120 steps (as
    tests and examples train) nor a 1000-image fit of 400 steps (at 2.5 times the rate of
    the default 1000-step fit) needs its own
    rate; each segments held-out squares and beats the same S barely trained."""
    X, masks = bright_squares(n_images, seed=n_images)
    X_test, masks_test = bright_squares(80, seed=1)
    learner = tiny(max_steps=max_steps).fit(X, masks)
    assert learner.lr == "auto" and max(entry["lr"] for entry in learner.history_) == (
        pytest.approx(auto_learning_rate(max_steps, 16), rel=0.02))
    barely = tiny(max_steps=3).fit(X, masks)
    iou = learner.score(X_test, masks_test)
    assert iou >= 0.6 and iou > barely.score(X_test, masks_test) + 0.3


def test_random_crops_keep_a_defect_pixel_and_leave_small_images_alone():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 32, 24)
    masks = torch.zeros(64, 1, 32, 24)
    for index in range(0, 64, 2):  # one defect pixel anywhere, corners included
        masks[index, 0, (index * 7) % 32, (index * 5) % 24] = 1
    cut_images, cut_masks = random_crops(images, masks, (8, 8), generator)
    assert cut_images.shape == (64, 1, 8, 8) and cut_masks.shape == (64, 1, 8, 8)
    assert (cut_masks[0::2].flatten(1).sum(dim=1) == 1).all()  # each kept its defect
    assert (cut_masks[1::2] == 0).all()
    # a window is a piece of its own image
    assert any(torch.equal(cut_images[3, 0], images[3, 0, top : top + 8, left : left + 8])
               for top in range(25) for left in range(17))
    state = generator.get_state()
    same_images, same_masks = random_crops(images, masks, (32, 32), generator)
    assert same_images is images and same_masks is masks
    assert torch.equal(generator.get_state(), state)  # nothing drawn


def test_crop_size_trains_on_windows_and_predicts_whole_images():
    X, masks = bright_squares(48, seed=3, size=32)
    X_test, masks_test = bright_squares(40, seed=4, size=32)
    # 160 steps: with the pasting (default) 120 reached IoU 0.50-0.51 by thread count, 160 0.75
    cropped = tiny(max_steps=160, crop_size=16).fit(X, masks)
    assert cropped.predict(X_test).shape == (40, 32, 32)
    assert cropped.score(X_test, masks_test) >= 0.5
    # a window as large as the image is no crop: the same fit to the last bit
    whole = tiny(max_steps=5).fit(X, masks).predict_proba(X_test)
    assert np.array_equal(tiny(max_steps=5, crop_size=32).fit(X, masks).predict_proba(X_test),
                          whole)
    with pytest.raises(ValueError, match=r"crop_size must be a multiple of 2\*\*depth=4"):
        tiny(crop_size=10).fit(X, masks)


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
        ({"lr": "fast"}, ValueError, r"lr must be a positive number or \"auto\"; got 'fast'"),
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


def _squares_on_surfaces(n, levels, seed, defect):
    """16 px noisy surfaces at the given brightness levels, with a +0.3 square or not."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 1, 16, 16), np.float32)
    masks = np.zeros((n, 16, 16), np.uint8)
    for index in range(n):
        X[index, 0] = rng.choice(levels) + 0.05 * rng.standard_normal((16, 16))
        if defect:
            row, col = rng.integers(0, 12, 2)
            X[index, 0, row:row + 4, col:col + 4] += 0.3
            masks[index, row:row + 4, col:col + 4] = 1
    return X.clip(0, 1), masks


def test_pasted_defects_teach_s_defects_on_surfaces_it_saw_them_on_only_as_normals():
    # four labelled defects, all on dark surfaces; normal images of three brightnesses
    X_defective, masks_defective = _squares_on_surfaces(4, [0.2], 0, defect=True)
    X_normal, masks_normal = _squares_on_surfaces(28, [0.2, 0.45, 0.7], 1, defect=False)
    X = np.concatenate([X_defective, X_normal])
    masks = np.concatenate([masks_defective, masks_normal])
    # new images: defects on the brighter surfaces, and normals of every brightness
    X_new, masks_new = (np.concatenate(pair) for pair in zip(
        _squares_on_surfaces(24, [0.45, 0.7], 2, defect=True),
        _squares_on_surfaces(24, [0.2, 0.45, 0.7], 3, defect=False), strict=True))
    scores = {}
    for name, augment in (("plain", ("brightness_contrast", "flip")),
                          ("paste", ("paste", "brightness_contrast", "flip"))):
        scores[name] = [
            defect_iou(SegmentationLearner(**TINY_NET, max_steps=150, augment=augment,
                                           random_state=seed).fit(X, masks).predict(X_new),
                       masks_new)
            for seed in range(3)]
    assert min(scores["paste"]) > 0.4
    assert np.mean(scores["paste"]) > np.mean(scores["plain"]) + 0.2
