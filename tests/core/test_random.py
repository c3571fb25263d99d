"""Tests for sid4ds._core.random: the one random-number policy (make_rng's rules)."""

import numpy as np
import pytest

from sid4ds._core.random import make_rng


def stream(rng: np.random.Generator) -> list[int]:
    return rng.integers(2**31, size=5).tolist()


def test_an_int_seed_gives_its_own_stream_every_time():
    assert stream(make_rng(3)) == stream(make_rng(3))
    assert stream(make_rng(3)) != stream(make_rng(4))
    assert stream(make_rng([3, 1])) == stream(make_rng([3, 1]))
    assert stream(make_rng([3, 1])) != stream(make_rng(3))
    assert stream(make_rng(np.int64(3))) == stream(make_rng(3))


def test_none_gives_fresh_entropy_each_call():
    assert stream(make_rng(None)) != stream(make_rng(None))


@pytest.mark.parametrize("kind", ["generator", "random_state"])
def test_a_generator_is_advanced_by_one_draw_and_not_shared(kind):
    def parent():
        return (np.random.default_rng(7) if kind == "generator"
                else np.random.RandomState(7))  # noqa: NPY002 - the legacy type is accepted

    caller = parent()
    child = make_rng(caller)
    assert child is not caller
    skipped = parent()
    if kind == "generator":
        skipped.integers(2**63)
    else:
        skipped.randint(2**31)
    # the caller's own stream went on after exactly one draw
    assert caller.random() == skipped.random()
    # the same parent state gives the same child, a stream of its own
    assert stream(child) == stream(make_rng(parent()))
    assert stream(make_rng(parent())) != stream(np.random.default_rng(7))


def test_the_global_generators_are_left_alone():
    before = np.random.get_state()[1].copy()  # noqa: NPY002 - checking it is untouched
    for seed in (None, 3, [1, 2], np.random.default_rng(0)):
        stream(make_rng(seed))
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


@pytest.mark.parametrize(("value", "error", "message"), [
    ("3", TypeError, r"random_state must be None, an int >= 0.*got '3' \(str\)"),
    (1.5, TypeError, r"got 1\.5 \(float\)"),
    (True, TypeError, r"got True \(bool\)"),
    (-1, ValueError, "must be a non-negative int; got -1: pass a seed such as 0"),
    ([], TypeError, r"got \[\] \(list\)"),
])
def test_other_values_are_refused_with_the_argument_named(value, error, message):
    with pytest.raises(error, match=message):
        make_rng(value)
    with pytest.raises(error, match="seed must"):
        make_rng(value, name="seed")
