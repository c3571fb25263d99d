"""Tests for sid4ds.session: labelling sessions through the Python API (in process)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sid4ds import ReconstructionScorer, SegmentationLearner, run_sid4ds
from sid4ds.datasets import load_image_folder, make_defect_images, tile
from sid4ds.session import (
    FORMAT_VERSION,
    LOCK,
    LabelingSession,
    SessionBusyError,
    SessionError,
    SessionWarning,
    brush_rle_to_mask,
    coco_rle_to_mask,
    mask_to_brush_rle,
    mask_to_coco_rle,
)
from sid4ds.session.query import session_engine
from sid4ds.session.shards import ShardedImages
from sid4ds.session.state import StateFile
from sid4ds.session.storage import atomic_file
from sid4ds.session.store import SessionStore

from ..conftest import (
    TINY_SCORER,
    TINY_SEGMENTER,
    ImagesDataset,
    answer_round,
    new_session,
    save_gray,
    uncompressed_rle,
    write_masks,
)


# ---------------------------------------------------------------------- the algorithm
def test_rounds_match_run_sid4ds_answered_by_the_same_oracle(tmp_path, pool_folder):
    images, truth = pool_folder
    X, _, names = load_image_folder(images)
    masks = np.stack([truth[name] for name in names])
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=2, n_label=4,
                     segmenter=SegmentationLearner(**TINY_SEGMENTER),
                     scorer=ReconstructionScorer(**TINY_SCORER), random_state=3)
    session = new_session(tmp_path, images, seed=3)
    for expected in run.rounds:
        # each round reloads M, S and G from disk: weights, optimiser and RNG states
        record = LabelingSession.open(session.path).query(n_label=4)
        assert record["stage"] == expected.stage
        assert [names.index(name) for name in record["selected"]] == expected.selected.tolist()
        assert record["scores"] == expected.scores.tolist()
        assert ([names.index(name) for name in record["fake_normals"]]
                == expected.fake_normals.tolist())
        answer_round(session, record, truth, tmp_path / f"answers{record['round']}")
    status = session.status()
    assert [entry["defective"] for entry in status["rounds"]] == [
        record.n_defective for record in run.rounds]


def test_session_and_run_sid4ds_break_e_sdr_ties_alike(tmp_path, pool_folder):
    """Data built to tie: S marks no pixel (threshold 1), so every E_sdr is 0."""
    images, truth = pool_folder
    X, _, names = load_image_folder(images)
    masks = np.stack([truth[name] for name in names])
    blind = {**TINY_SEGMENTER, "threshold": 1.0}
    run = run_sid4ds(X, lambda indices: masks[indices], n_rounds=2, n_label=4,
                     segmenter=SegmentationLearner(**blind),
                     scorer=ReconstructionScorer(**TINY_SCORER), random_state=2,
                     region="threshold", fusion=None)  # the paper's E_sdr: all 0
    session = LabelingSession.create(tmp_path / "session", images, seed=2, region="threshold",
                                     fusion=None, scorer_params=TINY_SCORER,
                                     segmenter_params=blind)
    for expected in run.rounds:
        record = session.query(n_label=4)
        assert [names.index(name) for name in record["selected"]] == expected.selected.tolist()
        answer_round(session, record, truth, tmp_path / f"answers{record['round']}")
    iterative = [record for record in run.rounds if record.stage == "iterative"]
    assert iterative and all((record.scores == 0).all() for record in iterative)
    # ties follow the cold-start E_msmr: the iterative picks are E_msmr's next best
    msmr = run.msmr_scorer.score_samples(X)
    for record in iterative:
        labelled_before = np.concatenate([r.selected for r in run.rounds[:record.round]])
        rest = np.setdiff1d(np.arange(len(X)), labelled_before)
        assert record.selected.tolist() == rest[np.argsort(-msmr[rest])][:4].tolist()


def test_same_seed_same_round_other_seed_other_scores(tmp_path, pool_folder):
    images, _ = pool_folder
    first = new_session(tmp_path / "a", images, seed=5).query(n_label=4)
    again = new_session(tmp_path / "b", images, seed=5).query(n_label=4)
    other = new_session(tmp_path / "c", images, seed=6).query(n_label=4)
    assert (first["selected"], first["scores"]) == (again["selected"], again["scores"])
    assert first["scores"] != other["scores"]
    written = [json.loads((tmp_path / part / "session/rounds/000/to_label.json").read_text())
               for part in "ab"]
    assert written[0] == written[1]


def test_round_files_list_ranked_images_scores_and_fake_normals(tmp_path, pool_folder):
    images, truth = pool_folder
    session = new_session(tmp_path, images)
    record = session.query(n_label=5, n_normal=3)
    folder = session.path / "rounds/000"
    listing = json.loads((folder / "to_label.json").read_text())
    assert [entry["name"] for entry in listing["images"]] == record["selected"]
    assert [entry["rank"] for entry in listing["images"]] == [1, 2, 3, 4, 5]
    assert listing["images"][0]["score"] >= listing["images"][-1]["score"]
    csv_rows = (folder / "to_label.csv").read_text().splitlines()
    assert csv_rows[0] == "rank,name,score,image,preannotation,source,batch"
    assert [row.split(",")[1] for row in csv_rows[1:]] == record["selected"]
    assert sorted(path.stem for path in (folder / "images").iterdir()) == sorted(
        record["selected"])
    assert not (folder / "preannotations").exists()  # no segmentation learner yet
    fake_rows = (folder / "fake_normals.csv").read_text().splitlines()[1:]
    assert [row.split(",")[1] for row in fake_rows] == record["fake_normals"]
    assert len(record["fake_normals"]) == 3
    assert not set(record["fake_normals"]) & set(record["selected"])
    assert max(record["fake_normal_scores"]) <= min(record["scores"])
    assert len((folder / "scores.csv").read_text().splitlines()) == 1 + 40
    # the image written for the labeller is the pool image
    written = np.asarray(Image.open(folder / "images" / f"{record['selected'][0]}.png"))
    original = np.asarray(Image.open(images / f"{record['selected'][0]}.png"))
    assert np.array_equal(written, original)

    answer_round(session, record, truth, tmp_path / "answers")
    second = session.query(n_label=5, n_normal=3)
    assert second["stage"] == "iterative" and second["score"] == "E_sdr+S"  # fused by rank
    assert not set(second["selected"]) & set(record["selected"])
    predicted = sorted((session.path / "rounds/001/preannotations").iterdir())
    assert [path.stem for path in predicted] == sorted(second["selected"])
    assert set(np.unique(np.asarray(Image.open(predicted[0])))) <= {0, 255}


def test_new_sessions_fuse_by_rank_and_older_ones_keep_e_sdr_alone(tmp_path, pool_folder):
    images, _ = pool_folder
    session = LabelingSession.create(tmp_path / "session", images,
                                     scorer_params=TINY_SCORER,
                                     segmenter_params=TINY_SEGMENTER)
    assert session.manifest["settings"]["fusion"] == "rank"
    store = SessionStore(session.path)
    assert session_engine(store, "auto", "cpu", 0, 0).fusion == "rank"
    del store.manifest["settings"]["fusion"]  # as a session of sid4ds 0.2 stored it
    assert session_engine(store, "auto", "cpu", 0, 0).fusion is None
    with pytest.raises(ValueError, match=r"fusion must be one of None, 'rank'; got 'max'"):
        LabelingSession.create(tmp_path / "other", images, fusion="max")
    assert not (tmp_path / "other").exists()


def test_cold_start_repeats_until_a_defect_is_labelled(tmp_path, pool_folder):
    images, truth = pool_folder
    session = new_session(tmp_path, images)
    record = session.query(n_label=2)
    normal = {name: np.zeros_like(truth[name]) for name in record["selected"]}
    session.import_masks(write_masks(tmp_path / "answers", record["selected"], normal))
    record = session.query(n_label=2)
    assert record["stage"] == "cold_start"  # normal images only: still no S to train
    first, second = record["selected"]
    defect = np.zeros_like(truth[first])
    defect[4:8, 4:8] = 1  # the labeller marks a defect in one image, the other is normal
    answers = {first: defect, second: np.zeros_like(defect)}
    session.import_masks(write_masks(tmp_path / "answers_2", [first, second], answers))
    assert session.query(n_label=2)["stage"] == "iterative"


def test_query_refuses_while_masks_are_missing_unless_skipped(tmp_path, pool_folder):
    images, truth = pool_folder
    session = new_session(tmp_path, images)
    record = session.query(n_label=4)
    write_masks(tmp_path / "partial", record["selected"][:2], truth)
    session.import_masks(tmp_path / "partial")
    with pytest.raises(SessionError, match=r"still waits for masks of 2 images.*skip_missing"):
        session.query(n_label=4)
    assert not (session.path / LOCK).exists()  # released after the error
    later = session.query(n_label=4, skip_missing=True)
    skipped = set(record["selected"][2:])
    labeled = set(session.labeled_names)
    assert labeled == set(record["selected"][:2])
    assert not set(later["selected"]) & labeled
    assert session.manifest["rounds"][0]["skipped"] == record["selected"][2:]
    assert skipped <= set(session.names)


def test_query_refuses_when_everything_is_labelled(tmp_path):
    X, masks = make_defect_images(n_samples=4, image_size=16, defect_ratio=0.5, random_state=1)
    for index in range(4):
        save_gray(tmp_path / "images" / f"p{index}.png", np.round(X[index, 0] * 255))
        save_gray(tmp_path / "masks" / f"p{index}.png", masks[index] * 255)
    session = LabelingSession.create(tmp_path / "s", tmp_path / "images", tmp_path / "masks",
                                     scorer_params=TINY_SCORER,
                                     segmenter_params=TINY_SEGMENTER)
    assert session.status()["labeled"] == 4 and session.status()["initially_labeled"] == 4
    with pytest.raises(SessionError, match="every image .* is labelled"):
        session.query()


# ---------------------------------------------------------------------- init
def test_initial_masks_count_as_labelled_and_tiles_are_named(tmp_path):
    rng = np.random.default_rng(0)
    save_gray(tmp_path / "images/a.png", rng.integers(0, 255, (16, 32)))
    save_gray(tmp_path / "images/b.png", rng.integers(0, 255, (16, 32)))
    mask = np.zeros((16, 32))
    mask[2:5, 20:23] = 255
    save_gray(tmp_path / "masks/a_mask.png", mask)
    session = LabelingSession.create(tmp_path / "s", tmp_path / "images", tmp_path / "masks",
                                     tile=16, mask_suffix="_mask",
                                     scorer_params=TINY_SCORER,
                                     segmenter_params=TINY_SEGMENTER)
    assert session.names == ["a_t0", "a_t1", "b_t0", "b_t1"]
    assert session.labeled_names == ["a_t0", "a_t1"]
    status = session.status()
    assert (status["labeled"], status["defective"], status["unlabeled"]) == (2, 1, 2)
    stored = np.asarray(Image.open(session.path / "masks/a_t1.png"))
    assert stored[2:5, 4:7].min() == 255 and stored.sum() == 9 * 255


@pytest.mark.parametrize(
    ("make", "options", "pattern"),
    [
        pytest.param(lambda root: (root / "images").mkdir(), {}, r"no images .* found",
                     id="empty-folder"),
        pytest.param(lambda root: [save_gray(root / "images/a.png", np.zeros((16, 16))),
                                   save_gray(root / "images/b.png", np.zeros((32, 16)))],
                     {}, r"different sizes: .*a\.png is 16x16.*b\.png is 32x16.*image_size=",
                     id="mixed-sizes"),
        pytest.param(lambda root: [save_gray(root / "images/a.png", np.zeros((16, 16))),
                                   (root / "images/b.png").write_bytes(b"not a png")],
                     {}, r"cannot read image file .*b\.png", id="corrupt-image"),
        pytest.param(lambda root: [save_gray(root / "images/a.png", np.zeros((16, 16))),
                                   save_gray(root / "images/a.bmp", np.zeros((16, 16)))],
                     {}, r"two image files share the name 'a'", id="duplicate-names"),
        pytest.param(lambda root: save_gray(root / "images/a.png", np.zeros((18, 18))),
                     {}, r"18x18 .*divisible by 4.*image_size=20", id="not-divisible"),
        pytest.param(lambda root: [save_gray(root / "images/a.png", np.zeros((16, 16))),
                                   save_gray(root / "masks/zz.png", np.zeros((16, 16)))],
                     {"masks": "masks"}, r"mask file .*zz\.png has no image named 'zz'",
                     id="mask-without-image"),
        pytest.param(lambda root: [save_gray(root / "images/a.png", np.zeros((16, 16))),
                                   save_gray(root / "masks/a.png",
                                             np.arange(256).reshape(16, 16))],
                     {"masks": "masks"}, r"mask file .*a\.png is not binary: it has 256 grey",
                     id="mask-not-binary"),
        pytest.param(lambda root: [save_gray(root / "images/a.png", np.zeros((16, 16))),
                                   save_gray(root / "masks/a.png", np.zeros((8, 8)))],
                     {"masks": "masks"}, r"mask .*a\.png is 8x8 .* image .*a\.png is 16x16",
                     id="mask-wrong-size"),
    ],
)
def test_init_rejects_bad_input_naming_the_file(tmp_path, make, options, pattern):
    make(tmp_path)
    if "masks" in options:
        options = {"masks": tmp_path / options["masks"]}
    with pytest.raises(ValueError, match=pattern):  # SessionError is a ValueError
        LabelingSession.create(tmp_path / "s", tmp_path / "images", **options,
                               scorer_params=TINY_SCORER, segmenter_params=TINY_SEGMENTER)
    assert not (tmp_path / "s").exists()
    assert not list(tmp_path.glob(".s.init-*"))


def test_init_skips_unreadable_images_when_asked(tmp_path):
    save_gray(tmp_path / "images/a.png", np.zeros((16, 16)))
    (tmp_path / "images/b.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(SessionWarning, match=r"b\.png"):
        session = LabelingSession.create(tmp_path / "s", tmp_path / "images",
                                         skip_unreadable=True, scorer_params=TINY_SCORER,
                                         segmenter_params=TINY_SEGMENTER)
    assert session.names == ["a"]


def test_init_refuses_an_existing_session(tmp_path, pool_folder):
    images, _ = pool_folder
    new_session(tmp_path, images)
    with pytest.raises(SessionError, match="already exists"):
        new_session(tmp_path, images)


def test_init_rejects_bad_model_settings(tmp_path, pool_folder):
    images, _ = pool_folder
    with pytest.raises(SessionError, match="unexpected keyword"):
        LabelingSession.create(tmp_path / "s", images, scorer_params={"widht": 4})
    with pytest.raises(ValueError, match="base_channels must be >= 1"):
        LabelingSession.create(tmp_path / "s", images, segmenter_params={"base_channels": 0})


# ---------------------------------------------------------------------- out-of-core pools
def test_the_pool_is_an_npy_shard_of_the_images_read_lazily(tmp_path, pool_folder):
    images, _ = pool_folder
    X, _, names = load_image_folder(images)
    session = new_session(tmp_path, images)
    np.testing.assert_array_equal(np.load(session.path / "pool_images.npy"), X)
    pool = session.pool().images
    assert isinstance(pool, ShardedImages) and not isinstance(pool, np.ndarray)
    np.testing.assert_array_equal(pool[[5, 1, 5]], X[[5, 1, 5]])
    np.testing.assert_array_equal(pool[3], X[3])
    np.testing.assert_array_equal(np.asarray(pool), X)
    assert session.names == names
    assert session.manifest["format_version"] == FORMAT_VERSION


def test_a_memmap_image_paths_or_a_dataset_give_the_folders_rounds(tmp_path, pool_folder):
    images, truth = pool_folder
    X, _, names = load_image_folder(images)
    np.save(tmp_path / "X.npy", X)
    paths = [str(path) for path in sorted(images.glob("*.png"))]
    sources = {
        "memmap": (np.load(tmp_path / "X.npy", mmap_mode="r"), {"names": names}),
        "paths": (paths, {}),  # named after their files, like the folder's images
        "dataset": (ImagesDataset(X), {"names": names}),
    }
    folder = new_session(tmp_path / "folder", images, seed=2)
    expected = [folder.query(n_label=4)]
    answer_round(folder, expected[0], truth, tmp_path / "answers")
    expected.append(folder.query(n_label=4))  # an iterative round: S, G and E_sdr
    for kind, (source, options) in sources.items():
        session = new_session(tmp_path / kind, source, seed=2, **options)
        assert session.names == names
        for round_index, wanted in enumerate(expected):
            record = session.query(n_label=4)
            assert record["stage"] == wanted["stage"], kind
            assert (record["selected"], record["scores"], record["fake_normals"]) == (
                wanted["selected"], wanted["scores"], wanted["fake_normals"]), kind
            if round_index == 0:
                answer_round(session, record, truth, tmp_path / f"answers-{kind}")
    sources_column = [row["source"] for row in csv_rows(
        tmp_path / "paths/session/rounds/000/to_label.csv")]
    assert all(source.endswith(".png") and Path(source).is_file() for source in sources_column)
    preannotations = tmp_path / "paths/session/rounds/001/preannotations"
    assert sorted(file.name for file in preannotations.iterdir()) == sorted(
        file.name for file in (folder.path / "rounds/001/preannotations").iterdir())


def csv_rows(file: Path) -> list[dict[str, str]]:
    import csv

    with open(file, newline="") as handle:
        return list(csv.DictReader(handle))


def test_initial_masks_and_tiles_work_for_images_given_as_paths(tmp_path, pool_folder):
    images, truth = pool_folder
    paths = [str(path) for path in sorted(images.glob("*.png"))]
    write_masks(tmp_path / "masks", ["part03", "part07"], truth)
    session = new_session(tmp_path / "a", paths, masks=tmp_path / "masks")
    assert session.labeled_names == ["part03", "part07"]
    np.testing.assert_array_equal(session.mask("part07"), truth["part07"])
    tiled = LabelingSession.create(tmp_path / "tiled", paths, masks=tmp_path / "masks", tile=8,
                                   scorer_params={**TINY_SCORER, "depth": 1, "patch_size": 2},
                                   segmenter_params={**TINY_SEGMENTER, "depth": 1})
    X, _, _ = load_image_folder(images)
    np.testing.assert_array_equal(np.load(tiled.path / "pool_images.npy"), tile(X, 8)[0])
    assert tiled.names[:5] == ["part00_t0", "part00_t1", "part00_t2", "part00_t3", "part01_t0"]
    assert tiled.labeled_names == [f"part{index}_t{k}" for index in ("03", "07")
                                   for k in range(4)]
    np.testing.assert_array_equal(tiled.mask("part07_t3"), truth["part07"][8:, 8:])


def test_image_paths_are_read_like_a_folder_resized_and_skipped(tmp_path, pool_folder):
    images, _ = pool_folder
    big = tmp_path / "big.png"
    Image.fromarray(np.full((32, 24), 200, np.uint8)).save(big)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    paths = [str(images / "part00.png"), str(big), str(broken)]
    with pytest.warns(SessionWarning, match="cannot read image file .*broken.png"):
        session = new_session(tmp_path, paths, image_size=16, skip_unreadable=True)
    assert session.names == ["part00", "big"]
    stored = np.load(session.path / "pool_images.npy")
    assert stored.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(stored[1], 200 / 255, atol=1e-6)


def test_bad_pool_arguments_are_refused_and_leave_no_folder(tmp_path, pool_folder):
    images, _ = pool_folder
    X, _, names = load_image_folder(images)
    target = tmp_path / "session"
    cases = [
        ({"images": X, "names": names[:3]}, "names has 3 entries but images has 40"),
        ({"images": X, "names": ["same"] * 40}, "names has 'same' twice"),
        ({"images": X, "names": ["a/b", *names[1:]]}, r"names\[0\] is 'a/b'"),
        ({"images": X, "mode": "RGB"}, r"mode='RGB' but the images have 1 channel"),
        ({"images": images, "names": names}, "names= is for images given as an array"),
        ({"images": [str(images / "part00.png"), str(images / "nothing.png")]},
         "cannot read image .*nothing.png"),
        ({"images": X[:, :, :15]}, "need sides divisible by 4"),
        ({"images": [str(images / "part00.png")] * 2},
         "the file names of images has 'part00' twice"),
        ({"images": []}, "images is an empty list"),
    ]
    for arguments, message in cases:
        with pytest.raises(SessionError, match=message):
            LabelingSession.create(target, **arguments, scorer_params=TINY_SCORER,
                                   segmenter_params=TINY_SEGMENTER)
        assert not target.exists()
        assert not list(tmp_path.glob(".session.init-*"))


def test_format_version_1_sessions_are_read_and_give_the_same_rounds(tmp_path, pool_folder):
    images, _ = pool_folder
    current = new_session(tmp_path / "v2", images, seed=1)
    old = Path(shutil.copytree(current.path, tmp_path / "v1"))
    pool = current.pool()
    buffer = io.BytesIO()  # format version 1: one compressed npz, read whole
    np.savez_compressed(buffer, images=np.asarray(pool.images), names=np.array(pool.names),
                        keys=pool.keys, sources=pool.sources)
    (old / "pool.npz").write_bytes(buffer.getvalue())
    (old / "pool_images.npy").unlink()
    (old / "pool_meta.npz").unlink()
    manifest = LabelingSession.open(old).manifest
    (old / "session.db").unlink()  # format version 1: the manifest is manifest.json
    manifest["format_version"] = 1
    manifest["pool"] = {"file": "pool.npz", "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                        **{key: manifest["pool"][key] for key in
                           ("n_images", "n_channels", "height", "width")}}
    (old / "manifest.json").write_text(json.dumps(manifest))
    record = LabelingSession.open(old).query(n_label=4)
    assert (record["selected"], record["scores"]) == (
        lambda wanted: (wanted["selected"], wanted["scores"]))(current.query(n_label=4))
    assert LabelingSession.open(old).status()["format_version"] == 1


def test_a_session_holds_no_pool_sized_array(tmp_path, monkeypatch):
    """Peak Python memory of init + a cold-start query: 1600 memmapped images as for 200."""
    monkeypatch.setattr("sid4ds.datasets.pool.CHUNK_VALUES", 64 * 32 * 32)
    images = np.random.default_rng(1).random((1600, 1, 32, 32), dtype=np.float32)
    np.save(tmp_path / "X.npy", images)
    pool_bytes = images.nbytes
    del images

    def peak(n_images: int) -> int:
        source = np.load(tmp_path / "X.npy", mmap_mode="r")[:n_images]
        tracemalloc.start()
        session = LabelingSession.create(tmp_path / f"s{n_images}", source,
                                         scorer_params={**TINY_SCORER, "max_epochs": 1},
                                         segmenter_params=TINY_SEGMENTER)
        session.query(n_label=4, n_normal=4)
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return peak_bytes

    peak(50)  # imports and first-use caches are not the pool's
    small, big = peak(200), peak(1600)
    assert big < 1.5 * small  # names, keys and scores grow, by a few hundred bytes an image
    assert big < pool_bytes / 2


# ---------------------------------------------------------------------- import
def test_import_copies_masks_and_is_idempotent(tmp_path, asked):
    session, record, truth = asked
    answers = write_masks(tmp_path / "answers", record["selected"], truth)
    assert sorted(session.import_masks(answers)["added"]) == sorted(record["selected"])
    for name in record["selected"]:
        (answers / f"{name}.png").unlink()  # the session keeps its own copies
    reopened = LabelingSession.open(session.path)
    assert reopened.labeled_names == record["selected"]
    for name in record["selected"]:
        assert np.array_equal(reopened.mask(name), truth[name])
    write_masks(answers, record["selected"], truth)
    summary = reopened.import_masks(answers)
    assert summary["added"] == [] and sorted(summary["unchanged"]) == sorted(record["selected"])


def test_import_replaces_only_when_asked(tmp_path, asked):
    session, record, truth = asked
    name = record["selected"][0]
    session.import_masks(write_masks(tmp_path / "first", [name], truth))
    other = {name: 1 - truth[name]}
    write_masks(tmp_path / "second", [name], other)
    with pytest.raises(SessionError, match=rf"{name}.*already labelled.*replace"):
        session.import_masks(tmp_path / "second")
    assert session.import_masks(tmp_path / "second", replace=True)["replaced"] == [name]
    assert np.array_equal(session.mask(name), other[name])
    stored = sorted(path.relative_to(session.path / "masks").as_posix()
                    for path in (session.path / "masks").rglob("*.png"))
    assert stored == [f"v2/{name}.png"]  # the old version is removed after the commit


def test_import_checks_every_file_and_imports_nothing_on_error(tmp_path, asked):
    session, record, truth = asked
    folder = write_masks(tmp_path / "answers", record["selected"][:2], truth)
    never_asked = next(name for name in session.names if name not in record["selected"])
    save_gray(folder / f"{never_asked}.png", np.zeros((16, 16)))
    save_gray(folder / "ghost.png", np.zeros((16, 16)))
    save_gray(folder / f"{record['selected'][2]}.png", np.zeros((8, 16)))
    save_gray(folder / f"{record['selected'][3]}.png", np.arange(256).reshape(16, 16))
    save_gray(folder / f"{record['selected'][0]}.bmp", np.zeros((16, 16)))
    (folder / "broken.png").write_bytes(b"garbage")
    with pytest.raises(SessionError) as caught:
        session.import_masks(folder)
    message = str(caught.value)
    assert "nothing was imported" in message
    assert f"image {never_asked!r} was not asked for" in message
    assert "no image named 'ghost'" in message
    assert f"{record['selected'][2]}.png is 8x16" in message
    assert f"{record['selected'][3]}.png is not binary" in message
    assert f"two mask files are for image {record['selected'][0]!r}" in message
    assert "cannot read mask file" in message and "broken.png" in message
    assert session.status()["labeled"] == 0
    assert not (session.path / "masks").exists()


def test_import_rejects_an_empty_or_missing_folder(tmp_path, asked):
    session, _, _ = asked
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionError, match="no mask files"):
        session.import_masks(tmp_path / "empty")
    with pytest.raises(SessionError, match="does not exist"):
        session.import_masks(tmp_path / "nowhere")


# ---------------------------------------------------------------------- state and safety
def test_a_busy_session_refuses_and_a_stale_lock_is_removed(tmp_path, asked):
    session, record, truth = asked
    lock = session.path / LOCK
    live = {"pid": os.getpid(), "host": socket.gethostname(),
            "command": "query", "started": "now", "process_start": None}
    lock.write_text(json.dumps(live))
    write_masks(tmp_path / "answers", record["selected"], truth)
    with pytest.raises(SessionBusyError, match=rf"in use by `sid4ds query` \(pid {live['pid']}"):
        session.import_masks(tmp_path / "answers")
    assert session.status()["lock"]["pid"] == live["pid"]
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    lock.write_text(json.dumps({**live, "pid": finished.pid}))
    assert session.status()["lock"]["stale"] is True
    with pytest.warns(SessionWarning, match="removed a stale lock"):
        session.import_masks(tmp_path / "answers")
    assert not lock.exists()
    assert session.status()["labeled"] == 4


def test_newer_format_and_non_sessions_are_refused(tmp_path, pool_folder):
    images, _ = pool_folder
    session = new_session(tmp_path, images)
    manifest = json.loads((session.path / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (session.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SessionError,
                       match=f"format version {FORMAT_VERSION + 1}.*upgrade sid4ds"):
        LabelingSession.open(session.path)
    with pytest.raises(SessionError, match="does not exist"):
        LabelingSession.open(tmp_path / "missing")
    with pytest.raises(SessionError, match="not a sid4ds session"):
        LabelingSession.open(images)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken/manifest.json").write_text("{ not json")
    with pytest.raises(SessionError, match="cannot read"):
        LabelingSession.open(tmp_path / "broken")


class _Payload:
    """Pickling this would run ``touch`` if a loader unpickled arbitrary objects."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_session_files_hold_no_pickles(tmp_path, asked):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    session.query(n_label=4)
    for file in (session.path / "models").glob("*.pt"):
        state = torch.load(file, weights_only=True)  # the estimators' get_state()
        assert state["format"] == "sid4ds-estimator" and set(state["module"]) and "rng" in state
    assert np.load(session.path / "pool_images.npy", allow_pickle=False).shape == (40, 1, 16, 16)
    with np.load(session.path / "pool_meta.npz", allow_pickle=False) as meta:
        assert len(meta["names"]) == 40
    # a weights file that would run code when unpickled is refused, its code never runs
    payload = _Payload()
    payload.marker = tmp_path / "code-ran"
    weights = session.path / session.manifest["models"]["S"]["weights"]
    torch.save({"format": "sid4ds-estimator", "module": payload}, weights)
    state = StateFile(session.path / "session.db")  # as someone would edit the file
    manifest = state.read()
    manifest["models"]["S"]["sha256"]["weights"] = hashlib.sha256(
        weights.read_bytes()).hexdigest()
    state.write(manifest)
    answer_round(session, session.manifest["rounds"][-1], truth, tmp_path / "more")
    with pytest.raises(SessionError, match="cannot load model file .*S_r001.pt"):
        session.query(n_label=4)
    assert not payload.marker.exists()


def test_changed_files_are_detected(tmp_path, asked):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    mask_file = session.path / session.manifest["labels"][record["selected"][0]]["mask"]
    save_gray(mask_file, np.full((16, 16), 255))
    with pytest.raises(SessionError, match="was changed or damaged"):
        session.query()
    repaired = session.import_masks(tmp_path / "answers", replace=True)
    assert repaired["replaced"] == [record["selected"][0]]
    assert np.array_equal(session.mask(record["selected"][0]),
                          truth[record["selected"][0]])
    for name in ("pool_images.npy", "pool_meta.npz"):
        original = (session.path / name).read_bytes()
        (session.path / name).write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(SessionError, match=rf"{name} was changed or damaged"):
            LabelingSession.open(session.path).query()
        (session.path / name).write_bytes(original)


def test_atomic_file_keeps_the_old_content_when_writing_fails(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"new and incomplete")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["manifest.json"]


# ---------------------------------------------------------------------- RLE codecs
masks_2d = st.integers(1, 15).flatmap(lambda height: st.integers(1, 15).flatmap(
    lambda width: st.lists(st.integers(0, 1), min_size=height * width,
                           max_size=height * width).map(
        lambda values: np.array(values, dtype=np.uint8).reshape(height, width))))


@settings(max_examples=80, deadline=None)
@given(masks_2d)
def test_coco_rle_round_trips_and_reads_uncompressed_rle(mask):
    rle = mask_to_coco_rle(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)  # compressed
    json.dumps(rle)  # ready for an annotations file
    assert np.array_equal(coco_rle_to_mask(rle), mask)
    assert np.array_equal(coco_rle_to_mask(uncompressed_rle(mask)), mask)


def test_coco_rle_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="counts sum to 3 but size 2x2 has 4 pixels"):
        coco_rle_to_mask({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ValueError, match="a COCO RLE is"):
        coco_rle_to_mask({"counts": "abc"})


@settings(max_examples=60, deadline=None)
@given(masks_2d)
def test_brush_rle_round_trips(mask):
    rle = mask_to_brush_rle(mask)
    assert all(0 <= byte <= 255 for byte in rle)
    assert np.array_equal(brush_rle_to_mask(rle, *mask.shape), mask)


def test_brush_rle_decoder_reads_literal_runs_and_the_alpha_channel():
    # written by hand from the format: 8 values, 8-bit words, run widths 3/4/8/16;
    # a literal run of 4 values (pixel 0: alpha 0) then a repeat run of 4 x 255 (pixel 1)
    bits = format(8, "032b") + format(7, "05b") + "".join(
        format(width - 1, "04b") for width in (3, 4, 8, 16))
    bits += "0" + "00" + format(3, "03b") + "".join(format(v, "08b") for v in (9, 9, 9, 0))
    bits += "1" + "00" + format(3, "03b") + format(255, "08b")
    bits += "0" * (-len(bits) % 8)
    rle = list(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    assert brush_rle_to_mask(rle, 1, 2).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="holds 8 values but a 2x2"):
        brush_rle_to_mask(rle, 2, 2)
    with pytest.raises(ValueError, match="truncated"):
        brush_rle_to_mask(rle[:8], 1, 2)


# ---------------------------------------------------------------------- export, report
@pytest.fixture
def two_rounds(tmp_path, pool_folder):
    """A session after two answered rounds and a third asked for."""
    images, truth = pool_folder
    session = new_session(tmp_path, images)
    for round_index in range(2):
        answer_round(session, session.query(n_label=4), truth, tmp_path / f"a{round_index}")
    session.query(n_label=4)
    return session, truth


def test_export_png_uses_the_mvtec_layout(tmp_path, two_rounds):
    session, truth = two_rounds
    out = session.export(tmp_path / "png", "png")
    defective = sorted(name for name in session.labeled_names if truth[name].any())
    normal = sorted(name for name in session.labeled_names if not truth[name].any())
    assert sorted(path.stem for path in (out / "defect").iterdir()) == defective
    assert sorted(path.stem for path in (out / "good").iterdir()) == normal
    for name in defective:
        mask = np.asarray(Image.open(out / "ground_truth/defect" / f"{name}_mask.png"))
        assert np.array_equal(mask > 0, truth[name] > 0)
    with pytest.raises(SessionError, match="already exists and is not empty"):
        session.export(out, "png")


def test_export_coco_loads_in_pycocotools_with_the_right_areas(tmp_path, two_rounds):
    from pycocotools.coco import COCO

    session, truth = two_rounds
    out = session.export(tmp_path / "coco", "coco")
    coco_api = COCO(str(out / "annotations.json"))
    for image_id, image in coco_api.imgs.items():
        name = Path(image["file_name"]).stem
        annotations = coco_api.loadAnns(coco_api.getAnnIds(imgIds=[image_id]))
        assert [annotation["area"] for annotation in annotations] == [
            int(coco_api.annToMask(annotation).sum()) for annotation in annotations]
        union = np.zeros((16, 16), dtype=np.uint8)
        for annotation in annotations:
            union |= coco_api.annToMask(annotation)
        assert np.array_equal(union, truth[name])
        assert sum(annotation["area"] for annotation in annotations) == truth[name].sum()
    coco = json.loads((out / "annotations.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == [
        f"images/{name}.png" for name in session.labeled_names]
    for image in coco["images"]:
        name = Path(image["file_name"]).stem
        assert (out / image["file_name"]).is_file()
        union = np.zeros((16, 16), dtype=np.uint8)
        for annotation in coco["annotations"]:
            if annotation["image_id"] == image["id"]:
                region = coco_rle_to_mask(annotation["segmentation"])
                x, y, w, h = annotation["bbox"]
                assert region.sum() == annotation["area"] > 0
                assert region[y : y + h, x : x + w].sum() == annotation["area"]
                union |= region
        assert np.array_equal(union, truth[name])


def test_label_studio_export_and_import_round_trip(tmp_path, two_rounds):
    session, truth = two_rounds
    out = session.export(tmp_path / "ls", "label-studio")
    tasks = json.loads((out / "tasks.json").read_text())
    waiting = session.status()["waiting"]
    assert [task["data"]["sid4ds_name"] for task in tasks] == [*waiting,
                                                              *session.labeled_names]
    for task in tasks[: len(waiting)]:
        assert "predictions" in task  # S exists: its masks are the pre-annotations
    for task in tasks[len(waiting):]:
        mask = np.zeros((16, 16), np.uint8)
        for result in task["annotations"][0]["result"]:
            mask |= brush_rle_to_mask(result["value"]["rle"], 16, 16)
        assert np.array_equal(mask, truth[task["data"]["sid4ds_name"]])
    assert "<BrushLabels" in (out / "label_config.xml").read_text()
    # what Label Studio exports after the human's work: an upload prefix, no sid4ds_name
    exported = []
    for number, name in enumerate(waiting):
        result = ([{"type": "brushlabels", "original_width": 16, "original_height": 16,
                    "value": {"format": "rle", "rle": mask_to_brush_rle(truth[name]),
                              "brushlabels": ["defect"]}}] if truth[name].any() else [])
        annotations = [{"result": result}] if number else [{"result": [],
                                                            "was_cancelled": True}]
        exported.append({"id": number + 1, "annotations": annotations,
                         "data": {"image": f"/data/upload/3/1a2b3c4d-{name}.png"}})
    (tmp_path / "export.json").write_text(json.dumps(exported))
    summary = session.import_label_studio(tmp_path / "export.json")
    assert sorted(summary["added"]) == sorted(waiting[1:])
    assert summary["not_annotated"] == waiting[:1]
    for name in waiting[1:]:
        assert np.array_equal(session.mask(name), truth[name])


def test_label_studio_import_names_bad_tasks(tmp_path, asked):
    session, record, _ = asked
    tasks = [{"id": 7, "data": {"image": "elsewhere.png"}, "annotations": [{"result": []}]},
             {"id": 8, "data": {"sid4ds_name": record["selected"][0]},
              "annotations": [{"result": [{"type": "polygonlabels", "value": {}}]}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    with pytest.raises(SessionError, match=r"task 7 .*cannot tell which(.|\n)*task 8 .*"
                                           r"'polygonlabels' is not supported"):
        session.import_label_studio(tmp_path / "export.json")
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(SessionError, match="cannot read Label Studio export"):
        session.import_label_studio(tmp_path / "bad.json")


def test_report_writes_html_and_the_plots_it_shows(tmp_path, two_rounds):
    session, _ = two_rounds
    index = session.report()
    page = index.read_text()
    sources = [part.split('"')[0] for part in page.split('src="')[1:]]
    assert {"score_histogram.png", "defects_per_round.png", "fake_normal_sample.png"} <= set(
        sources)
    assert len([source for source in sources if source.startswith("top/")]) == 4
    for source in sources:
        with Image.open(index.parent / source) as image:
            assert image.width > 16 and image.height > 16
    record = session.manifest["rounds"][-1]
    for name in record["selected"]:
        assert name in page
    # three panels per image: the image, its error map and S's predicted mask
    with Image.open(index.parent / "top/001.png") as panels:
        assert panels.width >= 3 * panels.height - 12
