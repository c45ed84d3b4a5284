"""Test-time augmentation by translation: a batch and its copies shifted by `shift` pixels up,
down, left and right, the vacated border filled with the background (zeros before normalising:
the batch's own minimum). Never flipped or rotated: a mirrored 2 is not a 2."""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

DIRECTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (rows, columns): up, down, left, right


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """(B, C, H, W) moved dy rows down and dx columns right; what enters is background."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    padded = F.pad(x, (p, p, p, p), value=float(x.min()))
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def shifted_views(x: torch.Tensor, shift: int) -> List[torch.Tensor]:
    """The batch itself, then its four translations by `shift` pixels."""
    return [x, *(translate(x, dy * shift, dx * shift) for dy, dx in DIRECTIONS)]


def tta_logits(net, x: torch.Tensor, shift: int) -> torch.Tensor:
    """Mean logits over the shifted views, one forward pass each (five stacked batches would
    spill the CPU's cache, as data.eval_batch_size explains)."""
    return torch.stack([net(view) for view in shifted_views(x, shift)]).mean(0)
