"""A session's state in SQLite (format 4): written by the change, never rewritten whole.

The state a session keeps grows with its labels and rounds: one record per labelled image
and, per round, the names and scores it asked for and made fake normals. Format 3 kept it
all in ``manifest.json`` and replaced that file at every step, so every command's cost
grew with the session (``benchmarks/session_scaling.py`` measures it). Format 4 keeps it
in ``session.db``, an SQLite file (Python's standard ``sqlite3``):

- ``meta``: one row, the rest of the manifest as JSON (settings, the pool's shards and
  batches, the model index, the score files, ...);
- ``labels``: one row per labelled image (the fields of
  :class:`~sid4ds.session.manifest.LabelRecord`);
- ``rounds``: one row per round, its record as JSON (with its lists of names and scores).

:class:`StateFile` reads the state as the manifest dict the commands work on (so they are
the same for every format), remembers what it read, and writes back only what a command
changed, in one transaction. The labels are read by the row: the manifest's ``labels`` is
a :class:`LabelRecords`, a dict that holds every label's name and defective flag at once
and reads a label's record when a command first asks for it (all of them when it walks the
dict), so a command that touches a hundred labels of a large session reads a hundred rows.
A round's lists of scores, most of a large round's text, are parsed when used
(:class:`RoundRecord`). Rounds are appended; a stored round is changed in place only by a
command that says so (:meth:`StateFile.round_changed`), so a write encodes only new and
marked rounds. The file's layout is that of format 4 as before. SQLite's journal makes
every write atomic, so a command killed at any point (SIGKILL included) leaves the state
as it was before the transaction or after it, never between. Every value is JSON, text or
a number, and the file is opened with SQLite's ``trusted_schema`` off (no extension is
ever loaded): opening a session runs none of its content. ``manifest.json`` stays beside
it, written once, as the marker that names the format and the state file (a sid4ds that
reads format 3 at most refuses the session with the advice to upgrade).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sid4ds.session.errors import SessionError
from sid4ds.session.records import LabelRecords, RoundRecord, plain

__all__ = ["STATE", "StateChangedError", "StateFile"]

#: The SQLite file of a format-4 session.
STATE = "session.db"

_LABEL_FIELDS = ("mask", "sha256", "version", "round", "defective", "source", "imported")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    name TEXT PRIMARY KEY, mask TEXT NOT NULL, sha256 TEXT NOT NULL, version INTEGER NOT NULL,
    round INTEGER, defective INTEGER NOT NULL, source TEXT NOT NULL, imported TEXT NOT NULL,
    extra TEXT);
CREATE TABLE IF NOT EXISTS rounds (position INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""
# one row counting the transactions that changed the state: a reader compares it with the
# count it read to know at no cost whether the state changed since (older files lack it)
_GENERATION = """
CREATE TABLE IF NOT EXISTS generation (id INTEGER PRIMARY KEY CHECK (id = 1),
                                       n INTEGER NOT NULL)
"""


class StateChangedError(SessionError):
    """Another command changed the session after this one read it, before it read a label
    record it had not needed until then: open the session again (run the command again)."""


def _label_row(name: str, record: dict[str, Any]) -> tuple[Any, ...]:
    extra = {key: value for key, value in record.items() if key not in _LABEL_FIELDS}
    return (name, record["mask"], record["sha256"], int(record["version"]), record["round"],
            int(bool(record["defective"])), record["source"], record["imported"],
            json.dumps(extra) if extra else None)


def _label_record(row: tuple[Any, ...]) -> dict[str, Any]:
    record = dict(zip(_LABEL_FIELDS, row[1:8], strict=True))
    record["defective"] = bool(record["defective"])
    if row[8]:
        record.update(json.loads(row[8]))
    return record


class StateFile:
    """The ``session.db`` of a format-4 session: read it, write back the changes.

    Parameters
    ----------
    path : pathlib.Path
        The SQLite file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sid4ds.session.state import StateFile
    >>> path = Path(tempfile.mkdtemp()) / "session.db"
    >>> StateFile.create(path, {"format_version": 4, "labels": {}, "rounds": []})
    >>> state = StateFile(path)
    >>> manifest = state.read()
    >>> manifest["labels"]["part1"] = {"mask": "masks/part1.png", "sha256": "0" * 64,
    ...                                "version": 1, "round": 0, "defective": True,
    ...                                "source": "answers/part1.png", "imported": "2025"}
    >>> state.write(manifest)  # one row is written, nothing else
    >>> StateFile(path).read()["labels"]["part1"]["defective"]
    True
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._meta: str | None = None
        self._names: set[str] = set()  # the labels the file holds, as read or written
        self._labels: dict[str, dict[str, Any]] = {}  # records as read or written (some)
        self._records: LabelRecords | None = None  # the labels the last read handed out
        self._rounds: list[str] = []
        self._changed_rounds: set[int] = set()  # stored rounds changed in place (marked)
        self._generation: int | None = None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as error:
            raise SessionError(f"cannot open {self.path}: {error}; restore the session "
                               f"folder from a copy") from None
        try:
            connection.execute("PRAGMA synchronous = FULL")
            # a file someone sent you: views and triggers it defines may not call functions
            connection.execute("PRAGMA trusted_schema = OFF")
            yield connection
        except sqlite3.DatabaseError as error:
            raise SessionError(f"cannot use {self.path}: {error}; restore the session "
                               f"folder from a copy") from None
        finally:
            connection.close()

    @classmethod
    def create(cls, path: Path, manifest: dict[str, Any]) -> None:
        """Write a new state file holding ``manifest`` (``path`` must not exist)."""
        state = cls(path)
        with state._connect() as connection:
            connection.executescript(_SCHEMA)
        state._meta = ""
        state.write(manifest)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def read(self) -> dict[str, Any]:
        """The state as a manifest dict (``labels``, a :class:`LabelRecords`, and
        ``rounds`` included)."""
        if not self.path.is_file():
            raise SessionError(f"{self.path} is missing; restore the session folder from a "
                               f"copy")
        with self._connect() as connection:
            connection.execute("BEGIN")
            meta = connection.execute("SELECT body FROM meta WHERE id = 1").fetchone()
            flags = connection.execute("SELECT name, defective FROM labels").fetchall()
            rounds = [body for (body,) in connection.execute(
                "SELECT body FROM rounds ORDER BY position")]
            generation = self._read_generation(connection)
            connection.execute("COMMIT")
        if meta is None:
            raise SessionError(f"{self.path} holds no session state; restore the session "
                               f"folder from a copy")
        try:
            manifest = json.loads(meta[0])
            manifest["rounds"] = [RoundRecord.parse(body) for body in rounds]
        except (ValueError, TypeError) as error:
            raise SessionError(f"{self.path} is damaged ({error}); restore the session "
                               f"folder from a copy") from None
        labels = LabelRecords(self.read_labels, dict(flags))
        manifest["labels"] = labels
        self._meta, self._rounds, self._generation = meta[0], rounds, generation
        self._names, self._labels, self._records = set(labels.known_keys()), {}, labels
        return manifest

    def round_changed(self, position: int) -> None:
        """Mark the stored round at ``position`` as changed in place, for the next
        :meth:`write` (which otherwise writes only new rounds: a stored round's record
        changes only this way, as when ``query`` notes the images a round skipped)."""
        self._changed_rounds.add(position)

    def read_labels(self, names: list[str] | None) -> dict[str, dict[str, Any]]:
        """The stored records of ``names`` (None: all), from the state the last
        :meth:`read` read (:class:`StateChangedError` if another command wrote since)."""
        if not self.path.is_file():
            raise StateChangedError(f"{self.path} is gone since this command read it; "
                                    f"open the session again")
        with self._connect() as connection:
            connection.execute("BEGIN")
            generation = self._read_generation(connection)
            if names is None:
                rows = connection.execute("SELECT * FROM labels").fetchall()
            else:
                rows = []
                for start in range(0, len(names), 500):
                    chunk = names[start:start + 500]
                    rows += connection.execute(
                        f"SELECT * FROM labels WHERE name IN ({', '.join('?' * len(chunk))})",
                        chunk).fetchall()
            connection.execute("COMMIT")
        if generation != self._generation:
            raise StateChangedError(
                f"another sid4ds command changed the session at {self.path.parent} after "
                f"this one read it; open the session again (run the command again)")
        try:
            records = {row[0]: _label_record(row) for row in rows}
        except (ValueError, TypeError) as error:
            raise SessionError(f"{self.path} is damaged ({error}); restore the session "
                               f"folder from a copy") from None
        self._labels.update((name, dict(record)) for name, record in records.items())
        return records

    def unchanged(self) -> bool:
        """Whether the state is still what this object last read or wrote (one small
        query; False when unknown, as for files written before the count existed)."""
        if self._generation is None or not self.path.is_file():
            return False
        with self._connect() as connection:
            return self._read_generation(connection) == self._generation

    @staticmethod
    def _read_generation(connection: sqlite3.Connection) -> int | None:
        try:
            row = connection.execute("SELECT n FROM generation WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # a file from before the count: no such table
            return None
        return None if row is None else int(row[0])

    def write(self, manifest: dict[str, Any]) -> None:
        """Write what changed since the last :meth:`read` or :meth:`write`, atomically.

        Labels: the records that differ from those read (of a :class:`LabelRecords` this
        file handed out, only those read or written; of any other dict, all of them) and
        the names that are gone. Rounds: the new ones and those marked with
        :meth:`round_changed`."""
        meta = json.dumps({key: value for key, value in manifest.items()
                           if key not in ("labels", "rounds")})
        labels = manifest["labels"]
        if labels is self._records:
            present = labels.known_keys()
            candidates = labels.in_memory()
        else:
            if len(self._labels) < len(self._names):
                self.read_labels(None)  # compare with every stored record
            present, candidates = labels, list(labels)
        # records compare as dicts (no encoding): only the changed ones become rows
        changed = [name for name in candidates
                   if self._labels.get(name) != dict.__getitem__(labels, name)]
        removed = [(name,) for name in self._names if name not in present]
        records = manifest["rounds"]
        rounds = [json.dumps(plain(record)) if position >= len(self._rounds)
                  or position in self._changed_rounds else self._rounds[position]
                  for position, record in enumerate(records)]
        rewritten = [(position, rounds[position]) for position in range(len(rounds))
                     if position >= len(self._rounds)
                     or self._rounds[position] != rounds[position]]
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            if meta != self._meta:
                connection.execute("INSERT OR REPLACE INTO meta (id, body) VALUES (1, ?)",
                                   (meta,))
            connection.executemany(f"INSERT OR REPLACE INTO labels VALUES "
                                   f"({', '.join('?' * 9)})",
                                   [_label_row(name, dict.__getitem__(labels, name))
                                    for name in changed])
            connection.executemany("DELETE FROM labels WHERE name = ?", removed)
            connection.executemany("INSERT OR REPLACE INTO rounds (position, body) "
                                   "VALUES (?, ?)", rewritten)
            connection.execute("DELETE FROM rounds WHERE position >= ?", (len(rounds),))
            connection.execute(_GENERATION)
            connection.execute("INSERT INTO generation (id, n) VALUES (1, 1) "
                               "ON CONFLICT (id) DO UPDATE SET n = n + 1")
            generation = self._read_generation(connection)
            connection.execute("COMMIT")
        self._meta, self._rounds, self._generation = meta, rounds, generation
        self._changed_rounds.clear()
        for (name,) in removed:
            self._labels.pop(name, None)
        self._labels.update((name, dict(dict.__getitem__(labels, name))) for name in changed)
        self._names = set(present)
