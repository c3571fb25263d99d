"""The one private base of the sid4ds estimators.

Device choice, seeding without global RNG state, the training loop (epochs, shuffling,
optimiser, schedule, best-weights window, history, progress bar), batched inference and
pickling through CPU state dicts all live here, so the estimators only say what a batch's
loss is and how to map images to outputs.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from tqdm.std import tqdm

from sid4ds._validation import check_choice, check_float, check_int, make_rng
from sid4ds.nets import UNet, check_divisible
from sid4ds.pool import ImagePool, as_pool, map_chunks

# On a CPU the fastest batch holds about 64k pixels (cache-bound); on a GPU larger batches
# keep the device busy. Measured on the 2-core CPU of the project machines.
CPU_PIXELS_PER_BATCH = 2**16
CUDA_PIXELS_PER_BATCH = 2**22


def resolve_device(device: Any) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device into a device.

    ``"auto"`` picks CUDA when it is available, else the CPU.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device; got {device!r}"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use device='auto' "
            f"or device='cpu'"
        )
    return resolved


def torch_generator(rng: np.random.Generator, device: torch.device) -> torch.Generator:
    """A torch Generator on ``device`` seeded from ``rng``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(rng.integers(2**62)))
    return generator


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def auto_batch_size(height: int, width: int, copies: int, device: torch.device) -> int:
    """Images per inference batch so that a batch holds about the best pixel count.

    ``copies`` is how many network inputs each image becomes (e.g. ``n_blocks`` masked copies).
    """
    return max(1, inputs_per_forward(height, width, device) // copies)


def inputs_per_forward(height: int, width: int, device: torch.device) -> int:
    """Network inputs per forward pass so that a pass holds about the best pixel count.

    On a CPU that is ~64k pixels: 16 inputs of 64×64, 4 of 128×128, 1 of 256×256 (never
    fewer than one); on a GPU 64 times more.
    """
    budget = CUDA_PIXELS_PER_BATCH if device.type == "cuda" else CPU_PIXELS_PER_BATCH
    return max(1, budget // (height * width))


class TorchEstimator(BaseEstimator):
    """Private base: subclasses define ``_module_kwargs``, ``_check_params`` and a loss."""

    # Subclasses override: how many of the last epochs to pick the best weights from (None:
    # keep the last weights).
    _best_window_attr: str | None = None

    # ------------------------------------------------------------------ parameters
    def _check_common_params(self) -> None:
        check_int(self.base_channels, "base_channels", minimum=1)
        check_int(self.depth, "depth", minimum=1)
        check_int(self.dilation, "dilation", minimum=1)
        check_int(self.max_epochs, "max_epochs", minimum=1)
        check_int(self.batch_size, "batch_size", minimum=1)
        check_float(self.lr, "lr", low=0.0, include_low=False)
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
        if not (self.random_state is None or isinstance(
                self.random_state, (int, np.integer, np.random.RandomState, np.random.Generator))
                ) or isinstance(self.random_state, bool):
            raise TypeError(
                f"random_state must be None, an int, a numpy RandomState or Generator; got "
                f"{self.random_state!r}"
            )

    def _module_kwargs(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ set-up
    def _initialize(self, n_channels: int) -> None:
        """Fresh module, optimiser, RNG and history (the start of every cold ``fit``)."""
        self.device_ = resolve_device(self.device)
        self._rng = make_rng(self.random_state)
        seed = int(self._rng.integers(2**62))
        self.n_channels_in_ = n_channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = UNet(**self._module_kwargs())
        self.module_ = module.to(self.device_)
        self.optimizer_ = None
        self.history_: list[dict[str, float]] = []

    def _is_initialized(self) -> bool:
        return getattr(self, "module_", None) is not None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        parameters = self.module_.parameters()
        if self.optimizer == "adamw":
            return torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(
            parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )

    def _learning_rate(self, epoch: int, n_epochs: int) -> float:
        """Learning rate of ``epoch`` (0-based) in a run of ``n_epochs``; constant here."""
        return float(self.lr)

    # ------------------------------------------------------------------ training loop
    def _train(
        self,
        n_samples: int,
        n_epochs: int,
        batch_loss: Callable[[np.ndarray, torch.Generator], torch.Tensor],
        description: str,
    ) -> None:
        """Run ``n_epochs`` over ``n_samples`` items; ``batch_loss(indices, generator)``.

        Keeps the weights with the lowest epoch loss among the last ``best_window`` epochs
        when the subclass names such a parameter.
        """
        if self.optimizer_ is None:
            self.optimizer_ = self._make_optimizer()
        window = getattr(self, self._best_window_attr) if self._best_window_attr else None
        best_loss, best_state = np.inf, None
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
        scaler = torch.amp.GradScaler("cuda") if (
            self.precision == "fp16" and self.device_.type == "cuda") else None
        self.module_.train()
        epochs = range(n_epochs)
        progress = tqdm(epochs, desc=description, disable=not self.verbose, leave=False)
        for epoch in progress:
            learning_rate = self._learning_rate(epoch, n_epochs)
            for group in self.optimizer_.param_groups:
                group["lr"] = learning_rate
            started = time.perf_counter()
            order = self._rng.permutation(n_samples)
            generator = torch_generator(self._rng, self.device_)
            total, count = 0.0, 0
            for start in range(0, n_samples, self.batch_size):
                indices = order[start : start + self.batch_size]
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
            epoch_loss = total / count
            self.history_.append(
                {
                    "epoch": len(self.history_) + 1,
                    "loss": epoch_loss,
                    "lr": learning_rate,
                    "duration": time.perf_counter() - started,
                }
            )
            progress.set_postfix(loss=f"{epoch_loss:.4g}")
            if window and epoch >= n_epochs - window and epoch_loss < best_loss:
                best_loss = epoch_loss
                best_state = copy.deepcopy(self.module_.state_dict())
                self.best_epoch_ = len(self.history_)
        if best_state is not None:
            self.module_.load_state_dict(best_state)
        self.module_.eval()

    # ------------------------------------------------------------------ inference
    def _inputs_per_forward(self, height: int, width: int) -> int:
        if self.inference_batch_size is not None:
            return int(self.inference_batch_size)
        return inputs_per_forward(height, width, self.device_)

    def _batch_size_for(self, height: int, width: int, copies: int = 1) -> int:
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

    def _as_pool(self, X: Any, name: str = "X") -> ImagePool:
        """``X`` as a pool whose images fit the fitted network (channels, divisibility)."""
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

    def _map_pool(
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

        ``function`` gets validated float32 images; chunk boundaries are multiples of the
        inference batch, so results do not depend on ``n_jobs``. With ``verbose`` a
        progress bar named ``description`` counts the images.
        """
        _, height, width = pool.image_shape
        jobs = self.n_jobs if n_jobs == "estimator" else n_jobs
        if batch_size is None:
            batch_size = self._batch_size_for(height, width, copies)
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

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        module = state.pop("module_", None)
        if module is not None:
            state["_module_state"] = {
                key: value.detach().cpu() for key, value in module.state_dict().items()
            }
        state.pop("optimizer_", None)
        state.pop("device_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        module_state = state.pop("_module_state", None)
        super().__setstate__(state)
        if module_state is None:
            return
        try:
            self.device_ = resolve_device(self.device)
        except ValueError:
            warnings.warn(
                f"{type(self).__name__} was saved with device={self.device!r}, which is not "
                f"available here; loading it on the CPU",
                stacklevel=2,
            )
            self.device_ = torch.device("cpu")
        module = UNet(**self._module_kwargs())
        module.load_state_dict(module_state)
        self.module_ = module.to(self.device_).eval()
        self.optimizer_ = None
