import pytest
import torch

from sid4ds.nn.unet import UNet, check_divisible


@pytest.mark.parametrize("skip_connections", [True, False])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("size", [(16, 16), (16, 32), (24, 40)])
def test_unet_keeps_spatial_size_and_sets_channels(size, dilation, skip_connections):
    net = UNet(in_channels=3, out_channels=2, base_channels=4, depth=3 if size[0] % 8 == 0
               else 2, dilation=dilation, skip_connections=skip_connections)
    output = net(torch.zeros(2, 3, *size))
    assert output.shape == (2, 2, *size)


def test_skip_connections_change_the_decoder_width():
    with_skips = UNet(base_channels=4, depth=2, skip_connections=True)
    without = UNet(base_channels=4, depth=2, skip_connections=False)
    assert with_skips.decoder[0][0].in_channels == 2 * without.decoder[0][0].in_channels


def test_dilation_is_applied_to_every_3x3_convolution():
    net = UNet(base_channels=4, depth=2, dilation=3)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs and all(conv.dilation == (3, 3) and conv.padding == (3, 3) for conv in convs)


def test_encode_returns_the_bottleneck():
    net = UNet(base_channels=4, depth=3)
    assert net.encode(torch.zeros(1, 1, 32, 32)).shape == (1, 32, 4, 4)


@pytest.mark.parametrize(
    ("height", "width", "depth", "message"),
    [
        (50, 64, 3, "image height 50 is not divisible by 2\\*\\*depth=8; pad to 56 or set depth=1"),
        (64, 36, 3, "image width 36 is not divisible by 2\\*\\*depth=8; pad to 40 or set depth=2"),
        (15, 16, 2, "image height 15 .* pad to 16 or resize the images"),
    ],
)
def test_indivisible_sizes_say_what_to_pad_to(height, width, depth, message):
    with pytest.raises(ValueError, match=message):
        check_divisible(height, width, depth)
    with pytest.raises(ValueError, match=message):
        UNet(base_channels=2, depth=depth)(torch.zeros(1, 1, height, width))
