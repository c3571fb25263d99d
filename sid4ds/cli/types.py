"""Every argparse type of the ``sid4ds`` commands, in one place.

Each turns one command-line word into a value or raises ``argparse.ArgumentTypeError``
with a message that says what was expected, so every command reads numbers, shares and
sizes by the same rules.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["count", "count_or_auto", "fraction", "open_share", "parameter", "parameter_value",
           "positive_int", "share", "size"]


def _whole_number(text: str, minimum: int, words: tuple[str, ...] = ()) -> int | str:
    """A whole number >= ``minimum``, or one of ``words``."""
    if text in words:
        return text
    expected = f"a whole number >= {minimum}" + "".join(f" or {word!r}" for word in words)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (e.g. ``--n 50``, ``--width 16``)."""
    return int(_whole_number(text, 1))


def count(text: str) -> int:
    """A whole number >= 0 (e.g. ``--rounds 0``, ``--seed 3``)."""
    return int(_whole_number(text, 0))


def count_or_auto(text: str) -> int | str:
    """A whole number >= 0 or ``auto`` (e.g. ``--normals auto``)."""
    return _whole_number(text, 0, ("auto",))


def _number_in(text: str, low: float, high: float, include_low: bool, include_high: bool) -> float:
    interval = f"{'[' if include_low else '('}{low:g}, {high:g}{']' if include_high else ')'}"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}") from None
    inside = ((value > low or (include_low and value == low))
              and (value < high or (include_high and value == high)))
    if not inside:
        raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text!r}")
    return value


def share(text: str) -> float:
    """A share of a whole in (0, 1] (e.g. ``--label-share 0.1``)."""
    return _number_in(text, 0.0, 1.0, include_low=False, include_high=True)


def open_share(text: str) -> float:
    """A share in (0, 1) (e.g. ``--target-recall 0.95``)."""
    return _number_in(text, 0.0, 1.0, include_low=False, include_high=False)


def fraction(text: str) -> float:
    """A fraction in [0, 1) (e.g. ``--defect-ratio 0.05``, ``--test-share 0.2``)."""
    return _number_in(text, 0.0, 1.0, include_low=True, include_high=False)


def size(text: str) -> int | tuple[int, int]:
    """``N`` or ``HxW`` (e.g. ``--image-size 64``, ``--tile 48x64``): an int or a pair."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise argparse.ArgumentTypeError(
            f"expected a positive size N or HxW (e.g. 64 or 48x64), got {text!r}")
    if match.group(2):
        return int(match.group(1)), int(match.group(2))
    return int(match.group(1))


def parameter(text: str) -> tuple[str, Any]:
    """``key=value``: one parameter of an estimator (e.g. ``--set lr=0.001``).

    The value is read by :func:`parameter_value`; commas make a tuple and a trailing comma
    a one-element tuple (``augment=flip,``), as in Python.

    Examples
    --------
    >>> from sid4ds.cli.types import parameter
    >>> parameter("lr=0.001"), parameter("augment=flip,rotate"), parameter("augment=flip,")
    (('lr', 0.001), ('augment', ('flip', 'rotate')), ('augment', ('flip',)))
    """
    key, separator, raw = text.partition("=")
    if not separator or not key.strip() or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected key=value with a parameter name as key (e.g. lr=0.001), got {text!r}")
    if "," in raw:
        return key.strip(), tuple(parameter_value(part)
                                  for part in raw.removesuffix(",").split(","))
    return key.strip(), parameter_value(raw)


def parameter_value(text: str) -> Any:
    """A parameter's value: an int, a float, ``None``, ``True`` or ``False`` when it reads
    as one, else the text itself.

    Examples
    --------
    >>> from sid4ds.cli.types import parameter_value
    >>> [parameter_value(text) for text in ("3", "1e-3", "None", "False", "cosine")]
    [3, 0.001, None, False, 'cosine']
    """
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(text, text)
