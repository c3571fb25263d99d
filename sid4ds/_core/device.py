"""Where the networks run: device choice, seeded torch generators, precisions and the
batch sizes of inference (how many images one forward pass takes on a CPU or a GPU)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

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
#: The values of the estimators' ``precision``: ``"auto"`` and the names of PRECISIONS.
PRECISION_CHOICES = (*PRECISIONS, "auto")


def computes_bf16(device: torch.device) -> bool:
    """Whether ``device`` trains faster in bf16 than in fp32: a CUDA device that supports
    bf16, or a CPU with AMX tiles (Intel Xeon from Sapphire Rapids on).

    Measured on one such CPU (``docs/performance.md``): a training step of S took half its
    fp32 time with AMX; with oneDNN capped to AVX512-BF16 instructions alone (what AMD Zen 4
    and later have) 1.2 times its fp32 time, and without either 3 times, so only AMX counts.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    # torch answers this for its own kernels; the function is not public API, so a torch
    # without it counts as a CPU without AMX.
    has_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return has_amx is not None and bool(has_amx())
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device, *, training: bool) -> str:
    """The arithmetic a ``precision`` runs on ``device`` in a training step (``training``) or
    a forward pass of inference.

    ``"auto"`` trains in ``"bf16"`` where bf16 trains faster (:func:`computes_bf16`) and in
    ``"fp32"`` elsewhere, and always predicts in ``"fp32"``: inference costs little next to
    training, and fp32 outputs are what an exported network gives in plain PyTorch. Other
    names are themselves.
    """
    if precision == "auto":
        return "bf16" if training and computes_bf16(device) else "fp32"
    return precision


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


def autocast(precision: str, device: torch.device, *,
             training: bool) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for the arithmetic ``precision`` resolves to on ``device`` (in a
    training step or in inference), or a context that changes nothing for fp32."""
    dtype = PRECISIONS[resolve_precision(precision, device, training=training)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
