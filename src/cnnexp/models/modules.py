"""torch modules that torch lacks in the form the networks need (the shape rows they are built
from are `geometry.Layer`)."""

import torch
import torch.nn.functional as F
from torch import nn


class L2Pool2d(nn.Module):
    """L2-norm pooling: sqrt(Σ x²) over each window.

    torch's LPPool2d has no padding argument and its gradient is NaN on an all-zero window
    (common after ReLU); zero padding adds nothing to Σ x², and the eps keeps sqrt smooth at 0.
    """

    def __init__(self, kernel_size: int, stride: int, padding: int = 0, eps: float = 1e-12):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.eps = kernel_size, stride, padding, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = F.avg_pool2d(x * x, self.kernel_size, self.stride, self.padding, count_include_pad=True)
        return torch.sqrt(mean_sq * self.kernel_size**2 + self.eps)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Crop2d(nn.Module):
    """Keep rows [top, top + height) and columns [left, left + width)."""

    def __init__(self, top: int, left: int, height: int, width: int):
        super().__init__()
        self.top, self.left, self.height, self.width = top, left, height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.top:self.top + self.height, self.left:self.left + self.width]
