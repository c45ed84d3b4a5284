"""Convolutional autoencoder: the configurable conv stack, mirrored by transposed convolutions.

Each decoder layer undoes one encoder layer's geometry (see `geometry._mirror`), so the
reconstruction has exactly the input's size for any encoder the shape check accepts.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnexp.models.convnet import conv_blocks, nd
from cnnexp.models.modules import Crop


class ConvAutoencoder(nn.Module):
    def __init__(self, model_settings):
        super().__init__()
        self.layers = model_settings.layers
        self.features = conv_blocks([l for l in self.layers if l.block.startswith("block")])
        decoder = OrderedDict()
        mirrors = [l for l in self.layers if l.kind == "convT"]
        for n, layer in enumerate(mirrors):
            parts = nn.Sequential()
            # (B, C', *small) → (B, C, *large): ConvTranspose1d/2d/3d by the plan's axes
            parts.add_module("convT", nd("ConvTranspose", layer)(
                layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.stride,
                layer.padding, output_padding=layer.output_padding, dilation=layer.dilation))
            if layer.crop is not None:  # (B, C, *uncropped) → (B, C, *large)
                parts.add_module("crop", Crop(layer.crop, layer.out_shape[1:]))
            if n < len(mirrors) - 1:  # the last layer outputs (normalised) pixels: no ReLU
                parts.add_module("relu", nn.ReLU())
            decoder[layer.block] = parts
        self.decoder = nn.Sequential(decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = self.features(x)    # (B, C, *size) → (B, C', *small), e.g. 1×28×28 → 64×4×4
        return self.decoder(code)  # (B, C', *small) → (B, C, *size)
