"""The conv stack and the classifier built on it, both read off the shape plan.

For the reference `cnn3` on an MNIST digit (data/idx.py's IMAGE_SHAPE; another input's shape comes
from its data, and `python -m cnnexp.shapes` prints the full table):

    x        1×28×28
    block1   conv 3×3 s1 p1 → 32×28×28, ReLU, maxpool 2/2 → 32×14×14
    block2   conv 3×3 s1 p1 → 64×14×14, ReLU, maxpool 2/2 → 64×7×7
    block3   conv 3×3 s1 p1 → 128×7×7,  ReLU, maxpool 3/2 p1 → 128×4×4
    head     flatten 2048 → linear 625 (Xavier) → ReLU → dropout 0.5 → linear 10

The number of spatial axes is the plan's (the data's): a series C×L gets Conv1d, BatchNorm1d and
the 1-D pools; a volume or clip C×D×H×W gets their 3-D forms; the same rows build each.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import List

import torch
from torch import nn

from cnnexp.models import modules
from cnnexp.arithmetic.geometry import POOLS, Layer


def pool_module(layer: Layer) -> nn.Module:
    """maxpool / avgpool / l2pool rows → the module class geometry.POOLS names."""
    name = f"{POOLS[layer.kind.removesuffix('pool')]}{layer.dims}d"
    cls = getattr(nn, name, None) or getattr(modules, name)
    return cls(layer.kernel, layer.stride, layer.padding)


def nd(name: str, layer: Layer):
    """torch's class for the row's number of axes: nd("Conv", row of a series) → nn.Conv1d."""
    return getattr(nn, f"{name}{layer.dims}d")


ACTIVATIONS = {  # in place where the backward pass needs the input, not the output
    "relu": lambda: nn.ReLU(inplace=True),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
}
NORMS = {
    "batchnorm": lambda l: nd("BatchNorm", l)(l.out_shape[0]),
    "groupnorm": lambda l: nn.GroupNorm(l.groups, l.out_shape[0]),
}


def conv_blocks(layers: List[Layer]) -> nn.Sequential:
    """block1 … blockN, each (pad) → conv → (norm) → activation → (pool), or with model.pool_first
    (pad) → conv → pool → (norm) → activation, from the plan's rows."""
    blocks: "OrderedDict[str, nn.Sequential]" = OrderedDict()
    pending = {}  # block → its activation, added once the norm (if any) is in place
    # model.pool_first: conv → pool → norm → activation (the activation is added last)
    pooled_first = {l.block for n, l in enumerate(layers) if l.kind in NORMS
                    and any(p.block == l.block and p.kind.endswith("pool") for p in layers[:n])}
    for layer in layers:
        parts = blocks.setdefault(layer.block, nn.Sequential())
        if layer.kind == "conv":
            if layer.symmetric:
                padding = layer.pads[0][0]
            else:  # "same" with an odd total (or a padding per axis): pad first, as TensorFlow does
                # (B, C, *in) → (B, C, *padded); F.pad's order is the last axis first
                parts.add_module("pad", nd("ZeroPad", layer)(tuple(p for pair in reversed(layer.pads) for p in pair)))
                padding = 0
            # (B, C, *in) → (B, C', *out): Conv1d on a series, Conv2d on images, Conv3d on volumes
            parts.add_module("conv", nd("Conv", layer)(layer.in_shape[0], layer.out_shape[0], layer.kernel,
                                                       layer.stride, padding, dilation=layer.dilation,
                                                       groups=layer.groups, bias=layer.bias))
            pending[layer.block] = layer.activation
            continue
        if layer.kind in NORMS:
            parts.add_module("norm", NORMS[layer.kind](layer))
            continue
        if layer.block not in pooled_first:
            _activate(parts, pending.pop(layer.block, "none"))
        if layer.kind.endswith("pool"):
            parts.add_module("pool", pool_module(layer))
    for block, activation in pending.items():  # blocks without a pool
        _activate(blocks[block], activation)
    return nn.Sequential(blocks)


def _activate(parts: nn.Sequential, activation: str) -> None:
    if activation != "none":
        parts.add_module(activation, ACTIVATIONS[activation]())


class ConvClassifier(nn.Module):
    """Conv blocks → flatten → hidden linears (ReLU, dropout) → class logits."""

    def __init__(self, model_settings):
        super().__init__()
        self.layers = model_settings.layers
        self.features = conv_blocks([l for l in self.layers if l.block != "head"])
        head: List[nn.Module] = [nn.Flatten()]
        linears = [l for l in self.layers if l.kind == "linear"]
        for n, layer in enumerate(linears):
            linear = nn.Linear(layer.in_shape[0], layer.out_shape[0])  # model.head.init=pytorch: as built
            if model_settings.head.init == "xavier":
                nn.init.xavier_uniform_(linear.weight)  # as the reference notebook does
            elif model_settings.head.init == "zero" and n == len(linears) - 1:
                nn.init.zeros_(linear.weight)  # every class starts equally likely, as the speedruns start
                nn.init.zeros_(linear.bias)
            head.append(linear)
            if n < len(linears) - 1:
                head += [nn.ReLU(inplace=True), nn.Dropout(model_settings.head.dropout)]
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)   # (B, C, *size) → (B, C', *size'), e.g. 1×28×28 → 128×4×4
        return self.head(x)    # (B, C'·∏size') → (B, num_classes), e.g. 2048 → 625 → 10
