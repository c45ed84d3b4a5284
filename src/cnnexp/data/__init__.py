"""The data a run trains on, by `data.name`: MNIST (where its files come from and how they are
checked: sources, idx; held in memory: mnist) or a folder of your own images (images: the
torch-free scan; image_folder: the LightningDataModule)."""


def make_datamodule(settings):
    """The LightningDataModule for settings.data."""
    if settings.data.name == "folder":
        from cnnexp.data.image_folder import FolderDataModule

        return FolderDataModule(settings.data, seed=settings.seed)
    from cnnexp.data.mnist import MNISTDataModule

    return MNISTDataModule(settings.data, seed=settings.seed)
