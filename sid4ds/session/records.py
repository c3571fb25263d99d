"""The dicts of a session's manifest that read their values when first used.

A large session's state holds tens of thousands of label records and rounds of tens of
thousands of names and scores; most commands use a few of them. :class:`ReadOnDemand` is a
``dict`` (so every command and ``LabelingSession.manifest`` work on it as on any dict)
that knows all its keys and reads a value when it is first asked for;
:class:`LabelRecords` are a session's labels (records read from the state file by the
row), :class:`RoundRecord` a stored round (its score lists parsed from their text when
used). :func:`plain` reads a manifest whole, before it goes where only a dict's stored part
is seen (``json.dumps``). :class:`~sid4ds.session.state.StateFile` makes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["LabelRecords", "ReadOnDemand", "RoundRecord", "count_defective", "plain"]

# records read one row at a time before the rest are read at once
_SINGLE_READS = 32
# a round's lists of scores, parsed when used (most of a large round's text), and the key
# each follows in a round's record
_DEFERRED_KEYS = {"scores": "selected", "fake_normal_scores": "fake_normals"}

class ReadOnDemand(dict):  # type: ignore[type-arg]
    """A dict some of whose values are read when first used (:class:`LabelRecords`,
    :class:`RoundRecord`).

    Every key is known from the start (``len`` and ``in`` read nothing); a value is read
    when first asked for (``d[key]``, ``get``), and every one when the dict is walked
    (iteration, ``items``, ``values``, ``==``, copies), in the order of the keys. Writing
    works as on any dict. What sees only a dict's stored part (``json.dumps``) must get
    :meth:`read_all`'s dict.
    """

    _keys: dict[str, Any]  # every key, in order (subclasses set it)

    def _read(self, keys: list[str] | None) -> None:
        """Put the values of ``keys`` (None: all not in memory) into the dict."""
        raise NotImplementedError

    def __missing__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        self._read([key])
        return dict.__getitem__(self, key)

    def read_all(self) -> ReadOnDemand:
        """Read every value not in memory yet; returns the dict (in the order of the keys)."""
        if len(self._keys) != dict.__len__(self):
            self._read(None)
        if list(dict.keys(self)) != list(self._keys):
            items = [(key, dict.__getitem__(self, key)) for key in self._keys]
            dict.clear(self)
            dict.update(self, items)
        return self

    def in_memory(self) -> list[str]:
        """Keys whose value was read (or written) so far."""
        return list(dict.keys(self))

    def known_keys(self) -> Any:
        """Every key, read or not (a live view; reads nothing)."""
        return self._keys.keys()

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._keys else default

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self.read_all())

    def __reversed__(self) -> Iterator[str]:
        return dict.__reversed__(self.read_all())

    def keys(self) -> Any:
        return dict.keys(self.read_all())

    def values(self) -> Any:
        return dict.values(self.read_all())

    def items(self) -> Any:
        return dict.items(self.read_all())

    def __eq__(self, other: object) -> bool:
        return dict.__eq__(self.read_all(), other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def copy(self) -> dict[str, Any]:
        return dict(self.items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self.items())!r})"

    def __reduce__(self) -> Any:  # copies and pickles: a plain dict
        return dict, (dict(self.items()),)

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)
        self._keys[key] = None

    def __delitem__(self, key: str) -> None:
        if key not in self._keys:
            raise KeyError(key)
        del self._keys[key]
        if dict.__contains__(self, key):
            dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self._keys:
            if default:
                return default[0]
            raise KeyError(key)
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        key = next(reversed(self._keys))
        return key, self.pop(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self._keys:
            self[key] = default
        return self[key]

    def update(self, *others: Any, **more: Any) -> None:
        for key, value in dict(*others, **more).items():
            self[key] = value

    def clear(self) -> None:
        dict.clear(self)
        self._keys.clear()

    def __ior__(self, other: Any) -> ReadOnDemand:
        self.update(other)
        return self

    def __or__(self, other: Any) -> dict[str, Any]:
        return {**self.copy(), **dict(other)}


class LabelRecords(ReadOnDemand):
    """The labels of a format-4 manifest, a dict of name to label record read by the row.

    Every name and its defective flag are in memory from the start (so ``len``, ``in``
    and :func:`count_defective` read nothing); a record is read from the state file when
    first asked for (``labels[name]``, ``get``), and all of them at once when the dict is
    walked (iteration, ``items``, ``values``, ``==``, copies) or :meth:`read_all` is
    called (``LabelingSession.manifest`` does, so ``json.dumps`` of it sees every label).
    Writing works as on any dict; :meth:`StateFile.write` writes the records that changed.

    A record read later than the rest comes from the state the others came from: if
    another command changed the session in between,
    :class:`~sid4ds.session.state.StateChangedError` says to open it again.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sid4ds.session.records import count_defective
    >>> from sid4ds.session.state import StateFile
    >>> path = Path(tempfile.mkdtemp()) / "session.db"
    >>> record = {"mask": "masks/a.png", "sha256": "0" * 64, "version": 1, "round": 0,
    ...           "defective": True, "source": "answers/a.png", "imported": "2025"}
    >>> StateFile.create(path, {"format_version": 4, "labels": {"a": record}, "rounds": []})
    >>> labels = StateFile(path).read()["labels"]
    >>> len(labels), "a" in labels, count_defective(labels)  # no record read yet
    (1, True, 1)
    >>> labels["a"]["source"]  # one row read
    'answers/a.png'
    """

    def __init__(self, read: Callable[[list[str] | None], dict[str, dict[str, Any]]],
                 flags: dict[str, int]) -> None:
        super().__init__()
        self._read_records = read  # the records of names (None: all), as stored
        self._keys = flags  # name -> defective (1) or not (0), every label, kept current
        self._lookups = 0

    def _read(self, names: list[str] | None) -> None:
        if names is not None:  # looked up one by one: after a few, read the rest at once
            self._lookups += 1
            names = None if self._lookups > _SINGLE_READS else names
        wanted = [name for name in (self._keys if names is None else names)
                  if not dict.__contains__(self, name)]
        if wanted:
            records = self._read_records(None if names is None else wanted)
            for name in wanted:
                dict.__setitem__(self, name, dict(records[name]))

    def __setitem__(self, name: str, record: dict[str, Any]) -> None:
        dict.__setitem__(self, name, record)
        self._keys[name] = int(bool(record.get("defective")))  # a bad record fails on write

    def n_defective(self) -> int:
        """How many labels are defective (nothing is read; records in memory count as
        they are now, changed in place or not)."""
        in_memory = dict.items(self)
        return (sum(self._keys.values()) - sum(self._keys[name] for name, _ in in_memory)
                + sum(bool(record["defective"]) for _, record in in_memory))


class RoundRecord(ReadOnDemand):
    """A stored round's record whose score lists (``scores``, ``fake_normal_scores``,
    the bulk of a large round) are parsed when first used; the rest is parsed at once.

    Examples
    --------
    >>> from sid4ds.session.records import RoundRecord
    >>> record = RoundRecord.parse('{"round": 0, "selected": ["a"], "scores": [0.5]}')
    >>> isinstance(record, RoundRecord), record.in_memory(), record["scores"]
    (True, ['round', 'selected'], [0.5])
    """

    def __init__(self, fields: dict[str, Any], deferred: dict[str, str],
                 order: list[str]) -> None:
        super().__init__(fields)
        self._deferred = deferred  # key -> its JSON text, until parsed
        self._keys = dict.fromkeys(order)

    @classmethod
    def parse(cls, body: str) -> dict[str, Any]:
        """The record of a round's JSON body: a :class:`RoundRecord` when its score lists
        can be set aside as text, else the plain parsed dict.

        The body is what ``json.dumps`` wrote: a top-level ``, "scores": [`` (its quotes
        unescaped, so not inside a string) starts the list, and a list of numbers ends at
        its first ``]``. The rest is checked to parse without those keys. Walked whole,
        the record lists each score list right after the key it follows in every round's
        record (``selected``, ``fake_normals``).
        """
        deferred: dict[str, str] = {}
        rest = body
        for key in _DEFERRED_KEYS:
            marker = f', "{key}": ['
            start = rest.find(marker)
            end = rest.find("]", start + len(marker)) if start >= 0 else -1
            if end < 0:
                continue
            deferred[key] = rest[start + len(marker) - 1:end + 1]
            rest = rest[:start] + rest[end + 1:]
        fields = json.loads(rest)
        if not deferred:
            return fields  # type: ignore[no-any-return]
        if not isinstance(fields, dict) or any(key in fields for key in deferred):
            return json.loads(body)  # type: ignore[no-any-return]
        order = []
        for key in fields:
            order.append(key)
            order += [later for later, after in _DEFERRED_KEYS.items()
                      if after == key and later in deferred]
        order += [key for key in deferred if key not in order]
        return cls(fields, deferred, order)

    def _read(self, keys: list[str] | None) -> None:
        for key in list(self._deferred) if keys is None else keys:
            if key in self._deferred and not dict.__contains__(self, key):
                dict.__setitem__(self, key, json.loads(self._deferred.pop(key)))

    def __setitem__(self, key: str, value: Any) -> None:
        self._deferred.pop(key, None)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._deferred.pop(key, None)
        super().__delitem__(key)


def plain(value: Any) -> Any:
    """``value`` with every :class:`ReadOnDemand` in it read whole (for ``json.dumps``,
    which sees only a dict's stored part); lists and other dicts are walked, not copied."""
    if isinstance(value, ReadOnDemand):
        value.read_all()
        for item in dict.values(value):
            plain(item)
    elif isinstance(value, dict):
        for item in value.values():
            plain(item)
    elif isinstance(value, list):
        for item in value:
            plain(item)
    return value


def count_defective(labels: dict[str, Any]) -> int:
    """How many of a manifest's ``labels`` are defective (reading no record of a
    :class:`LabelRecords`)."""
    if isinstance(labels, LabelRecords):
        return labels.n_defective()
    return sum(bool(record["defective"]) for record in labels.values())


