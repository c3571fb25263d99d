"""Tests for sid4ds.session.labels: ``sid4ds import`` of mask folders (suffixes, ``--any``,
fake normals found defective) and of COCO files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from sid4ds.cli import main
from sid4ds.session import LabelingSession, SessionError, SessionWarning

from ..conftest import new_session, uncompressed_rle, write_masks


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def square(top: int, left: int, side: int = 4) -> np.ndarray:
    mask = np.zeros((16, 16), np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def other_images(session: LabelingSession, record: dict) -> list[str]:
    """Pool images the round neither asked for nor made fake normals."""
    taken = set(record["selected"]) | set(record["fake_normals"])
    return [name for name in session.names if name not in taken]


# ---------------------------------------------------------------------- mask folders
def test_init_masks_with_a_suffix_are_refused_with_the_option_that_fixes_it(tmp_path,
                                                                            pool_folder,
                                                                            capsys):
    images, truth = pool_folder
    named = sorted(truth)[:3]
    folder = write_masks(tmp_path / "initial", named, truth, suffix="_mask")
    code, _, err = run_main(capsys, "init", tmp_path / "session", "--images", images,
                            "--masks", folder)
    assert code == 1 and "Traceback" not in err
    assert f"did you mean image '{named[0]}'? pass --mask-suffix _mask" in err
    assert not (tmp_path / "session").exists()  # nothing half-made left behind
    session = new_session(tmp_path, images, masks=folder, mask_suffix="_mask")
    assert session.status()["labeled"] == 3


def test_label_studio_commands_without_the_sdk_say_how_to_install_it(tmp_path, asked,
                                                                    capsys, monkeypatch):
    session, record, _ = asked
    task = {"id": 1, "data": {"sid4ds_name": record["selected"][0]},
            "annotations": [{"result": [{
                "type": "brushlabels", "original_width": 16, "original_height": 16,
                "value": {"format": "rle", "rle": [0, 0, 0, 1, 2], "brushlabels": ["defect"]},
            }]}]}
    (tmp_path / "export.json").write_text(json.dumps([task]))
    for module in ("label_studio_sdk", "label_studio_sdk.converter",
                   "label_studio_sdk.converter.brush"):
        monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    code, _, err = run_main(capsys, "import", session.path, "--label-studio",
                            tmp_path / "export.json")
    assert code == 1 and "Traceback" not in err
    assert "need the label-studio-sdk package" in err and "pip install" in err
    assert LabelingSession.open(session.path).status()["labeled"] == 0


def test_masks_with_a_suffix_are_refused_with_the_option_that_fixes_it(tmp_path, asked,
                                                                       capsys):
    session, record, truth = asked
    folder = write_masks(tmp_path / "answers", record["selected"], truth, suffix="_mask")
    code, _, err = run_main(capsys, "import", session.path, "--masks", folder)
    assert code == 1 and "Traceback" not in err
    first = record["selected"][0]
    assert f"no image named '{first}_mask'" in err
    assert f"did you mean image '{first}'? pass --mask-suffix _mask" in err
    assert "mask_suffix=" not in err  # the shell's option, not the Python argument
    assert LabelingSession.open(session.path).status()["labeled"] == 0
    with pytest.raises(SessionError, match=r"pass mask_suffix='_mask' \(--mask-suffix _mask\)"):
        session.import_masks(folder)
    # the hinted option imports them
    code, out, err = run_main(capsys, "import", session.path, "--masks", folder,
                              "--mask-suffix", "_mask")
    assert code == 0, err
    assert "imported 4 new masks" in out
    reopened = LabelingSession.open(session.path)
    for name in record["selected"]:
        np.testing.assert_array_equal(reopened.mask(name), truth[name])


def test_any_labels_a_fake_normal_and_it_stops_being_one(tmp_path, asked, capsys):
    session, record, truth = asked
    fake, stranger = record["fake_normals"][0], other_images(session, record)[0]
    drawn = {fake: square(2, 3), stranger: square(9, 9)}
    folder = write_masks(tmp_path / "any", [fake, stranger], drawn)
    with pytest.raises(SessionError, match=rf"{fake!r} was not asked for.*any_image=True"):
        session.import_masks(folder)
    code, _, err = run_main(capsys, "import", session.path, "--masks", folder)
    assert code == 1 and f"{fake!r} was not asked for" in err and "--any" in err
    before = session.status()

    code, out, err = run_main(capsys, "import", session.path, "--masks", folder, "--any")
    assert code == 0, err
    assert "imported 2 new masks" in out
    # both masks show a defect; only the fake normal had been taken for a normal image
    assert (f"warning: 1 of the imported masks show a defect in images that were fake "
            f"normals of round 0 ({fake})") in err
    reopened = LabelingSession.open(session.path)
    assert set(reopened.labeled_names) == {fake, stranger}
    np.testing.assert_array_equal(reopened.mask(fake), drawn[fake])
    status = reopened.status()
    assert status["fake_normals"] == before["fake_normals"] - 1  # no longer a fake normal
    assert status["unlabeled"] == before["unlabeled"] - 1  # the stranger
    assert status["labeled"] == 2 and status["n_waiting"] == 4

    # the training set has the fake normal once, with its mask: answered all normal, the
    # asked images alone would not let S train (no defect), and S trains on 4 + 2 + 3
    normal = {name: np.zeros((16, 16), np.uint8) for name in record["selected"]}
    reopened.import_masks(write_masks(tmp_path / "normal", record["selected"], normal))
    summary = reopened.train(device="cpu")
    assert summary["n_training"] == 4 + 2 + (len(record["fake_normals"]) - 1)
    # and the next round ranks neither of them
    later = reopened.query(n_label=4, device="cpu")
    ranked = {row.split(",")[0] for row in
              (reopened.path / later["folder"] / "scores.csv").read_text().splitlines()[1:]}
    assert not ranked & {fake, stranger}


def test_defective_fake_normals_of_earlier_rounds_are_counted_in_a_warning(tmp_path, asked):
    session, record, _ = asked
    zeros = np.zeros((16, 16), np.uint8)
    session.import_masks(write_masks(tmp_path / "a0", record["selected"],
                                     dict.fromkeys(record["selected"], zeros)))
    second = session.query(n_label=4, n_normal=2)  # a cold start again: no defect yet
    assert second["stage"] == "cold_start"
    only_first = [name for name in record["fake_normals"]
                  if name not in second["fake_normals"] and name not in second["selected"]]
    assert len(only_first) >= 2 and len(second["fake_normals"]) == 2
    defective = [only_first[0], *second["fake_normals"]]
    masks = {**dict.fromkeys(second["selected"], zeros),
             **dict.fromkeys(defective, square(4, 4)), only_first[1]: zeros}
    folder = write_masks(tmp_path / "a1", list(masks), masks)
    with pytest.warns(SessionWarning) as caught:
        summary = session.import_masks(folder, any_image=True)
    messages = [str(warning.message) for warning in caught
                if issubclass(warning.category, SessionWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("3 of the imported masks show a defect in images that "
                                  "were fake normals of rounds 0, 1")
    assert sorted(summary["defective_fake_normals"]) == sorted(defective)
    assert only_first[1] not in summary["defective_fake_normals"]  # normal after all


# ---------------------------------------------------------------------- COCO
def rectangle_polygon(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def decoded(segmentation) -> np.ndarray:
    """What pycocotools itself makes of a segmentation on a 16x16 image."""
    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, 16, 16))
    else:
        rle = coco_mask.frPyObjects(segmentation, 16, 16)
    return coco_mask.decode(rle).astype(np.uint8)


def compressed(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def test_import_coco_reads_rle_polygons_and_unannotated_images(tmp_path, asked, capsys):
    session, record, _ = asked
    a, b, c, d = record["selected"]
    polygon = rectangle_polygon(3, 5, 10, 12)
    annotations = [
        (a, compressed(square(1, 1)), 0), (a, compressed(square(10, 8, side=3)), 0),
        (b, polygon, 0),
        (c, uncompressed_rle(square(6, 2, side=5)), 1),
    ]
    expected = {a: square(1, 1) | square(10, 8, side=3), b: decoded(polygon),
                c: square(6, 2, side=5), d: np.zeros((16, 16), np.uint8)}
    assert expected[b][6:11, 4:9].all() and expected[b].sum() < 100  # the rectangle
    coco = {
        "images": [{"id": number, "file_name": f"images/{name}.png", "height": 16,
                    "width": 16} for number, name in enumerate((a, b, c, d), start=1)],
        "annotations": [{"id": number, "image_id": [a, b, c, d].index(name) + 1,
                         "category_id": 1, "segmentation": segmentation, "iscrowd": crowd,
                         "area": 1, "bbox": [0, 0, 1, 1]}
                        for number, (name, segmentation, crowd) in
                        enumerate(annotations, start=1)],
        "categories": [{"id": 1, "name": "scratch"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    code, out, err = run_main(capsys, "import", session.path, "--coco", tmp_path / "coco.json")
    assert code == 0, err
    assert "imported 4 new masks" in out
    reopened = LabelingSession.open(session.path)
    for name, mask in expected.items():
        np.testing.assert_array_equal(reopened.mask(name), mask, err_msg=name)
    assert reopened.status()["defective"] == 3


def test_import_coco_checks_names_sizes_and_rounds(tmp_path, asked):
    session, record, _ = asked
    stranger = other_images(session, record)[0]
    coco = {"images": [{"id": 1, "file_name": f"{record['selected'][0]}.png", "height": 32,
                        "width": 16},
                       {"id": 2, "file_name": "nowhere/ghost.png", "height": 16, "width": 16},
                       {"id": 3, "file_name": f"{stranger}.jpg", "height": 16, "width": 16}],
            "annotations": [{"id": 7, "image_id": 9, "category_id": 1, "iscrowd": 0,
                             "segmentation": rectangle_polygon(3, 5, 10, 12), "area": 1,
                             "bbox": [0, 0, 1, 1]}],
            "categories": [{"id": 1, "name": "scratch"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    with pytest.raises(SessionError) as caught:
        session.import_coco(tmp_path / "coco.json")
    message = str(caught.value)
    assert "nothing was imported" in message
    assert "annotations 7 of" in message and "image_id 9, which its \"images\" list" in message
    assert "is 32x16 (height x width) but the session's images are 16x16" in message
    assert "no image named 'ghost'" in message
    assert f"{stranger!r} was not asked for" in message
    assert session.status()["labeled"] == 0
    coco["images"], coco["annotations"] = coco["images"][2:], []
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    assert session.import_coco(tmp_path / "coco.json", any_image=True)["added"] == [stranger]
    assert not session.mask(stranger).any()
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SessionError, match="cannot read COCO annotations"):
        session.import_coco(tmp_path / "broken.json")
    with pytest.raises(SessionError, match="does not exist"):
        session.import_coco(Path(tmp_path / "missing.json"))
