"""Tests for sid4ds.metrics: which masks are defective, pooled pixel IoU, image detection."""

import math

import numpy as np
import pytest

from sid4ds.metrics import defect_iou, defective_rows, image_detection


def masks_with(*boxes, n=3, size=4):
    """``n`` empty ``size``-px masks, with a 1 on each (image, row, col) of ``boxes``."""
    masks = np.zeros((n, size, size), np.uint8)
    for image, row, col in boxes:
        masks[image, row, col] = 1
    return masks


def test_defective_rows_marks_masks_with_any_defect_pixel():
    masks = masks_with((0, 3, 3), (2, 0, 1))
    masks[2, 0, 1] = 255  # 0/255 masks as read from PNG files count alike
    np.testing.assert_array_equal(defective_rows(masks), [True, False, True])
    np.testing.assert_array_equal(defective_rows(masks.tolist()), [True, False, True])
    flat = masks.reshape(3, -1)  # one row per image works too
    np.testing.assert_array_equal(defective_rows(flat), [True, False, True])
    empty = defective_rows(np.zeros((0, 4, 4)))
    assert empty.shape == (0,) and empty.dtype == bool


def test_defect_iou_counts_empty_images_as_neutral():
    truth = np.zeros((3, 4, 4), np.uint8)
    predicted = np.zeros((3, 4, 4), np.uint8)
    assert defect_iou(truth, predicted) == 1.0
    truth[0, 0, :2] = 1
    predicted[0, 0, 1:3] = 1
    assert defect_iou(truth, predicted) == pytest.approx(1 / 3)
    # adding images that are empty in both leaves the score unchanged
    assert defect_iou(np.concatenate([truth, np.zeros((5, 4, 4))]),
                      np.concatenate([predicted, np.zeros((5, 4, 4))])) == pytest.approx(1 / 3)


def test_defect_iou_pools_pixels_over_the_set_rather_than_averaging_images():
    truth = np.zeros((2, 4, 4), np.uint8)
    predicted = np.zeros((2, 4, 4), np.uint8)
    truth[0] = 1  # a 16-pixel defect found whole
    predicted[0] = 1
    truth[1, 0, 0] = 1  # a 1-pixel defect missed
    pooled = defect_iou(truth, predicted)
    assert pooled == pytest.approx(16 / 17)  # not the mean of the images' IoUs, 0.5
    assert defect_iou(predicted, truth) == pooled  # symmetric
    assert defect_iou(truth, 255 * predicted) == pooled  # any non-zero value is a defect
    assert defect_iou(truth, np.zeros_like(truth)) == 0.0  # nothing found
    assert defect_iou(np.zeros_like(truth), truth) == 0.0  # only false alarms


def test_image_detection_counts_images_found_and_normal_images_flagged():
    truth = masks_with((0, 0, 0), (1, 1, 1), (2, 2, 2), n=5)
    found = masks_with((0, 3, 3), (3, 0, 0), n=5)  # a defect found elsewhere in image 0
    rates = image_detection(truth, found)
    assert rates == {"detected": pytest.approx(1 / 3), "false_alarms": 0.5,
                     "n_defective": 3, "n_normal": 2}
    no_normal = image_detection(truth[:3], found[:3])
    assert math.isnan(no_normal["false_alarms"]) and no_normal["n_normal"] == 0
    no_defect = image_detection(truth[3:], found[3:])
    assert math.isnan(no_defect["detected"]) and no_defect["false_alarms"] == 0.5
