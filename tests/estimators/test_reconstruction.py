import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sid4ds import ReconstructionScorer
from sid4ds.datasets import make_defect_images
from sid4ds.estimators.reconstruction import block_masks, random_patch_masks

from ..conftest import TINY_NET

SMALL = {**TINY_NET, "patch_size": 4, "n_blocks": 4, "random_state": 0}


@pytest.mark.parametrize(("height", "width", "n_blocks"), [(16, 16, 16), (24, 40, 6), (8, 8, 7)])
def test_block_masks_partition_the_image(height, width, n_blocks):
    masks = block_masks(height, width, n_blocks)
    assert masks.shape == (n_blocks, height, width)
    assert (masks.sum(axis=0) == 1).all()  # every pixel in exactly one block
    assert masks.reshape(n_blocks, -1).any(axis=1).all()


def test_sixteen_blocks_are_a_four_by_four_grid():
    sizes = block_masks(64, 64, 16).reshape(16, -1).sum(axis=1)
    assert (sizes == 16 * 16).all()


def test_too_many_blocks_is_a_clear_error():
    with pytest.raises(ValueError, match="n_blocks=64 needs a 8x8 grid .* larger than the 4x4"):
        block_masks(4, 4, 64)


@pytest.mark.parametrize("mask_ratio", [0.25, 0.75, 0.9])
def test_random_patch_masks_hide_the_requested_share_in_whole_patches(mask_ratio):
    generator = torch.Generator().manual_seed(0)
    masks = random_patch_masks(5, 16, 16, 4, mask_ratio, generator, torch.device("cpu"))
    assert masks.shape == (5, 1, 16, 16)
    expected = round(mask_ratio * 16) / 16
    assert torch.allclose(masks.mean(dim=(1, 2, 3)), torch.full((5,), expected))
    patches = masks[:, 0].unfold(1, 4, 4).unfold(2, 4, 4)  # (5, 4, 4, 4, 4)
    assert (patches.amin(dim=(-1, -2)) == patches.amax(dim=(-1, -2))).all()
    assert not torch.equal(masks[0], masks[1])  # fresh randomness per image


def test_self_supervised_fit_scores_and_reconstructs(square_defects):
    images, _ = square_defects
    scorer = ReconstructionScorer(**SMALL, max_epochs=2).fit(images)
    assert scorer.fit_mode_ == "self_supervised" and len(scorer.history_) == 2
    scores = scorer.score_samples(images)
    assert scores.shape == (24,) and scores.dtype == np.float64 and (scores >= 0).all()
    errors = scorer.block_errors(images)
    assert errors.shape == (24, 4)
    assert np.allclose(scores, errors.max(axis=1))
    reconstructions = scorer.reconstruct(images)
    assert reconstructions.shape == images.shape and reconstructions.dtype == np.float32
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1


def test_block_error_region_measures_only_the_masked_block(square_defects):
    images, _ = square_defects
    scorer = ReconstructionScorer(**SMALL, max_epochs=1).fit(images)
    whole = scorer.set_params(error_region="image").block_errors(images)
    inside = scorer.set_params(error_region="block").block_errors(images)
    # each block is a quarter of the image: the whole-image error is at least the block's
    # share of the in-block error
    assert (whole >= inside / 4 - 1e-9).all()
    assert not np.allclose(whole, inside)
    largest = scorer.set_params(error_region="block_max").block_errors(images)
    assert (largest >= inside - 1e-9).all()  # a maximum is at least the mean


def test_scores_do_not_depend_on_the_inference_batch_size(square_defects):
    images, _ = square_defects
    scorer = ReconstructionScorer(**SMALL, max_epochs=1).fit(images)
    one = scorer.set_params(inference_batch_size=4).score_samples(images)  # 1 image per batch
    many = scorer.set_params(inference_batch_size=None).score_samples(images)
    assert np.allclose(one, many, rtol=1e-5)


def test_reconstruction_mask_hides_pixels(square_defects):
    images, masks = square_defects
    scorer = ReconstructionScorer(**SMALL, max_epochs=1).fit(images)
    plain = scorer.reconstruct(images[:2])
    hidden = scorer.reconstruct(images[:2], mask=np.ones((16, 16), np.uint8))
    assert not np.allclose(plain, hidden)
    assert np.allclose(hidden[0], hidden[1])  # nothing of either image is visible
    with pytest.raises(ValueError, match="mask has 1 masks for 2 images"):
        scorer.reconstruct(images[:2], mask=np.ones((1, 8, 8)))


def test_label_guided_fit_learns_to_remove_labelled_defects(square_defects):
    images, masks = square_defects
    self_supervised = ReconstructionScorer(**SMALL, max_epochs=2).fit(images)
    guided = copy.deepcopy(self_supervised).set_params(warm_start=True, max_epochs=15, lr=0.02,
                                                       lr_schedule="constant")
    guided.fit(images, masks)
    assert guided.fit_mode_ == "label_guided"
    assert len(guided.history_) == 17  # continued from M's 2 epochs
    assert np.array_equal(guided.pixel_mean_, self_supervised.pixel_mean_)
    losses = [entry["loss"] for entry in guided.history_[2:]]
    assert losses[-1] < losses[0]
    # E_sdr inside the true defect regions: defective images score above the normal ones,
    # whose regions we fake with the same squares
    fake_regions = masks.copy()
    fake_regions[8:] = masks[:16]
    scores = guided.score_samples(images, regions=fake_regions)
    assert roc_auc_score(np.arange(24) < 8, scores) > 0.9


def test_e_sdr_is_zero_outside_any_region(square_defects):
    images, masks = square_defects
    scorer = ReconstructionScorer(**SMALL, max_epochs=1).fit(images)
    scores = scorer.score_samples(images, regions=masks)
    assert (scores[8:] == 0).all() and (scores[:8] > 0).all()


def test_label_guided_fit_needs_a_normal_image(square_defects):
    images, masks = square_defects
    with pytest.raises(ValueError, match="needs at least one normal image"):
        ReconstructionScorer(**SMALL).fit(images[:8], masks[:8])


def test_self_supervised_e_msmr_separates_defective_from_normal_images():
    X, masks = make_defect_images(n_samples=300, image_size=32, defect_ratio=0.2,
                                  random_state=7)
    is_defective = masks.reshape(len(masks), -1).any(axis=1)
    scorer = ReconstructionScorer(base_channels=8, depth=2, patch_size=4, batch_size=16,
                                  max_epochs=15, random_state=0).fit(X)
    auc = roc_auc_score(is_defective, scorer.score_samples(X))
    assert auc >= 0.75  # measured 0.837


def test_same_seed_same_scores(square_defects):
    images, _ = square_defects
    first = ReconstructionScorer(**SMALL, max_epochs=1).fit(images).score_samples(images)
    second = ReconstructionScorer(**SMALL, max_epochs=1).fit(images).score_samples(images)
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mask_ratio": 1.0}, r"mask_ratio must be in \(0.0, 1.0\); got 1.0"),
        ({"error_region": "pixel"}, "error_region must be one of 'block', 'block_max', 'image'"),
        ({"alphas": (0.8,)}, "alphas must be a pair"),
        ({"alphas": (0.8, 1.5)}, r"alphas\[1\] must be in \[0.0, 1.0\]"),
        ({"lr_schedule": "linear"}, "lr_schedule must be one of"),
        ({"depth": 5}, "X: image height 16 is not divisible by 2\\*\\*depth=32"),
    ],
)
def test_bad_parameters_are_reported_at_fit(square_defects, params, message):
    images, _ = square_defects
    with pytest.raises(ValueError, match=message):
        ReconstructionScorer(**{**SMALL, **params}).fit(images)


def test_regions_must_match_the_images(square_defects):
    images, masks = square_defects
    scorer = ReconstructionScorer(**SMALL, max_epochs=1).fit(images)
    with pytest.raises(ValueError, match="regions has shape"):
        scorer.score_samples(images, regions=masks[:, :8])
    with pytest.raises(ValueError, match="regions must hold 0 .* and 1"):
        scorer.score_samples(images, regions=masks * 3)
