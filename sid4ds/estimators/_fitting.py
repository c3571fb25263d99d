"""The one training loop of the sid4ds estimators, and the time a fit or a pass takes.

A part of :class:`sid4ds.estimators.base.TorchEstimator` (a mixin): the optimiser, the step
budget, :meth:`TrainingLoop._train` (epochs or steps, shuffling, schedule, best-weights
window, history, progress bar, ``on_step``) and
:meth:`TrainingLoop.estimate_seconds`, measured the way the loop runs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm.std import tqdm

from sid4ds._core.device import (
    autocast,
    inputs_per_forward,
    resolve_device,
    torch_generator,
)
from sid4ds.nn.training import (
    batch_indices,
    images_seen,
    learning_rate,
    n_training_steps,
    peak_learning_rate,
    steps_per_epoch,
)

__all__ = ["TrainingLoop"]


class TrainingLoop:
    """The training loop and its time estimate (a part of ``TorchEstimator``)."""

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

        Batches come from :func:`sid4ds.nn.training.batch_indices` (uniform shuffling, or a
        ``defect_share`` of ``defective`` images in each), the learning rate of each step
        from :func:`sid4ds.nn.training.learning_rate`; ``gen`` is a torch Generator drawn from
        the estimator's RNG once per epoch (random masks, augmentation). One history entry
        per epoch of ``ceil(n_samples / batch_size)`` steps, kept up to date step by step;
        with ``best_window``, the weights of the epoch with the lowest loss among the last
        ``best_window`` are kept. ``on_step(steps_done)`` is called after every step (it
        may evaluate the network, or keep :meth:`get_state`, which is then what a fit
        stopped there leaves: training mode is restored after it); when it returns True
        the fit stops there.
        The peak rate is ``lr``, or the rule of ``lr="auto"`` for ``n_steps``
        (:func:`sid4ds.nn.training.peak_learning_rate`).
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
            entry = {"epoch": len(self.history_) + 1, "steps": 0, "loss": float("nan"),
                     "lr": 0.0, "duration": 0.0}
            self.history_.append(entry)  # the epoch so far, as a stop after any step leaves it
            for indices in batches:
                rate = learning_rate(step, n_steps, peak, schedule, warmup=warmup,
                                     epoch_steps=epoch_steps)
                for group in self.optimizer_.param_groups:
                    group["lr"] = rate
                with self._autocast(training=True):
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
                entry.update(steps=done, loss=total / count, lr=rate,
                             duration=time.perf_counter() - started)
                if on_step is not None:
                    stop = bool(on_step(step))
                    self.module_.train()
                    if stop:
                        break
            progress.update(done)
            epoch_loss = total / count
            entry["duration"] = time.perf_counter() - started
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

    def _training_window(self, height: int, width: int) -> tuple[int, int]:
        """Height and width of the inputs a training step of ``fit`` runs on images of this
        size (the estimators that train on windows say so; the time estimate uses it)."""
        return height, width

    def estimate_seconds(self, n_images: int, image_shape: tuple[int, int, int], *,
                         train: bool, copies: int = 1) -> float:
        """How long a fit (``train=True``) or a scoring pass over ``n_images`` would take.

        Measured, not guessed: a throwaway network of this estimator's size runs training
        steps (or forward passes) on blank images on this device, as ``fit`` runs them (the
        same optimiser, batch size, memory format, precision and window: a fit on random
        crops is timed on crops), and the median time of a pass is multiplied out (by the
        steps, or by the passes over the images; a uniformly shuffled epoch's short last
        batch counts for the images it holds). Two passes warm up first, then passes are
        timed until five are done and at least half a second has passed (at most 20); the
        median ignores a pass that another process slowed down.
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
        if train:
            height, width = self._training_window(height, width)
        module = self._new_module(n_channels=channels).to(device)
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
                with autocast(self.precision, device, training=True):
                    loss = module(inputs).float().square().mean()
                loss.backward()
                optimizer.step()
            else:
                module.eval()
                with torch.inference_mode(), autocast(self.precision, device, training=False):
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

