"""Where the networks run: device choice, seeded torch generators, precisions and the
batch sizes of inference (how many images one forward pass takes on a CPU or a GPU)."""

from __future__ import annotations

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
