"""The data a run trains on, by `data.name`: MNIST (where its files come from and how they are
checked: sources, idx; held in memory: mnist), a folder of your own images (images: the
torch-free scan; image_folder: the LightningDataModule), and the data of other dimensions —
series (1-D: ts, the .ts parser; series, the files and their rules), seqmnist (1-D), volumes and
moving_mnist (3-D), held as float tensors (arrays). What each holds before torch: facts (one function per
name); what predict reads for them: inputs; the one reader and check of every
numpy file handed over: npy; a UCR set fetched: ucr."""


def make_datamodule(settings):
    """The LightningDataModule for settings.data."""
    name = settings.data.name
    if name == "folder":
        from cnnexp.data.image_folder import FolderDataModule

        return FolderDataModule(settings.data, seed=settings.seed)
    if name == "series":
        from cnnexp.data.arrays import SeriesDataModule

        return SeriesDataModule(settings.data, seed=settings.seed)
    if name in ("seqmnist", "volumes", "moving_mnist"):
        import importlib

        return importlib.import_module(f"cnnexp.data.{name}").make(settings)
    from cnnexp.data.mnist import MNISTDataModule

    return MNISTDataModule(settings.data, seed=settings.seed)
