"""The parameters of a sid4ds estimator: their checks, and the network they build.

A part of :class:`sid4ds.estimators.base.TorchEstimator` (a mixin): the checks every estimator
shares (``fit`` calls them first; :meth:`EstimatorParams.check_params` calls them on
demand) and the fresh network, optimiser-free, that the parameters describe.
"""

from __future__ import annotations

from typing import Any

import torch

from sid4ds._core.device import PRECISION_CHOICES, resolve_device
from sid4ds._core.random import check_random_state, make_rng
from sid4ds._core.validation import (
    check_choice,
    check_float,
    check_int,
    check_learning_rate,
)
from sid4ds.nn.unet import UNet

__all__ = ["EstimatorParams"]


class EstimatorParams:
    """Parameters, their checks and the network they build (a part of ``TorchEstimator``)."""

    # ------------------------------------------------------------------ parameters
    def _check_common_params(self) -> None:
        check_int(self.base_channels, "base_channels", minimum=1)
        check_int(self.depth, "depth", minimum=1)
        check_int(self.dilation, "dilation", minimum=1)
        if self.max_epochs is not None:
            check_int(self.max_epochs, "max_epochs", minimum=1)
        elif getattr(self, "max_steps", None) is None:
            raise ValueError("max_epochs and max_steps are both None: set one of them (the "
                             "length of a fit in epochs or in optimiser steps)")
        else:
            check_int(self.max_steps, "max_steps", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_learning_rate(self.lr, auto=self._auto_lr)
        check_float(self.momentum, "momentum", low=0.0, high=1.0, include_high=False)
        check_float(self.weight_decay, "weight_decay", low=0.0)
        check_choice(self.optimizer, "optimizer", ("sgd", "adamw"))
        check_int(self.verbose, "verbose", minimum=0)
        if self.inference_batch_size is not None:
            check_int(self.inference_batch_size, "inference_batch_size", minimum=1)
        self._check_runtime_params()

    def _check_runtime_params(self) -> None:
        """Check the parameters that only affect how (not what) is computed."""
        if self.n_jobs is not None:
            n_jobs = check_int(self.n_jobs, "n_jobs")
            if n_jobs == 0:
                raise ValueError("n_jobs must be a positive int, -1 (every core) or None; got 0")
        check_choice(self.precision, "precision", PRECISION_CHOICES)
        device = resolve_device(self.device)
        if self.precision == "fp16" and device.type != "cuda":
            raise ValueError(
                f"precision='fp16' needs a CUDA device (device={self.device!r} resolves to "
                f"{device}); use precision='bf16' or 'fp32' on the CPU"
            )
        check_random_state(self.random_state)

    def check_params(self) -> None:
        """Validate every parameter now, as ``fit`` does first; raise naming the parameter.

        Raises
        ------
        TypeError, ValueError
            For the first parameter of the wrong type or out of range.
        """
        self._check_params()

    def _check_params(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def network_kwargs(self) -> dict[str, Any]:
        """The arguments of :class:`sid4ds.nn.unet.UNet` that build this estimator's network.

        Available once fitted (they include the channels of the training images), e.g. to
        load ``module_.state_dict()`` into a bare UNet elsewhere.
        """
        self._check_fitted()
        return self._module_kwargs()

    def _module_kwargs(self, n_channels: int | None = None) -> dict[str, Any]:
        """The UNet's arguments, for images of ``n_channels`` (default: the fitted ones)."""
        raise NotImplementedError  # pragma: no cover - abstract

    # ------------------------------------------------------------------ set-up
    def _initialize(self, n_channels: int) -> None:
        """Fresh module, optimiser, RNG and history (the start of every cold ``fit``)."""
        self.device_ = resolve_device(self.device)
        self._rng = make_rng(self.random_state)
        seed = int(self._rng.integers(2**62))
        self.n_channels_in_ = n_channels
        self.module_ = self._new_module(seed).to(self.device_)
        self.optimizer_ = None
        self.history_: list[dict[str, float]] = []

    def _new_module(self, seed: int = 0, n_channels: int | None = None) -> torch.nn.Module:
        """A fresh network for the current parameters, initialised from ``seed``, for
        images of ``n_channels`` (default: the fitted ``n_channels_in_``).

        torch's global random state is forked, so building a network never moves it; the
        estimator's attributes are left as they are.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return UNet(**self._module_kwargs(n_channels))

    def _is_initialized(self) -> bool:
        return getattr(self, "module_", None) is not None

