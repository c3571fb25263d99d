"""Tests for sid4ds.session.audit: ``query --audit N`` draws a random audit apart from the
ranked batch, and ``status`` bounds the share of defective images found from it."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sid4ds.cli import main
from sid4ds.session import LabelingSession
from sid4ds.session.audit import audit_estimate_weights
from sid4ds.session.state import STATE, StateFile
from sid4ds.stopping import audit_recall_bound, audit_size_needed, draw_audit, recall_bound

from ..conftest import new_session, write_masks


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def csv_rows(file) -> list[dict[str, str]]:
    with open(file, newline="") as handle:
        return list(csv.DictReader(handle))


def test_query_audit_draws_apart_from_the_ranked_batch_and_status_bounds_the_recall(
        tmp_path, pool_folder, capsys):
    images, truth = pool_folder
    session = new_session(tmp_path, images, seed=3)
    code, out, _ = run_main(capsys, "query", session.path, "--n", 4, "--audit", 6,
                            "--target-recall", 0.9, "--quiet")
    assert code == 0
    record = LabelingSession.open(session.path).manifest["rounds"][0]
    selected, audit = record["selected"], record["audit"]
    # N images from the unlabelled ones the ranking did not select, drawn with the
    # session's seed and the round's number (the same seed draws the same audit)
    candidates = [name for name in session.names if name not in selected]
    assert len(audit) == len(set(audit)) == 6 and not set(audit) & set(selected)
    assert audit == draw_audit(candidates, 6, random_state=[3, 1, 0]).tolist()
    assert record["audit_population"] == 36 and record["audit_labelled"] == []
    # listed apart: in what query prints, in audit.csv, to_label.json and scores.csv
    assert "and label these 6 audit images, drawn at random from the 36" in out
    assert ", ".join(audit) in out
    needed = audit_size_needed(0, 36, target_recall=0.9)
    assert record["audit_needed"] == needed
    assert f"For a recall of at least 90% at 95% confidence the bound needs an audit of at " \
           f"least {needed} images" in out
    folder = session.path / record["folder"]
    assert [row["name"] for row in csv_rows(folder / "audit.csv")] == audit
    assert [row["name"] for row in csv_rows(folder / "to_label.csv")] == selected
    listing = json.loads((folder / "to_label.json").read_text())
    assert [entry["name"] for entry in listing["audit"]] == audit
    roles = {row["name"]: row["role"] for row in csv_rows(folder / "scores.csv")}
    assert {name for name, role in roles.items() if role == "audit"} == set(audit)
    assert all((folder / "images" / f"{name}.png").is_file() for name in [*selected, *audit])
    # the audit waits for its masks like the ranked batch, and prune keeps its images
    status = session.status()
    assert status["waiting"] == [*selected, *audit]
    assert "to_label.csv and audit.csv" in status["next"]
    assert not set(audit) & set(session.prune(share=1.0)["names"])
    # before its masks: the audit counts as defective, so it bounds nothing yet
    assert status["recall"]["audit_round"] == 0
    assert status["recall"]["bound"]["lower"] == 0.0
    assert "images still waiting for a label (6 of them in the audit)" in (
        status["recall"]["statement"])

    # audit masks are imported like any other (no --any needed)
    summary = session.import_masks(write_masks(tmp_path / "answers", [*selected, *audit],
                                               truth))
    assert sorted(summary["added"]) == sorted([*selected, *audit])
    assert all(session.manifest["labels"][name]["round"] == 0 for name in audit)
    status = session.status(target_recall=0.9)
    recall = status["recall"]
    found = sum(bool(truth[name].any()) for name in selected)
    audit_found = sum(bool(truth[name].any()) for name in audit)
    expected = recall_bound(4, found, 36, 6, audit_found, confidence=0.95)
    assert recall["bound"] == {field: getattr(expected, field)
                               for field in recall["bound"]}
    assert recall["statement"] == expected.statement
    assert recall["certified"] == expected.certifies(0.9)
    assert recall["defects_to_find"] == expected.defects_to_find(0.9)
    assert [entry["audit_labeled"] for entry in status["rounds"]] == [6]
    # the bound holds for this pool
    total = sum(bool(mask.any()) for mask in truth.values())
    assert recall["bound"]["lower"] <= (found + audit_found) / total

    code, out, _ = run_main(capsys, "status", session.path, "--target-recall", 0.9)
    assert code == 0
    lower = f"{np.floor(expected.lower * 1000) / 10:g}%"
    assert f"recall       at least {lower} at 95% confidence" in out
    assert expected.statement in out and "ratio given at init" not in out
    code, out, _ = run_main(capsys, "status", session.path, "--json")
    assert json.loads(out)["recall"]["statement"] == expected.statement
    # the report gives the same bound, in place of the old ratio estimate
    page = session.report(n_fake_normal_samples=2, device="cpu").read_text()
    assert f"<b>at least {lower} at 95% confidence</b> (audit of round 0" in page
    assert "images in the pool when the audit was drawn" in page


def test_status_counts_labels_since_the_audit_and_leaves_out_images_added_later(
        tmp_path, pool_folder):
    images, truth = pool_folder
    names = sorted(truth)
    # 8 images labelled at init: they are outside the audit's population
    session = new_session(tmp_path, images, masks=write_masks(tmp_path / "given", names[:8],
                                                              truth))
    record = session.query(n_label=4, audit=5)
    session.import_masks(write_masks(tmp_path / "answers",
                                     [*record["selected"], *record["audit"]], truth))
    assert record["audit_labelled"] == names[:8] and record["audit_population"] == 28
    # labelled since (with --any): counted as found since the audit
    since = [name for name in names if name not in session.manifest["labels"]][:3]
    session.import_masks(write_masks(tmp_path / "since", since, truth), any_image=True)
    labels = {name: bool(truth[name].any()) for name in session.manifest["labels"]}
    outside = [*names[:8], *record["selected"]]
    expected = audit_recall_bound(labels, outside, 28, record["audit"])
    assert session.status()["recall"]["bound"]["lower"] == expected.lower
    assert expected.n_found == sum(labels.values())
    # an image added after the audit, with a defect: not in the audit's pool
    defective = next(name for name in names if truth[name].any())
    session.add_images(np.full((1, 16, 16), 0.5, np.float32), names=["late"])
    session.import_masks(write_masks(tmp_path / "late", ["late"],
                                     {"late": truth[defective]}), any_image=True)
    assert session.status()["recall"]["bound"]["lower"] == expected.lower


def test_the_final_models_estimate_weighs_each_image_by_what_the_newest_audit_says(
        tmp_path, pool_folder, capsys):
    images, truth = pool_folder
    names = sorted(truth)
    session = new_session(tmp_path, images, masks=write_masks(tmp_path / "given", names[:8],
                                                              truth),
                          final_params={"max_steps": 4, "n_folds": 2, "n_checkpoints": 1})
    assert audit_estimate_weights(session.manifest, names[:8]) == (None, None)
    record = session.query(n_label=4, audit=5)
    answered = record["audit"][:4]  # one audit image is still waiting for its mask
    session.import_masks(write_masks(tmp_path / "answers", [*record["selected"], *answered],
                                     truth))
    since = [name for name in names if name not in session.manifest["labels"]
             and name not in record["audit"]][:3]
    session.import_masks(write_masks(tmp_path / "since", since, truth), any_image=True)
    rows = [*names[:8], *record["selected"], *answered, *since, "fake"]
    weights, audit_round = audit_estimate_weights(session.manifest, rows)
    # labelled before the audit or in its round's batch: themselves; the labelled audit
    # images: the 28 images the audit was drawn from, 7 each; ranked later, fakes: none
    assert audit_round == 0 and record["audit_population"] == 28
    assert weights.tolist() == [1.0] * 12 + [7.0] * 4 + [0.0] * 4
    # train weighs its estimate so, and says both
    code, out, err = run_main(capsys, "train", session.path, "--device", "cpu", "--quiet")
    assert code == 0, err
    session = LabelingSession.open(session.path)
    cv = session.cross_validation()
    assert cv.weighted and session.manifest["models"]["F"]["audit_round"] == 0
    weighted = cv.estimate(weighted=True)
    assert "weighted to the pool by the random audit of round 0: defect IoU " \
           f"{weighted['iou']['mean']:.3f}" in out
    assert session.status()["final_model"]["weighted_estimate"] == weighted
    page = session.report(n_fake_normal_samples=1, device="cpu").read_text()
    assert "on the pool, weighted by the audit of round 0" in page


def test_sessions_without_audit_fields_stay_readable(tmp_path, pool_folder):
    images, truth = pool_folder
    session = new_session(tmp_path, images)
    session.query(n_label=4)
    # a round written before audits existed: none of the audit fields
    state = StateFile(session.path / STATE)
    manifest = state.read()
    for key in ("audit", "target_recall", "audit_needed"):
        manifest["rounds"][0].pop(key)
    state.write(manifest)
    reopened = LabelingSession.open(session.path)
    status = reopened.status()
    assert status["waiting"] == manifest["rounds"][0]["selected"]
    assert status["recall"]["bound"] is None
    assert status["recall"]["statement"].startswith("No audit yet")
    assert f"`sid4ds query {session.path} --audit " in status["recall"]["advice"]
    assert status["rounds"][0]["audit"] == 0


def test_bad_audit_and_target_recall_are_refused_naming_the_argument(tmp_path, pool_folder,
                                                                     capsys):
    images, _ = pool_folder
    session = new_session(tmp_path, images)
    with pytest.raises(ValueError, match="audit must be >= 0; got -1"):
        session.query(n_label=4, audit=-1)
    with pytest.raises(ValueError, match=r"audit asks for 37 images but only 36 are "
                                         r"unlabelled besides this round's 4 ranked images"):
        session.query(n_label=4, audit=37)
    for value in (0, 1, 1.5):
        with pytest.raises(ValueError, match=rf"target_recall must be in \(0.0, 1.0\); "
                                             rf"got {float(value)}"):
            session.query(n_label=4, target_recall=value)
        with pytest.raises(ValueError, match="target_recall must be in"):
            session.status(target_recall=value)
    assert session.manifest["rounds"] == []  # nothing was run
    with pytest.raises(SystemExit):
        main(["query", str(session.path), "--audit", "-1"])
    assert "--audit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["status", str(session.path), "--target-recall", "1"])
    assert "--target-recall: expected a number in (0, 1), got '1'" in capsys.readouterr().err
    code, _, err = run_main(capsys, "query", session.path, "--n", 4, "--audit", 37)
    assert code != 0 and "audit asks for 37 images but only 36" in err
