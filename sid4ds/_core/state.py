"""The plain values of an estimator's saved state (:meth:`TorchEstimator.get_state`).

A state is a dict of JSON-like values and CPU tensors, so that ``torch.load(...,
weights_only=True)`` reads it back without running code; these helpers make it so.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

#: Tag of the dict :meth:`TorchEstimator.get_state` returns.
STATE_FORMAT = "sid4ds-estimator"
#: Version of the estimator state this sid4ds writes and the newest it reads.
STATE_VERSION = 1


def is_plain(value: Any) -> bool:
    """A value ``torch.load(weights_only=True)`` and JSON both read back as written."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_plain(item) for key, item in value.items())
    return False


def plain_value(value: Any) -> Any:
    """A copy of ``value`` with numpy scalars turned into Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(item) for item in value)
    return copy.deepcopy(value)


def cpu_tree(value: Any) -> Any:
    """Tensors of a nested state dict detached and copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {key: cpu_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_tree(item) for item in value)
    return value
