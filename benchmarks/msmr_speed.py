"""E_msmr scoring speed: sid4ds against batch size 1 and against the forward-pass floor.

    python benchmarks/msmr_speed.py --image-size 64 --n-samples 128
    python benchmarks/msmr_speed.py --image-size 128 --n-samples 48

Three ways to compute the same E_msmr of the same pool with the same fitted network, timed
side by side in one run (best of ``--repeats`` after a warm-up):

- ``sid4ds``: ``ReconstructionScorer.score_samples`` (block masks built once on the device,
  masked copies batched to about 64k pixels per forward pass on a CPU);
- ``batch size 1``: the paper's inference protocol (§3.1.3) written plainly: for each image,
  for each of the ``n_blocks`` blocks, mask, run the network on that one input, take the
  error;
- ``floor``: only the network, ``n_samples · n_blocks`` inputs in batches of the fastest
  size found among 1, 2, 4, …, 128 inputs (no masking, no error, no data movement).

Prints the settings, images per second of each, and the ratios; checks that the sid4ds and
batch-size-1 scores agree.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch
from throughput import timed as best_time  # benchmarks/throughput.py: best of N after warm-up

from sid4ds import ReconstructionScorer
from sid4ds.datasets import make_defect_images
from sid4ds.estimators.reconstruction import block_masks


def batch_size_one(scorer: ReconstructionScorer, images: np.ndarray) -> np.ndarray:
    """E_msmr one masked copy at a time (block_max error, as the scorer's default)."""
    module, device = scorer.module_, scorer.device_
    mean = torch.from_numpy(scorer.pixel_mean_).view(1, -1, 1, 1).to(device)
    std = torch.from_numpy(scorer.pixel_std_).view(1, -1, 1, 1).to(device)
    _, _, height, width = images.shape
    blocks = torch.from_numpy(block_masks(height, width, scorer.n_blocks)).to(device)
    scores = np.empty(len(images))
    module.eval()
    with torch.inference_mode():
        for index, image in enumerate(images):
            standardized = (torch.from_numpy(image[None]).to(device) - mean) / std
            errors = []
            for block in blocks:
                masked = standardized * (~block).float()
                reconstruction = module(masked)
                squared = ((reconstruction - standardized) * std) ** 2
                errors.append(float(squared[:, :, block].max()))
            scores[index] = max(errors)
    return scores


def floor(scorer: ReconstructionScorer, n_inputs: int, image_shape: tuple[int, ...],
          repeats: int) -> tuple[float, int]:
    """Seconds for ``n_inputs`` forward passes at the fastest batch size, and that size."""
    module, device = scorer.module_, scorer.device_
    module.eval()
    timings = {}
    for batch in (1, 2, 4, 8, 16, 32, 64, 128):
        inputs = torch.randn((batch, *image_shape), device=device)
        n_calls = max(1, n_inputs // batch)

        def run(inputs: torch.Tensor = inputs, n_calls: int = n_calls) -> None:
            with torch.inference_mode():
                for _ in range(n_calls):
                    module(inputs)
            if device.type == "cuda":
                torch.cuda.synchronize()

        timings[batch] = best_time(run, repeats) * n_inputs / (n_calls * batch)
    fastest = min(timings, key=timings.__getitem__)
    return timings[fastest], fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-samples", type=int, default=128)
    parser.add_argument("--n-blocks", type=int, default=16)
    parser.add_argument("--width", type=int, default=16, help="base_channels of the UNet")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    X, _ = make_defect_images(n_samples=args.n_samples, image_size=args.image_size,
                              random_state=0)
    scorer = ReconstructionScorer(base_channels=args.width, depth=args.depth,
                                  n_blocks=args.n_blocks, max_epochs=1, device=args.device,
                                  precision=args.precision, random_state=0).fit(X[:32])
    print(f"settings: {vars(args)}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, device {scorer.device_}, {platform.machine()}")
    n = len(X)
    sid4ds_seconds = best_time(lambda: scorer.score_samples(X), args.repeats)
    scorer_fp32 = scorer.set_params(precision="fp32")
    single_seconds = best_time(lambda: batch_size_one(scorer_fp32, X), args.repeats)
    floor_seconds, best_batch = floor(scorer, n * args.n_blocks, X.shape[1:], args.repeats)
    scorer.set_params(precision=args.precision)
    agree = np.corrcoef(scorer.score_samples(X), batch_size_one(scorer_fp32, X))[0, 1]
    print("| implementation | images/s | forward inputs/s | seconds |")
    print("|---|---|---|---|")
    for name, seconds in (("sid4ds score_samples", sid4ds_seconds),
                          ("batch size 1 (paper protocol)", single_seconds),
                          (f"floor: forward passes only, batch {best_batch}", floor_seconds)):
        print(f"| {name} | {n / seconds:.1f} | {n * args.n_blocks / seconds:.0f} | "
              f"{seconds:.2f} |")
    print(f"sid4ds / batch size 1 speed-up: {single_seconds / sid4ds_seconds:.2f}x")
    print(f"sid4ds time / floor time: {sid4ds_seconds / floor_seconds:.2f}x")
    print(f"correlation of sid4ds and batch-size-1 scores: {agree:.6f}")


if __name__ == "__main__":
    main()
