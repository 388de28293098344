"""QDQ Studio demo recipe: the DemoNet shape classifier.

A recipe is a plain Python file that defines two functions:

* ``build_model()`` returns a ``torch.nn.Module`` ready for ``eval()``;
* ``example_inputs()`` returns a tuple of example input tensors.

This file is also the single definition of ``DemoNet``: ``make_demo.py`` imports it by path to train the
bundled demo model. ``build_model()`` loads the trained weights from ``weights.pt`` next to this file
(``torch.load(..., weights_only=True)``); without that file it returns a deterministically initialised,
untrained network.

Input: RGB images, 3x64x64, pixels scaled to [0, 1] then normalised with the ImageNet mean and std.
Output: logits for the classes listed in ``classes.txt`` (in output-index order).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CLASSES = ("circle", "square", "triangle", "cross", "stripes", "ring")
INPUT_SHAPE = (3, 64, 64)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS = Path(__file__).with_name("weights.pt")


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class ResidualBlock(nn.Module):
    """conv-bn-relu, conv-bn, add the input, relu."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(channels, channels)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = conv_bn(channels, channels)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + x)


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv (groups=channels)-bn-relu, then pointwise 1x1 conv-bn-relu."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw, self.dw_bn = conv_bn(cin, cin, 3, stride=stride, groups=cin)
        self.dw_relu = nn.ReLU()
        self.pw, self.pw_bn = conv_bn(cin, cout, 1)
        self.pw_relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_relu(self.dw_bn(self.dw(x)))
        return self.pw_relu(self.pw_bn(self.pw(x)))


class DemoNet(nn.Module):
    """A small CNN for 3x64x64 images (about 115k parameters)."""

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(3, 16, stride=2), nn.ReLU())  # 16 x 32 x 32
        self.res1 = ResidualBlock(16)
        self.down = nn.Sequential(*conv_bn(16, 32, stride=2), nn.ReLU())  # 32 x 16 x 16
        self.res2 = ResidualBlock(32)
        self.dwsep = DepthwiseSeparable(32, 64, stride=2)  # 64 x 8 x 8
        self.res3 = ResidualBlock(64)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.res1(x)
        x = self.down(x)
        x = self.res2(x)
        x = self.dwsep(x)
        x = self.res3(x)
        return self.fc(self.flatten(self.pool(x)))


def init_model(seed: int = 0) -> DemoNet:
    """DemoNet with a deterministic initialisation that leaves the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DemoNet()


def build_model() -> nn.Module:
    model = init_model()
    if WEIGHTS.is_file():
        model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval()


def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randn(2, *INPUT_SHAPE),)
