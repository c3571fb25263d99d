"""Tests for sid4ds/session/records.py: the manifest's dicts that read values when used."""

from __future__ import annotations

import json

import pytest

from sid4ds.session.records import LabelRecords, RoundRecord, count_defective, plain


def stored_labels(n: int) -> dict[str, dict]:
    return {f"part{index}": {"mask": f"masks/part{index}.png", "defective": index % 3 == 0}
            for index in range(n)}


def label_records(stored: dict[str, dict]) -> tuple[LabelRecords, list]:
    """LabelRecords over ``stored``, and the list of reads it makes (None: all)."""
    reads: list = []

    def read(names):
        reads.append(None if names is None else list(names))
        return {name: dict(stored[name]) for name in (stored if names is None else names)}

    flags = {name: int(record["defective"]) for name, record in stored.items()}
    return LabelRecords(read, flags), reads


def test_label_records_read_a_record_when_asked_and_all_when_walked():
    stored = stored_labels(100)
    labels, reads = label_records(stored)
    assert len(labels) == 100 and "part5" in labels and "nope" not in labels
    assert count_defective(labels) == 34 and reads == []
    assert labels["part7"] == stored["part7"] and labels.get("nope", "x") == "x"
    assert reads == [["part7"]] and labels.in_memory() == ["part7"]
    with pytest.raises(KeyError):
        labels["nope"]
    assert list(labels) == list(stored)  # walked: all read, in the stored order
    assert reads[-1] is None and labels == stored
    assert json.loads(json.dumps(plain(labels))) == stored


def test_label_records_are_changed_like_a_dict_and_count_as_they_are_now():
    labels, reads = label_records(stored_labels(6))
    labels["part1"]["defective"] = True  # read, then changed in place
    labels["new"] = {"mask": "masks/new.png", "defective": True}
    del labels["part0"]
    assert labels.pop("part2")["defective"] is False and labels.pop("part2", None) is None
    assert labels.setdefault("part4", {}) == {"mask": "masks/part4.png", "defective": False}
    assert count_defective(labels) == 3  # part1 (in place), part3, new
    assert len(labels) == 5 and sorted(labels) == ["new", "part1", "part3", "part4", "part5"]
    assert count_defective(dict(labels.items())) == 3  # a plain dict counts the same
    assert isinstance(labels.copy(), dict) and not isinstance(labels.copy(), LabelRecords)


def test_many_single_lookups_become_one_read_of_the_rest():
    labels, reads = label_records(stored_labels(200))
    for index in range(100):
        assert labels[f"part{index}"]["mask"] == f"masks/part{index}.png"
    assert len(reads) <= 34 and reads[-1] is None
    assert len(labels.in_memory()) == 200


@pytest.mark.parametrize("record", [
    {"round": 0, "selected": ["a", "b"], "scores": [0.5, 1e-300, -2.0],
     "fake_normals": ["c"], "fake_normal_scores": [0.25], "seconds": {"train_S": 1.5}},
    {"round": 1, "selected": [], "scores": [], "fake_normals": [], "fake_normal_scores": []},
    {"round": 2, "selected": ['x, "scores": [1]', "]"], "scores": [3.0]},  # in a name
    {"round": 3, "selected": ["a"], "audit": ["b"]},  # no scores
    {"round": 4, "selected": ["a"], "scores": [float("nan")], "n_label": 1},
])
def test_a_rounds_scores_are_parsed_when_used_and_equal_the_stored_record(record):
    body = json.dumps(record)
    parsed = RoundRecord.parse(body)
    expected = json.loads(body)
    if "scores" in record and record["round"] != 3:
        assert isinstance(parsed, RoundRecord) and "scores" not in parsed.in_memory()
        assert "scores" in parsed and len(parsed) == len(expected)
    assert json.dumps(parsed["scores"] if "scores" in record else None) == json.dumps(
        expected.get("scores"))
    assert json.dumps(plain(parsed)) == body  # whole again, in the stored order


