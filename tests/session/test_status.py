"""Tests for sid4ds.session.status and export, and for the work a session does not repeat:
``sid4ds status`` counts and running commands, ``export`` into used folders, a second
cold-start round that reuses round 0's E_msmr, and the time estimates of a query."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sid4ds import ReconstructionScorer
from sid4ds.cli import main
from sid4ds.engine.rounds import format_duration
from sid4ds.session import LOCK, LabelingSession, SessionError
from sid4ds.session.status import drift_words

from ..conftest import TINY_SCORER, answer_round, new_session, write_masks

REPOSITORY = Path(__file__).resolve().parents[2]
# Holds the lock of the session given as argv[1], as a running `sid4ds query` does, until
# a line arrives on stdin.
HOLD_LOCK = """\
import sys
from pathlib import Path
from sid4ds.session.lock import SessionLock
with SessionLock(Path(sys.argv[1]), "query"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def csv_rows(file: Path) -> list[dict[str, str]]:
    with open(file, newline="") as handle:
        return list(csv.DictReader(handle))


def counts(status: dict) -> tuple[int, int, int, int]:
    return status["labeled"], status["n_waiting"], status["fake_normals"], status["unlabeled"]


# ---------------------------------------------------------------------- status
def test_status_separates_labelled_waiting_fake_normal_and_unlabelled(tmp_path, asked, capsys):
    session, record, truth = asked
    selected, fakes = record["selected"], record["fake_normals"]
    assert len(selected) == 4 and len(fakes) == 4  # V = round(4 x 0.95)
    status = session.status()
    assert counts(status) == (0, 4, 4, 32)
    assert status["waiting"] == selected
    assert f"label the 4 images listed in {session.path / 'rounds/000'}" in status["next"]

    session.import_masks(write_masks(tmp_path / "half", selected[:2], truth))
    status = session.status()
    assert counts(status) == (2, 2, 4, 32) and status["waiting"] == selected[2:]
    found = sum(bool(truth[name].any()) for name in selected[:2])
    assert status["defective"] == found
    assert (status["rounds"][0]["asked"], status["rounds"][0]["labeled"],
            status["rounds"][0]["defective"]) == (4, 2, found)
    assert status["rounds"][0]["defect_rate"] == found / 2
    assert status["recall"]["bound"] is None and not status["recall"]["certified"]
    assert f"sid4ds query {session.path} --audit " in status["recall"]["advice"]

    session.import_masks(write_masks(tmp_path / "rest", selected[2:], truth))
    status = session.status()
    assert counts(status) == (4, 0, 4, 32)
    assert status["next"] == f"`sid4ds query {session.path}` for the next round"

    stranger = next(name for name in session.names if name not in {*selected, *fakes})
    session.import_masks(write_masks(tmp_path / "any", [fakes[0], stranger], truth),
                         any_image=True)
    status = session.status()
    assert counts(status) == (6, 0, 3, 31)
    assert sum(counts(status)) == status["n_images"] == 40
    assert status["initially_labeled"] == 2  # labelled without a round asking for them

    code, out, _ = run_main(capsys, "status", session.path)
    assert code == 0
    for line in ("labelled     6 ", "waiting      0 ", "fake normals 3 ", "unlabelled   31 "):
        assert line in out
    assert "    0  cold_start      4         4" in out


def hold_lock(session: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(session)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_drift_words_give_the_statistic_against_the_threshold_and_the_rule():
    check = {"drifted": False, "n_above": 3, "n_batch": 10, "share_above": 0.3,
             "quantile": 0.95, "score": "M's mean reconstruction error", "threshold": 0.5,
             "min_share": 0.25, "max_p_value": 0.001, "p_value": 0.0123,
             "applied_round": None}
    # a small batch above the share but without the evidence: not drift, and says why
    calm = drift_words({"batch": 4, "command": "add", "drift": check})
    assert calm == ("batch 4 looks like the pool: 3 of its 10 images (30%) score above the "
                    "pool's 95th percentile of M's mean reconstruction error (0.5); drift is "
                    "25% or more with a chance below 0.001 of that many by luck (here 0.012)")
    drifted = {**check, "drifted": True, "p_value": 1e-9, "applied_round": 7}
    words = drift_words({"batch": 4, "command": "add", "drift": drifted})
    assert words.startswith("batch 4 DRIFTED: 3 of its 10 images (30%)")
    assert "(here 1e-09). Round 7 applied the drift rule to it" in words
    assert drift_words({"batch": 0, "command": "init"}) is None


def test_status_reports_a_command_another_process_runs(tmp_path, asked, capsys):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    holder = hold_lock(session.path)
    try:
        status = session.status()
        assert status["running"] is True and status["lock"]["pid"] == holder.pid
        assert status["lock"]["command"] == "query"
        assert status["next"].startswith(f"wait: `sid4ds query` is running (pid {holder.pid}")
        code, out, _ = run_main(capsys, "status", session.path)
        assert code == 0
        assert f"next: wait: `sid4ds query` is running (pid {holder.pid}" in out
        assert f"`sid4ds query {session.path}` for the next" not in out  # not: run one yourself
        assert "stale lock" not in out
        code, _, err = run_main(capsys, "query", session.path, "--quiet")
        assert code == 3 and f"in use by `sid4ds query` (pid {holder.pid}" in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    status = session.status()
    assert (status["running"], status["lock"]) == (False, None)
    assert status["next"] == f"`sid4ds query {session.path}` for the next round"

    killed = hold_lock(session.path)  # killed while it holds the lock: a stale lock
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    killed.stdin.close()
    status = session.status()
    assert status["running"] is False and status["lock"]["stale"] is True
    assert status["next"] == f"`sid4ds query {session.path}` for the next round"
    code, out, _ = run_main(capsys, "status", session.path)
    assert f"stale lock of sid4ds query (pid {killed.pid}" in out
    assert (session.path / LOCK).exists()  # status only reads


# ---------------------------------------------------------------------- export
def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("format", ["png", "coco"])
def test_export_refuses_a_used_folder_unless_overwrite(tmp_path, asked, capsys, format):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "data.csv").write_text("1,2")
    before = snapshot(out)
    code, _, err = run_main(capsys, "export", session.path, "--format", format, "--out", out)
    assert code == 1
    assert f"{out} already exists and is not empty" in err and "--overwrite" in err
    assert snapshot(out) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["answers", "out", "session"]
    with pytest.raises(SessionError, match=r"already exists and is not empty.*overwrite=True"):
        session.export(out, format)
    assert snapshot(out) == before

    code, _, err = run_main(capsys, "export", session.path, "--format", format, "--out", out,
                            "--overwrite")
    assert code == 0, err
    written = set(snapshot(out))
    assert "notes.txt" not in written
    if format == "png":
        assert {f"defect/{name}.png" for name in record["selected"] if truth[name].any()} | {
            f"good/{name}.png" for name in record["selected"] if not truth[name].any()} <= written
    else:
        assert "annotations.json" in written
    assert sorted(path.name for path in tmp_path.iterdir()) == ["answers", "out", "session"]
    # an empty folder is no obstacle; the default folder refuses a second export
    (tmp_path / "empty").mkdir()
    assert session.export(tmp_path / "empty", format) == tmp_path / "empty"
    default = session.export(format=format)
    assert default == session.path / "exports" / format
    with pytest.raises(SessionError, match=rf"{default} already exists and is not empty"):
        session.export(format=format)


def test_overwrite_never_replaces_the_session_or_a_folder_that_holds_it(tmp_path, asked):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    before = snapshot(session.path)
    for target in (session.path, tmp_path):
        with pytest.raises(SessionError, match=re.escape(
                f"{target} is or holds the session ({session.path}); replacing it would "
                f"delete them")):
            session.export(target, "png", overwrite=True)
        with pytest.raises(SessionError, match="is or holds the session"):
            session.report(target)  # a report replaces its folder: never this one
    assert snapshot(session.path) == before
    assert (tmp_path / "answers").is_dir()
    assert LabelingSession.open(session.path).status()["labeled"] == 4
    # inside the session is where exports go by default
    assert session.export(session.path / "exports" / "mine", "png").is_dir()


# ---------------------------------------------------------------------- no repeated work
def test_a_second_cold_start_round_reuses_the_e_msmr_of_round_0(tmp_path, asked, capsys,
                                                                monkeypatch):
    session, record, _ = asked
    zeros = np.zeros((16, 16), np.uint8)
    session.import_masks(write_masks(tmp_path / "normal", record["selected"],
                                     dict.fromkeys(record["selected"], zeros)))
    calls = {"fit": 0, "block_errors_chunk": 0}  # all M's scoring goes through it
    for method in calls:
        original = getattr(ReconstructionScorer, method)

        def counted(self, *args, _original=original, _method=method, **kwargs):
            calls[_method] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ReconstructionScorer, method, counted)
    code, out, err = run_main(capsys, "query", session.path, "--n", 4, "--device", "cpu")
    assert code == 0, err
    assert calls == {"fit": 0, "block_errors_chunk": 0}  # M neither retrained nor scoring
    second = LabelingSession.open(session.path).manifest["rounds"][1]
    assert second["stage"] == "cold_start" and second["score"] == "E_msmr"
    assert second["reused_scores"] is True
    assert "train_M" not in second["seconds"] and "score_msmr" not in second["seconds"]
    assert second["reason"] == ("none of the 8 labelled images (and fake normals) is "
                                "defective yet: ranking by E_msmr again")
    assert second["models"] == {"M": 0}
    assert (f"round 1 (cold_start): {second['reason']}; the E_msmr of the unchanged models "
            f"was reused for every image") in out
    assert "reusing the E_msmr of the unchanged M for 36 images" in err
    # the very scores of round 0
    first_scores = {row["name"]: float(row["score"]) for row in
                    csv_rows(session.path / "rounds/000/scores.csv")}
    for row in csv_rows(session.path / "rounds/001/scores.csv"):
        assert float(row["score"]) == first_scores[row["name"]]
    assert second["selected"] == [row["name"] for row in csv_rows(
        session.path / "rounds/000/scores.csv") if row["name"] not in record["selected"]][:4]


def test_a_query_says_how_long_its_long_steps_will_take_before_them(tmp_path, pool_folder,
                                                                   capsys, monkeypatch):
    images, _ = pool_folder
    session = new_session(tmp_path, images)
    asked_for = []

    def estimate(self, n_images, image_shape, *, train, copies=1):
        asked_for.append((n_images, tuple(image_shape), train, copies))
        return 190.0 if train else 5400.0

    monkeypatch.setattr(ReconstructionScorer, "estimate_seconds", estimate)
    code, _, err = run_main(capsys, "query", session.path, "--n", 4, "--device", "cpu",
                            "--quiet")
    assert code == 0 and asked_for == [] and err == ""  # nobody reads it: not measured
    other = new_session(tmp_path / "b", images)
    code, _, err = run_main(capsys, "query", other.path, "--n", 4, "--device", "cpu")
    assert code == 0
    assert asked_for == [(40, (1, 16, 16), True, 1), (40, (1, 16, 16), False, 4)]
    training = ("training the self-supervised reconstruction learner M on 40 images (about "
                f"{format_duration(190.0)} here, from a short warm-up)")
    scoring = ("scoring 40 unlabelled images (E_msmr, 4 masked copies each) (about "
               f"{format_duration(5400.0)} here")
    assert training in err and scoring in err
    assert err.index(training) < err.index("ReconstructionScorer (M)")  # before training
    assert err.index(scoring) < err.index("E_msmr:")  # before scoring


def test_estimate_seconds_grows_with_the_work_and_leaves_the_estimator_alone(pool_folder,
                                                                           steady_clock):
    from sid4ds.datasets import load_image_folder

    X, _, _ = load_image_folder(pool_folder[0])
    scorer = ReconstructionScorer(**TINY_SCORER, device="cpu", random_state=0)
    small = scorer.estimate_seconds(40, (1, 16, 16), train=True)
    assert not hasattr(scorer, "n_channels_in_")  # still unfitted
    large = scorer.estimate_seconds(4000, (1, 16, 16), train=True)  # 100 x the steps
    assert 0 < small and large == pytest.approx(100 * small)
    scorer.fit(X)
    state = scorer.get_state()
    scorer.estimate_seconds(40, (1, 16, 16), train=False, copies=4)
    after = scorer.get_state()
    assert after["rng"] == state["rng"] and after["fitted"].keys() == state["fitted"].keys()
    for key, tensor in state["module"].items():
        assert (after["module"][key] == tensor).all()
