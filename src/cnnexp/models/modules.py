"""torch modules that torch lacks in the form the networks need (the shape rows they are built
from are `geometry.Layer`), in 1, 2 or 3 spatial dimensions."""

import math
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

AVG_POOLS = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _axes(value: Union[int, Sequence[int]], dims: int) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * dims


class L2Pool(nn.Module):
    """L2-norm pooling: sqrt(Σ x²) over each window, along `dims` spatial axes.

    torch's LPPool has no padding argument (and no 3-D form before torch 2.2), and its gradient is
    NaN on an all-zero window (common after ReLU); zero padding adds nothing to Σ x², and the eps
    keeps sqrt smooth at 0.
    """

    dims = 2

    def __init__(self, kernel_size, stride, padding=0, eps: float = 1e-12):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.eps = kernel_size, stride, padding, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = math.prod(_axes(self.kernel_size, self.dims))
        mean_sq = AVG_POOLS[self.dims](x * x, self.kernel_size, self.stride, self.padding, count_include_pad=True)
        return torch.sqrt(mean_sq * window + self.eps)  # (B, C, *in) → (B, C, *out)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class L2Pool1d(L2Pool):
    dims = 1


class L2Pool2d(L2Pool):
    dims = 2


class L2Pool3d(L2Pool):
    dims = 3


class Crop(nn.Module):
    """Keep positions [start, start + size) along each of the last len(starts) axes."""

    def __init__(self, starts: Sequence[int], sizes: Sequence[int]):
        super().__init__()
        self.starts, self.sizes = tuple(starts), tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = tuple(slice(a, a + n) for a, n in zip(self.starts, self.sizes))
        return x[(..., *index)]  # (B, C, *full) → (B, C, *sizes)


class Crop2d(Crop):
    """Keep rows [top, top + height) and columns [left, left + width)."""

    def __init__(self, top: int, left: int, height: int, width: int):
        super().__init__((top, left), (height, width))
