"""Tests for sid4ds.session.deliver: the model out of a session (train, segmenter, predict,
export --format model), through the Python API and the ``sid4ds`` command."""

from __future__ import annotations

import csv
import datetime
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sid4ds import SegmentationLearner
from sid4ds.cli import main
from sid4ds.datasets import load_image_folder, tile
from sid4ds.datasets.imageio import cut_pieces, join_pieces
from sid4ds.estimators.final_model import check_final_settings
from sid4ds.nn.unet import UNet
from sid4ds.session import LabelingSession, SessionError, storage
from sid4ds.session.deliver import trains_alike
from sid4ds.session.manifest import open_manifest

from ..conftest import TINY_SCORER, save_gray

# S learns bright squares on noise in 80 steps; 4 masks of 4 tiles each are its labels.
SEGMENTER = {"base_channels": 4, "depth": 2, "max_steps": 80}
# the final model: as S, 2 folds, 2 checkpoints (3 fits of 80 steps)
FINAL = {"max_steps": 80, "n_folds": 2, "n_checkpoints": 2}
LABELLED = ("p00", "p01", "p02", "p03", "p08", "p09", "p10", "p11")  # 4 defective, 4 normal


def square_images(seed: int, n_images: int, n_defective: int,
                  size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Grey noise (uint8); the first ``n_defective`` carry a bright 4x4 square (the mask)."""
    rng = np.random.default_rng(seed)
    images = np.clip(100 + 12 * rng.standard_normal((n_images, size, size)), 0, 255)
    masks = np.zeros((n_images, size, size), np.uint8)
    for index in range(n_defective):
        row, col = rng.integers(0, size - 4, size=2)
        images[index, row : row + 4, col : col + 4] = 240
        masks[index, row : row + 4, col : col + 4] = 1
    return images.astype(np.uint8), masks


def csv_rows(file: Path) -> list[dict[str, str]]:
    with open(file, newline="") as handle:
        return list(csv.DictReader(handle))


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    predicted, truth = predicted > 0, truth > 0
    return float((predicted & truth).sum() / max(1, (predicted | truth).sum()))


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> dict:
    """12 images of 32 px (p00-p07 with a square), their masks, and 4 new images to predict."""
    root = tmp_path_factory.mktemp("squares")
    images, masks = square_images(0, 12, 8)
    for index in range(12):
        save_gray(root / "images" / f"p{index:02d}.png", images[index])
        if f"p{index:02d}" in LABELLED:
            save_gray(root / "masks" / f"p{index:02d}.png", masks[index] * 255)
    new_images, new_masks = square_images(1, 4, 2)
    for index in range(4):
        save_gray(root / "new" / f"n{index}.png", new_images[index])
    return {"root": root, "masks": masks, "new": root / "new", "new_masks": new_masks}


@pytest.fixture(scope="module")
def trained(squares, tmp_path_factory) -> LabelingSession:
    """A session of the squares cut into 16 px tiles, 8 images labelled at init, the final
    model trained."""
    root = tmp_path_factory.mktemp("trained")
    session = LabelingSession.create(
        root / "session", squares["root"] / "images", squares["root"] / "masks", tile=16,
        scorer_params=TINY_SCORER, segmenter_params=SEGMENTER, final_params=FINAL)
    summary = session.train(device="cpu")
    assert (summary["round"], summary["n_training"], summary["trained"]) == (0, 32, True)
    assert summary["n_folds"] == 2 and summary["n_steps"] in (40, 80)
    return session


@pytest.fixture(scope="module")
def quick(squares, tmp_path_factory) -> LabelingSession:
    """As ``trained``, with models of 3 steps: for tests of when they are trained, not how
    well."""
    root = tmp_path_factory.mktemp("quick")
    session = LabelingSession.create(
        root / "session", squares["root"] / "images", squares["root"] / "masks", tile=16,
        scorer_params={**TINY_SCORER, "max_epochs": 1},
        segmenter_params={**SEGMENTER, "max_steps": 3}, final_params={**FINAL, "max_steps": 3})
    session.train(device="cpu")
    return session


def copy_of(session: LabelingSession, tmp_path: Path) -> LabelingSession:
    return LabelingSession.open(shutil.copytree(session.path, tmp_path / "copy"))


def labelled_set(session: LabelingSession) -> tuple[np.ndarray, np.ndarray]:
    pool = session.pool()
    names = session.labeled_names
    return (np.asarray(pool.images[[pool.index[name] for name in names]]),
            np.stack([session.mask(name) for name in names]))


def write_tile_masks(folder: Path, masks: np.ndarray, image: str) -> list[str]:
    """The human labels image ``pNN``: a mask file per 16 px tile; the tile names."""
    tiles = tile(masks[[int(image[1:])]][:, None], 16)[0][:, 0]
    names = [f"{image}_t{k}" for k in range(len(tiles))]
    for name, mask in zip(names, tiles, strict=True):
        save_gray(folder / f"{name}.png", mask * 255)
    return names


# ---------------------------------------------------------------------- train, final model
def test_train_gives_a_final_model_that_finds_the_labelled_defects(trained):
    X, y = labelled_set(trained)
    assert len(X) == 32 and 0 < int(y.reshape(32, -1).any(axis=1).sum()) < 32
    model = trained.final_model(device="cpu")
    assert isinstance(model, SegmentationLearner)
    assert model.image_shape_ == (16, 16)  # trained on the session's tiles
    cv = trained.cross_validation()
    assert model.threshold == cv.threshold and cv.defect_ratio == 0.05
    assert sum(entry["steps"] for entry in model.history_) == cv.n_steps
    barely = SegmentationLearner(**{**model.get_params(), "max_steps": 1}).fit(X, y)
    trained_iou, barely_iou = iou(model.predict(X), y), iou(barely.predict(X), y)
    assert trained_iou >= 0.5 and trained_iou > barely_iou + 0.3
    # the estimate is of held-out tiles; every tile of one image was in one fold
    assert cv.n_defective.sum() + cv.n_normal.sum() == 32
    assert 0.0 < cv.estimate()["iou"]["mean"] <= 1.0
    # the session keeps it: reopened, the same model; the S of the rounds is not made
    again = LabelingSession.open(trained.path)
    np.testing.assert_array_equal(again.final_model(device="cpu").predict_proba(X),
                                  model.predict_proba(X))
    assert set(again.manifest["model_files"]) == {"F_r000"}
    assert again.status()["final_model"]["threshold"] == cv.threshold


def test_train_prints_the_estimate_and_status_shows_it(trained, capsys):
    code, out, err = run_main(capsys, "train", trained.path, "--device", "cpu", "--quiet")
    assert code == 0, err
    assert "already trained on every label" in out
    assert "threshold" in out and "defect IoU" in out and "normal images flagged" in out
    assert "images 0.05 defective" in out
    # no audit: the estimate is said to be of the ranked images, and how to get one
    assert f"sid4ds query {trained.path} --audit N" in out and "weighted to the pool" not in out
    code, out, err = run_main(capsys, "status", trained.path)
    assert code == 0 and "final model  round 0, threshold" in out and "defect IoU" in out


def test_folds_keep_the_tiles_of_one_image_together(squares, tmp_path, monkeypatch):
    from sid4ds.session import deliver

    seen = {}

    def spy(segmenter, X, y, **options):
        seen.update(options)
        raise SessionError("stop here")

    monkeypatch.setattr(deliver, "train_final_model", spy)
    session = LabelingSession.create(
        tmp_path / "s", squares["root"] / "images", squares["root"] / "masks", tile=16,
        scorer_params=TINY_SCORER, segmenter_params=SEGMENTER, final_params=FINAL)
    with pytest.raises(SessionError, match="stop here"):
        session.train(device="cpu")
    groups = seen["groups"]
    names = session.labeled_names
    assert len(set(groups)) == 8  # 8 source files of 4 tiles each
    for name, group in zip(names, groups, strict=True):
        assert Path(group).stem == name.split("_t")[0]


def test_train_refuses_before_two_defects_are_labelled(squares, tmp_path):
    for index in (8, 9):  # two normal images only
        save_gray(tmp_path / "normal" / f"p{index:02d}.png", np.zeros((32, 32)))
    session = LabelingSession.create(tmp_path / "s", squares["root"] / "images",
                                     tmp_path / "normal", tile=16,
                                     scorer_params=TINY_SCORER, segmenter_params=SEGMENTER)
    with pytest.raises(SessionError, match=r"has no segmentation learner yet.*sid4ds train"):
        session.segmenter()
    with pytest.raises(SessionError, match=r"no final model yet.*sid4ds train"):
        session.final_model()
    with pytest.raises(SessionError, match=r"needs at least 2 defective images.*0 "
                                           r"defective and 8 normal"):
        session.train(device="cpu")
    with pytest.raises(SessionError, match="no segmentation learner yet"):
        session.export(tmp_path / "model", "model")
    assert LabelingSession.open(session.path).manifest["models"] == {}


def test_train_again_trains_only_when_labels_or_settings_changed(quick, squares, tmp_path):
    session = copy_of(quick, tmp_path)
    weights = session.path / session.manifest["models"]["F"]["weights"]
    before = weights.read_bytes()
    assert session.train(device="cpu")["trained"] is False
    assert weights.read_bytes() == before
    X, _ = labelled_set(session)
    old = session.final_model("cpu").predict_proba(X)
    # a new label (any image, not asked for by a round): the final model has not seen it
    names = write_tile_masks(tmp_path / "more", squares["masks"], "p04")
    assert sorted(session.import_masks(tmp_path / "more", any_image=True)["added"]) == names
    summary = session.train(device="cpu")
    assert summary["trained"] is True and summary["n_training"] == 36
    assert not np.array_equal(session.final_model("cpu").predict_proba(X), old)
    assert session.train(device="cpu")["trained"] is False


def test_settings_stored_before_the_precision_count_as_fp32(cpu_units):
    stored = {**FINAL}  # an older release stored no precision: it trained in fp32
    cpu = torch.device("cpu")
    cpu_units(False)
    assert trains_alike(stored, {**FINAL, "precision": "auto"}, cpu)
    assert trains_alike(stored, {**FINAL, "precision": "fp32"}, cpu)
    assert not trains_alike(stored, {**FINAL, "precision": "bf16"}, cpu)
    assert not trains_alike(stored, {**FINAL, "max_steps": 81, "precision": "fp32"}, cpu)
    assert not trains_alike(None, {**FINAL, "precision": "fp32"}, cpu)
    cpu_units(True)
    assert not trains_alike(stored, {**FINAL, "precision": "auto"}, cpu)
    assert trains_alike({**FINAL, "precision": "bf16"}, {**FINAL, "precision": "auto"}, cpu)


class FastClock:
    """``datetime`` for sid4ds.session.storage whose every reading is 1 ms after the last:
    commands that follow each other within one second."""

    timezone = datetime.timezone

    def __init__(self) -> None:
        self.time = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
        self.datetime = self

    def now(self, tz=None):
        self.time += datetime.timedelta(milliseconds=1)
        return self.time


def test_a_label_imported_within_a_second_of_training_counts_as_unseen(
        quick, squares, tmp_path, monkeypatch):
    session = copy_of(quick, tmp_path)
    monkeypatch.setattr(storage, "datetime", FastClock())
    write_tile_masks(tmp_path / "first", squares["masks"], "p04")
    session.import_masks(tmp_path / "first", any_image=True)
    assert session.train(device="cpu")["trained"] is True
    write_tile_masks(tmp_path / "second", squares["masks"], "p05")
    session.import_masks(tmp_path / "second", any_image=True)  # 1 ms after S was saved
    exported = session.export(tmp_path / "model", "model")
    assert json.loads((exported / "segmenter.json").read_text())["labels_not_seen"] == 4
    summary = session.train(device="cpu")
    assert summary["trained"] is True and summary["n_training"] == 40


def test_train_leaves_the_s_of_the_rounds_to_the_next_query(quick, tmp_path):
    session = copy_of(quick, tmp_path)
    final = session.manifest["models"]["F"]
    record = session.query(n_label=2, n_normal=2, device="cpu")
    assert record["stage"] == "iterative"
    assert "train_S" in record["seconds"] and "train_G" in record["seconds"]
    assert set(session.manifest["model_files"]) == {"F_r000", "S_r000", "M_r000", "G_r000"}
    assert session.manifest["models"]["F"] == final


# ---------------------------------------------------------------------- predict
def joined_probabilities(model: SegmentationLearner, folder: Path, **cutting) -> dict:
    """The model's probability map of each image in ``folder`` at the image's own size,
    computed independently: pieces as init cut them, joined back by ``join_pieces``."""
    maps = {}
    for path in sorted(folder.glob("*.png")):
        image = np.asarray(Image.open(path), dtype=np.float32)[None] / 255
        pieces = cut_pieces(path.stem, image, np.zeros(image.shape[1:], np.uint8),
                            where=path.name, **cutting)
        probabilities = model.predict_proba(np.stack([piece for _, piece, _ in pieces]))
        maps[path.stem] = join_pieces(list(probabilities), image.shape[1:], **cutting)
    return maps


def test_predict_writes_a_mask_per_image_at_its_size_and_counts_the_flagged(
        trained, squares, tmp_path, capsys):
    out = tmp_path / "predicted"
    code, stdout, err = run_main(capsys, "predict", trained.path, "--images", squares["new"],
                                 "--out", out, "--device", "cpu", "--quiet")
    assert code == 0, err
    assert "warning" not in err  # the final model saw every label
    assert str(out / "scores.csv") in stdout
    model = trained.final_model("cpu")
    maps = joined_probabilities(model, squares["new"], image_size=None, tile_size=(16, 16))
    rows = csv_rows(out / "scores.csv")
    assert [row["name"] for row in rows] == ["n0", "n1", "n2", "n3"]
    assert sorted(path.name for path in (out / "masks").iterdir()) == [
        f"n{index}.png" for index in range(4)]
    for row in rows:
        mask = np.asarray(Image.open(out / row["mask"]))
        assert mask.shape == (32, 32) == (int(row["height"]), int(row["width"]))
        probability = maps[row["name"]]
        np.testing.assert_array_equal(
            mask, (probability >= model.threshold).astype(np.uint8) * 255)
        assert float(row["defect_score"]) == pytest.approx(float(probability.max()), rel=1e-5)
        assert int(row["defect_pixels"]) == int((mask > 0).sum())
        assert int(row["defective"]) == int(mask.any())
        assert Path(row["source"]).name == f"{row['name']}.png"
    flagged = sum(int(row["defective"]) for row in rows)
    assert f"flagged {flagged} of 4 images" in stdout
    # the images with a defect rank above every image without, and their masks overlap
    defective = squares["new_masks"].reshape(4, -1).any(axis=1)
    assert defective.tolist() == [True, True, False, False]
    scores = np.array([float(row["defect_score"]) for row in rows])
    assert scores[defective].min() > scores[~defective].max()
    for index in np.flatnonzero(defective):
        mask = np.asarray(Image.open(out / "masks" / f"n{index}.png")) > 0
        assert iou(mask, squares["new_masks"][index]) > 0.3


def test_predict_threshold_and_output_folder_rules(trained, squares, tmp_path):
    out = tmp_path / "predicted"
    trained.predict(squares["new"], out, threshold=0.9, device="cpu")
    maps = joined_probabilities(trained.final_model("cpu"), squares["new"], image_size=None,
                                tile_size=(16, 16))
    for name, probability in maps.items():
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        np.testing.assert_array_equal(mask > 0, probability >= 0.9)
    before = (out / "scores.csv").read_bytes()
    with pytest.raises(SessionError, match=rf"{out.name} already exists and is not empty.*"
                                           r"overwrite"):
        trained.predict(squares["new"], out, device="cpu")
    assert (out / "scores.csv").read_bytes() == before
    trained.predict(squares["new"], out, device="cpu", overwrite=True)
    chosen = trained.final_model("cpu").threshold  # without a threshold: the model's
    assert chosen != 0.9
    for name, probability in maps.items():
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        np.testing.assert_array_equal(mask > 0, probability >= chosen)
    assert not list(tmp_path.glob(".predicted.*"))


def test_predict_overwrite_replaces_a_file_and_leaves_nothing_of_it(trained, squares,
                                                                     tmp_path):
    out = tmp_path / "predicted"
    out.write_text("an old file in the way")
    with pytest.raises(SessionError, match=r"already exists and is not empty.*overwrite"):
        trained.predict(squares["new"], out, device="cpu")
    assert out.read_text() == "an old file in the way"
    trained.predict(squares["new"], out, device="cpu", overwrite=True)
    assert (out / "scores.csv").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["predicted"]


def test_predict_never_replaces_its_images_or_the_session(quick, squares, tmp_path):
    session = copy_of(quick, tmp_path)
    images = Path(shutil.copytree(squares["new"], tmp_path / "in" / "new"))
    before = {path.name: path.read_bytes() for path in images.iterdir()}
    for target, what in ((images, "the images"), (images.parent, "the images"),
                         (tmp_path, "the session"), (session.path, "the session")):
        with pytest.raises(SessionError, match=rf"{target} is or holds {what} "):
            session.predict(images, target, device="cpu", overwrite=True)
    assert {path.name: path.read_bytes() for path in images.iterdir()} == before
    assert LabelingSession.open(session.path).final_model("cpu") is not None


def test_predict_undoes_the_resizing_of_init(squares, tmp_path):
    session = LabelingSession.create(
        tmp_path / "s", squares["root"] / "images", squares["root"] / "masks", image_size=16,
        scorer_params=TINY_SCORER, segmenter_params={**SEGMENTER, "max_steps": 2},
        final_params={**FINAL, "max_steps": 2})
    session.train(device="cpu")
    wide = np.clip(np.random.default_rng(0).normal(120, 30, (24, 48)), 0, 255)
    save_gray(tmp_path / "new" / "wide.png", wide)  # another size
    shutil.copy(squares["new"] / "n0.png", tmp_path / "new" / "n0.png")
    out = session.predict(tmp_path / "new", tmp_path / "out", device="cpu")
    model = session.final_model("cpu")
    maps = joined_probabilities(model, tmp_path / "new", image_size=(16, 16), tile_size=None)
    rows = csv_rows(out / "scores.csv")
    assert [row["name"] for row in rows] == ["n0", "wide"]
    for row, shape in zip(rows, ((32, 32), (24, 48)), strict=True):
        mask = np.asarray(Image.open(out / row["mask"]))
        assert mask.shape == shape == (int(row["height"]), int(row["width"]))
        np.testing.assert_array_equal(mask > 0, maps[row["name"]] >= model.threshold)
        assert float(row["defect_score"]) == pytest.approx(float(maps[row["name"]].max()),
                                                           rel=1e-5)


def test_predict_before_train_uses_the_s_of_the_rounds_and_says_so(quick, squares,
                                                                   tmp_path, capsys):
    session = copy_of(quick, tmp_path)
    session.query(n_label=2, n_normal=2, device="cpu")  # trains the S of the rounds
    manifest, state = open_manifest(session.path)
    del manifest["models"]["F"]  # as before `sid4ds train`
    state.write(manifest)
    code, out, err = run_main(capsys, "predict", session.path, "--images", squares["new"],
                              "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
    assert "no final model yet: using the S of the rounds" in err and "sid4ds train" in err


def test_predict_warns_when_the_final_model_missed_labels(quick, squares, tmp_path, capsys):
    session = copy_of(quick, tmp_path)
    write_tile_masks(tmp_path / "more", squares["masks"], "p06")
    session.import_masks(tmp_path / "more", any_image=True)
    code, _, err = run_main(capsys, "predict", session.path, "--images", squares["new"],
                            "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0
    assert "the final model was trained before 4 of the labels" in err
    assert "sid4ds train" in err
    exported = session.export(tmp_path / "model", "model")
    assert json.loads((exported / "segmenter.json").read_text())["labels_not_seen"] == 4


def test_the_final_model_predicts_in_fp32_whether_or_not_it_trained_in_bf16(
        trained, squares, cpu_units):
    X, _, _ = load_image_folder(squares["new"], tile=16)
    final = trained.final_model("cpu")
    assert final.precision == "auto"
    cpu_units(True)  # "auto" trains in bf16 here, and predicts in fp32 all the same
    with_amx = final.predict_proba(X)
    cpu_units(False)
    np.testing.assert_array_equal(with_amx, final.predict_proba(X))


# ---------------------------------------------------------------------- export --format model
def test_export_model_loads_back_and_predicts_like_the_session(trained, squares, tmp_path,
                                                               capsys):
    out = tmp_path / "model"
    code, _, err = run_main(capsys, "export", trained.path, "--format", "model", "--out", out)
    assert code == 0, err
    assert sorted(path.name for path in out.iterdir()) == [
        "segmenter.json", "segmenter.pt", "unet_state_dict.pt"]
    X, _, _ = load_image_folder(squares["new"], tile=16)
    session_s = trained.final_model("cpu")
    # only tensors and plain containers: readable with weights_only=True
    state = torch.load(out / "segmenter.pt", weights_only=True)
    assert state["format"] == "sid4ds-estimator" and state["class"] == "SegmentationLearner"
    loaded = SegmentationLearner.load(out / "segmenter.pt", device="cpu")
    np.testing.assert_array_equal(loaded.predict_proba(X), session_s.predict_proba(X))
    settings = json.loads((out / "segmenter.json").read_text())
    assert settings["preprocessing"]["tile"] == [16, 16]
    assert settings["preprocessing"]["image_size"] is None
    assert settings["preprocessing"]["image_shape"] == [16, 16]
    assert settings["preprocessing"]["mode"] == "L"
    assert (settings["trained_for_round"], settings["labels_not_seen"]) == (0, 0)
    assert settings["threshold"] == session_s.threshold == trained.cross_validation().threshold
    assert settings["cross_validation"]["estimate"] == trained.cross_validation().estimate()
    # plain PyTorch: the bare UNet, sigmoid, threshold
    network = UNet(**settings["unet"])
    network.load_state_dict(torch.load(out / "unet_state_dict.pt", weights_only=True))
    with torch.inference_mode():
        probabilities = torch.sigmoid(network.eval()(torch.from_numpy(X))[:, 0]).numpy()
    np.testing.assert_allclose(probabilities, session_s.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(probabilities >= settings["threshold"],
                                  session_s.predict(X).astype(bool))


def test_a_final_model_trained_without_the_pasted_defects_is_trained_again():
    cpu = torch.device("cpu")
    today = check_final_settings(FINAL)
    before = {key: value for key, value in today.items() if key != "paste_defects"}
    assert today["paste_defects"] is True
    assert not trains_alike(before, today, cpu)
    assert trains_alike(dict(today), today, cpu)
