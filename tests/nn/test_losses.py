"""Tests for sid4ds.nn.losses: the losses of the segmentation learner S."""

import pytest
import torch
import torch.nn.functional as F

from sid4ds.nn.losses import (
    LOSSES,
    focal_loss,
    image_dice_loss,
    per_image_loss,
    segmentation_loss,
    soft_dice_loss,
    tversky_loss,
)

SURE = 20.0  # a logit far enough from 0 that sigmoid(±SURE) is 0 or 1 in float32


def logits_of(masks: torch.Tensor) -> torch.Tensor:
    """Logits that predict ``masks`` exactly."""
    return (masks * 2 - 1) * SURE


def square_masks() -> torch.Tensor:
    masks = torch.zeros(2, 1, 8, 8)
    masks[0, :, :6, :6] = 1  # a large defect
    masks[1, :, 0, 0] = 1  # a one-pixel defect
    return masks


def test_soft_dice_is_zero_for_a_perfect_prediction_and_near_one_for_the_opposite():
    masks = torch.zeros(1, 1, 4, 4)
    masks[..., :2, :2] = 1
    perfect = (masks * 2 - 1) * 50
    assert soft_dice_loss(perfect, masks, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(-perfect, masks).item() > 0.9


def test_soft_dice_on_normal_images_pushes_probabilities_down():
    masks = torch.zeros(2, 1, 4, 4)  # no defect pixel in the batch
    lower = soft_dice_loss(torch.full_like(masks, -3.0), masks)
    higher = soft_dice_loss(torch.full_like(masks, 3.0), masks)
    assert torch.isfinite(higher) and 0 <= lower < higher


def test_image_dice_weighs_each_defective_image_alike():
    masks = square_masks()
    logits = logits_of(masks)
    logits[1] = -SURE  # the one-pixel defect is missed, the large one found
    pooled = soft_dice_loss(logits, masks, smooth=0.0).item()
    per_image = image_dice_loss(logits, masks, smooth=0.0).item()
    assert pooled == pytest.approx(1 - 2 * 36 / (36 + 37), abs=1e-5)  # the miss hardly shows
    assert per_image == pytest.approx(0.5, abs=1e-5)  # one image of two missed
    normal = torch.zeros(2, 1, 8, 8)  # without a defect: the pooled Dice
    assert image_dice_loss(logits, normal).item() == pytest.approx(
        soft_dice_loss(logits, normal).item())


def test_focal_loss_weighs_missed_defects_and_hard_pixels_more():
    masks = torch.tensor([[[[1.0, 0.0]]]])
    missed = focal_loss(torch.tensor([[[[-2.0, -SURE]]]]), masks)  # defect pixel at p = 0.12
    false_alarm = focal_loss(torch.tensor([[[[SURE, 2.0]]]]), masks)  # normal pixel at p = 0.88
    assert missed > false_alarm > 0  # alpha = 0.75 favours the defect class
    hard, easy = torch.tensor([[[[-1.0]]]]), torch.tensor([[[[1.0]]]])
    one = torch.ones(1, 1, 1, 1)
    # (1 - p)^gamma shrinks the loss of a pixel already right more than BCE's does
    focal_ratio = focal_loss(easy, one) / focal_loss(hard, one)
    bce_ratio = (F.binary_cross_entropy_with_logits(easy, one)
                 / F.binary_cross_entropy_with_logits(hard, one))
    assert focal_ratio < bce_ratio


def test_tversky_loss_costs_a_missed_defect_pixel_more_than_a_false_alarm():
    masks = torch.zeros(1, 1, 4, 4)
    masks[..., :2, :2] = 1
    missed = logits_of(masks)
    missed[..., 0, 0] = -SURE  # one defect pixel missed
    false_alarm = logits_of(masks)
    false_alarm[..., 3, 3] = SURE  # one normal pixel flagged
    assert tversky_loss(missed, masks) > tversky_loss(false_alarm, masks) > 0
    assert tversky_loss(logits_of(masks), masks, smooth=0.0).item() == pytest.approx(0.0)


def test_segmentation_loss_is_the_weighted_sum_of_its_two_terms():
    masks = square_masks()
    logits = torch.linspace(-3, 3, masks.numel()).reshape(masks.shape)
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    assert segmentation_loss("bce_dice", logits, masks, bce_weight=0.5, dice_weight=1.0) == (
        pytest.approx((0.5 * bce + soft_dice_loss(logits, masks)).item()))
    assert segmentation_loss("bce_tversky", logits, masks, 2.0, 0.0) == pytest.approx(
        2 * bce.item())
    assert segmentation_loss("focal_dice", logits, masks, 1.0, 0.0) == pytest.approx(
        focal_loss(logits, masks).item())
    assert segmentation_loss("bce_dice_image", logits, masks, 0.0, 1.0) == pytest.approx(
        image_dice_loss(logits, masks).item())


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_prefers_the_right_masks_and_gives_gradients(loss):
    masks = square_masks()
    right = logits_of(masks).requires_grad_()
    value = segmentation_loss(loss, right, masks)
    assert value.shape == () and value < segmentation_loss(loss, -logits_of(masks), masks)
    middle = torch.zeros_like(masks, requires_grad=True)
    segmentation_loss(loss, middle, masks).backward()
    # the gradient raises the logits of defect pixels and lowers the others
    assert (middle.grad[masks > 0] < 0).all() and (middle.grad[masks == 0] > 0).all()


@pytest.mark.parametrize("loss", LOSSES)
def test_per_image_loss_is_each_image_on_its_own(loss):
    masks = square_masks()
    logits = torch.linspace(-2, 2, masks.numel()).reshape(masks.shape)
    values = per_image_loss(loss, logits, masks, bce_weight=0.3, dice_weight=0.7)
    assert values.shape == (2,)
    for index in range(2):
        assert values[index].item() == pytest.approx(segmentation_loss(
            loss, logits[index:index + 1], masks[index:index + 1], 0.3, 0.7).item())
