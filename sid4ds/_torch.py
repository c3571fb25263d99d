"""The one base of the sid4ds estimators: :class:`TorchEstimator`.

Device choice, seeding without global RNG state, the training loop (epochs, shuffling,
optimiser, schedule, best-weights window, history, progress bar), batched inference, the
chunk-level interface the query strategies use, and the estimator's state (one public API:
:meth:`TorchEstimator.get_state` / :meth:`TorchEstimator.set_state`, which pickling and the
labelling session both use) all live here, so the estimators only say what a batch's loss
is and how to map images to outputs.

The chunk-level interface
-------------------------
Query strategies score pools that need not fit in memory: they split the pool into chunks
and run one function per chunk, serially or on joblib/Dask workers. The public pieces:

- :meth:`TorchEstimator.check_pool` turns ``X`` into an :class:`~sid4ds.ImagePool` that fits
  the fitted network (channels, divisibility), naming the argument in errors;
- :meth:`TorchEstimator.map_pool` runs a chunk function over such a pool and joins the
  results (chunk boundaries are multiples of the inference batch, so results never depend
  on ``n_jobs``);
- :meth:`TorchEstimator.images_per_batch` is how many images one forward pass takes;
- methods whose name ends in ``_chunk`` (``SegmentationLearner.predict_proba_chunk``,
  ``ReconstructionScorer.region_errors_chunk``, ...) compute on one chunk: float32 images
  of shape (n, C, H, W) that :meth:`check_pool` already validated. They never validate
  and never split further than one forward pass needs.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted
from tqdm.std import tqdm

from sid4ds._device import PRECISIONS, inputs_per_forward, resolve_device, torch_generator
from sid4ds._random import check_random_state, make_rng, restore_rng
from sid4ds._state import STATE_FORMAT, STATE_VERSION, cpu_tree, is_plain, plain_value
from sid4ds._validation import (
    check_choice,
    check_divisible,
    check_float,
    check_int,
    check_learning_rate,
)
from sid4ds._version import __version__
from sid4ds.nets import UNet
from sid4ds.pool import ImagePool, as_pool, map_chunks
from sid4ds.training import (
    batch_indices,
    images_seen,
    learning_rate,
    n_training_steps,
    peak_learning_rate,
    steps_per_epoch,
)


def is_fitted(estimator: Any) -> bool:
    """True when a sid4ds estimator has a trained network (``module_``)."""
    return getattr(estimator, "module_", None) is not None


class TorchEstimator(BaseEstimator):
    """The base of the sid4ds estimators (see the module docstring).

    Subclasses define ``_module_kwargs`` (the network), ``_check_params`` and ``fit``, which
    calls the one training loop :meth:`_train` with a batch loss.
    """

    # Whether ``fit`` needs ``y`` (the masks): scikit-learn's target tag.
    _needs_target = False
    # Whether ``lr="auto"`` (sid4ds.training.auto_learning_rate) is accepted.
    _auto_lr = False

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = self._needs_target
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

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
        check_choice(self.precision, "precision", tuple(PRECISIONS))
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
        """The arguments of :class:`sid4ds.nets.UNet` that build this estimator's network.

        Available once fitted (they include the channels of the training images), e.g. to
        load ``module_.state_dict()`` into a bare UNet elsewhere.
        """
        self._check_fitted()
        return self._module_kwargs()

    def _module_kwargs(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

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

    def _new_module(self, seed: int = 0) -> torch.nn.Module:
        """A fresh network for the current parameters, initialised from ``seed``.

        torch's global random state is forked, so building a network never moves it.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return UNet(**self._module_kwargs())

    def _is_initialized(self) -> bool:
        return getattr(self, "module_", None) is not None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        parameters = self.module_.parameters()
        rate = 0.0 if isinstance(self.lr, str) else self.lr  # the loop sets each step's rate
        if self.optimizer == "adamw":
            return torch.optim.AdamW(parameters, lr=rate, weight_decay=self.weight_decay)
        return torch.optim.SGD(
            parameters, lr=rate, momentum=self.momentum, weight_decay=self.weight_decay
        )

    # ------------------------------------------------------------------ training loop
    def _n_steps(self, n_samples: int, epochs: int | None = None) -> int:
        """Steps of one fit: ``epochs`` if given, else ``max_epochs`` when set (the training
        is then counted in epochs), else ``max_steps``."""
        epochs = self.max_epochs if epochs is None else epochs
        if epochs is not None:
            return n_training_steps(n_samples, self.batch_size, epochs, None)
        return n_training_steps(n_samples, self.batch_size, None, self.max_steps)

    def _train(
        self,
        n_samples: int,
        batch_loss: Callable[[np.ndarray, torch.Generator], torch.Tensor],
        description: str,
        *,
        n_steps: int,
        schedule: str = "constant",
        warmup: float = 0.1,
        defective: np.ndarray | None = None,
        defect_share: float = 0.0,
        best_window: int | None = None,
        on_step: Callable[[int], bool | None] | None = None,
    ) -> None:
        """The one training loop: ``n_steps`` optimiser steps of ``batch_loss(indices, gen)``.

        Batches come from :func:`sid4ds.training.batch_indices` (uniform shuffling, or a
        ``defect_share`` of ``defective`` images in each), the learning rate of each step
        from :func:`sid4ds.training.learning_rate`; ``gen`` is a torch Generator drawn from
        the estimator's RNG once per epoch (random masks, augmentation). One history entry
        per epoch of ``ceil(n_samples / batch_size)`` steps; with ``best_window``, the
        weights of the epoch with the lowest loss among the last ``best_window`` are kept.
        ``on_step(steps_done)`` is called after every step (it may evaluate the network:
        training mode is restored after it); when it returns True the fit stops there.
        The peak rate is ``lr``, or the rule of ``lr="auto"`` for ``n_steps``
        (:func:`sid4ds.training.peak_learning_rate`).
        """
        if self.optimizer_ is None:
            self.optimizer_ = self._make_optimizer()
        epoch_steps = steps_per_epoch(n_samples, self.batch_size)
        n_epochs = math.ceil(n_steps / epoch_steps)
        peak = peak_learning_rate(self.lr, n_steps, self.batch_size)
        best_loss, best_state = np.inf, None
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
        scaler = torch.amp.GradScaler("cuda") if (
            self.precision == "fp16" and self.device_.type == "cuda") else None
        self.module_.train()
        epochs = batch_indices(self._rng, n_samples, self.batch_size, defective, defect_share)
        progress = tqdm(total=n_steps, desc=description, disable=not self.verbose,
                        leave=False, unit="step")
        step, stop = 0, False
        for epoch in range(n_epochs):
            batches = next(epochs)[: n_steps - step]
            generator = torch_generator(self._rng, self.device_)
            started = time.perf_counter()
            total, count, done = 0.0, 0, 0
            for indices in batches:
                rate = learning_rate(step, n_steps, peak, schedule, warmup=warmup,
                                     epoch_steps=epoch_steps)
                for group in self.optimizer_.param_groups:
                    group["lr"] = rate
                with self._autocast():
                    loss = batch_loss(indices, generator)
                self.optimizer_.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    self.optimizer_.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(self.optimizer_)
                    scaler.update()
                total += float(loss.detach()) * len(indices)
                count += len(indices)
                step += 1
                done += 1
                if on_step is not None:
                    stop = bool(on_step(step))
                    self.module_.train()
                    if stop:
                        break
            progress.update(done)
            epoch_loss = total / count
            self.history_.append({
                "epoch": len(self.history_) + 1, "steps": done, "loss": epoch_loss,
                "lr": rate, "duration": time.perf_counter() - started,
            })
            progress.set_postfix(loss=f"{epoch_loss:.4g}")
            if best_window and epoch >= n_epochs - best_window and epoch_loss < best_loss:
                best_loss = epoch_loss
                best_state = copy.deepcopy(self.module_.state_dict())
                self.best_epoch_ = len(self.history_)
            if stop:
                break
        progress.close()
        if best_state is not None:
            self.module_.load_state_dict(best_state)
        self.module_.eval()

    # ------------------------------------------------------------------ time estimates
    def _trains_channels_last(self, device: torch.device) -> bool:
        """Whether ``fit`` trains the network in channels-last memory format on ``device``
        (the estimators that do say so; the time estimate measures the same)."""
        return False

    def estimate_seconds(self, n_images: int, image_shape: tuple[int, int, int], *,
                         train: bool, copies: int = 1) -> float:
        """How long a fit (``train=True``) or a scoring pass over ``n_images`` would take.

        Measured, not guessed: a throwaway network of this estimator's size runs training
        steps (or forward passes) on blank images on this device, as ``fit`` runs them
        (the same optimiser, batch size and memory format), and the median time of a pass
        is multiplied out (by the steps, or by the passes over the images; a uniformly
        shuffled epoch's short last batch counts for the images it holds). Two passes warm
        up first, then passes are timed until five are done and at least half a second has
        passed (at most 20); the median ignores a pass that another process slowed down.
        Nothing of the estimator changes and no random state is used. How close it comes:
        ``benchmarks/time_estimates.py`` (``docs/performance.md``); on a machine that other
        work keeps busy, the fit takes longer than announced whenever that work lasts
        longer than the warm-up.

        Parameters
        ----------
        n_images : int
            Training images (for ``train``) or images to score.
        image_shape : (int, int, int)
            (n_channels, height, width).
        train : bool
            A fit of ``n_images`` images (its steps from ``max_steps`` / ``max_epochs``), or
            inference.
        copies : int, default=1
            Network inputs per image when scoring (e.g. ``n_blocks`` for E_msmr).

        Returns
        -------
        seconds : float
        """
        device = resolve_device(self.device)
        channels, height, width = image_shape
        saved = {name: getattr(self, name) for name in ("n_channels_in_",) if hasattr(self, name)}
        self.n_channels_in_ = channels
        try:
            module = self._new_module().to(device)
        finally:
            for name, value in saved.items():
                setattr(self, name, value)
            if not saved:
                del self.n_channels_in_
        batch = self.batch_size if train else max(1, inputs_per_forward(height, width, device))
        inputs = torch.zeros((batch, channels, height, width), device=device)
        if train and self._trains_channels_last(device):
            module.to(memory_format=torch.channels_last)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        parameters = list(module.parameters())
        optimizer = (torch.optim.AdamW(parameters, lr=0.0) if self.optimizer == "adamw"
                     else torch.optim.SGD(parameters, lr=0.0, momentum=self.momentum))

        def once() -> float:
            started = time.perf_counter()
            if train:
                module.train()
                optimizer.zero_grad(set_to_none=True)
                module(inputs).float().square().mean().backward()
                optimizer.step()
            else:
                module.eval()
                with torch.inference_mode():
                    module(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - started

        once(), once()  # the first passes allocate and pick kernels: not counted
        times: list[float] = []
        while len(times) < 20 and (len(times) < 5 or sum(times) < 0.5):
            times.append(once())
        per_pass = float(np.median(times))
        if train:  # a batch's cost grows with its images: count the short last batches
            uniform = float(getattr(self, "defect_share", 0.0)) == 0.0
            seen = images_seen(n_images, batch, self._n_steps(n_images), uniform=uniform)
            return per_pass * seen / batch
        return per_pass * math.ceil(n_images * copies / batch)

    # ------------------------------------------------------------------ inference
    def _inputs_per_forward(self, height: int, width: int) -> int:
        if self.inference_batch_size is not None:
            return int(self.inference_batch_size)
        return inputs_per_forward(height, width, self.device_)

    def images_per_batch(self, height: int, width: int, copies: int = 1) -> int:
        """Images per inference forward pass when each becomes ``copies`` network inputs.

        ``inference_batch_size`` when set, else about 64k pixels per pass on a CPU (64 times
        more on a GPU), divided by ``copies``; never fewer than one.
        """
        return max(1, self._inputs_per_forward(height, width) // copies)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward passes when ``precision`` asks for it."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_.type, dtype=dtype)

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inference forward pass in the estimator's precision; float32 output."""
        if self.device_.type == "cuda":
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            outputs = self.module_(inputs)
        return outputs.float()

    def check_pool(self, X: Any, name: str = "X") -> ImagePool:
        """``X`` as a pool whose images fit the fitted network (channels, divisibility).

        Parameters
        ----------
        X : array-like, np.memmap, sequence of image paths, torch Dataset or ImagePool
            Images of shape (n_samples, n_channels, height, width) or (n_samples, height,
            width) once read.
        name : str, default="X"
            Argument name used in error messages.

        Returns
        -------
        pool : ImagePool
            In-memory arrays are validated once here; lazy pools chunk by chunk when read.
        """
        pool = as_pool(X, name=name)
        channels, height, width = pool.image_shape
        if channels != self.n_channels_in_:
            raise ValueError(
                f"{name} has {channels} channel(s) but the estimator was fitted on "
                f"{self.n_channels_in_}; pass images of shape (n_samples, "
                f"{self.n_channels_in_}, height, width)"
            )
        try:
            check_divisible(height, width, self.depth)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        return pool

    def map_pool(
        self,
        function: Callable[[np.ndarray], np.ndarray],
        pool: ImagePool,
        copies: int = 1,
        n_jobs: Any = "estimator",
        extras: tuple[np.ndarray, ...] = (),
        batch_size: int | None = None,
        description: str = "scoring",
    ) -> np.ndarray:
        """``function(images)`` over ``pool`` in chunks (``self.n_jobs`` workers), joined.

        Parameters
        ----------
        function : callable
            A chunk function, e.g. a ``*_chunk`` method (see the module docstring): it gets
            validated float32 images of shape (k, C, H, W) (and the chunk's rows of each
            array in ``extras``) and returns an array with one row per image. It must be
            picklable for ``n_jobs`` other than 1.
        pool : ImagePool
            From :meth:`check_pool`.
        copies : int, default=1
            Network inputs per image (e.g. ``n_blocks`` masked copies): sizes the batches.
        n_jobs : int, None or "estimator", default="estimator"
            joblib workers; ``"estimator"`` uses the estimator's ``n_jobs``.
        extras : tuple of ndarray of shape (n_samples, ...), default=()
            Per-image arrays passed to ``function`` chunk by chunk.
        batch_size : int, optional
            Images per batch of ``function``; chunk sizes are multiples of it. Default
            :meth:`images_per_batch`.
        description : str, default="scoring"
            Name of the progress bar shown with ``verbose``.

        Returns
        -------
        results : ndarray
            The chunks' results concatenated along the first axis; they do not depend on
            ``n_jobs``.
        """
        _, height, width = pool.image_shape
        jobs = self.n_jobs if n_jobs == "estimator" else n_jobs
        if batch_size is None:
            batch_size = self.images_per_batch(height, width, copies)
        parts = map_chunks(function, pool, batch_size=batch_size, n_jobs=jobs, extras=extras,
                           progress=f"{type(self).__name__}: {description}" if self.verbose
                           else None)
        return np.concatenate(parts, axis=0)

    def _prepare_module(self) -> None:
        """Put the module in eval mode, channels_last on CUDA."""
        self.module_.eval()
        if self.device_.type == "cuda":
            self.module_.to(memory_format=torch.channels_last)

    def _iter_batches(
        self, images: np.ndarray, batch_size: int
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Yield (slice, tensor on device) over ``images`` of shape (n, C, H, W)."""
        pin = self.device_.type == "cuda"
        for start in range(0, len(images), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            if pin:
                chunk = chunk.pin_memory()
            yield slice(start, start + len(chunk)), chunk.to(self.device_, non_blocking=pin)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "module_")
        if self.module_ is None:  # pragma: no cover - guarded by __setstate__
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")

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

    def set_state(self, state: dict[str, Any]) -> TorchEstimator:
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
    def from_state(cls, state: dict[str, Any], **params: Any) -> TorchEstimator:
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
                    **params: Any) -> TorchEstimator:
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
    def load(cls, path: str | os.PathLike[str], **params: Any) -> TorchEstimator:
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
