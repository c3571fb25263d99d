"""Tests for sid4ds.nn.augment: augmentations that keep images and masks aligned."""

import pytest
import torch

from sid4ds.nn.augment import AUGMENTATIONS, augment_batch, check_augment


def corner_batch(n=16, height=8, width=8):
    """Images and masks that are 1 at the top-left pixel only."""
    images = torch.zeros(n, 1, height, width)
    images[:, :, 0, 0] = 1.0
    return images, images.clone()


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_augmentation_moves_mask_with_image_and_keeps_range():
    images, masks = corner_batch()
    augmented, augmented_masks = augment_batch(images, masks, seeded())
    assert augmented.min() >= 0 and augmented.max() <= 1
    corners = augmented_masks.flatten(1).argmax(dim=1)
    assert torch.equal(corners, augmented.flatten(1).argmax(dim=1))
    assert len(set(corners.tolist())) > 1  # flips happened


def test_flips_and_rot90_give_every_symmetry_of_a_square_and_masks_follow():
    images = torch.zeros(64, 1, 4, 4)
    images[:, :, 0, 1] = 1.0  # a pixel off the diagonal: all 8 symmetries differ
    augmented, masks = augment_batch(images, images.clone(), seeded(),
                                     augmentations=("flip", "rot90"))
    assert torch.equal(augmented, masks)
    positions = {tuple(torch.nonzero(image[0]).flatten().tolist()) for image in augmented}
    assert positions == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 3), (3, 1), (2, 3), (3, 2)}


def test_brightness_and_contrast_change_the_image_only():
    generator = seeded()
    images = torch.full((8, 1, 4, 4), 0.5)
    images[:, :, :2] = 0.6
    masks = torch.zeros(8, 1, 4, 4)
    masks[:, :, 0, 0] = 1
    augmented, augmented_masks = augment_batch(images, masks, generator,
                                               augmentations=("brightness_contrast",))
    assert torch.equal(augmented_masks, masks)
    assert not torch.equal(augmented, images)
    shift = augmented - images
    assert shift.abs().max() <= 0.1 + 0.2 * 0.05 + 1e-6  # ±0.1 brightness, ×0.8–1.2 contrast
    bright = torch.ones(8, 1, 4, 4)
    clipped, _ = augment_batch(bright, masks, seeded(1), augmentations=("brightness_contrast",))
    assert clipped.max() <= 1 and clipped.min() >= 0


def test_the_same_generator_state_gives_the_same_augmentations_in_any_order():
    images, masks = corner_batch()
    images = images + 0.3 * torch.rand(images.shape, generator=seeded(5))
    first = augment_batch(images, masks, seeded(3), ("brightness_contrast", "flip", "rot90"))
    again = augment_batch(images, masks, seeded(3), ("rot90", "flip", "brightness_contrast"))
    other = augment_batch(images, masks, seeded(4), ("brightness_contrast", "flip", "rot90"))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    unchanged = augment_batch(images, masks, seeded(3), ())
    assert torch.equal(unchanged[0], images) and torch.equal(unchanged[1], masks)


def test_rot90_refuses_images_that_are_not_square():
    images, masks = corner_batch(height=4, width=8)
    with pytest.raises(ValueError, match="rot90' needs square images; these are 4x8"):
        augment_batch(images, masks, seeded(), augmentations=("rot90",))
    flipped, _ = augment_batch(images, masks, seeded(), augmentations=("flip",))
    assert flipped.shape == images.shape


def test_check_augment_reads_the_parameter():
    assert check_augment(True) == ("brightness_contrast", "flip")
    assert check_augment(True, default=("rot90",)) == ("rot90",)
    assert check_augment(False) == check_augment(None) == ()
    assert check_augment(["rot90", "flip"]) == ("rot90", "flip")
    assert set(AUGMENTATIONS) == {"brightness_contrast", "flip", "rot90"}
    with pytest.raises(ValueError, match=r"augment has unknown augmentations \['blur'\]"):
        check_augment(["flip", "blur"])
    with pytest.raises(TypeError, match="scorer_augment must be True, False or a sequence"):
        check_augment("flip", name="scorer_augment")
