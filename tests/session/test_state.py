"""Tests for sid4ds/session/state.py: the session's state in SQLite, written by the change."""

from __future__ import annotations

import json
import socket
import sqlite3

import pytest

from sid4ds.session import LabelingSession, SessionError
from sid4ds.session.records import count_defective
from sid4ds.session.state import STATE, StateChangedError, StateFile

from ..conftest import answer_round, new_session


def label(name: str, defective: bool = False, version: int = 1) -> dict:
    return {"mask": f"masks/{name}.png", "sha256": "0" * 64, "version": version, "round": 0,
            "defective": defective, "source": f"answers/{name}.png",
            "imported": "2025-01-01T00:00:00+00:00"}


def manifest_of(n_labels: int) -> dict:
    return {"format_version": 4, "settings": {"seed": 0}, "pool": {"n_images": 1000},
            "labels": {f"part{index:04d}": label(f"part{index:04d}")
                       for index in range(n_labels)},
            "rounds": [{"round": 0, "selected": ["part0000"], "scores": [1.5]}]}


def rows_written(monkeypatch, path, change) -> int:
    """Rows that ``StateFile.write`` changes (SQLite's count) after ``change(manifest,
    state)``."""
    state = StateFile(path)
    manifest = state.read()
    change(manifest, state)
    changes = []

    class Counting(sqlite3.Connection):
        def close(self) -> None:
            changes.append(self.total_changes)
            super().close()

    original = sqlite3.connect
    monkeypatch.setattr("sid4ds.session.state.sqlite3.connect",
                        lambda *args, **kwargs: original(*args, factory=Counting, **kwargs))
    state.write(manifest)
    monkeypatch.undo()
    return sum(changes)


def test_a_write_changes_only_the_rows_of_what_changed(tmp_path, monkeypatch):
    path = tmp_path / STATE
    StateFile.create(path, manifest_of(2000))

    def relabel(manifest, state):
        manifest["labels"]["part0007"] = label("part0007", defective=True, version=2)
        manifest["labels"]["new"] = label("new")

    # two label rows and the count of changes; the other 1999 labels, the round and the
    # rest are not written again
    assert rows_written(monkeypatch, path, relabel) == 2 + 1
    manifest = StateFile(path).read()
    assert manifest["labels"]["part0007"]["defective"] is True
    assert manifest["labels"]["part0007"]["version"] == 2 and len(manifest["labels"]) == 2001

    def next_round(manifest, state):
        manifest["rounds"][0]["skipped"] = ["part0000"]
        state.round_changed(0)
        manifest["rounds"].append({"round": 1, "selected": ["part0009"], "scores": [0.5]})

    assert rows_written(monkeypatch, path, next_round) == 2 + 1  # the two rounds' rows
    assert StateFile(path).read()["rounds"][0]["skipped"] == ["part0000"]
    unchanged = StateFile(path)
    unchanged.read()
    assert rows_written(monkeypatch, path, lambda manifest, state: None) == 1  # the count only
    assert unchanged.unchanged() is False  # someone wrote since it read


def test_a_reader_knows_at_no_cost_whether_the_state_changed(tmp_path):
    path = tmp_path / STATE
    StateFile.create(path, manifest_of(3))
    reader, writer = StateFile(path), StateFile(path)
    reader.read()
    assert reader.unchanged() is True
    manifest = writer.read()
    manifest["labels"]["part0001"]["defective"] = True  # changed in place
    writer.write(manifest)
    assert reader.unchanged() is False and writer.unchanged() is True
    assert reader.read()["labels"]["part0001"]["defective"] is True
    legacy = tmp_path / "old.db"  # a file written before the count: never "unchanged"
    StateFile.create(legacy, manifest_of(1))
    with sqlite3.connect(legacy) as connection:
        connection.execute("DROP TABLE generation")
    old = StateFile(legacy)
    old.read()
    assert old.unchanged() is False


def test_a_store_rereads_only_when_the_state_changed_or_a_command_failed(tmp_path,
                                                                          pool_folder):
    from sid4ds.session.store import SessionStore

    session = new_session(tmp_path, pool_folder[0])
    store, other = SessionStore(session.path), SessionStore(session.path)
    manifest = store.manifest
    assert store.reread() is manifest  # nothing changed: nothing read
    with other.locked("test"):
        other.manifest["settings"]["note"] = "changed elsewhere"
        other.commit()
    assert store.reread()["settings"]["note"] == "changed elsewhere"
    with pytest.raises(RuntimeError), store.locked("test"):
        store.manifest["settings"]["note"] = "never committed"
        raise RuntimeError("the command failed")
    assert store.reread()["settings"]["note"] == "changed elsewhere"


def test_a_failed_write_leaves_the_state_as_it_was(tmp_path):
    path = tmp_path / STATE
    StateFile.create(path, manifest_of(10))
    state = StateFile(path)
    manifest = state.read()
    manifest["labels"]["part0001"] = label("part0001", defective=True)
    manifest["labels"]["broken"] = {"mask": "masks/broken.png"}  # lacks fields: fails late
    with pytest.raises(KeyError):
        state.write(manifest)
    assert StateFile(path).read()["labels"]["part0001"]["defective"] is False
    assert "broken" not in StateFile(path).read()["labels"]


def test_a_damaged_or_missing_state_file_is_refused_with_advice(tmp_path):
    path = tmp_path / STATE
    with pytest.raises(SessionError, match="is missing; restore"):
        StateFile(path).read()
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(SessionError, match="restore the session folder from a copy"):
        StateFile(path).read()


def test_a_session_keeps_its_labels_and_rounds_in_the_state_file(tmp_path, asked):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    marker = json.loads((session.path / "manifest.json").read_text())
    assert marker == {"format": "sid4ds-session", "format_version": 4, "state": STATE,
                      "created": marker["created"], "written_by": marker["written_by"]}
    with sqlite3.connect(session.path / STATE) as connection:
        names = {name for (name,) in connection.execute("SELECT name FROM labels")}
        bodies = [json.loads(body) for (body,) in connection.execute("SELECT body FROM rounds")]
    assert names == set(record["selected"]) and bodies[0]["selected"] == record["selected"]
    reopened = LabelingSession.open(session.path)
    assert sorted(reopened.labeled_names) == sorted(record["selected"])


def statements(monkeypatch) -> list[str]:
    """The SQL statements sid4ds.session.state runs from now on (traced)."""
    seen: list[str] = []
    original = sqlite3.connect

    def traced(*args, **kwargs):
        connection = original(*args, **kwargs)
        connection.set_trace_callback(seen.append)
        return connection

    monkeypatch.setattr("sid4ds.session.state.sqlite3.connect", traced)
    return seen


def test_labels_are_read_by_the_row_and_whole_when_walked(tmp_path, monkeypatch):
    path = tmp_path / STATE
    manifest = manifest_of(2000)
    manifest["labels"]["part0003"]["defective"] = True
    StateFile.create(path, manifest)
    labels = StateFile(path).read()["labels"]
    seen = statements(monkeypatch)
    assert len(labels) == 2000 and "part1999" in labels and "nope" not in labels
    assert count_defective(labels) == 1 and seen == []  # names and flags came with the read
    assert labels["part0003"]["defective"] is True and labels.get("nope") is None
    assert len([s for s in seen if "FROM labels WHERE name IN" in s]) == 1
    assert labels.in_memory() == ["part0003"]
    for index in range(100):  # many lookups one by one: the rest is read in one go
        assert labels[f"part{index:04d}"]["version"] == 1
    assert len([s for s in seen if "FROM labels" in s]) <= 34
    assert len(labels.in_memory()) == 2000
    assert json.loads(json.dumps(labels)) == manifest["labels"] == labels


def test_a_write_of_labels_read_by_the_row_keeps_the_others(tmp_path):
    path = tmp_path / STATE
    StateFile.create(path, manifest_of(50))
    state = StateFile(path)
    manifest = state.read()
    labels = manifest["labels"]
    labels["part0001"]["defective"] = True  # changed in place
    labels["new"] = label("new", defective=True)
    del labels["part0002"]
    assert count_defective(labels) == 2 and len(labels) == 50
    state.write(manifest)
    stored = StateFile(path).read()["labels"]
    assert sorted(stored) == sorted({*manifest_of(50)["labels"], "new"} - {"part0002"})
    assert stored["part0001"]["defective"] is True and stored["part0040"] == label("part0040")
    plain = dict(stored.items())  # a plain dict in its place: compared with every record
    plain.pop("new")
    state = StateFile(path)
    manifest = state.read()
    manifest["labels"] = plain
    state.write(manifest)
    assert "new" not in StateFile(path).read()["labels"]
    assert len(StateFile(path).read()["labels"]) == 49


def test_a_record_read_after_another_command_wrote_is_refused(tmp_path):
    path = tmp_path / STATE
    StateFile.create(path, manifest_of(5))
    reader, writer = StateFile(path), StateFile(path)
    labels = reader.read()["labels"]
    manifest = writer.read()
    manifest["labels"]["part0004"] = label("part0004", defective=True)
    writer.write(manifest)
    with pytest.raises(StateChangedError, match="changed the session.*open the session "
                                                "again"):
        labels["part0004"]
    assert StateFile(path).read()["labels"]["part0004"]["defective"] is True


def test_only_new_rounds_and_rounds_marked_changed_are_written(tmp_path, monkeypatch):
    path = tmp_path / STATE
    manifest = manifest_of(1)
    manifest["rounds"] = [{"round": index, "selected": [f"part{index:04d}"]}
                          for index in range(5)]
    StateFile.create(path, manifest)

    def next_round(manifest, state):
        manifest["rounds"][4]["skipped"] = ["part0004"]
        state.round_changed(4)
        manifest["rounds"].append({"round": 5, "selected": ["part0005"]})

    seen = statements(monkeypatch)
    assert rows_written(monkeypatch, path, next_round) == 2 + 1
    rounds = [s for s in seen if s.startswith("INSERT OR REPLACE INTO rounds")]
    assert len(rounds) == 2 and "part0003" not in " ".join(rounds)
    stored = StateFile(path).read()["rounds"]
    assert [record["round"] for record in stored] == list(range(6))
    assert stored[4]["skipped"] == ["part0004"]


def test_progress_counts_without_reading_label_records(tmp_path, asked, monkeypatch):
    session, record, truth = asked
    answer_round(session, record, truth, tmp_path / "answers")
    session = LabelingSession.open(session.path)
    seen = statements(monkeypatch)
    progress = session.progress()
    assert not [s for s in seen if "FROM labels" in s]  # no record was read
    status = session.status()
    assert {key: progress[key] for key in ("labeled", "defective", "n_images", "next")} == {
        key: status[key] for key in ("labeled", "defective", "n_images", "next")}
    assert progress["labeled"] == len(record["selected"]) > 0
    assert progress["defective"] == sum(bool(truth[name].any()) for name in record["selected"])


def test_a_killed_commands_temporary_files_are_removed_by_the_next_command(tmp_path,
                                                                           asked):
    from sid4ds.session.lock import LOCK
    from sid4ds.session.store import SessionStore

    session, _, _ = asked
    deep = session.path / "masks" / ".part.png.tmp-99999"
    top = session.path / ".session.db.tmp-99999"
    for leftover in (deep, top):
        leftover.parent.mkdir(exist_ok=True)
        leftover.write_bytes(b"half")
    with SessionStore(session.path).locked("test"):  # no command was killed: the top only
        pass
    assert deep.exists() and not top.exists()
    (session.path / LOCK).write_text(json.dumps({  # a killed command's lock
        "pid": 999999999, "host": socket.gethostname(), "command": "import",
        "started": "2024-01-01T00:00:00+00:00", "process_start": None}))
    with pytest.warns(UserWarning, match="stale lock"), \
            SessionStore(session.path).locked("test"):
        pass
    assert not deep.exists()


def test_a_stored_round_changed_in_place_is_written_with_its_scores(tmp_path):
    path = tmp_path / STATE
    manifest = manifest_of(1)
    manifest["rounds"][0].update(fake_normals=["part0001"], fake_normal_scores=[0.75])
    StateFile.create(path, manifest)
    state = StateFile(path)
    stored = state.read()
    stored["rounds"][0]["skipped"] = ["part0000"]
    state.round_changed(0)
    state.write(stored)
    again = StateFile(path).read()["rounds"][0]
    assert again["scores"] == [1.5] and again["fake_normal_scores"] == [0.75]
    assert again["skipped"] == ["part0000"]
