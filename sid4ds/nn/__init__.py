"""The networks and how they are trained, in plain PyTorch and numpy: the UNet
(:class:`~sid4ds.nn.unet.UNet`), the losses of S, the augmentations and the training
recipe (step budgets, learning rates, defect-aware batches). No scikit-learn."""

from sid4ds.nn.unet import UNet

__all__ = ["UNet"]
