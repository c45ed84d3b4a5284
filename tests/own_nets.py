"""Networks of a user's own, for the tests of `model=own` (docs/own-network.md has the first):
the tests put this folder on PYTHONPATH and name them as tests.own_nets.Class... or own_nets.Class."""

import lightning as L
from torch import nn


class TinyNet(nn.Module):
    """Two convolutions and a linear layer: input_shape and num_classes from the platform, width as
    `model.width=…`."""

    def __init__(self, input_shape, num_classes, width: int = 8):
        super().__init__()
        channels, height, width_px = input_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),          # → width × H/2 × W/2
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),  # → 2·width × 4 × 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, num_classes))     # → num_classes

    def forward(self, x):
        return self.head(self.features(x))


class WrongOutput(nn.Module):
    """Forgets num_classes: 7 logits whatever the data has."""

    def __init__(self, input_shape):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], 7))

    def forward(self, x):
        return self.net(x)



class LitNet(L.LightningModule):
    """A LightningModule taken as a network: its forward gives the logits (its own steps are not used)."""

    def __init__(self, input_shape, num_classes, hidden: int = 16):
        super().__init__()
        pixels = input_shape[0] * input_shape[1] * input_shape[2]
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)


class NoParams(nn.Module):
    """Nothing to train: a flatten and a fixed slice."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x):
        return x.flatten(1)[:, : self.num_classes]


class Exits(nn.Module):
    """A constructor that ends the process."""

    def __init__(self, input_shape, num_classes):
        import sys

        sys.exit(0)
