"""Tests for sid4ds._loaders: image folders, KolektorSDD layout, npz files, resize and tile."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sid4ds.datasets import load_image_folder, load_kolektorsdd, load_npz, resize, tile


def save_image(path: Path, pixels: np.ndarray) -> Path:
    """Write a uint8/uint16 array as an image file, creating the folder if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def random_pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def block_mask(shape: tuple[int, int], rows: slice, cols: slice, value: int = 255) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[rows, cols] = value
    return mask


# ---------------------------------------------------------------------------------------------
# load_image_folder: reading


def test_png_round_trip_gives_pixels_over_255_sorted_by_name(tmp_path):
    pixels = {name: random_pixels(i, (16, 24)) for i, name in enumerate(["b", "a", "c"])}
    for name, values in pixels.items():
        save_image(tmp_path / f"{name}.png", values)

    X, masks, names = load_image_folder(tmp_path)

    assert names == ["a", "b", "c"]
    assert masks is None
    assert X.dtype == np.float32
    assert X.shape == (3, 1, 16, 24)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(X[i, 0], pixels[name].astype(np.float32) / 255)


@pytest.mark.parametrize("extension", [".bmp", ".tif", ".tiff", ".PNG", ".Bmp"])
def test_lossless_formats_and_uppercase_extensions_round_trip(tmp_path, extension):
    pixels = random_pixels(1, (20, 18))
    save_image(tmp_path / f"img{extension}", pixels)
    (tmp_path / "notes.txt").write_text("not an image")

    X, _, names = load_image_folder(tmp_path)

    assert names == ["img"]
    np.testing.assert_array_equal(X[0, 0], pixels.astype(np.float32) / 255)


@pytest.mark.parametrize("extension", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_is_read_close_to_written_values(tmp_path, extension):
    pixels = np.full((16, 16), 100, dtype=np.uint8)
    pixels[8:, :] = 180
    save_image(tmp_path / f"img{extension}", pixels)

    X, _, _ = load_image_folder(tmp_path)

    np.testing.assert_allclose(X[0, 0], pixels / 255, atol=4 / 255)


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 65536, size=(16, 16), dtype=np.uint16)
    save_image(tmp_path / "deep.png", pixels)

    X, _, _ = load_image_folder(tmp_path)

    np.testing.assert_allclose(X[0, 0], pixels / 65535, rtol=1e-6)


def test_modes_select_channels(tmp_path):
    colour = random_pixels(3, (16, 16, 3))
    gray = random_pixels(4, (16, 16))
    save_image(tmp_path / "colour.png", colour)
    save_image(tmp_path / "gray.png", gray)

    X_rgb, _, _ = load_image_folder(tmp_path, mode="RGB")
    X_gray, _, _ = load_image_folder(tmp_path, mode="L")
    X_auto, _, _ = load_image_folder(tmp_path, mode=None)

    assert X_rgb.shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(X_rgb[0], np.moveaxis(colour, -1, 0).astype(np.float32) / 255)
    assert X_gray.shape == (2, 1, 16, 16)
    luma = np.asarray(Image.fromarray(colour).convert("L"))
    np.testing.assert_array_equal(X_gray[0, 0], luma.astype(np.float32) / 255)
    # one colour image makes every image three-channel; grayscale is repeated on each channel
    assert X_auto.shape == (2, 3, 16, 16)
    for channel in range(3):
        np.testing.assert_array_equal(X_auto[1, channel], gray.astype(np.float32) / 255)


def test_mode_none_keeps_one_channel_when_all_gray(tmp_path):
    save_image(tmp_path / "a.png", random_pixels(5, (16, 16)))
    save_image(tmp_path / "b.bmp", random_pixels(6, (16, 16)))

    X, _, _ = load_image_folder(tmp_path, mode=None)

    assert X.shape == (2, 1, 16, 16)


def test_hidden_files_are_ignored(tmp_path):
    save_image(tmp_path / "a.png", random_pixels(7, (16, 16)))
    (tmp_path / "._a.png").write_bytes(b"macOS resource fork, not an image")

    _, _, names = load_image_folder(tmp_path)

    assert names == ["a"]


# ---------------------------------------------------------------------------------------------
# load_image_folder: masks


def test_masks_match_by_stem_and_suffix_and_missing_mask_is_normal(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    for name in ["a.jpg", "b.png", "c.png"]:
        save_image(image_dir / name, random_pixels(8, (16, 16)))
    # a.jpg <-> a.png (same stem, other extension); b.png <-> b_label.bmp (suffix)
    save_image(mask_dir / "a.png", block_mask((16, 16), slice(0, 4), slice(0, 4), value=1))
    save_image(mask_dir / "b_label.bmp", block_mask((16, 16), slice(8, 16), slice(0, 2), 128))

    X, masks, names = load_image_folder(image_dir, mask_dir, mask_suffix="_label")

    assert names == ["a", "b", "c"]
    assert masks.dtype == np.uint8
    assert masks.shape == (3, 16, 16)
    assert set(np.unique(masks)) <= {0, 1}
    np.testing.assert_array_equal(masks[0], block_mask((16, 16), slice(0, 4), slice(0, 4), 1))
    np.testing.assert_array_equal(masks[1], block_mask((16, 16), slice(8, 16), slice(0, 2), 1))
    assert masks[2].sum() == 0


def test_masks_in_the_image_folder_are_told_apart_by_suffix(tmp_path):
    save_image(tmp_path / "Part0.jpg", random_pixels(9, (16, 16)))
    save_image(tmp_path / "Part1.jpg", random_pixels(10, (16, 16)))
    save_image(tmp_path / "Part1_label.bmp", block_mask((16, 16), slice(2, 5), slice(2, 5)))

    X, masks, names = load_image_folder(tmp_path, tmp_path, mask_suffix="_label")

    assert names == ["Part0", "Part1"]
    assert masks.sum(axis=(1, 2)).tolist() == [0, 9]


def test_same_folder_without_suffix_is_an_error(tmp_path):
    save_image(tmp_path / "a.png", random_pixels(11, (16, 16)))

    with pytest.raises(ValueError, match="mask_suffix"):
        load_image_folder(tmp_path, tmp_path)


def folders_with_an_orphan_mask(tmp_path, seed: int):
    """An images folder with ``a.png`` and a masks folder with ``orphan.png``, no image."""
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    save_image(image_dir / "a.png", random_pixels(seed, (16, 16)))
    save_image(mask_dir / "orphan.png", block_mask((16, 16), slice(0, 2), slice(0, 2)))
    return image_dir, mask_dir


def test_mask_without_image_raises_naming_it(tmp_path):
    image_dir, mask_dir = folders_with_an_orphan_mask(tmp_path, seed=12)

    with pytest.raises(ValueError, match="orphan.png"):
        load_image_folder(image_dir, mask_dir)


def test_mask_without_image_warns_with_on_error_warn(tmp_path):
    image_dir, mask_dir = folders_with_an_orphan_mask(tmp_path, seed=13)

    with pytest.warns(UserWarning, match="orphan.png"):
        X, masks, names = load_image_folder(image_dir, mask_dir, on_error="warn")

    assert names == ["a"]
    assert masks.sum() == 0


def test_two_images_with_the_same_stem_raise_naming_both(tmp_path):
    save_image(tmp_path / "a.png", random_pixels(14, (16, 16)))
    save_image(tmp_path / "a.jpg", random_pixels(15, (16, 16)))

    with pytest.raises(ValueError, match=r"a\.jpg.*a\.png|a\.png.*a\.jpg"):
        load_image_folder(tmp_path)


def test_two_masks_for_one_image_raise_naming_both(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    save_image(image_dir / "a.png", random_pixels(16, (16, 16)))
    save_image(mask_dir / "a.png", np.zeros((16, 16), dtype=np.uint8))
    save_image(mask_dir / "a_label.png", np.zeros((16, 16), dtype=np.uint8))

    with pytest.raises(ValueError, match=r"a\.png.*a_label\.png"):
        load_image_folder(image_dir, mask_dir, mask_suffix="_label")


def test_mask_of_other_size_raises_naming_both_files_and_sizes(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    save_image(image_dir / "a.png", random_pixels(17, (16, 24)))
    save_image(mask_dir / "a_mask.png", np.zeros((16, 16), dtype=np.uint8))

    with pytest.raises(ValueError) as error:
        load_image_folder(image_dir, mask_dir, mask_suffix="_mask")

    message = str(error.value)
    assert "a_mask.png" in message and "a.png" in message
    assert "16x16" in message and "16x24" in message


# ---------------------------------------------------------------------------------------------
# load_image_folder: unreadable files


def test_corrupt_image_raises_naming_it(tmp_path):
    save_image(tmp_path / "good.png", random_pixels(18, (16, 16)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")

    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(tmp_path)


def test_truncated_image_raises_naming_it(tmp_path):
    path = save_image(tmp_path / "cut.bmp", random_pixels(19, (32, 32)))
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(ValueError, match="cut.bmp"):
        load_image_folder(tmp_path)


def test_corrupt_image_is_skipped_with_warning(tmp_path):
    good = random_pixels(20, (16, 16))
    save_image(tmp_path / "good.png", good)
    (tmp_path / "broken.jpg").write_bytes(b"garbage")

    with pytest.warns(UserWarning, match="broken.jpg"):
        X, _, names = load_image_folder(tmp_path, on_error="warn")

    assert names == ["good"]
    np.testing.assert_array_equal(X[0, 0], good.astype(np.float32) / 255)


def test_corrupt_mask_raises_or_skips_its_image(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    save_image(image_dir / "a.png", random_pixels(21, (16, 16)))
    save_image(image_dir / "b.png", random_pixels(22, (16, 16)))
    mask_dir.mkdir()
    (mask_dir / "a.png").write_bytes(b"garbage")

    with pytest.raises(ValueError, match=re.escape(str(mask_dir / "a.png"))):
        load_image_folder(image_dir, mask_dir)
    with pytest.warns(UserWarning, match=re.escape(str(mask_dir / "a.png"))):
        _, masks, names = load_image_folder(image_dir, mask_dir, on_error="warn")
    assert names == ["b"]
    assert masks.shape == (1, 16, 16)


def test_all_images_unreadable_is_an_error_even_with_warn(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"garbage")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match="no readable images"):
            load_image_folder(tmp_path, on_error="warn")


def test_empty_or_missing_folder_raises_naming_it(tmp_path):
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")

    with pytest.raises(ValueError, match="empty_folder"):
        load_image_folder(empty)
    with pytest.raises(ValueError, match="no_such_folder"):
        load_image_folder(tmp_path / "no_such_folder")


# ---------------------------------------------------------------------------------------------
# load_image_folder: sizes, resizing and tiling


def test_images_of_different_sizes_raise_naming_both_and_the_fix(tmp_path):
    save_image(tmp_path / "small.png", random_pixels(23, (16, 16)))
    save_image(tmp_path / "tall.png", random_pixels(24, (32, 16)))

    with pytest.raises(ValueError) as error:
        load_image_folder(tmp_path)

    message = str(error.value)
    assert "small.png" in message and "tall.png" in message
    assert "16x16" in message and "32x16" in message
    assert "image_size=" in message and "tile=" in message


def test_image_size_resizes_images_bilinear_and_masks_nearest(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    save_image(image_dir / "flat.png", np.full((16, 16), 51, dtype=np.uint8))
    save_image(image_dir / "wide.png", np.full((32, 48), 51, dtype=np.uint8))
    save_image(mask_dir / "wide.png", block_mask((32, 48), slice(0, 16), slice(0, 24)))

    X, masks, names = load_image_folder(image_dir, mask_dir, image_size=(8, 12))

    assert X.shape == (2, 1, 8, 12)
    assert masks.shape == (2, 8, 12)
    np.testing.assert_allclose(X, 51 / 255, atol=1e-6)  # a flat image stays flat
    np.testing.assert_array_equal(masks[1], block_mask((8, 12), slice(0, 4), slice(0, 6), 1))
    assert masks[0].sum() == 0


def test_tile_counts_and_last_tile_is_flush_with_bottom(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    tall = random_pixels(25, (20, 8))
    save_image(image_dir / "tall.png", tall)
    save_image(image_dir / "square.png", random_pixels(26, (16, 16)))
    save_image(mask_dir / "tall.png", block_mask((20, 8), slice(18, 20), slice(0, 8)))

    X, masks, names = load_image_folder(image_dir, mask_dir, tile=8)

    # 16x16 -> 2x2 tiles; 20x8 -> rows at 0, 8 and 12 (flush with the bottom)
    assert names == [f"square_t{k}" for k in range(4)] + [f"tall_t{k}" for k in range(3)]
    assert X.shape == (7, 1, 8, 8)
    expected = tall.astype(np.float32) / 255
    np.testing.assert_array_equal(X[4, 0], expected[0:8])
    np.testing.assert_array_equal(X[5, 0], expected[8:16])
    np.testing.assert_array_equal(X[6, 0], expected[12:20])
    assert masks[4:].sum(axis=(1, 2)).tolist() == [0, 0, 16]


def test_tile_then_image_size_resizes_each_tile(tmp_path):
    save_image(tmp_path / "tall.png", np.full((20, 8), 255, dtype=np.uint8))

    X, _, names = load_image_folder(tmp_path, tile=8, image_size=4)

    assert X.shape == (3, 1, 4, 4)
    assert names == ["tall_t0", "tall_t1", "tall_t2"]
    np.testing.assert_allclose(X, 1.0, atol=1e-6)


def test_image_smaller_than_tile_raises_naming_it(tmp_path):
    save_image(tmp_path / "big.png", random_pixels(27, (32, 32)))
    save_image(tmp_path / "tiny.png", random_pixels(28, (16, 32)))

    with pytest.raises(ValueError, match="tiny.png"):
        load_image_folder(tmp_path, tile=20)


def test_recursive_names_include_subfolder_and_match_nested_masks(tmp_path):
    image_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    save_image(image_dir / "top.png", random_pixels(29, (16, 16)))
    save_image(image_dir / "sub" / "deep.png", random_pixels(30, (16, 16)))
    save_image(mask_dir / "sub" / "deep.png", block_mask((16, 16), slice(0, 1), slice(0, 5)))

    _, _, flat_names = load_image_folder(image_dir)
    _, masks, names = load_image_folder(image_dir, mask_dir, recursive=True)

    assert flat_names == ["top"]
    assert names == ["sub/deep", "top"]
    assert masks.sum(axis=(1, 2)).tolist() == [5, 0]


def test_recursive_skips_a_masks_folder_inside_the_images_folder(tmp_path):
    save_image(tmp_path / "a.png", random_pixels(31, (16, 16)))
    save_image(tmp_path / "masks" / "a.png", block_mask((16, 16), slice(0, 2), slice(0, 2)))

    _, masks, names = load_image_folder(tmp_path, tmp_path / "masks", recursive=True)

    assert names == ["a"]
    assert masks.sum() == 4


def exported_session(tmp_path: Path, images: Path, truth: dict, labelled: list[str]):
    """A session whose init labelled ``labelled`` (true masks), exported as PNG folders."""
    from sid4ds.session import LabelingSession

    from ..conftest import TINY_SCORER, TINY_SEGMENTER, write_masks

    session = LabelingSession.create(tmp_path / "session", images,
                                     write_masks(tmp_path / "masks", labelled, truth),
                                     scorer_params=TINY_SCORER,
                                     segmenter_params=TINY_SEGMENTER)
    return session, session.export(tmp_path / "export", "png")


@pytest.mark.parametrize("options", [{}, {"recursive": True}, {"mask_suffix": "_mask"}],
                         ids=["plain", "recursive", "suffix"])
def test_a_sid4ds_png_export_loads_with_its_masks_in_one_call(tmp_path, pool_folder, options):
    images, truth = pool_folder
    defective = [name for name in sorted(truth) if truth[name].any()][:3]
    normal = [name for name in sorted(truth) if not truth[name].any()][:3]
    session, out = exported_session(tmp_path, images, truth, defective + normal)
    assert (out / "ground_truth" / "defect" / f"{defective[0]}_mask.png").is_file()

    X, masks, names = load_image_folder(out, **options)

    assert names == sorted([f"defect/{name}" for name in defective]
                           + [f"good/{name}" for name in normal])
    assert not [name for name in names if "mask" in name or "ground_truth" in name]
    pool = session.pool()
    for position, name in enumerate(names):
        stem = name.split("/")[1]
        np.testing.assert_allclose(X[position], pool.images[pool.index[stem]], atol=1e-6)
        np.testing.assert_array_equal(masks[position], truth[stem])
        assert masks[position].any() == name.startswith("defect/")


def test_a_png_export_of_normal_images_only_still_loads_with_masks(tmp_path, pool_folder):
    images, truth = pool_folder
    normal = [name for name in sorted(truth) if not truth[name].any()][:3]
    _, out = exported_session(tmp_path, images, truth, normal)

    X, masks, names = load_image_folder(out)

    assert names == [f"good/{name}" for name in normal]
    assert masks is not None and masks.shape == (3, 16, 16) and not masks.any()


@pytest.mark.parametrize(
    ("keyword", "value", "error"),
    [
        ("mode", "RGBA", ValueError),
        ("on_error", "ignore", ValueError),
        ("image_size", 0, ValueError),
        ("image_size", (8, 8, 8), TypeError),
        ("tile", True, TypeError),
        ("tile", -4, ValueError),
    ],
)
def test_invalid_arguments_are_rejected_naming_the_argument(tmp_path, keyword, value, error):
    save_image(tmp_path / "a.png", random_pixels(32, (16, 16)))

    with pytest.raises(error, match=keyword):
        load_image_folder(tmp_path, **{keyword: value})


# ---------------------------------------------------------------------------------------------
# load_kolektorsdd


def make_fake_kolektorsdd(root: Path) -> dict[str, np.ndarray]:
    """Two kosNN folders of 8-wide, 20-high parts; Part1 of kos01 has a defect at the bottom."""
    parts = {}
    for folder, part in [("kos01", "Part0"), ("kos01", "Part1"), ("kos02", "Part0")]:
        pixels = np.full((20, 8), 40 + 60 * len(parts), dtype=np.uint8)
        pixels[12:20] += 20
        save_image(root / folder / f"{part}.jpg", pixels)
        rows = slice(17, 20) if (folder, part) == ("kos01", "Part1") else slice(0, 0)
        save_image(root / folder / f"{part}_label.bmp", block_mask((20, 8), rows, slice(0, 8)))
        parts[f"{folder}/{part}"] = pixels
    save_image(root / "extras" / "unrelated.png", random_pixels(33, (20, 8)))
    return parts


def test_kolektorsdd_layout_gives_three_tiles_per_part(tmp_path):
    parts = make_fake_kolektorsdd(tmp_path)

    X, masks, names = load_kolektorsdd(tmp_path, tile=8)

    assert X.shape == (9, 1, 8, 8)
    assert masks.shape == (9, 8, 8)
    assert names == [f"{part}_t{k}" for part in parts for k in range(3)]
    # only the bottom tile of kos01/Part1 holds the defect rows 17..19
    assert masks.sum(axis=(1, 2)).tolist() == [0, 0, 0, 0, 0, 24, 0, 0, 0]
    # the last tile is flush with the bottom: it is rows 12..19, all brightened by 20
    for i, pixels in enumerate(parts.values()):
        np.testing.assert_allclose(X[3 * i + 2, 0], pixels[12:20] / 255, atol=4 / 255)


def test_kolektorsdd_resizes_each_tile(tmp_path):
    make_fake_kolektorsdd(tmp_path)

    X, masks, names = load_kolektorsdd(tmp_path, tile=8, image_size=4)

    assert X.shape == (9, 1, 4, 4)
    assert masks.shape == (9, 4, 4)
    assert masks[5].sum() > 0 and masks[:5].sum() == 0


def test_kolektorsdd_without_kos_folders_raises_naming_root(tmp_path):
    save_image(tmp_path / "other" / "Part0.jpg", random_pixels(34, (20, 8)))

    with pytest.raises(ValueError, match=re.escape(str(tmp_path))):
        load_kolektorsdd(tmp_path, tile=8)


# ---------------------------------------------------------------------------------------------
# load_npz


def write_npz(path: Path, n_normal: int = 50, n_defect: int = 10, **drop) -> Path:
    """A small file in the layout of shared/data/*.npz; keys named in `drop` are left out."""
    n_samples = n_normal + n_defect
    rng = np.random.default_rng(0)
    order = rng.permutation(n_samples)
    is_defect = np.zeros(n_samples, dtype=np.uint8)
    is_defect[order[:n_defect]] = 1
    masks = np.zeros((n_samples, 8, 8), dtype=np.uint8)
    masks[is_defect == 1, 2:5, 3:6] = 1
    arrays = {
        "images": rng.integers(0, 256, size=(n_samples, 8, 8), dtype=np.uint8),
        "masks": masks,
        "is_defect": is_defect,
        "class_id": is_defect.astype(np.int64),
        "class_names": np.array(["Free", "Crack"]),
        "group": np.array([f"g{i}" for i in range(n_samples)]),
        "name": np.array([f"img{i:03d}" for i in range(n_samples)]),
    }
    np.savez(path, **{key: value for key, value in arrays.items() if key not in drop})
    return path


def test_npz_keeps_everything_by_default(tmp_path):
    path = write_npz(tmp_path / "data.npz")
    with np.load(path) as data:
        images, stored_masks = data["images"], data["masks"]

    X, masks, names = load_npz(path)

    assert X.dtype == np.float32
    assert X.shape == (60, 1, 8, 8)
    np.testing.assert_array_equal(X[:, 0], images.astype(np.float32) / 255)
    np.testing.assert_array_equal(masks, stored_masks)
    assert names == [f"img{i:03d}" for i in range(60)]


def test_npz_defect_fraction_keeps_all_normals_and_reaches_fraction(tmp_path):
    path = write_npz(tmp_path / "data.npz", n_normal=200, n_defect=40)

    X, masks, names = load_npz(path, defect_fraction=0.05, random_state=0)

    defective = masks.any(axis=(1, 2))
    assert int((~defective).sum()) == 200
    # round(0.05 * 200 / 0.95) = 11 defective images
    assert int(defective.sum()) == 11
    assert abs(defective.mean() - 0.05) < 0.005
    assert names == sorted(names)  # the original order is kept
    assert len(X) == len(masks) == len(names)


def test_npz_subset_is_deterministic_per_seed(tmp_path):
    path = write_npz(tmp_path / "data.npz", n_normal=100, n_defect=40)

    first = load_npz(path, defect_fraction=0.1, random_state=7)
    second = load_npz(path, defect_fraction=0.1, random_state=7)
    subsets = {tuple(load_npz(path, defect_fraction=0.1, random_state=s)[2]) for s in range(4)}

    assert first[2] == second[2]
    np.testing.assert_array_equal(first[0], second[0])
    assert len(subsets) > 1


def test_npz_uses_masks_when_is_defect_is_missing(tmp_path):
    path = write_npz(tmp_path / "data.npz", n_normal=38, n_defect=10, is_defect=True)

    _, masks, _ = load_npz(path, defect_fraction=0.05, random_state=1)

    assert int(masks.any(axis=(1, 2)).sum()) == 2  # round(0.05 * 38 / 0.95) = 2


def test_npz_with_too_few_defects_warns_and_keeps_them_all(tmp_path):
    path = write_npz(tmp_path / "data.npz", n_normal=20, n_defect=3)

    with pytest.warns(UserWarning, match="defect_fraction"):
        _, masks, _ = load_npz(path, defect_fraction=0.5, random_state=0)

    assert int(masks.any(axis=(1, 2)).sum()) == 3


def test_npz_image_size_resizes(tmp_path):
    path = write_npz(tmp_path / "data.npz", n_normal=4, n_defect=2)

    X, masks, _ = load_npz(path, image_size=4)

    assert X.shape == (6, 1, 4, 4)
    assert masks.shape == (6, 4, 4)
    assert set(np.unique(masks)) <= {0, 1}


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_npz_rejects_fraction_out_of_range(tmp_path, fraction):
    path = write_npz(tmp_path / "data.npz", n_normal=4, n_defect=2)

    with pytest.raises(ValueError, match="defect_fraction"):
        load_npz(path, defect_fraction=fraction)


def test_npz_without_images_raises(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, pictures=np.zeros((2, 8, 8), dtype=np.uint8))

    with pytest.raises(ValueError, match="images"):
        load_npz(path)


# ---------------------------------------------------------------------------------------------
# resize and tile helpers


def test_tile_helper_returns_source_index_and_aligned_masks():
    X = np.arange(2 * 1 * 10 * 6, dtype=np.float32).reshape(2, 1, 10, 6)
    masks = (X[:, 0] % 7 == 0).astype(np.uint8)

    X_tiles, mask_tiles, source_index = tile(X, 4, masks=masks)

    # rows start at 0, 4, 6 and columns at 0, 2 -> 6 tiles per image
    assert X_tiles.shape == (12, 1, 4, 4)
    assert source_index.tolist() == [0] * 6 + [1] * 6
    np.testing.assert_array_equal(X_tiles[5, 0], X[0, 0, 6:10, 2:6])
    np.testing.assert_array_equal(mask_tiles[11], masks[1, 6:10, 2:6])
    np.testing.assert_array_equal(mask_tiles, (X_tiles[:, 0] % 7 == 0).astype(np.uint8))


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 30),
    width=st.integers(1, 30),
    tile_height=st.integers(1, 30),
    tile_width=st.integers(1, 30),
)
def test_tiles_cover_every_pixel_and_end_flush(height, width, tile_height, tile_width):
    tile_height, tile_width = min(tile_height, height), min(tile_width, width)
    X = np.arange(height * width, dtype=np.float64).reshape(1, 1, height, width)

    X_tiles, _, _ = tile(X, (tile_height, tile_width))

    assert len(X_tiles) == math.ceil(height / tile_height) * math.ceil(width / tile_width)
    assert set(np.unique(X_tiles)) == set(range(height * width))
    assert X_tiles[-1, 0, -1, -1] == X[0, 0, -1, -1]


def test_tile_larger_than_images_raises():
    with pytest.raises(ValueError, match="larger than the images"):
        tile(np.zeros((1, 1, 8, 8)), 9)


def test_resize_helper_keeps_values_in_range_and_masks_binary():
    X = np.random.default_rng(3).random((3, 2, 12, 12)).astype(np.float32)
    masks = np.zeros((3, 12, 12), dtype=np.uint8)
    masks[:, :6, :] = 1

    X_small, masks_small = resize(X, (6, 4), masks=masks)
    X_same, no_masks = resize(X, 12)

    assert X_small.shape == (3, 2, 6, 4) and X_small.dtype == np.float32
    assert 0 <= X_small.min() and X_small.max() <= 1
    np.testing.assert_allclose(X_small.mean(axis=(2, 3)), X.mean(axis=(2, 3)), atol=0.05)
    np.testing.assert_array_equal(masks_small[:, :3], 1)
    np.testing.assert_array_equal(masks_small[:, 3:], 0)
    np.testing.assert_array_equal(X_same, X)
    assert no_masks is None


def test_helpers_reject_wrong_shapes():
    with pytest.raises(ValueError, match="X must have shape"):
        resize(np.zeros((8, 8)), 4)
    with pytest.raises(ValueError, match="masks must have shape"):
        tile(np.zeros((2, 1, 8, 8)), 4, masks=np.zeros((2, 8, 9)))


# ---------------------------------------------------------------------- masks never images
def test_mask_files_beside_their_images_are_never_loaded_as_images(tmp_path):
    for index in range(3):
        save_image(tmp_path / "parts" / f"part{index}.png", random_pixels(index, (16, 16)))
    save_image(tmp_path / "parts" / "part1_mask.png",
               block_mask((16, 16), slice(2, 6), slice(3, 9)))
    for options in ({}, {"recursive": True}):
        with pytest.raises(ValueError, match=r"1 files in .*parts look like masks of its "
                                             r"images \(e\.g\. part1_mask\.png for image "
                                             r"'part1'\).*mask_suffix='_mask'"):
            load_image_folder(tmp_path / "parts", **options)
    # what the message says to do loads the images with their masks
    X, masks, names = load_image_folder(tmp_path / "parts", masks=tmp_path / "parts",
                                        mask_suffix="_mask")
    assert names == ["part0", "part1", "part2"] and X.shape == (3, 1, 16, 16)
    assert masks[1].sum() == 24 and not masks[[0, 2]].any()


def test_a_mask_without_its_image_is_named_with_the_suffix_that_matches_it(tmp_path):
    save_image(tmp_path / "images" / "part0.png", random_pixels(0, (16, 16)))
    save_image(tmp_path / "masks" / "part0_gt.png", block_mask((16, 16), slice(0, 4),
                                                               slice(0, 4)))
    with pytest.raises(ValueError, match=r"no matching image part0_gt.* did you mean image "
                                         r"'part0'\? pass mask_suffix='_gt'"):
        load_image_folder(tmp_path / "images", masks=tmp_path / "masks")
    _, masks, _ = load_image_folder(tmp_path / "images", masks=tmp_path / "masks",
                                    mask_suffix="_gt")
    assert masks.sum() == 16


# ---------------------------------------------------------------------- join_pieces
def test_join_pieces_undoes_the_tiling_of_cut_pieces_where_tiles_overlap():
    from sid4ds.datasets.imageio import cut_pieces, join_pieces

    image = np.random.default_rng(0).random((1, 10, 13)).astype(np.float32)
    pieces = cut_pieces("a", image, np.zeros((10, 13), np.uint8), image_size=None,
                        tile_size=(4, 5), where="a")
    assert len(pieces) == 9  # the last row and column of tiles overlap the ones before
    joined = join_pieces([piece[0] for _, piece, _ in pieces], (10, 13), image_size=None,
                         tile_size=(4, 5))
    np.testing.assert_allclose(joined, image[0], atol=1e-6)


def test_join_pieces_resizes_each_piece_back_before_placing_it():
    from sid4ds.datasets.imageio import join_pieces

    # tiles of 6x8 resized to 4x4 by init: constant maps come back constant, at 12x16
    maps = [np.full((4, 4), value, np.float32) for value in (0.1, 0.2, 0.3, 0.4)]
    joined = join_pieces(maps, (12, 16), image_size=(4, 4), tile_size=(6, 8))
    assert joined.shape == (12, 16)
    np.testing.assert_allclose(joined[:6, :8], 0.1, atol=1e-6)
    np.testing.assert_allclose(joined[6:, 8:], 0.4, atol=1e-6)
    one = join_pieces([np.full((4, 4), 0.7, np.float32)], (9, 5), image_size=(4, 4),
                      tile_size=None)
    assert one.shape == (9, 5) and np.allclose(one, 0.7)
    with pytest.raises(ValueError, match="3 maps for an image of 12x16.*4 pieces"):
        join_pieces(maps[:3], (12, 16), image_size=(4, 4), tile_size=(6, 8))
