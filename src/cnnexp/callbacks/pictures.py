"""Inputs of any dimensionality as pictures for TensorBoard: a 2-D batch is already images; a
series (N×C×L) becomes a line plot per example, its channels in distinct colours; a volume or clip
(N×C×D×H×W) becomes a strip of up to STRIP slices along D (frames, for a clip) side by side. The
views (callbacks/views.py) draw every grid through `as_images`, so each view works in 1, 2 and 3-D.
"""

from __future__ import annotations

import torch

LINE_HEIGHT = 48   # pixels of a series' plot
STRIP = 8          # slices of a volume shown, evenly spaced along its depth
COLOURS = torch.tensor([[1.0, 1.0, 1.0], [0.9, 0.3, 0.3], [0.3, 0.8, 0.3], [0.3, 0.5, 1.0], [0.9, 0.8, 0.2],
                        [0.8, 0.4, 0.9], [0.3, 0.9, 0.9], [1.0, 0.6, 0.3]])


def line_images(x: torch.Tensor, height: int = LINE_HEIGHT) -> torch.Tensor:
    """(N, C, L) in [0, 1] → (N, 3, height, L) RGB: each channel a line, high values at the top, the
    columns between two steps filled so the line has no gaps."""
    n, c, length = x.shape
    rows = ((1 - x.clamp(0, 1)) * (height - 1)).round().long()            # (N, C, L)
    low = torch.minimum(rows, torch.cat([rows[..., 1:], rows[..., -1:]], -1))
    high = torch.maximum(rows, torch.cat([rows[..., 1:], rows[..., -1:]], -1))
    ys = torch.arange(height).view(1, 1, height, 1)
    on = (ys >= low.unsqueeze(2)) & (ys <= high.unsqueeze(2))              # (N, C, height, L)
    colours = COLOURS[torch.arange(c) % len(COLOURS)].view(1, c, 3, 1, 1)
    return (on.unsqueeze(2).float() * colours).amax(1)                    # (N, 3, height, L)


def slice_strips(x: torch.Tensor, slices: int = STRIP) -> torch.Tensor:
    """(N, C, D, H, W) → (N, C, H, k·W + k − 1): k ≤ `slices` depth slices, evenly spaced, side by
    side with a one-pixel white gap."""
    depth = x.shape[2]
    picked = torch.linspace(0, depth - 1, min(slices, depth)).round().long().unique()
    parts = []
    for i, d in enumerate(picked):
        parts.append(x[:, :, d])
        if i < len(picked) - 1:
            parts.append(torch.ones_like(x[:, :, d, :, :1]))
    return torch.cat(parts, -1)


def as_images(x: torch.Tensor) -> torch.Tensor:
    """A batch of inputs in [0, 1] (N, C, *spatial) → images (N, C′, H, W)."""
    if x.dim() == 3:
        return line_images(x)
    if x.dim() == 5:
        return slice_strips(x)
    return x


def maps_as_tiles(fmap: torch.Tensor, channels: int) -> torch.Tensor:
    """Feature maps (N, C, *spatial) → one grey tile per (example, channel), each scaled to [0, 1]:
    a series' channel is a line, a volume's a slice strip."""
    f = fmap[:, :channels].float().cpu()
    flat = f.flatten(2)
    low, high = flat.min(-1).values, flat.max(-1).values
    f = (f - low.view(*low.shape, *[1] * (f.dim() - 2))) / (high - low).clamp_min(1e-8).view(*low.shape, *[1] * (f.dim() - 2))
    tiles = f.reshape(-1, 1, *f.shape[2:])                                 # (N·C, 1, *spatial)
    return as_images(tiles)[:, :1] if f.dim() == 3 else as_images(tiles)


def filters_as_tiles(w: torch.Tensor) -> torch.Tensor:
    """Conv weights (out, in, *k) → tiles: a 1-D kernel as a 1×k strip, a 3-D one as its k slices side by side."""
    w = w[:, :1] if w.shape[1] != 3 else w
    if w.dim() == 3:
        return w.unsqueeze(2)                                              # (out, in, 1, k)
    if w.dim() == 5:
        return slice_strips(w, slices=w.shape[2])
    return w
