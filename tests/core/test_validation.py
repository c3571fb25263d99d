import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sid4ds._core.validation import (
    check_audit_size,
    check_flags,
    check_groups,
    check_images,
    check_masks,
    check_n_instances,
)


def test_uint8_and_3d_images_become_float_nchw():
    images = np.full((2, 8, 8), 255, dtype=np.uint8)
    checked = check_images(images)
    assert checked.shape == (2, 1, 8, 8) and checked.dtype == np.float32
    assert checked.max() == 1.0


def test_check_images_does_not_modify_the_input():
    images = np.full((2, 1, 8, 8), 0.5, dtype=np.float32)
    checked = check_images(images)
    checked[:] = 0
    assert (images == 0.5).all()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((0, 1, 8, 8), np.float32), "X is empty"),
        (np.zeros((8, 8), np.float32), "X must have shape .* got an array with ndim=2"),
        (np.zeros((1, 1, 1, 8, 8), np.float32), "ndim=5"),
        (np.full((1, 1, 8, 8), 2.0, np.float32),
         r"values in \[2, 2\]; expected floats in \[0, 1\]"),
        (np.full((1, 1, 8, 8), -0.5), r"values in \[-0.5, -0.5\]"),
    ],
)
def test_bad_images_raise_value_errors_naming_x(images, message):
    with pytest.raises(ValueError, match=message):
        check_images(images)


def test_non_numeric_and_odd_dtypes_raise_type_errors():
    with pytest.raises(TypeError, match="X must be a numeric array"):
        check_images(np.array([["a"]]))
    with pytest.raises(TypeError, match="X has dtype int64"):
        check_images(np.zeros((1, 1, 8, 8), dtype=np.int64))


def test_channel_count_and_divisibility_are_checked():
    images = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="X has 3 channel.* fitted on 1"):
        check_images(images, n_channels=1)
    with pytest.raises(ValueError, match="X: image height 8 is not divisible by 2\\*\\*depth=16"):
        check_images(images, depth=4)


@settings(max_examples=40, deadline=None)
@given(
    n_bad=st.integers(1, 5),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    seed=st.integers(0, 1000),
)
def test_any_non_finite_pixel_is_reported_with_its_count(n_bad, value, seed):
    rng = np.random.default_rng(seed)
    images = rng.random((3, 1, 8, 8)).astype(np.float32)
    flat = images.reshape(-1)
    flat[rng.choice(flat.size, n_bad, replace=False)] = value
    with pytest.raises(ValueError, match=f"X contains {n_bad} NaN or infinite"):
        check_images(images)


@settings(max_examples=40, deadline=None)
@given(bad_value=st.one_of(st.integers(2, 255), st.floats(0.01, 0.99), st.integers(-5, -1)))
def test_mask_values_outside_0_1_are_rejected(bad_value):
    masks = np.zeros((2, 4, 4), dtype=np.float32)
    masks[1, 2, 2] = bad_value
    with pytest.raises(ValueError, match="y must hold 0 \\(normal\\) and 1 \\(defect\\) only"):
        check_masks(masks, n_samples=2, height=4, width=4)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple))
def test_mismatched_mask_shapes_are_rejected_with_the_expected_shape(shape):
    valid = {(2, 4, 4), (2, 16), (2, 1, 4, 4)}
    masks = np.zeros(shape, dtype=np.uint8)
    if shape in valid:
        assert check_masks(masks, n_samples=2, height=4, width=4).shape == (2, 4, 4)
    else:
        with pytest.raises(ValueError, match=r"expected shape \(2, 4, 4\) or \(2, 16\)"):
            check_masks(masks, n_samples=2, height=4, width=4)


def test_flat_and_bool_masks_are_accepted():
    masks = np.zeros((2, 16), dtype=bool)
    masks[0, 3] = True
    checked = check_masks(masks, n_samples=2, height=4, width=4)
    assert checked.dtype == np.uint8 and checked[0, 0, 3] == 1 and checked.sum() == 1


@pytest.mark.parametrize(("n_instances", "pool", "expected"), [(3, 10, 3), (30, 10, 10)])
def test_n_instances_is_capped_at_the_pool_size(n_instances, pool, expected):
    assert check_n_instances(n_instances, pool) == expected


@pytest.mark.parametrize("n_instances", [0, -1])
def test_non_positive_n_instances_is_an_error(n_instances):
    with pytest.raises(ValueError, match=f"n_instances must be >= 1; got {n_instances}"):
        check_n_instances(n_instances, 5)


def test_empty_pool_is_an_error():
    with pytest.raises(ValueError, match="X_pool is empty"):
        check_n_instances(1, 0)


def test_an_audit_larger_than_the_unlabelled_images_is_refused_with_the_largest_allowed():
    assert check_audit_size(0, 0) == 0 and check_audit_size(4, 4) == 4
    with pytest.raises(ValueError, match=r"--audit asks for 5 images but only 4 are "
                                         r"unlabelled \(.*ask for at most 4"):
        check_audit_size(5, 4, name="--audit")
    with pytest.raises(ValueError, match="only 4 are unlabelled besides this round's 10 "
                                         "ranked images"):
        check_audit_size(5, 4, name="--audit", n_batch=10)
    with pytest.raises(TypeError, match="audit_size must be an int"):
        check_audit_size(2.0, 4)


def test_check_groups_wants_one_group_per_image_and_keeps_the_values():
    assert check_groups(None, 3) is None
    sources = ["a.png", "a.png", "b.png"]
    assert check_groups(sources, 3).tolist() == sources
    with pytest.raises(ValueError, match=r"groups has 2 entries for 3 images.*shape \(3,\)"):
        check_groups(["a", "b"], 3)
    with pytest.raises(ValueError, match=r"sources has shape \(3, 1\) for 3 images"):
        check_groups(np.zeros((3, 1)), 3, name="sources")


def test_check_flags_defaults_to_none_flagged_and_rejects_a_wrong_length():
    assert check_flags(None, 4, "train_only").tolist() == [False] * 4
    assert check_flags([1, 0], 2, "train_only").dtype == bool
    with pytest.raises(ValueError, match=r"train_only has shape \(3,\); expected one flag "
                                         r"per image, \(2,\)"):
        check_flags([True, False, True], 2, "train_only")
