"""The masking schemes of the reconstruction learners M and G (paper §3.1, §3.3).

What M and G hide and what they are asked to paint: the random patches M learns to fill
(:func:`random_patch_masks`, Fig. 4), the sequential blocks of E_msmr
(:func:`block_masks`, eq. 3) and the error each block measures (:func:`block_errors`),
and G's label-guided input and target (:func:`guided_pair`, eq. 5–7). Pure functions on
arrays and tensors; :class:`sid4ds.estimators.reconstruction.ReconstructionScorer` calls
them, and re-exports :func:`block_masks` and :func:`random_patch_masks`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["ERROR_REGIONS", "block_errors", "block_masks", "guided_pair", "masked_copies",
           "random_patch_masks"]

# How E_msmr measures each block's error (``ReconstructionScorer.error_region``).
ERROR_REGIONS = ("block", "block_max", "image")


def block_masks(height: int, width: int, n_blocks: int) -> np.ndarray:
    """The ``n_blocks`` sequential masks of E_msmr: a near-square grid of equal blocks.

    The grid has ``rows × cols = n_blocks`` with ``rows`` the largest divisor of
    ``n_blocks`` not above its square root; block edges are spread as evenly as the image
    size allows.

    Parameters
    ----------
    height, width : int
        Image size.
    n_blocks : int
        Number of blocks Z.

    Returns
    -------
    masks : ndarray of shape (n_blocks, height, width), bool
        ``masks[z]`` is True on block z. Every pixel belongs to exactly one block.

    Examples
    --------
    >>> from sid4ds.estimators.reconstruction import block_masks
    >>> masks = block_masks(8, 8, 4)
    >>> masks.shape, int(masks.sum(axis=0).min()), int(masks[0].sum())
    ((4, 8, 8), 1, 16)
    """
    rows = max(divisor for divisor in range(1, int(np.sqrt(n_blocks)) + 1)
               if n_blocks % divisor == 0)
    cols = n_blocks // rows
    if rows > height or cols > width:
        raise ValueError(
            f"n_blocks={n_blocks} needs a {rows}x{cols} grid of blocks, larger than the "
            f"{height}x{width} image; use fewer blocks"
        )
    row_edges = np.linspace(0, height, rows + 1).round().astype(int)
    col_edges = np.linspace(0, width, cols + 1).round().astype(int)
    masks = np.zeros((n_blocks, height, width), dtype=bool)
    for row in range(rows):
        for col in range(cols):
            masks[row * cols + col, row_edges[row] : row_edges[row + 1],
                  col_edges[col] : col_edges[col + 1]] = True
    return masks


def random_patch_masks(
    n_images: int,
    height: int,
    width: int,
    patch_size: int,
    mask_ratio: float,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Random patch masks for masked-reconstruction training (paper Fig. 4).

    Each image is cut into non-overlapping ``patch_size`` squares (edge patches are cropped)
    and ``round(mask_ratio · n_patches)`` of them, chosen at random, are masked.

    Returns
    -------
    masks : Tensor of shape (n_images, 1, height, width), float32
        1 on masked pixels.
    """
    grid_rows, grid_cols = -(-height // patch_size), -(-width // patch_size)
    n_patches = grid_rows * grid_cols
    n_masked = int(round(mask_ratio * n_patches))
    noise = torch.rand((n_images, n_patches), generator=generator, device=device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    patch_mask = (ranks < n_masked).float().view(n_images, 1, grid_rows, grid_cols)
    pixel_mask = patch_mask.repeat_interleave(patch_size, 2).repeat_interleave(patch_size, 3)
    return pixel_mask[:, :, :height, :width]


def masked_copies(images: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """One copy of each image per block, with that block hidden (set to the mean, 0).

    Parameters
    ----------
    images : Tensor of shape (n, channels, height, width)
        Standardised images.
    visible : Tensor of shape (n_blocks, 1, height, width)
        0 on the hidden block of each copy, 1 elsewhere.

    Returns
    -------
    copies : Tensor of shape (n · n_blocks, channels, height, width)
        Copy ``z`` of image ``i`` at row ``i · n_blocks + z``.
    """
    return (images[:, None] * visible[None]).flatten(0, 1)


def block_errors(squared: torch.Tensor, hidden: torch.Tensor, block_pixels: torch.Tensor,
                 error_region: str) -> torch.Tensor:
    """The error of each masked copy, reduced as ``error_region`` says.

    Parameters
    ----------
    squared : Tensor of shape (n, n_blocks, channels, height, width)
        Squared reconstruction error of each copy, in [0, 1] pixel units.
    hidden : Tensor of shape (n_blocks, 1, height, width)
        1 on the hidden block of each copy.
    block_pixels : Tensor of shape (n_blocks,)
        Hidden values of each block (pixels × channels).
    error_region : {"block", "block_max", "image"}
        Mean over the hidden block, largest value in it, or mean over the whole image.

    Returns
    -------
    errors : Tensor of shape (n, n_blocks)
    """
    if error_region == "block":
        return (squared * hidden[None]).flatten(2).sum(dim=2) / block_pixels
    if error_region == "block_max":
        return (squared * hidden[None]).flatten(2).amax(dim=2)
    return squared.flatten(2).mean(dim=2)


def guided_pair(
    images: torch.Tensor,
    defect_region: torch.Tensor,
    normals: torch.Tensor,
    n_mean: int,
    alphas: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G's training input and target for one batch (paper eq. 5–7).

    A normal image I0 is the mean of ``n_mean`` normal images drawn at random (eq. 5);
    each image is mixed with it at weight α0, α1 or 1 (eq. 6); the target is the mixed
    image with its defect region painted over by I0 (eq. 7).

    Parameters
    ----------
    images : Tensor of shape (n, channels, height, width)
        Standardised training images, on ``device``.
    defect_region : Tensor of shape (n, 1, height, width)
        Their defect masks (1 = defect pixel), float.
    normals : Tensor of shape (n_normal, channels, height, width)
        The standardised normal images I0 is drawn from, on ``device``.
    n_mean : int
        B of eq. 5.
    alphas : (float, float)
        α0 and α1 of eq. 6.
    generator : torch.Generator
        Draws the normal images and the weights, in that order.
    device : torch.device
        Where the draws are made.

    Returns
    -------
    mixed_input, target : Tensor of shape (n, channels, height, width)
    """
    alpha0, alpha1 = alphas
    n = len(images)
    picks = torch.randint(len(normals), (n, n_mean), generator=generator, device=device)
    normal_image = normals[picks].mean(dim=1)  # I0, eq. 5
    draw = torch.randint(6, (n, 1, 1, 1), generator=generator, device=device)
    weight = torch.where(draw % 3 == 0, alpha0,
                         torch.where(draw % 2 == 0, alpha1, 1.0))  # eq. 6
    mixed_input = weight * images + (1.0 - weight) * normal_image
    target = mixed_input * (1.0 - defect_region) + normal_image * defect_region  # eq. 7
    return mixed_input, target
