"""sid4ds.evaluation.retrain: S trained again on what a finished run labelled."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sid4ds.cli.benchmark import main
from sid4ds.cli.types import parameter
from sid4ds.estimators.segmentation import SegmentationLearner
from sid4ds.evaluation import load_run_data, read_csvs, retrain_folder, retrain_iou, write_csvs
from sid4ds.evaluation.settings import merged_settings, read_settings

ROOT = Path(__file__).resolve().parents[2]

#: A real run of the benchmark's command line: two cheap strategies, two seeds, S trained
#: long enough (80 steps) to find the generated defects.
RUN = ["--n-samples", "48", "--image-size", "16", "--defect-ratio", "0.25", "--width", "4",
       "--depth", "2", "--steps-s", "80", "--strategies", "random", "local_contrast",
       "--rounds", "1", "--seeds", "0", "1", "--iou", "--iou-shares", "0.1", "0.2",
       "--test-defective", "8", "--quiet"]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("benchmark") / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


def test_unchanged_settings_give_the_runs_own_iou_again(run_folder):
    result, settings = retrain_folder(run_folder)
    assert result.iou == read_csvs([run_folder]).iou  # every column, to the last digit
    assert {row["seed"] for row in result.iou} == {0, 1}
    assert result.strategies == ["random", "local_contrast"]
    assert settings["retrained"]["from"] == str(run_folder)
    assert settings["retrained"]["segmenter_params"] == {}
    assert settings["models"] == read_settings(run_folder)["models"]


def test_changed_settings_reach_s(run_folder):
    run = read_csvs([run_folder]).iou
    changes = {"max_steps": 1, "threshold": 0.0}  # S then marks every pixel of every image
    result, settings = retrain_folder(run_folder, segmenter_params=changes,
                                      iou_shares=[0.2], strategies=["local_contrast"],
                                      seeds=[1])
    assert settings["models"]["segmenter_S"]["max_steps"] == 1
    assert settings["retrained"]["segmenter_params"] == changes
    assert settings["arguments"]["iou_shares"] == [0.2]
    assert settings["arguments"]["seeds"] == [1]
    assert {(row["strategy"], row["labeled_share"]) for row in result.iou} == {
        ("local_contrast", 0.2), ("whole pool", 1.0)}
    before = {(row["strategy"], row["labeled_share"]): row for row in run if row["seed"] == 1}
    for row in result.iou:  # the same training sets and held-out images, another S
        same = before[row["strategy"], row["labeled_share"]]
        for column in ("n_labeled", "n_defective_labeled", "n_test", "n_defective_test"):
            assert row[column] == same[column]
        assert same["false_alarms"] < 1.0
        assert row["false_alarms"] == row["detected"] == 1.0
    assert {row["strategy"] for row in result.labeled} == {"local_contrast"}
    assert {row["seed"] for row in result.selection} == {1}


def test_labels_from_another_split_or_too_few_labels_are_refused(run_folder):
    settings = read_settings(run_folder)
    data = load_run_data(settings["arguments"])
    labeled = read_csvs([run_folder]).labeled
    tiny = SegmentationLearner(**settings["models"]["segmenter_S"])
    with pytest.raises(ValueError, match="do not match these images and this split"):
        retrain_iou(labeled, data.X, data.masks, segmenter=tiny, iou_shares=[0.1],
                    test_share=0.3, test_only=data.test_only)
    n_pool, n_label = settings["split"]["n_pool"], settings["split"]["n_label_per_round"]
    labelled = 2 * n_label  # the cold start and one round
    with pytest.raises(ValueError, match=rf"iou_shares holds 0.5, {5 * n_label} labels of the "
                                         rf"pool of {n_pool}, but strategy 'random' labelled "
                                         rf"{labelled} images in seed 0; pass shares up to "
                                         rf"{int(100 * labelled / n_pool) / 100:g}"):
        retrain_iou(labeled, data.X, data.masks, segmenter=tiny, iou_shares=[0.5],
                    test_only=data.test_only)
    with pytest.raises(ValueError, match="labeled holds no records"):
        retrain_iou([], data.X, data.masks)


def test_a_folder_without_labels_or_with_unknown_changes_is_refused(run_folder, tmp_path):
    older = tmp_path / "older"
    shutil.copytree(run_folder, older)
    (older / "labeled.csv").unlink()
    with pytest.raises(ValueError, match="has no labeled.csv"):
        retrain_folder(older)
    with pytest.raises(ValueError, match=r"data_paths has \['n_samples'\]"):
        retrain_folder(run_folder, data_paths={"n_samples": 3})
    with pytest.raises(ValueError, match=r"has no strategy \['sid4ds'\]"):
        retrain_folder(run_folder, strategies=["sid4ds"])
    with pytest.raises(ValueError, match="Invalid parameter 'learning_rate'"):
        retrain_folder(run_folder, segmenter_params={"learning_rate": 1e-3})
    renamed = tmp_path / "renamed"
    shutil.copytree(run_folder, renamed)
    settings = read_settings(renamed)
    settings["models"]["segmenter_S"]["n_epochs"] = 3
    (renamed / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    with pytest.raises(ValueError, match=r"records S parameters this sid4ds lacks: \['n_epochs'\]"):
        retrain_folder(renamed)
    del settings["models"]["segmenter_S"]["n_epochs"], settings["arguments"]["test_share"]
    (renamed / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    with pytest.raises(ValueError, match=r"records no \['test_share'\] among its arguments"):
        retrain_folder(renamed)


def test_the_script_writes_part_c_and_what_s_was_trained_on(run_folder, tmp_path):
    out = tmp_path / "again"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "retrain_segmenter.py"), str(run_folder),
         "--out", str(out), "--set", "max_steps=2", "--iou-shares", "0.1", "--seeds", "0",
         "--quiet"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert "changes to S: max_steps=2" in completed.stdout
    assert "## (c) Segmentation IoU" in completed.stdout
    written = {path.name for path in out.iterdir()}
    assert {"iou.csv", "labeled.csv", "selection.csv", "settings.json", "report.md"} <= written
    assert not {"cold_start.csv", "timing.csv"} & written  # nothing was timed or ranked
    again = read_csvs([out])
    assert {(row["seed"], row["labeled_share"]) for row in again.iou} == {(0, 0.1), (0, 1.0)}
    assert json.loads((out / "settings.json").read_text())["models"]["segmenter_S"][
        "max_steps"] == 2

    refused = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "retrain_segmenter.py"), str(tmp_path),
         "--out", str(tmp_path / "none")], capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert "retrain_segmenter.py: error:" in refused.stderr and "Traceback" not in refused.stderr


def test_retrainings_of_one_seed_each_join_when_s_changed_alike(run_folder, tmp_path):
    """S trained again seed by seed (as a long run is) joins into one folder, as runs do
    (``merge_results.py``); another change to S is refused by name."""
    folders = {}
    for seed, steps in ((0, 2), (1, 2), (1, 3)):
        result, settings = retrain_folder(run_folder, segmenter_params={"max_steps": steps},
                                          iou_shares=[0.1], strategies=["random"],
                                          seeds=[seed])
        folders[seed, steps] = tmp_path / f"seed{seed}_steps{steps}"
        write_csvs(result, folders[seed, steps])
        (folders[seed, steps] / "settings.json").write_text(json.dumps(settings, default=str))
    alike = [folders[0, 2], folders[1, 2]]
    merged = merged_settings(alike)
    assert merged["arguments"]["seeds"] == [0, 1]
    assert merged["retrained"] == {"from": str(run_folder), "segmenter_params": {
        "max_steps": 2}, "data_paths": {}}  # run times dropped, as for runs
    joined = read_csvs(alike).iou
    assert {(row["seed"], row["strategy"]) for row in joined} == {
        (0, "random"), (0, "whole pool"), (1, "random"), (1, "whole pool")}
    with pytest.raises(ValueError, match=r"max_steps is 2 in .*seed0_steps2 but 3 in "):
        merged_settings([folders[0, 2], folders[1, 3]])
    with pytest.raises(ValueError, match=r"max_steps is \d+ in .*run but 2 in "):
        merged_settings([run_folder, folders[1, 2]])  # the run's own S is another S


@pytest.mark.parametrize("text", ["lr", "=3", "2x=1", "lr 1e-3"])
def test_a_parameter_needs_a_name_and_a_value(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected key=value"):
        parameter(text)
