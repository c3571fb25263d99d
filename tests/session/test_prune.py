"""Tests for ``sid4ds prune`` (sid4ds/session/prune.py): keep only what is worth storing."""

from __future__ import annotations

import csv
import shutil
import signal

import numpy as np
import pytest
from scipy.stats import binom

from sid4ds.session import KILL_POINTS, LabelingSession, SessionError
from sid4ds.session.prune import defect_estimate
from sid4ds.stopping import rate_upper_bound

from ..cli.test_cli import run_main
from ..conftest import answer_round, new_session, write_masks
from .test_add import as_format_3, killed_command


@pytest.fixture(scope="module")
def ranked(tmp_path_factory, pool_folder):
    """40 images; round 0 (cold start, K=4, V=4) asked and answered."""
    images, truth = pool_folder
    root = tmp_path_factory.mktemp("ranked")
    session = new_session(root, images)
    record = session.query(n_label=4, n_normal=4)
    answer_round(session, record, truth, root / "answers")
    return session.path, record, truth


def copy_of(ranked, tmp_path) -> LabelingSession:
    return LabelingSession.open(shutil.copytree(ranked[0], tmp_path / "session"))


def ranking(session: LabelingSession) -> list[dict[str, str]]:
    with open(session.path / "rounds/000/scores.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_dry_run_lists_the_bottom_of_the_ranking_and_changes_nothing(tmp_path, ranked,
                                                                       capsys):
    session = copy_of(ranked, tmp_path)
    record = ranked[1]
    manifest = LabelingSession.open(session.path).manifest
    result = session.prune(n=10)
    candidates = [row["name"] for row in ranking(session)
                  if row["name"] not in {*record["selected"], *record["fake_normals"]}]
    assert len(candidates) == 32 and result["n_candidates"] == 32
    assert result["names"] == candidates[::-1][:10]  # lowest ranked first
    assert result["kept_round_images"] == 4  # the 4 fake normals (the asked are labelled)
    assert not result["applied"] and result["n_images"] == 40
    assert LabelingSession.open(session.path).manifest == manifest
    # half the candidates by default; the CLI says what it assumes and how to apply
    code, out, err = run_main(capsys, "prune", session.path, "--list", tmp_path / "list.csv")
    assert code == 0, err
    assert "would move 16 of the 32 unlabelled images at the bottom of round 0's ranking" in out
    assert "the defect rate of round 0" in out and "dry run: nothing was moved" in out
    with open(tmp_path / "list.csv", newline="") as handle:
        assert [row["name"] for row in csv.DictReader(handle)] == candidates[::-1][:16]


def test_apply_moves_the_images_to_the_archive_and_add_brings_them_back(tmp_path, ranked,
                                                                        capsys):
    session = copy_of(ranked, tmp_path)
    images = {name: session.pool().images[row] for name, row in session.pool().index.items()}
    labels = dict(session.manifest["labels"])
    result = session.prune(n=12, archive=tmp_path / "archive", apply=True)
    pruned = result["names"]
    assert result["applied"] and result["n_images"] == 28 == session.status()["n_images"]
    assert not set(pruned) & set(session.names)
    for name in session.names:  # the images that stay are unchanged
        np.testing.assert_array_equal(session.pool().images[session.pool().index[name]],
                                      images[name])
    assert session.manifest["labels"] == labels
    with open(tmp_path / "archive/sid4ds_archive.csv", newline="") as handle:
        listed = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(listed) == set(pruned) and all(row["exact"] == "1" for row in listed.values())
    assert sorted(path.stem for path in (tmp_path / "archive").glob("*.png")) == sorted(pruned)
    assert session.status()["batches"][0]["pruned"] == 12
    assert len(list((session.path / "pool").iterdir())) == 2  # one shard replaced the first
    assert not (session.path / "pool_images.npy").exists()
    # a query ranks the smaller pool
    record = session.query(n_label=4, n_normal=4)
    assert not set(record["selected"]) & set(pruned)
    # and add brings the archived images back as they were, names and content alike
    code, out, err = run_main(capsys, "add", session.path, "--images", tmp_path / "archive")
    assert code == 0, err
    assert "added 12 images as batch 1" in out
    back = LabelingSession.open(session.path)
    for name in pruned:
        np.testing.assert_array_equal(back.pool().images[back.pool().index[name]],
                                      images[name])


def test_the_estimate_uses_labels_in_the_pruned_part_when_there_are_some(tmp_path, ranked):
    session = copy_of(ranked, tmp_path)
    truth = ranked[2]
    bottom = [row["name"] for row in ranking(session)][-4:]  # the fake normals
    session.import_masks(write_masks(tmp_path / "spot", bottom, truth), any_image=True)
    estimate = session.prune(n=20)["estimate"]
    found = sum(bool(truth[name].any()) for name in bottom)
    assert estimate["basis"] == "labelled_in_range" and estimate["observed"] == [found, 4]
    assert estimate["expected"] == round(found / 4 * 20, 1)
    assert estimate["upper"] == round(rate_upper_bound(found, 4) * 20, 1)
    assert "random sample" in estimate["assumes"]


def test_defect_estimate_bases_and_the_upper_bound():
    assert defect_estimate(100, region=None, last_round=None, defect_ratio=0.05) == {
        "n": 100, "expected": 5.0, "upper": None, "basis": "defect_ratio", "observed": None,
        "assumes": "no round is answered yet: the defect ratio given at init (0.05) is used, "
                   "the user's own guess"}
    last = defect_estimate(100, region=(0, 0), last_round=(3, 2, 40), defect_ratio=0.05)
    assert last["basis"] == "last_round" and last["expected"] == 5.0
    assert "round 3 (2 of 40" in last["assumes"]
    # the one-sided bound: a rate at the bound gives the observed count or fewer with
    # probability 5%, and the bound grows with what was seen and shrinks with more seen
    for found, seen in ((0, 20), (2, 40), (7, 30)):
        bound = rate_upper_bound(found, seen)
        assert binom.cdf(found, seen, bound) == pytest.approx(0.05, abs=1e-6)
    assert rate_upper_bound(0, 20) > rate_upper_bound(0, 60)
    assert rate_upper_bound(3, 20) > rate_upper_bound(1, 20)
    assert rate_upper_bound(5, 5) == 1.0


def test_prune_refuses_bad_requests(tmp_path, ranked, pool_folder):
    session = copy_of(ranked, tmp_path)
    with pytest.raises(SessionError, match="inside the session"):
        session.prune(n=3, archive=session.path / "archive", apply=True)
    with pytest.raises(SessionError, match="needs archive=DIR"):
        session.prune(n=3, apply=True)
    with pytest.raises(SessionError, match="not both"):
        session.prune(n=3, share=0.5)
    with pytest.raises(ValueError, match="share"):
        session.prune(share=1.5)
    clash = tmp_path / "clash"
    name = session.prune(n=1)["names"][0]
    clash.mkdir()
    (clash / f"{name}.png").write_bytes(b"someone else's file")
    with pytest.raises(SessionError, match="exists and is another image"):
        session.prune(n=1, archive=clash, apply=True)
    assert (clash / f"{name}.png").read_bytes() == b"someone else's file"
    assert session.status()["n_images"] == 40
    fresh = new_session(tmp_path / "fresh", pool_folder[0])
    with pytest.raises(SessionError, match="no ranking yet"):
        fresh.prune()


@pytest.mark.parametrize("kill_at", [point for point in KILL_POINTS
                                     if point.startswith("prune:")])
def test_a_killed_prune_keeps_every_label_and_the_pool_whole(tmp_path, ranked, capsys,
                                                             kill_at):
    session = copy_of(ranked, tmp_path)
    truth = ranked[2]
    labels = dict(session.manifest["labels"])
    before = LabelingSession.open(session.path).manifest
    archive = tmp_path / "archive"
    assert killed_command(kill_at, "prune", session.path, "--n", 10, "--archive", archive,
                          "--apply") == -signal.SIGKILL
    reopened = LabelingSession.open(session.path)
    manifest = reopened.manifest
    assert manifest["labels"] == labels
    for name in labels:
        np.testing.assert_array_equal(reopened.mask(name), truth[name])
    done = kill_at == "prune:after-commit"
    assert reopened.status()["n_images"] == (30 if done else 40)
    if not done:
        assert manifest == before
    # what the next command finds: a session that works, and no shard left over
    code, out, err = run_main(capsys, "prune", session.path, "--n", 10, "--archive", archive,
                              "--apply")
    assert code == 0, err
    final = LabelingSession.open(session.path)
    assert final.status()["n_images"] == (20 if done else 30)
    named = {shard[key] for shard in final.manifest["pool"]["shards"]
             for key in ("file", "meta")}
    assert {f"pool/{path.name}" for path in (session.path / "pool").iterdir()} == named
    assert len(list(archive.glob("*.png"))) == (20 if done else 10)


def test_prune_moves_a_format_3_session_to_format_4(tmp_path, ranked):
    session = copy_of(ranked, tmp_path)
    labels = dict(session.manifest["labels"])
    as_format_3(session)
    result = LabelingSession.open(session.path).prune(n=5, archive=tmp_path / "archive",
                                                       apply=True)
    reopened = LabelingSession.open(session.path)
    assert reopened.status()["format_version"] == 4 and len(result["names"]) == 5
    assert reopened.manifest["labels"] == labels
    assert [(batch["batch"], batch["n_added"], batch["in_pool"], batch["pruned"])
            for batch in reopened.status()["batches"]] == [(0, 40, 35, 5)]
