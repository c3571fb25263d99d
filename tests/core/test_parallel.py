"""Fits side by side: how many at once, their threads, and the run in worker processes."""

import os
from functools import partial

import pytest
import torch

from sid4ds._core.parallel import (
    MIN_STEPS_SIDE_BY_SIDE,
    check_parallel_fits,
    fit_workers,
    run_side_by_side,
    torch_threads,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_runs_as_many_long_fits_as_torch_has_threads_on_a_cpu_and_one_on_a_gpu():
    long, short = MIN_STEPS_SIDE_BY_SIDE, MIN_STEPS_SIDE_BY_SIDE - 1
    with torch_threads(4):
        assert fit_workers("auto", 3, CPU, long, "bf16") == (3, 1)  # never more than the fits
        assert fit_workers("auto", 8, CPU, long, "bf16") == (4, 1)
        assert fit_workers("auto", 8, CUDA, long, "bf16") == (1, 4)
        assert fit_workers("auto", 8, CPU, short, "bf16") == (1, 4)  # not worth the workers
        assert fit_workers("auto", 8, CPU, long, "fp32") == (1, 4)  # fp32 keeps 2 threads busy
        assert fit_workers(2, 8, CPU, short, "fp32") == (2, 2)  # asked for: threads shared out
        assert fit_workers(1, 8, CPU, long, "bf16") == (1, 4)
    with torch_threads(1):  # a user who lowered torch's threads gets fits in turn
        assert fit_workers("auto", 4, CPU, long, "bf16") == (1, 1)


def test_auto_follows_what_precision_auto_trains_in(cpu_units):
    with torch_threads(2):
        cpu_units(True)  # AMX: "auto" trains in bf16
        assert fit_workers("auto", 4, CPU, MIN_STEPS_SIDE_BY_SIDE, "auto")[0] == 2
        cpu_units(False)
        assert fit_workers("auto", 4, CPU, MIN_STEPS_SIDE_BY_SIDE, "auto")[0] == 1


def test_torch_threads_restores_the_number_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("value, message", [
    ("many", "parallel_fits must be 'auto' or an int >= 1; got 'many'"),
    (0, "parallel_fits must be >= 1"),
    (1.5, "parallel_fits must be an int"),
])
def test_a_bad_parallel_fits_is_refused_naming_it(value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        check_parallel_fits(value)


def test_side_by_side_runs_in_worker_processes_with_their_threads_in_order():
    results = run_side_by_side([partial(os.getpid), torch.get_num_threads,
                                partial(pow, 2, 5)], 2, 1)
    assert results[0] != os.getpid() and results[1:] == [1, 32]
    assert run_side_by_side([partial(os.getpid)], 1, 1) == [os.getpid()]  # in turn: here
