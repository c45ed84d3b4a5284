"""Convolutional autoencoder: the configurable conv stack, mirrored by transposed convolutions.

Each decoder layer undoes one encoder layer's geometry (see `geometry._mirror`), so the
reconstruction has exactly the input's size for any encoder the shape check accepts.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnexp.models.convnet import conv_blocks
from cnnexp.models.modules import Crop2d


class ConvAutoencoder(nn.Module):
    def __init__(self, model_settings):
        super().__init__()
        self.layers = model_settings.layers
        self.features = conv_blocks([l for l in self.layers if l.block.startswith("block")])
        decoder = OrderedDict()
        mirrors = [l for l in self.layers if l.kind == "convT"]
        for n, layer in enumerate(mirrors):
            parts = nn.Sequential()
            parts.add_module("convT", nn.ConvTranspose2d(
                layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.stride,
                layer.padding, output_padding=layer.output_padding, dilation=layer.dilation))
            if layer.crop is not None:
                parts.add_module("crop", Crop2d(*layer.crop, *layer.out_shape[1:]))
            if n < len(mirrors) - 1:  # the last layer outputs (normalised) pixels: no ReLU
                parts.add_module("relu", nn.ReLU())
            decoder[layer.block] = parts
        self.decoder = nn.Sequential(decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = self.features(x)    # (B, C, H, W) → (B, C', h, w)
        return self.decoder(code)  # (B, C', h, w) → (B, C, H, W)
