"""data=seqmnist: MNIST read pixel by pixel as a 784-step sequence of one channel — the sequential
MNIST benchmark — and with data.permute=true the permuted one: the 784 steps in one fixed order
drawn from data.permute_seed (numpy's PCG64), the same for every run, so runs compare. The digits
are MNIST's own (its files, splits and normalisation: data/mnist.py); only the batch's view
changes, N×1×28×28 → N×1×784, then the permutation.
"""

from __future__ import annotations

from cnnexp.data.facts import DataFacts, mnist_sources, require

STEPS = 28 * 28


def permutation(seed: int):
    """The fixed order of the 784 steps (numpy, so predict and docs reproduce it without torch)."""
    import numpy as np

    return np.random.default_rng(seed).permutation(STEPS)


def facts(d, seed: int, test_after_fit: bool) -> DataFacts:
    from cnnexp.data.idx import TRAIN_IMAGES

    mnist_sources(d)
    require(isinstance(d.permute_seed, int) and d.permute_seed >= 0, "data.permute_seed", d.permute_seed,
            "an integer ≥ 0")
    name = "permuted MNIST" if d.permute else "sequential MNIST"
    return DataFacts((1, STEPS), [str(digit) for digit in range(10)], TRAIN_IMAGES - d.val_size, name)


def sizes(d, seed: int):
    from cnnexp.data.facts import mnist_sizes

    return mnist_sizes(d, seed)


def make(settings):
    """The DataModule: MNIST's, its batches read as sequences."""
    import torch

    from cnnexp.data.mnist import MNISTDataModule

    class SeqMNISTDataModule(MNISTDataModule):
        def __init__(self, data_settings, seed: int):
            super().__init__(data_settings, seed)
            self.order = torch.from_numpy(permutation(data_settings.permute_seed)) if data_settings.permute else None

        def to_input(self, images: torch.Tensor) -> torch.Tensor:
            x = super().to_input(images).reshape(len(images), 1, STEPS)  # N×1×28×28 → N×1×784, row by row
            return x if self.order is None else x[:, :, self.order.to(x.device)]

        def denormalize(self, x: torch.Tensor) -> torch.Tensor:
            return (x * self.std + self.mean).clamp(0, 1)

    return SeqMNISTDataModule(settings.data, seed=settings.seed)
