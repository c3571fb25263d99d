"""Tests for sid4ds.nn.augment: augmentations that keep images and masks aligned."""

import pytest
import torch

from sid4ds.nn.augment import AUGMENTATIONS, augment_batch, check_augment, paste_defects


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
    assert check_augment(True) == ("paste", "brightness_contrast", "flip")
    assert check_augment(True, default=("rot90",)) == ("rot90",)
    assert check_augment(False) == check_augment(None) == ()
    assert check_augment(["rot90", "flip"]) == ("rot90", "flip")
    assert set(AUGMENTATIONS) == {"paste", "brightness_contrast", "flip", "rot90"}
    with pytest.raises(ValueError, match=r"augment has unknown augmentations \['blur'\]"):
        check_augment(["flip", "blur"])
    with pytest.raises(TypeError, match="scorer_augment must be True, False or a sequence"):
        check_augment("flip", name="scorer_augment")


def _batch_with_one_defect(n_normal=7):
    images = torch.full((1 + n_normal, 1, 16, 16), 0.4)
    images[1:] += 0.05 * torch.arange(n_normal).view(-1, 1, 1, 1)  # normals at other levels
    masks = torch.zeros(1 + n_normal, 1, 16, 16)
    images[0, 0, 3:6, 4:9] = 0.8
    masks[0, 0, 3:6, 4:9] = 1
    return images, masks


def test_paste_gives_normal_images_the_defect_at_their_own_level():
    images, masks = _batch_with_one_defect()
    pasted, pasted_masks = paste_defects(images, masks, torch.Generator().manual_seed(0),
                                         share=1.0)
    assert torch.equal(pasted[0], images[0]) and torch.equal(pasted_masks[0], masks[0])
    source_mean = float(images[0].mean())
    for target in range(1, len(images)):
        defect = pasted_masks[target, 0] > 0
        assert int(defect.sum()) == 15  # the whole defect, moved
        level = float(images[target].mean())
        # the pasted pixels keep the defect's contrast over the target's own level
        assert torch.allclose(pasted[target, 0][defect],
                              torch.tensor(0.8 - source_mean + level).clamp(0, 1), atol=1e-6)
        assert torch.equal(pasted[target, 0][~defect], images[target, 0][~defect])
    places = {tuple(torch.nonzero(pasted_masks[t, 0])[0].tolist()) for t in range(1, 8)}
    assert len(places) > 1  # moved to different places
    assert torch.equal(images, _batch_with_one_defect()[0])  # the inputs are untouched


def test_paste_share_and_batches_without_a_source():
    images, masks = _batch_with_one_defect(n_normal=200)
    _, pasted_masks = paste_defects(images, masks, torch.Generator().manual_seed(1), share=0.5)
    got = int((pasted_masks[1:].flatten(1).amax(dim=1) > 0).sum())
    assert 70 < got < 130
    normal_only = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    no_defect = torch.zeros(4, 1, 16, 16)
    same, same_masks = paste_defects(normal_only, no_defect, torch.Generator().manual_seed(0))
    assert torch.equal(same, normal_only) and torch.equal(same_masks, no_defect)
    with pytest.raises(ValueError, match="share must be in"):
        paste_defects(images, masks, torch.Generator(), share=1.5)


def test_paste_runs_first_in_augment_batch_and_follows_the_generator():
    images, masks = _batch_with_one_defect()
    first = augment_batch(images, masks, torch.Generator().manual_seed(3), ("flip", "paste"))
    again = augment_batch(images, masks, torch.Generator().manual_seed(3), ("paste", "flip"))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert int((first[1][1:].flatten(1).amax(dim=1) > 0).sum()) > 0
    assert check_augment(["paste"]) == ("paste",)
