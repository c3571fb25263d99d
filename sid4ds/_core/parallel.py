"""Training several networks side by side: how many processes, how many torch threads
each, and the run.

On a CPU training in bf16 (AMX tiles), a small network trains faster as independent
single-threaded fits on separate cores than as one fit after another with every core on
each: two fits of S (64 px, batch 16) in two processes of one thread took 0.79 of the time
of the two fits in turn with two threads (Intel Xeon, 2 cores; ``docs/performance.md``),
because one step's operations are too small to keep two threads busy. In fp32 the final
model took as long either way (529 s side by side, about 536 s in turn), so fp32 fits
train in turn. The final model's cross-validation and its final fit are such independent
fits (:mod:`sid4ds.estimators.final_model`). On a GPU the fits run one after another: one
device, one queue.

The workers are joblib's loky processes (started afresh, so no fork of torch's threads),
in a pool of their own that ends with the fits: a reused pool left this process's own
training 1.4 times slower while it lived (measured). Starting them takes a few seconds,
so ``"auto"`` runs short fits (fewer than :data:`MIN_STEPS_SIDE_BY_SIDE` steps) in turn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
from joblib.externals.loky import ProcessPoolExecutor

from sid4ds._core.device import resolve_precision
from sid4ds._core.validation import check_int

__all__ = ["MIN_STEPS_SIDE_BY_SIDE", "check_parallel_fits", "fit_workers", "run_side_by_side",
           "torch_threads"]

Result = TypeVar("Result")

#: Fits shorter than this many steps train in turn under ``parallel_fits="auto"``: starting
#: the worker processes (about 4 s on 2 cores) would cost more than it saves.
MIN_STEPS_SIDE_BY_SIDE = 200


def check_parallel_fits(parallel_fits: Any, name: str = "parallel_fits") -> None:
    """Raise a clear error unless ``parallel_fits`` is ``"auto"`` or an int >= 1."""
    if isinstance(parallel_fits, str):
        if parallel_fits != "auto":
            raise ValueError(f"{name} must be 'auto' or an int >= 1; got {parallel_fits!r}")
        return
    check_int(parallel_fits, name, minimum=1)


def fit_workers(parallel_fits: Any, n_fits: int, device: torch.device,
                steps_per_fit: int, precision: str = "fp32") -> tuple[int, int]:
    """How many fits run at once, and how many torch threads each one uses.

    Parameters
    ----------
    parallel_fits : "auto" or int >= 1
        ``"auto"``: on a CPU, for fits that train in bf16 and take at least
        :data:`MIN_STEPS_SIDE_BY_SIDE` steps, as many fits at once as torch may use threads
        here (``torch.get_num_threads()``, which the user may have lowered), at most
        ``n_fits``; else one. An int: at most that many.
    n_fits : int
        The fits to run.
    device : torch.device
        Where they train.
    steps_per_fit : int
        The optimiser steps of each fit.
    precision : str, default="fp32"
        The fits' ``precision`` setting (resolved for training on ``device``).

    Returns
    -------
    workers : int
        Fits at once (1: one after another in this process, with its threads).
    threads : int
        Torch threads of each fit when ``workers > 1``: the threads shared out.

    Examples
    --------
    >>> import torch
    >>> from sid4ds._core.parallel import fit_workers
    >>> fit_workers("auto", 4, torch.device("cuda"), 1600, "bf16")[0]  # one GPU: in turn
    1
    >>> fit_workers("auto", 4, torch.device("cpu"), 20, "bf16")[0]  # too short for workers
    1
    >>> fit_workers("auto", 4, torch.device("cpu"), 1600, "fp32")[0]  # fp32: no gain
    1
    >>> fit_workers(8, 4, torch.device("cpu"), 20)[0]  # never more than the fits
    4
    """
    check_parallel_fits(parallel_fits)
    available = max(1, torch.get_num_threads())
    if parallel_fits == "auto":
        gains = (device.type == "cpu" and steps_per_fit >= MIN_STEPS_SIDE_BY_SIDE
                 and resolve_precision(precision, device, training=True) == "bf16")
        wanted = available if gains else 1
    else:
        wanted = int(parallel_fits)
    workers = max(1, min(wanted, n_fits))
    return workers, max(1, available // workers)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads, then restore the number before."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _with_threads(threads: int, task: Callable[[], Result]) -> Result:
    with torch_threads(threads):
        return task()


def run_side_by_side(tasks: Sequence[Callable[[], Result]], workers: int,
                     threads: int) -> list[Result]:
    """Call each task, ``workers`` at a time in worker processes (a loky pool of their
    own, shut down at the end), and return their results in order.

    Parameters
    ----------
    tasks : sequence of callable
        Picklable callables without arguments (e.g. ``functools.partial`` of a module-level
        function).
    workers : int
        Tasks at once (:func:`fit_workers`); 1 calls them in turn in this process, with its
        torch threads.
    threads : int
        Torch threads of each task in a worker process.

    Returns
    -------
    results : list

    Examples
    --------
    >>> from functools import partial
    >>> from sid4ds._core.parallel import run_side_by_side
    >>> run_side_by_side([partial(pow, 2, 3), partial(pow, 3, 2)], 1, 1)
    [8, 9]
    """
    if workers <= 1:
        return [task() for task in tasks]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_with_threads, [threads] * len(tasks), tasks))
