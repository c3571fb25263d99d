"""Training augmentations that keep images and masks aligned.

Every transform is drawn per image from a torch Generator (the estimator's, so the same
``random_state`` gives the same augmentations) and applied to the image and its mask (or
its reconstruction target) alike.

- ``"flip"``: horizontal and vertical flips, each with probability 1/2;
- ``"rot90"``: a transpose with probability 1/2, which with the flips gives every 90°
  rotation and mirror of a square image (so it needs square images);
- ``"brightness_contrast"``: brightness ±0.1 and contrast ×0.8–1.2 about the image mean
  (the paper's colour/contrast augmentation of S), on the image only;
- ``"paste"``: copy-paste of defects (:func:`paste_defects`): half of the normal images of
  a batch get the defect pixels of one of the batch's defective images, moved to a random
  place and brought to the normal image's mean level, and its mask.

:func:`random_crops` cuts a window out of each image and its mask (S's ``crop_size``), so
that a training step costs the same whatever the image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sid4ds._core.validation import check_float

__all__ = ["AUGMENTATIONS", "DEFAULT_AUGMENT", "augment_batch", "check_augment", "crop_window",
           "paste_defects", "random_crops", "random_flips"]

#: The augmentations :func:`augment_batch` knows, in the order they are applied.
AUGMENTATIONS = ("paste", "brightness_contrast", "flip", "rot90")

#: S's augmentations by default (``augment=True``): copies of the batch's defects pasted
#: onto normal images, brightness and contrast, flips.
DEFAULT_AUGMENT = ("paste", "brightness_contrast", "flip")

#: Share of a batch's normal images that :func:`paste_defects` gives a defect.
PASTE_SHARE = 0.5


def check_augment(augment: Any, name: str = "augment",
                  default: Sequence[str] = DEFAULT_AUGMENT) -> tuple[str, ...]:
    """The augmentations an ``augment`` parameter asks for, as a tuple of names.

    ``True`` means ``default``, ``False`` or ``None`` none; otherwise a sequence of names of
    :data:`AUGMENTATIONS`.

    Examples
    --------
    >>> from sid4ds.nn.augment import check_augment
    >>> check_augment(True), check_augment(["flip", "rot90"]), check_augment(False)
    (('paste', 'brightness_contrast', 'flip'), ('flip', 'rot90'), ())
    """
    if augment is True:
        return tuple(default)
    if augment is False or augment is None:
        return ()
    if isinstance(augment, str) or not isinstance(augment, Sequence):
        raise TypeError(f"{name} must be True, False or a sequence of "
                        f"{', '.join(AUGMENTATIONS)}; got {augment!r}")
    unknown = [item for item in augment if item not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"{name} has unknown augmentations {unknown}; choose from "
                         f"{', '.join(AUGMENTATIONS)}")
    return tuple(augment)


def random_flips(tensors: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Flip each image (and its companions) up-down, then left-right, each with p = 1/2.

    Parameters
    ----------
    tensors : list of Tensor of shape (n, channels, H, W)
        Flipped alike: the same draws for every tensor.
    generator : torch.Generator
        On the tensors' device.
    """
    shape = (tensors[0].shape[0], 1, 1, 1)
    for axis in (2, 3):
        flip = torch.rand(shape, generator=generator, device=tensors[0].device) < 0.5
        tensors = [torch.where(flip, tensor.flip(axis), tensor) for tensor in tensors]
    return tensors


def crop_window(size: int | tuple[int, int], height: int, width: int) -> tuple[int, int]:
    """Height and width of the window :func:`random_crops` cuts out of an image.

    Parameters
    ----------
    size : int or (int, int)
        The window asked for.
    height, width : int
        The image's size.

    Returns
    -------
    rows, cols : int
        ``(min(size[0], height), min(size[1], width))``: an image no larger is kept whole.

    Examples
    --------
    >>> from sid4ds.nn.augment import crop_window
    >>> crop_window(64, 128, 48)
    (64, 48)
    """
    rows, cols = (size, size) if isinstance(size, int) else size
    return min(int(rows), height), min(int(cols), width)


def random_crops(images: torch.Tensor, masks: torch.Tensor, size: tuple[int, int],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A window of ``size`` out of each image and its mask, at a random place.

    The window of an image with defect pixels holds one of them, drawn at random (so a
    defect-aware batch keeps its defects); elsewhere it is drawn uniformly. Images no
    larger than ``size`` come back unchanged, and then nothing is drawn from
    ``generator``.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
    masks : Tensor of shape (n, 1, H, W)
    size : (int, int)
        Height and width of the window (each at most the image's).
    generator : torch.Generator
        On the tensors' device.

    Returns
    -------
    images, masks : Tensors of shape (n, C, h, w) and (n, 1, h, w)
        ``(h, w) = (min(size[0], H), min(size[1], W))``.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.nn.augment import random_crops
    >>> images = torch.zeros(2, 1, 8, 8); masks = torch.zeros(2, 1, 8, 8)
    >>> masks[0, 0, 7, 7] = 1  # a defect in the corner: every window holds it
    >>> _, crops = random_crops(images, masks, (4, 4), torch.Generator().manual_seed(0))
    >>> crops.shape, float(crops[0].sum())
    (torch.Size([2, 1, 4, 4]), 1.0)
    """
    height, width = images.shape[2:]
    rows, cols = crop_window(size, height, width)
    if (rows, cols) == (height, width):
        return images, masks

    def draw(count: int) -> int:
        return int(torch.randint(count, (1,), generator=generator, device=images.device))

    cut_images, cut_masks = [], []
    for index in range(images.shape[0]):
        top_range, left_range = (0, height - rows), (0, width - cols)
        defect = torch.nonzero(masks[index, 0] > 0)
        if len(defect):
            row, col = (int(value) for value in defect[draw(len(defect))])
            top_range = (max(0, row - rows + 1), min(row, height - rows))
            left_range = (max(0, col - cols + 1), min(col, width - cols))
        top = top_range[0] + draw(top_range[1] - top_range[0] + 1)
        left = left_range[0] + draw(left_range[1] - left_range[0] + 1)
        cut_images.append(images[index, :, top : top + rows, left : left + cols])
        cut_masks.append(masks[index, :, top : top + rows, left : left + cols])
    return torch.stack(cut_images), torch.stack(cut_masks)


def paste_defects(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
                  share: float = PASTE_SHARE) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy the defects of a batch's defective images onto some of its normal images.

    Each normal image (no defect pixel in its mask) is picked with probability ``share``
    when the batch holds a defective image; a picked one gets the defect pixels of a
    defective image of the batch drawn at random, shifted by a random offset (cyclically,
    so a defect at the border wraps round) and raised or lowered by the difference of the
    two images' means, so that the defect keeps its contrast but not the level of the
    surface it came from. Its mask becomes the shifted defect mask. Defective images are
    left as they are. A few defective images then train S on many backgrounds (copy-paste
    augmentation, an addition to the paper).

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
        Values in [0, 1] (pasted pixels are clamped to that range).
    masks : Tensor of shape (n, 1, H, W)
        Binary masks.
    generator : torch.Generator
        On the tensors' device.
    share : float, default=0.5
        Probability that a normal image gets a defect.

    Returns
    -------
    images, masks : Tensors of the same shapes
        New tensors where something was pasted; the inputs are never changed (and are
        returned as they are when the batch holds no defective or no normal image).

    Raises
    ------
    ValueError
        When ``share`` is not in [0, 1].

    Examples
    --------
    >>> import torch
    >>> from sid4ds.nn.augment import paste_defects
    >>> images = torch.full((2, 1, 8, 8), 0.5); masks = torch.zeros(2, 1, 8, 8)
    >>> images[0, 0, 2:4, 2:4] = 0.9; masks[0, 0, 2:4, 2:4] = 1  # one defective image
    >>> pasted, pasted_masks = paste_defects(images, masks, torch.Generator().manual_seed(0),
    ...                                      share=1.0)
    >>> float(pasted_masks[1].sum()), round(float(pasted[1].max()), 2)  # 0.9 less 0.025
    (4.0, 0.88)
    """
    check_float(share, "share", low=0.0, high=1.0)
    has_defect = masks.flatten(1).amax(dim=1) > 0
    sources = torch.nonzero(has_defect).flatten()
    if not len(sources) or bool(has_defect.all()):
        return images, masks
    options = {"device": images.device, "generator": generator}
    height, width = images.shape[2:]
    images, masks = images.clone(), masks.clone()
    for target in torch.nonzero(~has_defect).flatten().tolist():
        if float(torch.rand((1,), **options)) >= share:
            continue
        source = int(sources[int(torch.randint(len(sources), (1,), **options))])
        shift = (int(torch.randint(height, (1,), **options)),
                 int(torch.randint(width, (1,), **options)))
        defect = masks[source].roll(shift, dims=(1, 2))
        level = (images[target].mean(dim=(1, 2), keepdim=True)
                 - images[source].mean(dim=(1, 2), keepdim=True))
        moved = (images[source].roll(shift, dims=(1, 2)) + level).clamp(0.0, 1.0)
        images[target] = torch.where(defect > 0, moved, images[target])
        masks[target] = defect
    return images, masks


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator,
    augmentations: Sequence[str] = DEFAULT_AUGMENT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``augmentations`` (names of :data:`AUGMENTATIONS`) to a batch and its masks.

    Parameters
    ----------
    images : Tensor of shape (n, C, H, W)
        Values in [0, 1] (brightness/contrast clamps to that range).
    masks : Tensor of shape (n, 1, H, W)
    generator : torch.Generator
        On the same device.
    augmentations : sequence of str, default=DEFAULT_AUGMENT
        Applied in the order of :data:`AUGMENTATIONS`, whatever the order given.

    Returns
    -------
    augmented_images, augmented_masks : Tensors of the same shapes

    Raises
    ------
    ValueError
        For ``"rot90"`` on images that are not square.
    """
    options = {"device": images.device, "generator": generator}
    shape = (images.shape[0], 1, 1, 1)
    if "paste" in augmentations:
        images, masks = paste_defects(images, masks, generator)
    if "brightness_contrast" in augmentations:
        brightness = (torch.rand(shape, **options) - 0.5) * 0.2
        contrast = 0.8 + 0.4 * torch.rand(shape, **options)
        means = images.mean(dim=(1, 2, 3), keepdim=True)
        images = ((images - means) * contrast + means + brightness).clamp(0.0, 1.0)
    if "flip" in augmentations:
        images, masks = random_flips([images, masks], generator)
    if "rot90" in augmentations:
        if images.shape[2] != images.shape[3]:
            raise ValueError(
                f"augment 'rot90' needs square images; these are {images.shape[2]}x"
                f"{images.shape[3]}: leave 'rot90' out of augment"
            )
        turn = torch.rand(shape, **options) < 0.5
        images = torch.where(turn, images.transpose(2, 3), images)
        masks = torch.where(turn, masks.transpose(2, 3), masks)
    return images, masks
