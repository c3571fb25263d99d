"""Tests of the synthetic defect image generator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from sid4ds.datasets import DRIFT_KINDS, make_defect_images


def _residuals(X: np.ndarray) -> np.ndarray:
    """|image - Gaussian blur (sigma=2)| of shape (n, H, W)."""
    images = X[:, 0].astype(np.float64)
    return np.abs(images - ndimage.gaussian_filter(images, sigma=(0, 2, 2)))


def _recall_in_top_tenth(scores: np.ndarray, is_defective: np.ndarray) -> float:
    flagged = np.argsort(-scores, kind="stable")[: int(np.ceil(0.1 * scores.size))]
    return float(is_defective[flagged].sum() / is_defective.sum())


@pytest.fixture(scope="module")
def default_data() -> tuple[np.ndarray, np.ndarray]:
    return make_defect_images(random_state=0)


@pytest.mark.parametrize("image_size", [8, 16, 24, 32])
def test_shapes_dtypes_and_value_ranges(image_size: int) -> None:
    X, masks = make_defect_images(
        n_samples=30, image_size=image_size, defect_ratio=0.5, random_state=1
    )
    assert X.shape == (30, 1, image_size, image_size)
    assert X.dtype == np.float32
    assert masks.shape == (30, image_size, image_size)
    assert masks.dtype == np.uint8
    assert np.isfinite(X).all()
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert set(np.unique(masks)) <= {0, 1}
    # Images are not flat: every one has some texture.
    assert (X.std(axis=(1, 2, 3)) > 0.005).all()


def test_default_settings(default_data: tuple[np.ndarray, np.ndarray]) -> None:
    X, masks = default_data
    assert X.shape == (1000, 1, 64, 64)
    assert masks.any(axis=(1, 2)).sum() == 50


@settings(max_examples=25, deadline=None)
@given(
    n_samples=st.integers(1, 40),
    defect_ratio=st.floats(0.0, 1.0, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_exact_number_of_defective_images(n_samples: int, defect_ratio: float, seed: int) -> None:
    X, masks = make_defect_images(n_samples, 16, defect_ratio, random_state=seed)
    area = masks.sum(axis=(1, 2))
    assert (area > 0).sum() == round(n_samples * defect_ratio)
    assert X.shape[0] == n_samples


def test_defective_images_sit_at_seeded_random_positions() -> None:
    _, masks = make_defect_images(100, 16, 0.2, random_state=3)
    positions = np.flatnonzero(masks.any(axis=(1, 2)))
    assert positions.size == 20
    # Not packed at the start or the end.
    assert positions.min() < 50 < positions.max()
    assert not np.array_equal(positions, np.arange(positions[0], positions[0] + 20))
    _, other_masks = make_defect_images(100, 16, 0.2, random_state=4)
    assert not np.array_equal(positions, np.flatnonzero(other_masks.any(axis=(1, 2))))


def test_same_seed_gives_identical_arrays_and_other_seeds_differ() -> None:
    X_first, masks_first = make_defect_images(40, 24, 0.25, random_state=7)
    X_again, masks_again = make_defect_images(40, 24, 0.25, random_state=7)
    np.testing.assert_array_equal(X_first, X_again)
    np.testing.assert_array_equal(masks_first, masks_again)
    X_other, masks_other = make_defect_images(40, 24, 0.25, random_state=8)
    assert not np.array_equal(X_first, X_other)
    assert not np.array_equal(masks_first, masks_other)


def test_generator_and_random_state_objects_are_accepted() -> None:
    # the package's one rule: a generator is drawn from once to seed the images' generator
    generator = np.random.default_rng(5)
    X_from_generator, _ = make_defect_images(10, 16, 0.5, random_state=generator)
    X_same_start, _ = make_defect_images(10, 16, 0.5, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(X_from_generator, X_same_start)
    X_advanced, _ = make_defect_images(10, 16, 0.5, random_state=generator)
    assert not np.array_equal(X_advanced, X_from_generator)
    X_legacy, _ = make_defect_images(10, 16, 0.5, random_state=np.random.RandomState(5))
    X_legacy_again, _ = make_defect_images(10, 16, 0.5, random_state=np.random.RandomState(5))
    np.testing.assert_array_equal(X_legacy, X_legacy_again)


def test_global_random_state_is_neither_used_nor_changed() -> None:
    # This test inspects the legacy global RNG on purpose, and restores it afterwards.
    caller_state = np.random.get_state()  # noqa: NPY002
    try:
        np.random.seed(1234)  # noqa: NPY002
        state_before = np.random.get_state()  # noqa: NPY002
        X_first, _ = make_defect_images(10, 16, 0.5, random_state=2)
        state_after = np.random.get_state()  # noqa: NPY002
        assert state_before[0] == state_after[0]
        np.testing.assert_array_equal(state_before[1], state_after[1])
        assert state_before[2:] == state_after[2:]
        np.random.seed(999)  # noqa: NPY002 - another global state must not change the output
        X_second, _ = make_defect_images(10, 16, 0.5, random_state=2)
        np.testing.assert_array_equal(X_first, X_second)
    finally:
        np.random.set_state(caller_state)  # noqa: NPY002


@pytest.mark.parametrize(
    ("image_size", "n_samples", "low", "high"),
    [
        (16, 200, 2, 12),  # 0.2% of 256 px is under one pixel: at least 2 px instead
        (24, 120, 2, 28),
        (32, 120, 3, 51),
        (64, 80, 9, 204),
    ],
)
def test_defect_area_stays_in_band(image_size: int, n_samples: int, low: int, high: int) -> None:
    _, masks = make_defect_images(n_samples, image_size, 1.0, random_state=11)
    area = masks.sum(axis=(1, 2))
    n_pixels = image_size * image_size
    assert low == max(2, int(np.ceil(0.002 * n_pixels)))
    assert high == int(0.05 * n_pixels)
    assert area.min() >= low, area.min()
    assert area.max() <= high, area.max()
    # Sizes vary: not all defects the same.
    assert len(np.unique(area)) > 3


@pytest.mark.parametrize(("defect_ratio", "n_defective"), [(0.0, 0), (0, 0), (1.0, 25), (1, 25)])
def test_extreme_defect_ratios(defect_ratio: float, n_defective: int) -> None:
    X, masks = make_defect_images(25, 16, defect_ratio, random_state=0)
    assert (masks.sum(axis=(1, 2)) > 0).sum() == n_defective
    assert X.shape == (25, 1, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"n_samples": 0}, ValueError, r"n_samples must be >= 1; got 0"),
        ({"n_samples": -5}, ValueError, r"n_samples .*got -5"),
        ({"n_samples": 10.0}, TypeError, r"n_samples must be an int.*got 10\.0 \(float\)"),
        ({"n_samples": True}, TypeError, r"n_samples must be an int.*got True"),
        ({"n_samples": "100"}, TypeError, r"n_samples .*got '100' \(str\)"),
        ({"image_size": 4}, ValueError, r"image_size must be >= 8; got 4"),
        ({"image_size": 32.5}, TypeError, r"image_size must be an int.*got 32\.5"),
        ({"defect_ratio": 1.5}, ValueError, r"defect_ratio must be in \[0.0, 1.0\].*got 1\.5"),
        ({"defect_ratio": -0.1}, ValueError, r"defect_ratio .*got -0\.1"),
        ({"defect_ratio": float("nan")}, ValueError, r"defect_ratio .*got nan"),
        ({"defect_ratio": "0.1"}, TypeError, r"defect_ratio must be a number.*got '0\.1' \(str\)"),
        ({"random_state": "seed"}, TypeError, r"random_state must be None, an int.*got 'seed'"),
        ({"random_state": -1}, ValueError, r"random_state must be a non-negative int; got -1"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs: dict, error: type, pattern: str) -> None:
    arguments = {"n_samples": 10, "image_size": 16, "defect_ratio": 0.1, "random_state": 0}
    arguments.update(kwargs)
    with pytest.raises(error, match=pattern):
        make_defect_images(**arguments)


def test_masks_mark_pixels_that_stand_out_from_their_surroundings() -> None:
    X, masks = make_defect_images(60, 64, 1.0, random_state=21)
    images = X[:, 0].astype(np.float64)
    deviation = np.abs(images - ndimage.median_filter(images, size=(1, 9, 9)))
    inside = np.array([deviation[i][masks[i] == 1].mean() for i in range(60)])
    outside = np.array([deviation[i][masks[i] == 0].mean() for i in range(60)])
    # Faint defects may hide in the noise, but most masks cover visibly changed pixels.
    assert (inside > outside).mean() >= 0.85
    assert np.median(inside / outside) > 1.5


def _local_energy_scores(X: np.ndarray) -> np.ndarray:
    """Largest 5x5 mean of the squared residual, relative to the image's median one."""
    images = X[:, 0].astype(np.float64)
    squared = (images - ndimage.gaussian_filter(images, sigma=(0, 2, 2))) ** 2
    energy = ndimage.uniform_filter(squared, size=(1, 5, 5))
    return energy.max(axis=(1, 2)) / np.median(energy, axis=(1, 2))


def test_defective_images_have_higher_local_contrast_than_normal_ones() -> None:
    X, masks = make_defect_images(200, 64, 0.5, random_state=5)
    is_defective = masks.any(axis=(1, 2))
    residuals = _residuals(X)
    # Largest local deviation relative to the image's typical deviation.
    local_contrast = residuals.max(axis=(1, 2)) / np.median(residuals, axis=(1, 2))
    assert local_contrast[is_defective].mean() > 1.1 * local_contrast[~is_defective].mean()
    local_energy = _local_energy_scores(X)
    assert local_energy[is_defective].mean() > 1.5 * local_energy[~is_defective].mean()


def test_naive_ranking_does_not_find_all_defects(
    default_data: tuple[np.ndarray, np.ndarray],
) -> None:
    X, masks = default_data
    is_defective = masks.any(axis=(1, 2))
    naive_recall = _recall_in_top_tenth(_residuals(X).max(axis=(1, 2)), is_defective)
    assert naive_recall < 0.9
    # Yet the defects are there to be found: pooling the residual energy over 5x5 pixels
    # already does better, and far better than chance (10%).
    energy_recall = _recall_in_top_tenth(_local_energy_scores(X), is_defective)
    assert energy_recall > max(0.5, naive_recall)


def test_normal_images_vary_in_appearance() -> None:
    X, masks = make_defect_images(100, 32, 0.0, random_state=9)
    assert not masks.any()
    brightness = X.mean(axis=(1, 2, 3))
    assert brightness.max() - brightness.min() > 0.1
    # The machining marks differ between images: their strength ...
    images = X[:, 0].astype(np.float64)
    marks = ndimage.gaussian_filter(images, (0, 1, 1)) - ndimage.gaussian_filter(images, (0, 4, 4))
    assert marks.std(axis=(1, 2)).max() > 2.0 * marks.std(axis=(1, 2)).min()
    # ... and its pattern (no two images are near copies of each other).
    patterns = X[:, 0].reshape(100, -1) - X[:, 0].reshape(100, -1).mean(axis=1, keepdims=True)
    correlation = np.corrcoef(patterns)
    assert np.abs(correlation[np.triu_indices(100, k=1)]).max() < 0.95


# ---------------------------------------------------------------------- drift
def test_without_drift_the_images_are_those_of_earlier_releases() -> None:
    # figures of make_defect_images(40, 32, 0.25, random_state=3) before the drift option
    X, masks = make_defect_images(40, 32, 0.25, random_state=3)
    weights = np.arange(X.size).reshape(X.shape) % 7
    assert float(X.astype(np.float64).sum()) == pytest.approx(18385.32260839641, rel=1e-6)
    assert float((X * weights).astype(np.float64).sum()) == pytest.approx(55156.64422042668,
                                                                          rel=1e-6)
    areas = masks.sum(axis=(1, 2))
    assert areas[areas > 0].tolist() == [13, 5, 37, 16, 7, 22, 18, 38, 16, 8]


@pytest.mark.parametrize("kind", DRIFT_KINDS)
def test_drift_changes_only_the_images_after_its_start(kind: str) -> None:
    X, masks = make_defect_images(60, 32, 0.2, random_state=4)
    X_drift, masks_drift = make_defect_images(60, 32, 0.2, random_state=4, drift=kind,
                                              drift_from=40)
    np.testing.assert_array_equal(X_drift[:40], X[:40])
    np.testing.assert_array_equal(masks_drift, masks)  # same defects, same places
    assert (np.abs(X_drift[40:] - X[40:]).mean(axis=(1, 2, 3)) > 0.005).all()
    assert X_drift.min() >= 0.0 and X_drift.max() <= 1.0
    again, _ = make_defect_images(60, 32, 0.2, random_state=4, drift=kind, drift_from=40)
    np.testing.assert_array_equal(again, X_drift)


def _stripe_direction(X: np.ndarray) -> np.ndarray:
    """Mean |difference| down the rows over across the columns: > 1 for horizontal marks."""
    images = X[:, 0].astype(np.float64)
    down = np.abs(np.diff(images, axis=1)).mean(axis=(1, 2))
    across = np.abs(np.diff(images, axis=2)).mean(axis=(1, 2))
    return down / across


def test_each_drift_changes_the_statistic_it_names() -> None:
    X, _ = make_defect_images(80, 64, 0.0, random_state=6)
    texture, _ = make_defect_images(80, 64, 0.0, random_state=6, drift="texture")
    lighting, _ = make_defect_images(80, 64, 0.0, random_state=6, drift="lighting")
    noise, _ = make_defect_images(80, 64, 0.0, random_state=6, drift="noise")
    # turned marks run along the rows; milled ones across them
    assert np.median(_stripe_direction(X)) > 1.0 > np.median(_stripe_direction(texture))
    # a new lamp: a stronger spread of brightness over the image
    assert np.median(lighting.std(axis=(1, 2, 3))) > 1.5 * np.median(X.std(axis=(1, 2, 3)))
    # another camera: the pixel noise (what a small blur removes) 2.5 times as strong
    noise_level = _residuals(noise).mean() / _residuals(X).mean()
    assert noise_level > 1.8


def test_drifted_images_keep_their_defects_visible() -> None:
    for kind in DRIFT_KINDS:
        X, masks = make_defect_images(30, 32, 1.0, random_state=21, drift=kind)
        images = X[:, 0].astype(np.float64)
        deviation = np.abs(images - ndimage.median_filter(images, size=(1, 7, 7)))
        inside = np.array([deviation[i][masks[i] == 1].mean() for i in range(30)])
        outside = np.array([deviation[i][masks[i] == 0].mean() for i in range(30)])
        assert (inside > outside).mean() >= 0.8, kind


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"drift": "rust"}, ValueError, r"drift must be one of 'texture', 'lighting', 'noise'"),
        ({"drift": "noise", "drift_from": 11}, ValueError,
         r"drift_from must be in \[0, n_samples=10\]; got 11"),
        ({"drift": "noise", "drift_from": -1}, ValueError, r"drift_from must be >= 0"),
        ({"drift": "noise", "drift_from": 2.0}, TypeError, r"drift_from must be an int"),
        ({"drift_from": 3}, ValueError, r"drift_from=3 was given without drift"),
    ],
)
def test_bad_drift_arguments_raise_naming_them(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make_defect_images(10, 16, 0.1, random_state=0, **kwargs)
