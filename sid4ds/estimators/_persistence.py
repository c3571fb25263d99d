"""The state of a sid4ds estimator: one public API to save and restore it.

A part of :class:`sid4ds.estimators.base.TorchEstimator` (a mixin): :meth:`EstimatorState.get_state`
and :meth:`EstimatorState.set_state` (and ``from_state``, ``save``, ``load``, pickling)
are the only way an estimator's state leaves it or comes back.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sid4ds._core.device import resolve_device
from sid4ds._core.random import restore_rng
from sid4ds._core.state import STATE_FORMAT, STATE_VERSION, cpu_tree, is_plain, plain_value
from sid4ds._version import __version__

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self

__all__ = ["EstimatorState"]


class EstimatorState:
    """The estimator's state, saved and restored (a part of ``TorchEstimator``)."""

    # ------------------------------------------------------------------ state
    #: Fitted attributes (besides the network, optimiser and RNG) that the state holds.
    _fitted_attributes: tuple[str, ...] = ("n_channels_in_", "image_shape_", "history_")

    def get_state(self) -> dict[str, Any]:
        """Everything a fitted estimator is, as tensors and plain Python values.

        The one way an estimator's state leaves it: pickling, the labelling session and
        ``sid4ds export --format model`` all go through it. The result can be written with
        ``torch.save`` and read back with ``torch.load(..., weights_only=True)`` (no pickled
        code); :meth:`set_state` and :meth:`from_state` restore it.

        Returns
        -------
        state : dict
            ``format`` (``"sid4ds-estimator"``), ``format_version``, ``class`` (the
            estimator's class name), ``sid4ds`` (the version that wrote it), ``params``
            (:meth:`get_params` with plain values: a device as a string, a random_state
            that is a generator as None), ``fitted`` (the fitted attributes, numpy arrays as
            CPU tensors), ``module`` (the network's state dict on the CPU), ``optimizer``
            (the optimiser's state dict, or None before any training step) and ``rng`` (the
            state of the estimator's numpy Generator, so further training continues exactly).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.

        Examples
        --------
        >>> import io, torch
        >>> from sid4ds import SegmentationLearner
        >>> from sid4ds.datasets import make_defect_images
        >>> X, masks = make_defect_images(n_samples=8, image_size=16, defect_ratio=0.5,
        ...                               random_state=0)
        >>> learner = SegmentationLearner(base_channels=4, depth=2, max_epochs=1,
        ...                               random_state=0).fit(X, masks)
        >>> buffer = io.BytesIO()
        >>> torch.save(learner.get_state(), buffer)
        >>> _ = buffer.seek(0)
        >>> restored = SegmentationLearner.from_state(torch.load(buffer, weights_only=True))
        >>> bool((restored.predict_proba(X) == learner.predict_proba(X)).all())
        True
        """
        self._check_fitted()
        fitted = {}
        for name in self._fitted_attributes:
            if hasattr(self, name):
                value = getattr(self, name)
                fitted[name] = (torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray)
                                else plain_value(value))
        return {
            "format": STATE_FORMAT, "format_version": STATE_VERSION,
            "class": type(self).__name__, "sid4ds": __version__,
            "params": self._plain_params(), "fitted": fitted,
            "module": cpu_tree(self.module_.state_dict()),
            "optimizer": (None if self.optimizer_ is None
                          else cpu_tree(self.optimizer_.state_dict())),
            "rng": copy.deepcopy(self._rng.bit_generator.state),
        }

    def _plain_params(self) -> dict[str, Any]:
        """``get_params(deep=False)`` with values ``torch.load(weights_only=True)`` reads."""
        params = {}
        for key, value in self.get_params(deep=False).items():
            if isinstance(value, torch.device):
                value = str(value)
            elif not is_plain(value):
                value = None  # a generator (random_state) or an estimator: not part of the state
            params[key] = value
        return params

    def set_state(self, state: dict[str, Any]) -> Self:
        """Restore a state from :meth:`get_state` into this estimator (its parameters stay).

        The network is rebuilt for this estimator's parameters, so they must describe the
        same architecture as when the state was taken (:meth:`from_state` takes them from
        the state). The network goes to this estimator's ``device`` (the CPU, with a
        warning, when that device is not available here).

        Parameters
        ----------
        state : dict
            As returned by :meth:`get_state` (e.g. read with ``torch.load(path,
            weights_only=True)``).

        Returns
        -------
        self : TorchEstimator

        Raises
        ------
        ValueError
            If ``state`` is not a sid4ds estimator state, is of another class or a newer
            format, or does not fit this estimator's network.
        """
        self._check_state(state)
        for name, value in state["fitted"].items():
            setattr(self, name, value.numpy().copy() if isinstance(value, torch.Tensor)
                    else copy.deepcopy(value))  # arrays come back with the dtype they had
        try:
            self.device_ = resolve_device(self.device)
        except ValueError:
            warnings.warn(
                f"{type(self).__name__} was saved with device={self.device!r}, which is not "
                f"available here; loading it on the CPU",
                stacklevel=2,
            )
            self.device_ = torch.device("cpu")
        module = self._new_module()
        try:
            module.load_state_dict(state["module"])
        except RuntimeError as error:
            raise ValueError(
                f"the state's network does not fit this {type(self).__name__}'s parameters "
                f"({str(error).splitlines()[0]}); build the estimator with "
                f"{type(self).__name__}.from_state(state) instead"
            ) from None
        self.module_ = module.to(self.device_).eval()
        self.optimizer_ = None
        if state.get("optimizer") is not None:
            self.optimizer_ = self._make_optimizer()
            self.optimizer_.load_state_dict(state["optimizer"])
        self._rng = restore_rng(copy.deepcopy(state["rng"]))
        return self

    @classmethod
    def _check_state(cls, state: Any) -> None:
        if not (isinstance(state, dict) and state.get("format") == STATE_FORMAT):
            raise ValueError(
                f"expected a sid4ds estimator state (from get_state()); got "
                f"{type(state).__name__} without format {STATE_FORMAT!r}"
            )
        if state.get("format_version", 0) > STATE_VERSION:
            raise ValueError(
                f"the state has format version {state['format_version']}, written by sid4ds "
                f"{state.get('sid4ds')}; this sid4ds reads versions up to {STATE_VERSION}: "
                f"upgrade sid4ds"
            )
        if state.get("class") != cls.__name__:
            raise ValueError(f"the state is of a {state.get('class')}, not of a {cls.__name__}; "
                             f"load it with {state.get('class')}.from_state")

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> Self:
        """A new fitted estimator from a state of :meth:`get_state`.

        Parameters
        ----------
        state : dict
            As returned by :meth:`get_state`.
        **params
            Parameters to change from the saved ones, e.g. ``device="cpu"`` or
            ``verbose=1`` (those that change the network's shape are refused by the
            weights).

        Returns
        -------
        estimator : TorchEstimator
            Of this class, with the saved parameters (updated by ``params``), fitted.
        """
        cls._check_state(state)
        return cls.from_params(state["params"], written_by=state.get("sid4ds"),
                               **params).set_state(state)

    @classmethod
    def from_params(cls, saved: dict[str, Any], *, written_by: str | None = None,
                    **params: Any) -> Self:
        """A new, unfitted estimator from saved parameters (a state's, or JSON settings).

        Parameters
        ----------
        saved : dict
            Parameter values as saved: lists stand for tuples (JSON has no tuples).
        written_by : str, optional
            The sid4ds version that saved them, for the error message.
        **params
            Parameters to change from the saved ones.

        Returns
        -------
        estimator : TorchEstimator

        Raises
        ------
        ValueError
            When ``saved`` names a parameter this class does not know (it was written by
            another sid4ds version).

        Examples
        --------
        >>> from sid4ds import SegmentationLearner
        >>> SegmentationLearner.from_params({"augment": ["flip"]}, verbose=1).augment
        ('flip',)
        """
        known = cls().get_params(deep=False)
        unknown = sorted(set(saved) - set(known))
        if unknown:
            raise ValueError(
                f"the saved parameters {unknown} are unknown to this {cls.__name__}; they "
                f"were written by another sid4ds version"
                + (f" ({written_by})" if written_by else "") + ": use that version"
            )
        restored = {key: tuple(value) if isinstance(value, list) else value
                    for key, value in saved.items()}
        return cls(**{**restored, **params})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`get_state` to ``path`` with ``torch.save`` (written atomically).

        Parameters
        ----------
        path : str or path-like
            The file to write (``.pt`` by convention).

        Returns
        -------
        path : pathlib.Path
        """
        target = Path(path)
        buffer = io.BytesIO()
        torch.save(self.get_state(), buffer)
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        temporary.write_bytes(buffer.getvalue())
        os.replace(temporary, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], **params: Any) -> Self:
        """Read a file written by :meth:`save` (``weights_only=True``: no code is run).

        Parameters
        ----------
        path : str or path-like
            The ``.pt`` file.
        **params
            As in :meth:`from_state` (e.g. ``device="cpu"``).

        Returns
        -------
        estimator : TorchEstimator
        """
        try:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as error:  # UnpicklingError is a RuntimeError
            raise ValueError(f"cannot read {path}: {type(error).__name__}: "
                             f"{str(error).splitlines()[0] if str(error) else ''}; it holds no "
                             f"sid4ds estimator state (only tensors are read from it)") from None
        return cls.from_state(state, **params)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        fitted = self._is_initialized()
        if fitted:
            state["_estimator_state"] = self.get_state()
        for name in (*self._fitted_attributes, "module_", "optimizer_", "device_", "_rng"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        saved = state.pop("_estimator_state", None)
        super().__setstate__(state)
        if saved is not None:
            self.set_state(saved)

