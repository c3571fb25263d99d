"""Tests for ``sid4ds add`` (sid4ds/session/add.py): a pool that grows with the line."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket

import numpy as np
import pytest
from PIL import Image

from sid4ds import ReconstructionScorer
from sid4ds.cli import main
from sid4ds.datasets import load_image_folder, make_defect_images
from sid4ds.session import (
    KILL_POINTS,
    LOCK,
    LabelingSession,
    SessionBusyError,
    SessionError,
    SessionWarning,
)
from sid4ds.session.shards import POOL_IMAGES, POOL_META
from sid4ds.session.storage import KILL_ENV

from ..cli.test_cli import TINY, run_main
from ..conftest import TINY_SCORER, TINY_SEGMENTER, count_scored, new_session, write_masks


def _killed_child(kill_at: str, argv: list[str]) -> None:
    os.environ[KILL_ENV] = kill_at
    raise SystemExit(main(argv))


def killed_command(kill_at: str, *argv) -> int:
    """Run ``sid4ds ARGV`` in a forked child that SIGKILLs itself at ``kill_at`` (the
    session's test hook); its exit code. Forking skips a fresh interpreter's imports."""
    child = multiprocessing.get_context("fork").Process(
        target=_killed_child, args=(kill_at, [str(arg) for arg in argv]))
    child.start()
    child.join(120)
    return child.exitcode


def save_images(folder, images, names) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image, name in zip(images, names, strict=True):
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / f"{name}.png")


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """60 generated 16 px images: a first shift (part00-39) and a second (part40-59)."""
    root = tmp_path_factory.mktemp("line")
    X, masks = make_defect_images(n_samples=60, image_size=16, defect_ratio=0.2,
                                  random_state=3)
    names = [f"part{index:02d}" for index in range(60)]
    save_images(root / "shift1", X[:40], names[:40])
    save_images(root / "shift2", X[40:], names[40:])
    return root, X, masks, names


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_add_appends_a_shard_and_never_rewrites_the_pool(tmp_path, line):
    root, X, _, names = line
    session = new_session(tmp_path, root / "shift1")
    before = {name: digest(session.path / name) for name in (POOL_IMAGES, POOL_META)}
    summary = session.add_images(root / "shift2")
    assert summary["batch"] == 1 and summary["added"] == names[40:]
    assert summary["same_content"] == {} and summary["name_taken"] == []
    assert summary["n_images"] == 60 == session.status()["n_images"]
    assert {name: digest(session.path / name) for name in before} == before
    assert session.names == names
    np.testing.assert_array_equal(np.asarray(session.pool().images),
                                  load_image_folder(root / "shift1")[0].tolist()
                                  + load_image_folder(root / "shift2")[0].tolist())
    reopened = LabelingSession.open(session.path)
    assert [shard["batch"] for shard in reopened.manifest["pool"]["shards"]] == [0, 1]
    batch = reopened.manifest["batches"][1]
    assert (batch["command"], batch["n_added"], batch["source"]) == (
        "add", 20, str((root / "shift2").resolve()))


def test_add_leaves_out_images_already_in_the_pool_and_names_them(tmp_path, line, capsys):
    root, X, _, names = line
    session = new_session(tmp_path, root / "shift1")
    mixed = tmp_path / "mixed"
    save_images(mixed, X[38:42], ["copy38", "part39", "part40", "part41"])
    save_images(mixed, X[[0, 42]] * 0.5, ["part05", "twin42"])  # new content, used name
    save_images(mixed, X[[42]] * 0.5, ["twin42b"])  # the same new content twice
    code, out, err = run_main(capsys, "add", session.path, "--images", mixed)
    assert code == 0, err
    assert "added 3 images as batch 1" in out
    assert "copy38 (= part38)" in out and "part39 (= part39)" in out
    assert "twin42b (= twin42)" in out
    assert "whose name the pool already uses: part05" in out
    added = LabelingSession.open(session.path).manifest["batches"][1]
    assert added["n_skipped"] == {"same_content": 3, "name_taken": 1}
    # the same folder again adds nothing and commits nothing
    manifest = LabelingSession.open(session.path).manifest
    code, out, _ = run_main(capsys, "add", session.path, "--images", mixed)
    assert code == 0 and "added nothing" in out
    assert LabelingSession.open(session.path).manifest == manifest


def test_masks_that_come_with_new_images_count_as_labels(tmp_path, line):
    root, _, masks, names = line
    session = new_session(tmp_path, root / "shift1")
    truth = dict(zip(names, masks, strict=True))
    answers = write_masks(tmp_path / "masks", names[40:44], truth, suffix="_mask")
    summary = session.add_images(root / "shift2", answers, mask_suffix="_mask")
    assert summary["labeled"] == names[40:44]
    status = session.status()
    assert status["labeled"] == 4 and status["initially_labeled"] == 4
    for name in names[40:44]:
        np.testing.assert_array_equal(session.mask(name), truth[name])


def test_arrays_get_names_of_their_batch_and_must_have_the_sessions_channels(tmp_path, line):
    root, X, _, _ = line
    session = new_session(tmp_path, root / "shift1")
    summary = session.add_images(X[40:43] * 0.9)
    assert summary["added"] == ["b1_000000", "b1_000001", "b1_000002"]
    colour = np.repeat(X[43:45], 3, axis=1)
    with pytest.raises(SessionError, match=r"has 3 channel\(s\) but the session's images "
                                           r"have 1 \(grey-scale\); convert"):
        session.add_images(colour)
    assert session.status()["n_images"] == 43


def test_images_of_another_size_are_refused_when_the_session_resizes_nothing(tmp_path, line):
    root, X, _, _ = line
    session = new_session(tmp_path, root / "shift1")
    big = tmp_path / "big"
    save_images(big, X[40:41], ["new00"])
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(big / "new01.png")
    with pytest.raises(SessionError, match=r"image 'new01' \(.*new01.png\) is 32x32 but "
                                           r"the session's images are 16x16 .*; the session "
                                           r"resizes nothing .*--image-size"):
        session.add_images(big)
    assert session.status()["n_images"] == 40
    assert not list((session.path / "pool").iterdir())  # the partial shard is gone
    resized = new_session(tmp_path / "resized", root / "shift1", image_size=16)
    assert resized.add_images(big)["added"] == ["new00", "new01"]


def test_unreadable_files_follow_the_rules_of_init(tmp_path, line):
    root, X, _, _ = line
    session = new_session(tmp_path, root / "shift1")
    folder = tmp_path / "damaged"
    save_images(folder, X[40:42], ["new00", "new01"])
    (folder / "new02.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SessionError, match=r"cannot read image file .*new02.png.*skip"):
        session.add_images(folder)
    assert session.status()["n_images"] == 40
    with pytest.warns(SessionWarning, match=r"new02.png.*skipping it"):
        summary = session.add_images(folder, skip_unreadable=True)
    assert summary["added"] == ["new00", "new01"]


def test_add_is_refused_while_a_query_runs(tmp_path, line):
    root, _, _, _ = line
    session = new_session(tmp_path, root / "shift1")
    (session.path / LOCK).write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(),
        "command": "query", "started": "2024-01-01T00:00:00+00:00", "process_start": None}))
    with pytest.raises(SessionBusyError, match="in use by `sid4ds query`"):
        session.add_images(root / "shift2")
    (session.path / LOCK).unlink()
    assert session.status()["n_images"] == 40


def as_format_3(session: LabelingSession) -> None:
    """Write the session as sid4ds 0.x wrote format 3 (one pool file, no batches, the
    whole manifest in manifest.json)."""
    file = session.path / "manifest.json"
    manifest = LabelingSession.open(session.path).manifest
    (session.path / "session.db").unlink()
    shard = manifest["pool"].pop("shards")[0]
    manifest["pool"].pop("next_shard")
    manifest["pool"].update({key: shard[key] for key in ("file", "sha256", "meta",
                                                          "meta_sha256")})
    manifest["format_version"] = 3
    del manifest["batches"]
    file.write_text(json.dumps(manifest))


def test_a_format_3_session_is_read_and_becomes_format_4_on_its_first_add(tmp_path, line):
    root, _, masks, names = line
    session = new_session(tmp_path, root / "shift1")
    labeled = names[5:9]
    session.import_masks(write_masks(tmp_path / "answers", labeled,
                                     dict(zip(names, masks, strict=True))), any_image=True)
    as_format_3(session)
    old = LabelingSession.open(session.path)
    assert old.status()["format_version"] == 3 and len(old.names) == 40
    assert not (session.path / "session.db").exists()  # a query keeps format 3
    old.query(n_label=4)
    assert json.loads((session.path / "manifest.json").read_text())["format_version"] == 3
    summary = old.add_images(root / "shift2")
    assert summary["batch"] == 1
    assert json.loads((session.path / "manifest.json").read_text())["state"] == "session.db"
    manifest = LabelingSession.open(session.path).manifest
    assert manifest["format_version"] == 4 and len(manifest["rounds"]) == 1
    assert [migration["from"] for migration in manifest["migrations"]] == [3]
    assert [batch["command"] for batch in manifest["batches"]] == ["init", "add"]
    assert sorted(manifest["labels"]) == labeled
    assert old.status()["n_images"] == 60 and old.names == names


def count_pool_files(session) -> int:
    folder = session / "pool"
    return len(list(folder.iterdir())) if folder.is_dir() else 0


ADD_POINTS = [point for point in KILL_POINTS if point.startswith("add:")]


@pytest.mark.parametrize(("version", "kill_at"),
                         [(4, point) for point in ADD_POINTS if point != "add:before-marker"]
                         + [(3, point) for point in ADD_POINTS])
def test_a_killed_add_leaves_the_pool_as_it_was_and_loses_no_label(tmp_path, line, capsys,
                                                                   version, kill_at):
    """Format 4, and format 3 (whose first add moves it to format 4)."""
    root, _, masks, names = line
    session = tmp_path / "session"
    assert run_main(capsys, "init", session, "--images", root / "shift1", *TINY)[0] == 0
    truth = dict(zip(names, masks, strict=True))
    first = write_masks(tmp_path / "first", names[:3], truth)
    assert run_main(capsys, "import", session, "--masks", first, "--any")[0] == 0
    if version == 3:
        as_format_3(LabelingSession.open(session))
    new_masks = write_masks(tmp_path / "new", names[40:42], truth)
    before = LabelingSession.open(session).manifest

    assert killed_command(kill_at, "add", session, "--images", root / "shift2", "--masks",
                          new_masks) == -signal.SIGKILL
    reopened = LabelingSession.open(session)
    assert reopened.manifest == before
    assert reopened.status()["format_version"] == version
    assert reopened.status()["n_images"] == 40 and reopened.names == names[:40]
    for name in names[:3]:
        np.testing.assert_array_equal(reopened.mask(name), truth[name])

    code, out, err = run_main(capsys, "add", session, "--images", root / "shift2",
                              "--masks", new_masks)
    assert code == 0, err
    assert "added 20 images as batch 1" in out and "removed a stale lock" in err
    done = LabelingSession.open(session)
    assert done.names == names and done.status()["labeled"] == 5
    assert done.status()["format_version"] == 4
    assert count_pool_files(session) == 2  # the killed add's files were removed


def test_a_query_after_add_without_new_labels_scores_only_the_new_images(tmp_path, line,
                                                                          monkeypatch):
    """Cold start and iterative stage alike (four tiny rounds: about 10 s)."""
    root, X, masks, names = line
    truth = dict(zip(names, masks, strict=True))
    session = new_session(tmp_path, root / "shift1")
    session.query(n_label=4)
    msmr = count_scored(monkeypatch, ReconstructionScorer, "block_errors_chunk")  # all M does
    session.add_images(root / "shift2")
    assert msmr == [20]  # the drift check: the pool's kept from the query; the 20 new ones
    sdr = count_scored(monkeypatch, ReconstructionScorer, "region_errors_chunk")
    fits = count_scored(monkeypatch, ReconstructionScorer, "fit")
    msmr[0] = 0
    cold = session.query(n_label=4, skip_missing=True)
    assert cold["stage"] == "cold_start" and fits == [0]
    # the new images' E_msmr came with the drift check; the 4 skipped went back to the pool
    assert msmr == [0] and cold["n_reused"] == 60
    # labels: S and G are trained, every image is scored afresh
    defective = [name for name in names[:40] if truth[name].any()][:2]
    normal = [name for name in names[:40] if not truth[name].any()][:2]
    session.import_masks(write_masks(tmp_path / "a", defective + normal, truth),
                         any_image=True)
    first = session.query(n_label=4, skip_missing=True)
    assert first["stage"] == "iterative" and first["n_reused"] == 0 and sdr == [56]
    # more images and no label: S and G stay, only the new images are scored
    save_images(tmp_path / "shift3", X[:6] * 0.8, [f"late{index}" for index in range(6)])
    msmr[0] = 0
    session.add_images(tmp_path / "shift3")
    assert msmr == [6]  # M unchanged: the drift check scores only the new images
    msmr[0], sdr[0] = 0, 0
    again = session.query(n_label=4, skip_missing=True)
    assert again["stage"] == "iterative" and "train_S" not in again["seconds"]
    assert sdr == [6] and again["n_reused"] == 56 and again["models"]["S"] == first["round"]
    assert msmr == [0]  # their E_msmr for the tie rule came with the drift check


@pytest.fixture(scope="module")
def grown(tmp_path_factory, line):
    """A session of the first shift, asked a cold-start round, grown by the second shift
    and asked again (without labels). Copy it before changing it."""
    root, _, _, _ = line
    session = new_session(tmp_path_factory.mktemp("grown"), root / "shift1")
    session.query(n_label=4)
    session.add_images(root / "shift2")
    session.query(n_label=4, skip_missing=True)
    return session.path


def test_status_scores_and_report_say_which_batch_each_image_came_from(tmp_path, grown, line,
                                                                       capsys):
    root, _, _, names = line
    session = LabelingSession.open(shutil.copytree(grown, tmp_path / "session"))
    batches = session.status()["batches"]
    assert [(entry["batch"], entry["command"], entry["in_pool"], entry["source"])
            for entry in batches] == [(0, "init", 40, str((root / "shift1").resolve())),
                                      (1, "add", 20, str((root / "shift2").resolve()))]
    with open(session.path / "rounds/001/scores.csv", newline="") as handle:
        ranked = {row["name"]: int(row["batch"]) for row in csv.DictReader(handle)}
    assert ranked == {name: int(name >= "part40") for name in names}
    with open(session.path / "rounds/001/to_label.csv", newline="") as handle:
        assert all(int(row["batch"]) == ranked[row["name"]] for row in csv.DictReader(handle))
    code, out, _ = run_main(capsys, "status", session.path)
    assert code == 0
    assert re.search(r"^ +1  add   \S+ +20 +0 +0  " + re.escape(str((root / "shift2").resolve())),
                     out, re.MULTILINE)
    assert re.search(r"^drift +batch 1 looks like the pool: \d+ of its 20 images", out,
                     re.MULTILINE)
    page = session.report(device="cpu").read_text()
    assert "<h2>Where the images came from</h2>" in page
    assert "<p>Drift check: batch 1 looks like the pool: " in page
    assert (f"<td>1</td><td>add</td><td>{batches[1]['time']}</td>"
            f"<td>{(root / 'shift2').resolve()}</td><td>20</td><td>0</td><td>20</td>") in page


# ---------------------------------------------------------------------- drift
def test_a_drifted_batch_is_flagged_kept_and_acted_on_by_the_next_query_once(tmp_path):
    """Three tiny rounds and three adds (about 10 s)."""
    X, masks = make_defect_images(n_samples=32, image_size=16, defect_ratio=0.25,
                                  random_state=0)
    names = [f"p{index:02d}" for index in range(32)]
    truth = dict(zip(names, masks, strict=True))
    session = LabelingSession.create(tmp_path / "session", X, names=names, seed=0,
                                     scorer_params={**TINY_SCORER, "max_epochs": 20},
                                     segmenter_params=TINY_SEGMENTER)
    early, early_masks = make_defect_images(n_samples=8, image_size=16, random_state=9)
    assert session.add_images(early)["drift"] is None  # no M yet: nothing to compare with
    truth |= {f"b1_{row:06d}": mask for row, mask in enumerate(early_masks)}
    session.query(n_label=8)
    like, like_masks = make_defect_images(n_samples=16, image_size=16, random_state=10)
    calm = session.add_images(like)["drift"]
    truth |= {f"b2_{row:06d}": mask for row, mask in enumerate(like_masks)}
    assert not calm["drifted"] and "look like the pool" in calm["message"]
    new, new_masks = make_defect_images(n_samples=16, image_size=16, defect_ratio=0.25,
                                        random_state=11, drift="noise")
    summary = session.add_images(new)
    drift = summary["drift"]
    truth |= {f"b3_{row:06d}": mask for row, mask in enumerate(new_masks)}
    assert drift["drifted"] and drift["share_above"] > calm["share_above"] + 0.3
    assert "do not look like the pool" in drift["message"]
    assert f"next `sid4ds query` acts on batch {summary['batch']}" in drift["message"]
    stored = session.manifest["batches"][-1]["drift"]
    assert stored["drifted"] and stored["applied_round"] is None
    # status says it in words: which batch, its share against the threshold, what comes
    status = session.status()
    words = [entry["drift_words"] for entry in status["batches"]]
    assert words[0] is None and words[1].startswith("batch 1 was not checked for drift")
    assert words[2].startswith("batch 2 looks like the pool: ")
    assert words[3].startswith(f"batch 3 DRIFTED: {drift['n_above']} of its 16 images "
                               f"({drift['share_above']:.0%}) score above the pool's 95th "
                               f"percentile")
    assert "drift is 25% or more" in words[3] and status["drift"] == [words[3]]
    assert words[3].endswith("The next `sid4ds query` applies the drift rule to it.")
    # label round 0, then the next round applies the rule to the drifted batch once
    session.import_masks(write_masks(tmp_path / "m0", session.manifest["rounds"][0]["selected"],
                                     truth))
    acted = session.query(n_label=8)
    batch_names = set(summary["added"])
    assert acted["stage"] == "iterative" and acted["drifted_batches"] == [summary["batch"]]
    assert len(acted["drift_normals"]) == 4 and set(acted["drift_normals"]) <= batch_names
    assert not set(acted["fake_normals"]) & batch_names  # the batch gives no fake normal
    assert session.manifest["batches"][-1]["drift"]["applied_round"] == acted["round"]
    assert session.status()["drift"][0].endswith(
        f"Round {acted['round']} applied the drift rule to it (once; later rounds rank it "
        f"like the rest).")
    later = session.query(n_label=8, skip_missing=True)
    assert "drifted_batches" not in later


def test_add_prints_the_drift_check(tmp_path, line, capsys):
    root = line[0]
    session = LabelingSession.create(tmp_path / "session", root / "shift1", seed=0,
                                     scorer_params={**TINY_SCORER, "max_epochs": 20},
                                     segmenter_params=TINY_SEGMENTER)
    session.query(n_label=4)
    noisy, _ = make_defect_images(n_samples=20, image_size=16, random_state=12, drift="noise")
    save_images(tmp_path / "noisy", noisy, [f"n{index:02d}" for index in range(20)])
    code, out, _ = run_main(capsys, "add", session.path, "--images", tmp_path / "noisy")
    assert code == 0
    assert "DRIFT: the new images do not look like the pool" in out
    code, out, _ = run_main(capsys, "status", session.path)
    assert re.search(r"^drift +batch 1 DRIFTED: \d+ of its 20 images .* The next `sid4ds "
                     r"query` applies the drift rule to it\.$", out, re.MULTILINE)
    assert re.search(r"^next: label the 4 images .* \(the next query applies the drift rule "
                     r"to batch 1\)$", out, re.MULTILINE)
