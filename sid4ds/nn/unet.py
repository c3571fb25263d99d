"""The UNet behind every sid4ds learner (pure PyTorch, no scikit-learn).

The SID4DS paper (§3.1.2) uses a UNet whose encoder is VGG-style (two 3×3 convolutions per
level) and whose convolutions are dilated to widen the receptive field; skip connections are
optional. The same network serves the segmentation learner (one logit per pixel) and both
reconstruction learners (one value per pixel and channel).
"""

from __future__ import annotations

import torch
from torch import nn

from sid4ds._core.validation import check_divisible

__all__ = ["ConvBlock", "UNet", "check_divisible"]


class ConvBlock(nn.Sequential):
    """Two 3×3 (optionally dilated) convolutions, each followed by BatchNorm and ReLU.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    dilation : int, default=1
        Dilation of both convolutions; padding keeps the spatial size.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.nn.unet import ConvBlock
    >>> ConvBlock(1, 4, dilation=2)(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 4, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """VGG-style UNet with dilated 3×3 convolutions and optional skip connections.

    Parameters
    ----------
    in_channels : int, default=1
        Channels of the input images.
    out_channels : int, default=1
        Channels of the output map (1 logit per pixel for segmentation, ``in_channels``
        for reconstruction).
    base_channels : int, default=16
        Width of the first level; level ``i`` has ``base_channels * 2**i`` channels.
    depth : int, default=3
        Number of down-sampling steps. Input height and width must be divisible by
        ``2**depth``.
    dilation : int, default=1
        Dilation of every 3×3 convolution.
    skip_connections : bool, default=True
        Concatenate encoder features into the decoder (classic UNet). Without them the net
        is a plain encoder–decoder.

    Examples
    --------
    >>> import torch
    >>> from sid4ds.nn.unet import UNet
    >>> net = UNet(in_channels=1, out_channels=1, base_channels=4, depth=2)
    >>> net(torch.zeros(3, 1, 16, 16)).shape
    torch.Size([3, 1, 16, 16])
    >>> net.encode(torch.zeros(3, 1, 16, 16)).shape
    torch.Size([3, 16, 4, 4])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 16,
        depth: int = 3,
        dilation: int = 1,
        skip_connections: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.depth = depth
        self.skip_connections = skip_connections
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.encoder.append(ConvBlock(channels, width, dilation))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(widths[-2] if depth else in_channels, widths[-1], dilation)
        self.upsamplers = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            self.upsamplers.append(
                nn.ConvTranspose2d(widths[level + 1], widths[level], kernel_size=2, stride=2)
            )
            decoder_in = widths[level] * (2 if skip_connections else 1)
            self.decoder.append(ConvBlock(decoder_in, widths[level], dilation))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def encode_levels(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Bottleneck features and the output of every encoder level (the skips).

        Returns
        -------
        bottleneck : Tensor of shape (n, base_channels·2**depth, H / 2**depth, W / 2**depth)
        skips : list of Tensor
            Level ``i`` has shape (n, base_channels·2**i, H / 2**i, W / 2**i).
        """
        check_divisible(images.shape[-2], images.shape[-1], self.depth)
        skips = []
        features = images
        for block in self.encoder:
            features = block(features)
            skips.append(features)
            features = self.pool(features)
        return self.bottleneck(features), skips

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Bottleneck features, shape (n, base_channels·2**depth, H / 2**depth, W / 2**depth)."""
        return self.encode_levels(images)[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map images of shape (n, in_channels, H, W) to (n, out_channels, H, W)."""
        features, skips = self.encode_levels(images)
        stages = zip(self.upsamplers, self.decoder, reversed(skips), strict=True)
        for upsample, block, skip in stages:
            features = upsample(features)
            if self.skip_connections:
                features = torch.cat([features, skip], dim=1)
            features = block(features)
        return self.head(features)
