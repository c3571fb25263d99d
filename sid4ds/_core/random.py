"""The one random-number policy of sid4ds.

Every function, estimator and strategy of sid4ds that draws random numbers turns its
``random_state`` into a numpy Generator with :func:`make_rng`, and nothing in sid4ds reads
or changes numpy's or torch's global random state. Where a strategy or a default model has
no ``random_state`` of its own it borrows one with :func:`borrow_seed` (the one
seed-borrowing rule).

The rules of :func:`make_rng`:

- ``None``: fresh entropy from the operating system (a different result every call);
- a non-negative int, or a sequence of them (a numpy ``SeedSequence`` entropy): that seed;
  the same value always gives the same numbers;
- a numpy ``Generator`` or legacy ``RandomState``: one number is drawn from it to seed a new
  Generator, so the caller's generator is advanced by one draw and the two streams never
  overlap.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RANDOM_STATE_TYPES", "borrow_seed", "check_random_state", "draw_seed", "make_rng",
           "restore_rng", "seed_if_unset"]

#: What a ``random_state`` may be, in words (used in error messages).
RANDOM_STATE_TYPES = "None, an int >= 0, a numpy Generator or RandomState"


def _is_seed(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_random_state(random_state: Any, name: str = "random_state") -> None:
    """Raise a clear error unless ``random_state`` is something :func:`make_rng` takes.

    Parameters
    ----------
    random_state : object
        The value to check.
    name : str, default="random_state"
        Argument name used in the message.

    Raises
    ------
    TypeError
        For a value of another type (a float, a bool, a string...).
    ValueError
        For a negative seed.

    Examples
    --------
    >>> from sid4ds._core.random import check_random_state
    >>> check_random_state(0)
    >>> check_random_state(-1)
    Traceback (most recent call last):
    ...
    ValueError: random_state must be a non-negative int; got -1: pass a seed such as 0
    """
    if random_state is None or isinstance(random_state,
                                          (np.random.Generator, np.random.RandomState)):
        return
    seeds = random_state if (isinstance(random_state, Sequence)
                             and not isinstance(random_state, str)) else [random_state]
    if not (len(seeds) and all(_is_seed(seed) for seed in seeds)):
        raise TypeError(f"{name} must be {RANDOM_STATE_TYPES}; got {random_state!r} "
                        f"({type(random_state).__name__})")
    if any(seed < 0 for seed in seeds):
        raise ValueError(f"{name} must be a non-negative int; got {random_state!r}: pass a "
                         f"seed such as 0")


def make_rng(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """A numpy Generator from ``random_state`` (see the module docstring for the rules).

    Parameters
    ----------
    random_state : None, int, sequence of int, numpy Generator or RandomState
        The seed, or the generator to draw a seed from.
    name : str, default="random_state"
        Argument name used in error messages.

    Returns
    -------
    rng : numpy.random.Generator
        A new generator; numpy's global state is neither read nor changed.

    Examples
    --------
    >>> from sid4ds._core.random import make_rng
    >>> float(make_rng(0).random()) == float(make_rng(0).random())
    True
    """
    check_random_state(random_state, name)
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return np.random.default_rng(int(random_state.integers(2**63)))
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(2**31)))
    if _is_seed(random_state):
        return np.random.default_rng(int(random_state))
    return np.random.default_rng([int(seed) for seed in random_state])


def restore_rng(state: dict[str, Any]) -> np.random.Generator:
    """A Generator in the state ``rng.bit_generator.state`` once had (for saved estimators)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


def draw_seed(rng: np.random.Generator) -> int:
    """An int seed in [0, 2**31) drawn from ``rng`` (for a model or a torch generator)."""
    return int(rng.integers(2**31))


def seed_if_unset(estimator: Any, seed: Any) -> Any:
    """Set ``estimator``'s ``random_state`` to ``seed`` when it has none; return it.

    The rule for seeding a configured model from a run's seed: a ``random_state`` the
    user set is kept.

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds._core.random import seed_if_unset
    >>> seed_if_unset(SegmentationLearner(), 7).random_state
    7
    >>> seed_if_unset(SegmentationLearner(random_state=3), 7).random_state
    3
    """
    if estimator.get_params()["random_state"] is None:
        estimator.set_params(random_state=seed)
    return estimator


def borrow_seed(owner: Any, random_state: Any = None) -> Any:
    """``random_state`` if given, else the int ``random_state`` of ``owner``'s estimator.

    ``owner`` is a modAL learner (its ``estimator`` is asked) or an estimator. Only an int
    is borrowed: drawing from the owner's Generator or RandomState would change the owner's
    own later draws. Without either, None (fresh entropy).

    Examples
    --------
    >>> from sid4ds import SegmentationLearner
    >>> from sid4ds._core.random import borrow_seed
    >>> borrow_seed(SegmentationLearner(random_state=3)), borrow_seed(object(), 5)
    (3, 5)
    """
    if random_state is not None:
        return random_state
    estimator = getattr(owner, "estimator", owner)
    seed = getattr(estimator, "random_state", None)
    return int(seed) if _is_seed(seed) else None
