"""MNIST: where the files come from and how they are checked (sources, idx), and the
LightningDataModule that holds them in memory (mnist)."""
