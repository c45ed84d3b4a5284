"""TensorBoard views that explain a model: its mistakes, confusion matrix, filters, feature maps,
reconstructions, and the config and shape table as text. Each is a small callback that config
can switch off (callbacks.views.*); each looks at a handful of images, so costs little.

The views are handed what they show by the data module (`ViewSource`): sample images, the
function that turns model inputs back into pixels, and the class names. Series are drawn as
lines and volumes or clips as slice strips (callbacks/pictures.py).
"""

from __future__ import annotations

from typing import List, Optional, Protocol, Sequence

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger
from torchvision.utils import make_grid

from cnnexp.callbacks.pictures import as_images, filters_as_tiles, maps_as_tiles
from cnnexp.callbacks.timing import timed
from cnnexp.core.catalogue import TASKS


class View(L.Callback):
    """A TensorBoard view; its hooks add their time to `seconds` (results.json's views_s)."""

    is_view = True
    every = 1

    def due(self, trainer):
        """The run's SummaryWriter when this view should draw now (every N epochs, not in the
        sanity check), else None."""
        tb = tensorboard(trainer)
        if tb is None or trainer.sanity_checking or trainer.current_epoch % self.every:
            return None
        return tb

    def samples_on(self, pl_module, n: int) -> torch.Tensor:
        """n fixed images from the data module (the same in every run), on the model's device."""
        return self.source.samples(n).to(pl_module.device)


class ViewSource(Protocol):
    class_names: Sequence[str]

    def samples(self, n: int) -> torch.Tensor:
        """n fixed images (the same in every run of the dataset), as the model takes them."""

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs back to [0, 1] pixels."""


def tensorboard(trainer: L.Trainer):
    """The SummaryWriter of the run's TensorBoard logger, or None (then views are skipped)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and rank_zero_only.rank == 0:
            return logger.experiment
    return None


def add_png(tb, tag: str, image, step: int) -> None:
    """A PIL image into TensorBoard as one PNG. SummaryWriter.add_image takes an array and makes a
    float32 copy of every pixel first: 60 MB for one 2,600 × 1,800 arithmetic sheet, 0.1 GB of a
    default run's peak memory."""
    import io

    from tensorboard.compat.proto.summary_pb2 import Summary

    png = io.BytesIO()
    image.save(png, format="PNG")
    channels = {"L": 1, "LA": 2, "RGBA": 4}.get(image.mode, 3)  # a palette image decodes to RGB
    picture = Summary.Image(height=image.height, width=image.width, colorspace=channels,
                            encoded_image_string=png.getvalue())
    tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=picture)]), step)


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # headless: figures are rendered to images, never shown
    import matplotlib.pyplot as plt

    return plt


class RunText(View):
    """The resolved config and the shape table, so a run in TensorBoard says what it was."""

    def __init__(self, config_yaml: str, shape_table: str):
        self.config_yaml, self.shape_table = config_yaml, shape_table

    @timed
    def on_fit_start(self, trainer, pl_module) -> None:
        if (tb := tensorboard(trainer)) is not None:
            tb.add_text("run/config", f"```\n{self.config_yaml}\n```", 0)
            tb.add_text("run/shapes", f"```\n{self.shape_table}\n```", 0)


class FilterImages(View):
    """The first conv layer's filters as an image grid, every N epochs: watch them form."""

    def __init__(self, every_n_epochs: int = 1):
        self.every = every_n_epochs

    @timed
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        tb = self.due(trainer)
        if tb is None:
            return
        convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
        conv = next(m for m in pl_module.net.features.modules() if isinstance(m, convs))
        w = filters_as_tiles(conv.weight.detach().float().cpu())  # (out, in, *k) → first input channel unless RGB
        grid = make_grid(w, nrow=8, normalize=True, scale_each=True, padding=1, pad_value=1.0)
        tb.add_image("filters/block1", grid, trainer.global_step)


class FeatureMaps(View):
    """The output of each conv block for a few fixed digits, every N epochs."""

    def __init__(self, source: ViewSource, every_n_epochs: int = 1, digits: int = 4, channels: int = 8):
        self.source, self.every, self.digits, self.channels = source, every_n_epochs, digits, channels

    @timed
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        tb = self.due(trainer)
        if tb is None:
            return
        x = self.samples_on(pl_module, self.digits)
        maps = []
        hooks = [block.register_forward_hook(lambda m, i, o: maps.append(o.detach()))
                 for block in pl_module.net.features]
        try:
            with torch.no_grad():
                pl_module.net.features(x)
        finally:
            for h in hooks:
                h.remove()
        for n, fmap in enumerate(maps, start=1):      # (digits, C, *spatial)
            tiles = maps_as_tiles(fmap, self.channels)
            grid = make_grid(tiles, nrow=min(self.channels, fmap.shape[1]), padding=1, pad_value=1.0)
            tb.add_image(f"features/block{n}", grid, trainer.global_step)


class ReceptiveFields(View):
    """Per conv block, the input pixels its centre output unit sees, drawn as a square over a
    validation digit (computed by the shape plan's receptive-field recursion). Logged once."""

    def __init__(self, source: ViewSource, layers, scale: int = 8):
        self.source, self.scale = source, scale
        self.convs = [l for l in layers if l.kind == "conv"]

    @timed
    def on_fit_start(self, trainer, pl_module) -> None:
        from torchvision.utils import draw_bounding_boxes

        from cnnexp.arithmetic.geometry import receptive_box

        tb = tensorboard(trainer)
        if tb is None or not self.convs or self.convs[0].dims == 3:  # a volume's boxes: `shapes draw=` draws them
            return
        if self.convs[0].dims == 1:
            return self._series(tb)
        pixels = self.source.denormalize(self.source.samples(1)[:1].float().cpu())[0]  # (C, H, W) in [0, 1]
        image = (pixels.expand(3, -1, -1) * 255).to(torch.uint8)
        image = image.repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)
        height, width = pixels.shape[-2:]
        for layer in self.convs:
            box = torch.tensor([[v * self.scale for v in receptive_box(layer, height, width)]])
            drawn = draw_bounding_boxes(image, box, colors="red", width=2)
            tb.add_image(f"receptive_field/{layer.block}", drawn, 0)

    def _series(self, tb) -> None:
        """1-D: the steps the centre output unit sees, shaded over the first series' plot."""
        line = as_images(self.source.denormalize(self.source.samples(1)[:1].float().cpu()))[0]  # (3, h, L)
        length = line.shape[-1]
        for layer in self.convs:
            (out,), (rf,), (jump,), (start,) = layer.out_shape[1:], *(layer.axes(k) for k in ("rf", "jump", "start"))
            centre = start + (out // 2) * jump
            lo, hi = int(max(centre - (rf - 1) / 2, 0)), int(min(centre + (rf - 1) / 2 + 1, length))
            drawn = line.clone()
            drawn[0, :, lo:hi] = torch.maximum(drawn[0, :, lo:hi], torch.tensor(0.5))  # a red band
            tb.add_image(f"receptive_field/{layer.block}", drawn, 0)


class ArithmeticSheets(View):
    """Per conv, pool and transposed-conv layer, the still sheet of its arithmetic (cnnexp.arithmetic.draw),
    logged once: a sweep over kernel, stride and padding compares picture by picture."""

    def __init__(self, layers):
        self.layers = layers

    @timed
    def on_fit_start(self, trainer, pl_module) -> None:
        from cnnexp.arithmetic.draw import sheets

        if (tb := tensorboard(trainer)) is not None:
            for name, image in sheets(self.layers):
                add_png(tb, f"layer_arithmetic/{name}", image, 0)


MATRIX_TEXT_CLASSES = 20   # up to this many classes the confusion matrix shows its counts
MATRIX_CLASSES = 40        # at most this many classes drawn (with their names): beyond, those with the most
                           # mistakes, so the view costs the same whatever the number of classes


def most_confused(matrix: torch.Tensor, k: int) -> List[int]:
    """The k classes (by index) with the most test mistakes, as truth or as prediction."""
    wrong = matrix.sum(0) + matrix.sum(1) - 2 * matrix.diagonal()
    return sorted(torch.argsort(wrong, descending=True, stable=True)[:k].tolist())


def confusion_figure(matrix: torch.Tensor, names: Sequence[str]):
    """The confusion matrix labelled with class names. A number per cell costs n² texts (300 classes
    took 86 s of a 94 s run) and a tick per class n labels (5 of 10 s of views): at most
    MATRIX_CLASSES are drawn, and the title says which."""
    _figure()  # headless before torchmetrics imports pyplot
    from torchmetrics.utilities.plot import plot_confusion_matrix

    shown = most_confused(matrix, MATRIX_CLASSES) if len(names) > MATRIX_CLASSES else list(range(len(names)))
    fig, ax = plot_confusion_matrix(matrix[shown][:, shown], add_text=len(shown) <= MATRIX_TEXT_CLASSES,
                                    labels=[str(names[i]) for i in shown])
    if len(shown) < len(names):
        ax.set_title(f"the {len(shown)} of {len(names)} classes with the most test mistakes", fontsize=9)
    # torchmetrics tilts both axes' labels at 10 pt: upright and larger, to read at TensorBoard's card
    # size (a card shows the 700 px figure at about 500); long names along x keep their tilt
    size, short = min(16, max(7, 250 / len(shown))), all(len(str(names[i])) <= 3 for i in shown)
    ax.tick_params(axis="y", labelrotation=0, labelsize=size)
    ax.tick_params(axis="x", labelrotation=0 if short else 45, labelsize=size)
    for label in ax.get_xticklabels():  # a tilted name ends under its column
        label.set(ha="center" if short else "right", rotation_mode="anchor")
    fig.set_size_inches(7, 7)
    return fig


class TestMistakes(View):
    """After testing: a grid of misclassified images (in colour for RGB input) titled with class
    names, 'pred p (conf) / true t', and the confusion matrix of the whole test set, labelled
    with the class names (torchmetrics computes and plots it)."""

    def __init__(self, source: ViewSource, mistakes: bool = True, confusion_matrix: bool = True, max_images: int = 36):
        self.source, self.want_mistakes, self.want_matrix, self.max_images = source, mistakes, confusion_matrix, max_images
        self.matrix = None
        self.wrong: List[tuple] = []

    @timed
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.matrix = MulticlassConfusionMatrix(num_classes=len(self.source.class_names))
        self.wrong = []

    @timed
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        x, y = batch
        probs = outputs["probs"].cpu()
        self.matrix.update(probs.argmax(1), y.cpu())
        if len(self.wrong) < self.max_images:
            conf, pred = probs.max(1)
            for i in torch.nonzero(pred != y.cpu()).flatten()[: self.max_images - len(self.wrong)]:
                self.wrong.append((x[i].cpu(), int(pred[i]), int(y[i]), float(conf[i])))

    @timed
    def on_test_epoch_end(self, trainer, pl_module) -> None:
        matrix = self.matrix.compute()  # every rank: under DDP this gathers the counts of all of them
        tb = tensorboard(trainer)
        if tb is None:
            return
        plt = _figure()
        if self.want_matrix:
            tb.add_figure("test/confusion_matrix", confusion_figure(matrix, self.source.class_names), trainer.global_step)
        if self.want_mistakes and self.wrong:
            tb.add_figure("test/mistakes", self._mistakes_figure(plt), trainer.global_step)
        plt.close("all")

    def _mistakes_figure(self, plt):
        """One image of all mistakes, each tile under its 'pred p (conf) / true t' caption: one axes
        and a text per tile (a subplot per tile made this view cost more than the test pass)."""
        cols, pad = 6, 2
        tiles = as_images(self.source.denormalize(torch.stack([img.float() for img, *_ in self.wrong])).clamp(0, 1))
        h, w = tiles.shape[-2:]
        band = max(w // 3, 8)                                        # room for the caption, above the image
        tiles = torch.nn.functional.pad(tiles, (0, 0, band, 0), value=1.0)  # (n, C, band + h, w)
        grid = make_grid(tiles, nrow=cols, padding=pad, pad_value=1.0)        # (3, rows·(band+h+pad)+pad, …)
        inch = 1.3 / (w + pad)                                      # a tile is 1.3 inches wide
        fig = plt.figure(figsize=(grid.shape[2] * inch, grid.shape[1] * inch))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.axis("off")
        names = self.source.class_names
        for k, (_, pred, true, conf) in enumerate(self.wrong):
            row, col = divmod(k, cols)
            ax.text(pad + col * (w + pad) + w / 2, pad + row * (band + h + pad) + band - 1,
                    f"pred {names[pred]} ({conf:.0%})\ntrue {names[true]}", ha="center", va="bottom", fontsize=8)
        return fig


class Reconstructions(View):
    """Autoencoders: a row of fixed validation inputs above their reconstructions, each epoch."""

    def __init__(self, source: ViewSource, every_n_epochs: int = 1, digits: int = 8):
        self.source, self.every, self.digits = source, every_n_epochs, digits

    @timed
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        tb = self.due(trainer)
        if tb is None:
            return
        x = self.samples_on(pl_module, self.digits)
        with torch.no_grad():
            x_hat = pl_module(x)
        pairs = as_images(torch.cat([self.source.denormalize(x), self.source.denormalize(x_hat)]).float().cpu())
        tb.add_image("reconstructions/input_above_output", make_grid(pairs, nrow=self.digits, padding=1), trainer.global_step)


def view_callbacks(views, task_name: str, source: ViewSource, layers, config_yaml: str,
                   shape_table: str) -> List[L.Callback]:
    """The views `callbacks.views` switches on, for this task."""
    every = views.every_n_epochs
    chosen: List[Optional[L.Callback]] = [
        RunText(config_yaml, shape_table) if views.text else None,
        FilterImages(every) if views.filters else None,
        FeatureMaps(source, every) if views.feature_maps else None,
        ReceptiveFields(source, layers) if views.receptive_field else None,
        ArithmeticSheets(layers) if views.arithmetic else None,
    ]
    own = TASKS[task_name].views
    if "mistakes" in own and (views.mistakes or views.confusion_matrix):
        chosen.append(TestMistakes(source, views.mistakes, views.confusion_matrix))
    if "reconstructions" in own and views.reconstructions:
        chosen.append(Reconstructions(source, every))
    return [c for c in chosen if c is not None]
