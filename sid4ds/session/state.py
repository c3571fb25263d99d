"""A session's state in SQLite (format 4): written by the change, never rewritten whole.

The state a session keeps grows with its labels and rounds: one record per labelled image
and, per round, the names and scores it asked for and made fake normals. Format 3 kept it
all in ``manifest.json`` and replaced that file at every step, so every command's cost grew
with the session (``benchmarks/session_scaling.py`` measures it). Format 4 keeps it in
``session.db``, an SQLite file (Python's standard ``sqlite3``):

- ``meta``: one row, the rest of the manifest as JSON (settings, the pool's shards and
  batches, the model index, the score files, ...);
- ``labels``: one row per labelled image (the fields of
  :class:`~sid4ds.session.manifest.LabelRecord`);
- ``rounds``: one row per round, its record as JSON (with its lists of names and scores).

:class:`StateFile` reads the whole state as the manifest dict the commands work on (so
they are the same for every format), remembers what it read, and writes back only what a
command changed, in one transaction: SQLite's journal makes it atomic, so a command killed
at any point (SIGKILL included) leaves the state as it was before the transaction or after
it, never between. Every value is JSON, text or a number, and the file is opened with
SQLite's ``trusted_schema`` off (no extension is ever loaded): opening a session runs none
of its content. ``manifest.json`` stays beside it, written once, as the marker that names the
format and the state file (a sid4ds that reads format 3 at most refuses the session with
the advice to upgrade).
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

__all__ = ["STATE", "StateFile"]

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
    """The ``session.db`` of a format-4 session: read it whole, write back the changes.

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
        self._labels: dict[str, dict[str, Any]] = {}  # the records as read or written
        self._rounds: list[str] = []
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
        """The whole state as a manifest dict (``labels`` and ``rounds`` included)."""
        if not self.path.is_file():
            raise SessionError(f"{self.path} is missing; restore the session folder from a "
                               f"copy")
        with self._connect() as connection:
            connection.execute("BEGIN")
            meta = connection.execute("SELECT body FROM meta WHERE id = 1").fetchone()
            labels = connection.execute("SELECT * FROM labels").fetchall()
            rounds = [body for (body,) in connection.execute(
                "SELECT body FROM rounds ORDER BY position")]
            generation = self._read_generation(connection)
            connection.execute("COMMIT")
        if meta is None:
            raise SessionError(f"{self.path} holds no session state; restore the session "
                               f"folder from a copy")
        try:
            manifest = json.loads(meta[0])
            records = {row[0]: _label_record(row) for row in labels}
            manifest["labels"] = {name: dict(record) for name, record in records.items()}
            manifest["rounds"] = [json.loads(body) for body in rounds]
        except (ValueError, TypeError) as error:
            raise SessionError(f"{self.path} is damaged ({error}); restore the session "
                               f"folder from a copy") from None
        self._meta, self._labels, self._rounds = meta[0], records, rounds
        self._generation = generation
        return manifest

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
        """Write what changed since the last :meth:`read` or :meth:`write`, atomically."""
        meta = json.dumps({key: value for key, value in manifest.items()
                           if key not in ("labels", "rounds")})
        labels = manifest["labels"]
        # records compare as dicts (no encoding): only the changed ones become rows
        changed = [name for name, record in labels.items() if self._labels.get(name) != record]
        removed = [(name,) for name in self._labels if name not in labels]
        rounds = [json.dumps(record) for record in manifest["rounds"]]
        rewritten = [(position, body) for position, body in enumerate(rounds)
                     if position >= len(self._rounds) or self._rounds[position] != body]
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            if meta != self._meta:
                connection.execute("INSERT OR REPLACE INTO meta (id, body) VALUES (1, ?)",
                                   (meta,))
            connection.executemany(f"INSERT OR REPLACE INTO labels VALUES "
                                   f"({', '.join('?' * 9)})",
                                   [_label_row(name, labels[name]) for name in changed])
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
        for (name,) in removed:
            del self._labels[name]
        self._labels.update((name, dict(labels[name])) for name in changed)
