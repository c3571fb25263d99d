"""Tests for sid4ds._core.state: the plain values of a saved estimator state."""

import io
import json

import numpy as np
import pytest
import torch

from sid4ds._core.state import STATE_FORMAT, STATE_VERSION, cpu_tree, is_plain, plain_value


@pytest.mark.parametrize("value", [
    None, True, 3, 0.5, "fp32", [1, "a", None], (1, 2.0), {"lr": 1e-3, "sizes": [4, 8]},
    {"nested": {"deeper": ({"x": 1},)}}, [],
])
def test_plain_values_are_what_json_and_weights_only_read(value):
    assert is_plain(value)
    buffer = io.BytesIO()
    torch.save({"value": value}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["value"] == value
    json.dumps(value)  # and JSON writes it


@pytest.mark.parametrize("value", [
    np.float32(0.5), np.int64(3), np.zeros(2), torch.zeros(2), {1: "int key"},
    [1, np.int64(2)], {"a": {"b": object()}}, torch.device("cpu"), b"bytes",
])
def test_other_values_are_not_plain(value):
    assert not is_plain(value)


def test_plain_value_turns_numpy_scalars_into_python_numbers_in_a_copy():
    value = {"best": np.float32(0.25), "epochs": [np.int64(1), np.int64(2)],
             "shape": (np.int64(16), 16), "name": "S"}
    plain = plain_value(value)
    assert plain == {"best": 0.25, "epochs": [1, 2], "shape": (16, 16), "name": "S"}
    assert type(plain["best"]) is float and type(plain["epochs"][0]) is int
    assert type(plain["shape"]) is tuple and is_plain(plain)
    plain["epochs"].append(3)  # a copy: the estimator's own value is untouched
    assert len(value["epochs"]) == 2


def test_cpu_tree_detaches_and_copies_every_tensor():
    weight = torch.ones(2, requires_grad=True)
    tree = {"module": {"weight": weight, "steps": 5},
            "buffers": [torch.zeros(1), (torch.ones(1), "tag")]}
    copied = cpu_tree(tree)
    assert copied["module"]["steps"] == 5 and copied["buffers"][1][1] == "tag"
    assert type(copied["buffers"]) is list and type(copied["buffers"][1]) is tuple
    copied_weight = copied["module"]["weight"]
    assert not copied_weight.requires_grad and copied_weight.device.type == "cpu"
    copied_weight += 1  # a copy: the live weights are untouched
    assert torch.equal(weight.detach(), torch.ones(2))
    assert torch.equal(copied_weight, torch.full((2,), 2.0))


def test_a_state_of_plain_values_and_cpu_tensors_loads_with_weights_only():
    state = {"format": STATE_FORMAT, "format_version": STATE_VERSION,
             "fitted": plain_value({"threshold": np.float64(0.5)}),
             "module": cpu_tree({"weight": torch.randn(3, requires_grad=True)})}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["fitted"] == {"threshold": 0.5} and loaded["format"] == STATE_FORMAT
    assert torch.equal(loaded["module"]["weight"], state["module"]["weight"])
