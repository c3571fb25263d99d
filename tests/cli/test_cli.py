"""Tests for the ``sid4ds`` command line: labelling sessions end to end, killed commands."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sid4ds.cli import main
from sid4ds.cli.session import FINAL_HELP
from sid4ds.datasets import load_image_folder, make_defect_images
from sid4ds.estimators.final_model import FINAL_DEFAULTS
from sid4ds.session import LOCK, LabelingSession

REPOSITORY = Path(__file__).resolve().parents[2]
TINY = ["--width", "4", "--depth", "2", "--epochs-m", "1", "--epochs-s", "1",
        "--patch-size", "4", "--n-blocks", "4"]
SUBCOMMANDS = ("demo", "init", "query", "import", "status", "report", "export")


def sid4ds(*args, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m sid4ds ARGS`` in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    env.pop("SID4DS_TEST_KILL_AT", None)
    if kill_at is not None:
        env["SID4DS_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "sid4ds", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def run_main(capsys, *args) -> tuple[int, str, str]:
    """Run the command in this process; return (exit code, stdout, stderr)."""
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def pool_folder(tmp_path_factory) -> tuple[Path, Path]:
    """40 generated 16 px images (partNN.png) and their true masks (0/255) in truth/."""
    root = tmp_path_factory.mktemp("pool")
    X, masks = make_defect_images(n_samples=40, image_size=16, defect_ratio=0.2,
                                  random_state=0)
    for folder in ("images", "truth"):
        (root / folder).mkdir()
    for index, image in enumerate(X):
        name = f"part{index:02d}.png"
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(root / "images" / name)
        Image.fromarray(masks[index] * 255).save(root / "truth" / name)
    return root / "images", root / "truth"


def to_label(session: Path, round_index: int) -> list[dict[str, str]]:
    with open(session / f"rounds/{round_index:03d}/to_label.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def answer(session: Path, round_index: int, truth: Path, folder: Path) -> Path:
    """The human: copy the true mask of every image the round asked for."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in to_label(session, round_index):
        (folder / f"{row['name']}.png").write_bytes((truth / f"{row['name']}.png").read_bytes())
    return folder


def is_defective(truth: Path, name: str) -> bool:
    return bool(np.asarray(Image.open(truth / f"{name}.png")).any())


def status_of(session: Path) -> dict:
    return LabelingSession.open(session).status()


# ---------------------------------------------------------------------- help
def test_every_subcommand_has_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    listing = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command in listing
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        assert f"usage: sid4ds {command}" in capsys.readouterr().out


def test_the_help_of_the_final_settings_states_their_defaults():
    # the help is written out (the CLI imports no torch to print it): it must follow
    # FINAL_DEFAULTS when a default changes
    for key, value in FINAL_DEFAULTS.items():
        assert re.search(rf"{key} \([^)]*default {value}\)", FINAL_HELP), key


def test_demo_still_runs(capsys):
    code, out, _ = run_main(capsys, "demo", "--n-samples", 40, "--image-size", 16, "--quick",
                            "--epochs-m", 1, "--steps-s", 2, "--rounds", 1, "--quiet")
    assert code == 0
    assert "SID4DS found" in out and "| round |" in out
    # it ends with the next command, for one's own images
    assert out.rstrip().splitlines()[-1].startswith("next, on your own images: `sid4ds init ")


# ---------------------------------------------------------------------- end to end
def test_a_session_end_to_end(tmp_path, pool_folder, capsys):
    images, truth = pool_folder
    session = tmp_path / "session"

    created = sid4ds("init", session, "--images", images, "--seed", 1, *TINY)
    assert created.returncode == 0, created.stderr
    assert "40 images of 16x16" in created.stdout
    manifest = LabelingSession.open(session).manifest
    assert manifest["settings"]["seed"] == 1
    assert manifest["settings"]["segmenter"]["base_channels"] == 4
    assert manifest["settings"]["scorer"]["max_epochs"] == 1

    first = sid4ds("query", session, "--n", 4, "--normals", 3, "--quiet")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    asked = [row["name"] for row in to_label(session, 0)]
    assert len(asked) == 4 and all(name in first.stdout for name in asked)
    listing = json.loads((session / "rounds/000/to_label.json").read_text())
    assert [entry["name"] for entry in listing["images"]] == asked
    assert len(listing["fake_normals"]) == 3
    assert sorted(path.stem for path in (session / "rounds/000/images").iterdir()) == sorted(
        asked)

    imported = sid4ds("import", session, "--masks", answer(session, 0, truth, tmp_path / "a0"))
    assert imported.returncode == 0, imported.stderr
    assert "imported 4 new masks" in imported.stdout
    code, out, _ = run_main(capsys, "status", session, "--json")
    counts = json.loads(out)
    found_first = sum(is_defective(truth, name) for name in asked)
    assert (counts["labeled"], counts["defective"], counts["n_rounds"]) == (4, found_first, 1)
    assert counts["unlabeled"] == 40 - 4 - 3

    second = sid4ds("query", session, "--n", 4, "--normals", 3, "--device", "cpu")
    assert second.returncode == 0, second.stderr
    assert "SegmentationLearner" in second.stderr  # the training progress bar
    assert "ReconstructionScorer: E_sdr" in second.stderr  # the scoring progress bar
    assert "training the segmentation learner S" in second.stderr
    asked_second = [row["name"] for row in to_label(session, 1)]
    assert not set(asked_second) & set(asked)
    assert sorted(path.stem for path in (session / "rounds/001/preannotations").iterdir()) == (
        sorted(asked_second))
    answer(session, 1, truth, tmp_path / "a1")
    assert main(["import", str(session), "--masks", str(tmp_path / "a1")]) == 0

    code, out, _ = run_main(capsys, "status", session)
    assert code == 0
    assert "labelled     8" in out
    assert "    1  iterative" in out

    report = sid4ds("report", session, "--quiet")
    assert report.returncode == 0, report.stderr
    page = (session / "report/index.html").read_text()
    assert all(name in page for name in asked_second)
    assert (session / "report/score_histogram.png").is_file()

    exported = sid4ds("export", session, "--format", "png", "--out", tmp_path / "png")
    assert exported.returncode == 0, exported.stderr
    assert run_main(capsys, "export", session, "--format", "coco", "--out",
                    tmp_path / "coco")[0] == 0
    n_defective = sum(is_defective(truth, name) for name in asked + asked_second)
    assert len(list((tmp_path / "png/defect").iterdir())) == n_defective
    assert len(list((tmp_path / "png/good").iterdir())) == 8 - n_defective
    assert len(list((tmp_path / "png/ground_truth/defect").iterdir())) == n_defective
    coco = json.loads((tmp_path / "coco/annotations.json").read_text())
    assert len(coco["images"]) == 8
    assert {annotation["image_id"] for annotation in coco["annotations"]} == {
        image["id"] for image in coco["images"]
        if is_defective(truth, Path(image["file_name"]).stem)}


# ---------------------------------------------------------------------- killed commands
def test_init_reads_an_npy_file_or_a_list_of_paths(tmp_path, pool_folder, capsys):
    images, _ = pool_folder
    X, _, names = load_image_folder(images)
    np.save(tmp_path / "pool.npy", X)
    listed = tmp_path / "lists" / "pool.txt"
    listed.parent.mkdir()
    listed.write_text("# one path per line, relative to this file\n" + "".join(
        f"../../{images.parent.name}/images/{name}.png\n" for name in names), encoding="utf-8")
    shutil.copytree(images.parent, tmp_path / images.parent.name)
    selections = []
    for source, expected_names in ((tmp_path / "pool.npy", [f"image_{row:06d}" for row in
                                                             range(40)]), (listed, names)):
        session = tmp_path / f"session-{source.suffix[1:]}"
        code, _, err = run_main(capsys, "init", session, "--images", source, *TINY)
        assert code == 0, err
        assert LabelingSession.open(session).names == expected_names
        code, _, err = run_main(capsys, "query", session, "--n", 4, "--quiet")
        assert code == 0, err
        selections.append([expected_names.index(row["name"])
                           for row in to_label(session, 0)])
    assert selections[0] == selections[1]  # the same images, read two ways


@pytest.mark.parametrize(("rounds_before", "kill_at"), [
    (0, "query:after-train-M"),
    (1, "query:after-train-S"),
    (1, "query:before-commit"),
])
def test_a_killed_query_resumes_to_the_same_round(tmp_path, pool_folder, capsys,
                                                  rounds_before, kill_at):
    images, truth = pool_folder
    sessions = {kind: tmp_path / kind for kind in ("killed", "reference")}
    for session in sessions.values():
        assert run_main(capsys, "init", session, "--images", images, *TINY)[0] == 0
        for round_index in range(rounds_before):
            assert run_main(capsys, "query", session, "--n", 4, "--quiet")[0] == 0
            answer(session, round_index, truth, session.parent / f"{session.name}-answers")
            assert run_main(capsys, "import", session, "--masks",
                            session.parent / f"{session.name}-answers")[0] == 0
    assert run_main(capsys, "query", sessions["reference"], "--n", 4, "--quiet")[0] == 0

    killed = sid4ds("query", sessions["killed"], "--n", 4, "--quiet", kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert (sessions["killed"] / LOCK).exists()
    manifest = LabelingSession.open(sessions["killed"]).manifest
    assert len(manifest["rounds"]) == rounds_before  # the round was not recorded
    trained = {"query:after-train-M": "M", "query:after-train-S": "S"}.get(kill_at, "G")
    assert manifest["models"][trained]["round"] == rounds_before  # but its model was kept

    code, _, err = run_main(capsys, "query", sessions["killed"], "--n", 4)
    assert code == 0, err
    assert "warning: removed a stale lock" in err and "started" in err
    assert not (sessions["killed"] / LOCK).exists()
    outputs = [json.loads((session / f"rounds/{rounds_before:03d}/to_label.json").read_text())
               for session in (sessions["killed"], sessions["reference"])]
    assert outputs[0] == outputs[1]
    assert status_of(sessions["killed"])["n_rounds"] == rounds_before + 1


def test_a_killed_init_leaves_no_session_and_init_can_run_again(tmp_path, pool_folder,
                                                                capsys):
    images, _ = pool_folder
    killed = sid4ds("init", tmp_path / "s", "--images", images, *TINY,
                    kill_at="init:before-rename")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "s").exists()
    assert len(list(tmp_path.glob(".s.init-*"))) == 1
    code, _, err = run_main(capsys, "init", tmp_path / "s", "--images", images, *TINY)
    assert code == 0, err
    assert status_of(tmp_path / "s")["n_images"] == 40
    assert not list(tmp_path.glob(".s.init-*"))


def test_a_killed_import_loses_no_mask_and_labels_nothing_twice(tmp_path, pool_folder, capsys):
    images, truth = pool_folder
    session = tmp_path / "session"
    assert run_main(capsys, "init", session, "--images", images, *TINY)[0] == 0
    assert run_main(capsys, "query", session, "--n", 4, "--quiet")[0] == 0
    answers = answer(session, 0, truth, tmp_path / "answers")

    killed = sid4ds("import", session, "--masks", answers, kill_at="import:after-first-mask")
    assert killed.returncode == -signal.SIGKILL
    assert status_of(session)["labeled"] == 0
    assert len(list((session / "masks").iterdir())) == 1  # copied, not yet recorded

    code, out, err = run_main(capsys, "import", session, "--masks", answers)
    assert code == 0, err
    assert "imported 4 new masks" in out
    reopened = LabelingSession.open(session)
    asked = [row["name"] for row in to_label(session, 0)]
    assert sorted(reopened.labeled_names) == sorted(asked)
    for name in asked:
        stored = reopened.mask(name)
        assert np.array_equal(stored, np.asarray(Image.open(truth / f"{name}.png")) > 0)
    code, out, _ = run_main(capsys, "import", session, "--masks", answers)
    assert code == 0 and "imported 0 new masks, replaced 0, 4 unchanged" in out
    assert len(list((session / "masks").iterdir())) == 4


def test_a_second_command_on_a_busy_session_is_refused(tmp_path, pool_folder, capsys):
    images, _ = pool_folder
    session = tmp_path / "session"
    assert run_main(capsys, "init", session, "--images", images, *TINY)[0] == 0
    (session / LOCK).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "command": "query",
        "started": "2024-01-01T00:00:00+00:00", "process_start": None}))
    code, _, err = run_main(capsys, "query", session, "--quiet")
    assert code == 3
    assert f"in use by `sid4ds query` (pid {os.getpid()}" in err and LOCK in err
    code, out, _ = run_main(capsys, "status", session)
    assert code == 0 and f"next: wait: `sid4ds query` is running (pid {os.getpid()}" in out


# ---------------------------------------------------------------------- bad input
def gray(path: Path, pixels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)


def corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")


INIT_CASES = {
    "empty-folder": (lambda root: (root / "images").mkdir(), [], ["no images", "images"]),
    "missing-folder": (lambda root: None, [], ["does not exist"]),
    "corrupt-image": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                    corrupt(root / "images/b.png")],
                      [], ["b.png", "--skip-unreadable"]),
    "mixed-sizes": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                  gray(root / "images/b.png", np.zeros((24, 16)))],
                    [], ["a.png", "b.png", "--image-size", "--tile"]),
    "duplicate-names": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                      gray(root / "images/a.jpg", np.zeros((16, 16)))],
                        [], ["a.png", "a.jpg", "rename or remove"]),
    "not-divisible": (lambda root: gray(root / "images/a.png", np.zeros((18, 18))),
                      [], ["18x18", "--image-size 20"]),
    "mask-without-image": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                         gray(root / "masks/b.png", np.zeros((16, 16)))],
                           ["--masks", "masks"], ["b.png", "rename or remove the mask"]),
    "mask-not-binary": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                      gray(root / "masks/a.png", [[0, 1, 128, 255]] * 16)],
                        ["--masks", "masks"], ["a.png", "not binary", "255"]),
    "mask-wrong-size": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                      gray(root / "masks/a.png", np.zeros((16, 8)))],
                        ["--masks", "masks"], ["a.png", "16x8", "size of its image"]),
    "unreadable-mask": (lambda root: [gray(root / "images/a.png", np.zeros((16, 16))),
                                      corrupt(root / "masks/a.png")],
                        ["--masks", "masks"], ["cannot read mask file", "a.png"]),
}


@pytest.mark.parametrize("case", sorted(INIT_CASES))
def test_init_bad_input_names_the_file_and_exits_1(tmp_path, capsys, case):
    make, options, expected = INIT_CASES[case]
    make(tmp_path)
    options = [tmp_path / option if option == "masks" else option for option in options]
    code, _, err = run_main(capsys, "init", tmp_path / "s", "--images", tmp_path / "images",
                            *options, *TINY)
    assert code == 1
    assert err.startswith("sid4ds init: error: ") and "Traceback" not in err
    for fragment in expected:
        assert fragment in err
    assert not (tmp_path / "s").exists()


def test_init_takes_the_ranking_rule_and_refuses_a_bad_one(tmp_path, pool_folder, capsys):
    images, _ = pool_folder
    code, _, err = run_main(capsys, "init", tmp_path / "paper", "--images", images,
                            "--ranking", "fusion=none", *TINY)
    assert code == 0, err
    assert LabelingSession.open(tmp_path / "paper").manifest["settings"]["fusion"] is None
    code, _, err = run_main(capsys, "init", tmp_path / "bad", "--images", images,
                            "--ranking", "fusion=max", *TINY)
    assert code == 1 and "fusion must be one of None, 'rank'; got 'max'" in err
    assert not (tmp_path / "bad").exists()


def test_session_problems_exit_1_with_what_to_do(tmp_path, pool_folder, capsys):
    images, truth = pool_folder
    session = tmp_path / "session"
    assert run_main(capsys, "init", session, "--images", images, *TINY)[0] == 0
    code, _, err = run_main(capsys, "init", session, "--images", images)
    assert code == 1 and "already exists" in err
    assert run_main(capsys, "query", session, "--n", 4, "--quiet")[0] == 0
    asked = [row["name"] for row in to_label(session, 0)]
    code, _, err = run_main(capsys, "query", session, "--quiet")
    assert code == 1 and "--skip-missing" in err and "to_label.csv" in err

    never_asked = next(f"part{index:02d}" for index in range(40)
                       if f"part{index:02d}" not in asked)
    bad = tmp_path / "bad"
    gray(bad / f"{asked[0]}.png", np.zeros((8, 8)))
    gray(bad / f"{asked[1]}.png", [[0, 7, 255, 255]] * 16)
    gray(bad / f"{never_asked}.png", np.zeros((16, 16)))
    gray(bad / "stranger.png", np.zeros((16, 16)))
    code, _, err = run_main(capsys, "import", session, "--masks", bad)
    assert code == 1 and "Traceback" not in err
    for fragment in (f"{asked[0]}.png is 8x8", f"{asked[1]}.png is not binary",
                     f"{never_asked!r} was not asked for", "no image named 'stranger'",
                     "nothing was imported"):
        assert fragment in err
    assert status_of(session)["labeled"] == 0

    gray(tmp_path / "good" / f"{asked[0]}.png", np.zeros((16, 16)))
    assert run_main(capsys, "import", session, "--masks", tmp_path / "good")[0] == 0
    gray(tmp_path / "changed" / f"{asked[0]}.png", np.full((16, 16), 255))
    code, _, err = run_main(capsys, "import", session, "--masks", tmp_path / "changed")
    assert code == 1 and "--replace" in err
    code, out, _ = run_main(capsys, "import", session, "--masks", tmp_path / "changed",
                            "--replace")
    assert code == 0 and "replaced 1" in out

    manifest = json.loads((session / "manifest.json").read_text())
    manifest["format_version"] = 99
    (session / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_main(capsys, "status", session)
    assert code == 1 and "format version 99" in err and "upgrade sid4ds" in err
    code, _, err = run_main(capsys, "status", tmp_path / "nowhere")
    assert code == 1 and "sid4ds init" in err


def test_wrong_usage_exits_2(tmp_path, capsys):
    for args in (["import", tmp_path, "--masks", tmp_path, "--label-studio", "x.json"],
                 ["export", tmp_path, "--format", "tiff"],
                 ["init", tmp_path, "--images", tmp_path, "--image-size", "0"],
                 ["query", tmp_path, "--normals", "many"]):
        with pytest.raises(SystemExit) as exited:
            main([str(arg) for arg in args])
        assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_bad_input_in_a_real_process_gives_a_message_not_a_traceback(tmp_path):
    gray(tmp_path / "images/a.png", np.zeros((16, 16)))
    corrupt(tmp_path / "images/b.png")
    result = sid4ds("init", tmp_path / "s", "--images", tmp_path / "images")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("sid4ds init: error: cannot read image file")
    assert "b.png" in result.stderr
