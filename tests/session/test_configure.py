"""Tests for sid4ds.session.configure: S's budget and the final model's settings changed on
an existing session (``LabelingSession.configure``, ``sid4ds configure``)."""

from __future__ import annotations

import numpy as np
import pytest

from sid4ds.cli import main
from sid4ds.session import LabelingSession, SessionError
from sid4ds.session.manifest import open_manifest
from sid4ds.session.query import session_engine
from sid4ds.session.store import SessionStore

from ..conftest import TINY_SCORER, answer_round, write_masks

SEGMENTER = {"base_channels": 4, "depth": 2, "max_steps": 3}


def manifest(session: LabelingSession) -> dict:
    return open_manifest(session.path)[0]


@pytest.fixture
def session(tmp_path, pool_folder) -> tuple[LabelingSession, dict]:
    images, truth = pool_folder
    return LabelingSession.create(tmp_path / "session", images, seed=0,
                                  scorer_params={**TINY_SCORER, "max_epochs": 1},
                                  segmenter_params=SEGMENTER), truth


def test_configure_stores_checked_settings_and_records_the_change(session):
    session, _ = session
    result = session.configure(segmenter={"max_steps": 5, "base_channels": 8},
                               final={"max_steps": 40, "n_folds": 4, "fake_normals": False})
    assert result["changed"] == {"segmenter": {"max_steps": 5, "base_channels": 8},
                                 "final": {"max_steps": 40, "n_folds": 4,
                                           "fake_normals": False}}
    settings = manifest(session)["settings"]
    assert settings["segmenter"]["max_steps"] == 5 and settings["segmenter"]["base_channels"] == 8
    assert settings["final"]["n_folds"] == 4 and settings["final"]["n_checkpoints"] == 5
    (change,) = manifest(session)["settings_changes"]
    assert change["round"] == 0 and change["final"]["max_steps"] == 40
    # the same values again change nothing and record nothing
    assert session.configure(segmenter={"max_steps": 5})["changed"] == {}
    assert len(manifest(session)["settings_changes"]) == 1


def test_the_ranking_rule_changes_for_the_next_query_and_is_recorded(session):
    session, _ = session
    assert session_engine(SessionStore(session.path), "auto", "cpu", 0, 0).fusion == "rank"
    result = session.configure(ranking={"fusion": "none", "region": "threshold"})
    assert result["changed"] == {"ranking": {"fusion": None, "region": "threshold"}}
    assert result["ranking"] == {"fusion": None, "region": "threshold"}
    engine = session_engine(SessionStore(session.path), "auto", "cpu", 0, 0)
    assert (engine.fusion, engine.region) == (None, "threshold")
    assert manifest(session)["settings_changes"][-1]["ranking"]["fusion"] is None
    # a session made before the fusion has no setting: E_sdr alone, and no change recorded
    assert session.configure(ranking={"fusion": None})["changed"] == {}


@pytest.mark.parametrize(("options", "message"), [
    ({"ranking": {"fusion": "max"}}, r"fusion must be one of None, 'rank'; got 'max'"),
    ({"ranking": {"rule": "rank"}}, "unknown ranking setting 'rule'; use fusion or region"),
    ({"final": {"folds": 3}}, "unknown setting 'folds' of the final model"),
    ({"final": {"n_folds": 1}}, "n_folds must be >= 2"),
    ({"final": {"max_epochs": 10}}, "does not take 'max_epochs'"),
    ({"segmenter": {"lr": -1.0}}, "lr must be in"),
    ({"segmenter": {"max_step": 5}}, "max_step"),
    ({"segmenter": {"random_state": 3}}, "the session decides it"),
    ({"segmenter": {"max_steps": 5}, "final": {"start": "warm"}}, "start must be one of"),
])
def test_a_bad_setting_is_named_and_changes_nothing(session, options, message):
    session, _ = session
    before = (session.path / "manifest.json").read_bytes()
    with pytest.raises(SessionError, match=message):
        session.configure(**options)
    assert (session.path / "manifest.json").read_bytes() == before


def test_once_s_is_trained_only_its_training_may_change_and_the_next_query_uses_it(
        session, tmp_path):
    session, truth = session
    record = session.query(n_label=10, device="cpu")
    answer_round(session, record, truth, tmp_path / "r0")
    record = session.query(n_label=4, device="cpu")  # trains S: 3 steps
    assert record["stage"] == "iterative"
    with pytest.raises(SessionError, match=r"'base_channels' cannot change now: S is trained"):
        session.configure(segmenter={"base_channels": 8})
    # its budget, and the window it trains on (a step's cost on large images)
    session.configure(segmenter={"max_steps": 7, "crop_size": 8})
    answer_round(session, record, truth, tmp_path / "r1")
    session.query(n_label=4, device="cpu")  # trains S further, with the new budget
    s_of_round_2 = LabelingSession.open(session.path).segmenter("cpu")
    assert s_of_round_2.max_steps == 7 and s_of_round_2.crop_size == 8
    assert sum(entry["steps"] for entry in s_of_round_2.history_) == 3 + 7


def test_train_follows_a_change_of_the_final_settings(session, tmp_path):
    session, truth = session
    defective = [name for name, mask in truth.items() if mask.any()][:3]
    normal = [name for name, mask in truth.items() if not mask.any()][:5]
    session.import_masks(write_masks(tmp_path / "m", defective + normal, truth),
                         any_image=True)
    session.configure(final={"max_steps": 4, "n_folds": 2, "n_checkpoints": 2})
    first = session.train(device="cpu")
    assert first["trained"] and first["n_steps"] in (2, 4)
    assert session.train(device="cpu")["trained"] is False
    session.configure(final={"max_steps": 6})
    again = session.train(device="cpu")
    assert again["trained"] and again["n_steps"] in (3, 6) and again["settings"]["max_steps"] == 6


def test_a_new_precision_retrains_only_where_it_trains_differently(session, tmp_path,
                                                                    cpu_units):
    session, truth = session
    defective = [name for name, mask in truth.items() if mask.any()][:3]
    normal = [name for name, mask in truth.items() if not mask.any()][:5]
    session.import_masks(write_masks(tmp_path / "m", defective + normal, truth),
                         any_image=True)
    session.configure(final={"max_steps": 4, "n_folds": 2, "n_checkpoints": 2,
                             "precision": "fp32"})
    assert session.train(device="cpu")["trained"]
    session.configure(final={"precision": "auto"})
    cpu_units(False)  # "auto" trains in fp32 here: the model is the one already trained
    assert session.train(device="cpu")["trained"] is False
    cpu_units(True)  # with AMX, "auto" trains in bf16: a new model
    again = session.train(device="cpu")
    assert again["trained"] and again["settings"]["precision"] == "auto"


def test_the_configure_command(session, capsys):
    session, _ = session
    assert main(["configure", str(session.path), "--segmenter", "max_steps=9",
                 "--final", "n_folds=4", "lr=0.001"]) == 0
    out = capsys.readouterr().out
    assert "changed segmenter max_steps = 9" in out and "changed final lr = 0.001" in out
    assert main(["configure", str(session.path)]) == 0
    out = capsys.readouterr().out
    assert "the settings now:" in out and "max_steps=9" in out and "n_folds=4" in out
    assert main(["configure", str(session.path), "--final", "n_fold=4"]) == 1
    assert "unknown setting 'n_fold'" in capsys.readouterr().err
    assert main(["configure", str(session.path), "--final", "paste_defects=False"]) == 0
    assert "changed final paste_defects = False" in capsys.readouterr().out
    assert manifest(session)["settings"]["final"]["paste_defects"] is False
    assert main(["configure", str(session.path), "--ranking", "fusion=none"]) == 0
    out = capsys.readouterr().out
    assert "changed ranking fusion = None" in out and "ranking: fusion=None" in out
    assert np.isclose(manifest(session)["settings"]["final"]["lr"], 0.001)
