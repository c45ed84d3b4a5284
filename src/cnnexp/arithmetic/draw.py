"""The convolution-arithmetic pictures, drawn for the configured network (`python -m cnnexp.shapes
draw=DIR`, and TensorBoard's `arithmetic/<layer>` images).

Per conv, pool and transposed-conv row of the shape plan: `<layer>.gif` (the kernel visiting each
position) and `<layer>.png` (every position as a tile); per grouped conv `<layer>_groups.png`;
and `receptive_field.png` over a real digit (a volume's: its height×width plane; a series' is the
table's rf column). A series' layers draw the kernel walking the sequence, a volume's one depth
slice (scene.py says how). `scene` says what is drawn (data the tests count);
`animation`, `sheet`, `channel_groups` and `receptive_field` draw it. No torch.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from PIL import Image

from cnnexp.arithmetic import scene
from cnnexp.arithmetic.animation import animation, save_gif
from cnnexp.arithmetic.channel_groups import groups
from cnnexp.arithmetic.geometry import Layer, axes_text, receptive_box
from cnnexp.arithmetic.receptive_field import receptive_fields
from cnnexp.arithmetic.sheet import sheet
from cnnexp.arithmetic.table import note
from cnnexp.core.errors import SettingsError
from cnnexp.core.figures import save_image

IDX_HEADER = 16  # an IDX image file's magic, count, rows and columns: four 4-byte integers before the pixels


def scenes(layer: Layer) -> Tuple[scene.Slide, Optional[scene.Scatter]]:
    """The sliding window of a layer and, for a transposed convolution, its scatter view."""
    if layer.kind == "convT":
        return scene.direct(layer, note(layer)), scene.scatter(layer)
    return scene.window(layer), None


def sheets(layers: List[Layer]) -> Iterator[Tuple[str, Image.Image]]:
    """(name, still sheet) per drawable layer: what TensorBoard shows as arithmetic/<name>."""
    for layer in filter(scene.drawable, layers):
        yield scene.name(layer), sheet(*scenes(layer))


def draw(layers: List[Layer], folder: Path, digit: Optional[bytes] = None, caption: str = "") -> List[Path]:
    """Every picture of the network into `folder` (which exists); the paths written."""
    written = []
    for layer in filter(scene.drawable, layers):
        slide, scatter = scenes(layer)
        path = folder / f"{slide.name}.gif"
        save_gif(animation(slide, scatter), path)
        save_image(sheet(slide, scatter), folder / f"{slide.name}.png")
        written += [path, folder / f"{slide.name}.png"]
        if layer.kind == "conv" and layer.groups > 1:
            g = scene.groups(layer)
            save_image(groups(g), folder / f"{g.name}.png")
            written.append(folder / f"{g.name}.png")
    windows = [l for l in layers if l.rf is not None and scene.drawable(l)]
    if windows and windows[0].dims >= 2:  # over an image, or a volume's height×width; a series': the rf column
        height, width = windows[0].in_shape[-2:]
        boxes = []
        for l in windows:
            box = receptive_box(l, height, width)
            rh, rw = l.axes("rf")[-2:]
            clipped = " (past the image)" if box[2] - box[0] < rw or box[3] - box[1] < rh else ""
            boxes.append((f"{scene.name(l)}: rf {axes_text(l.rf)}, jump {axes_text(l.jump)}{clipped}", box))
        save_image(receptive_fields(boxes, digit, height, width, caption), folder / "receptive_field.png")
        written.append(folder / "receptive_field.png")
    return written


def first_digit(data) -> Tuple[Optional[bytes], str]:
    """A real input to draw receptive fields over: MNIST's first test digit, or the first image of a
    data=folder (greyscale, at the network's size); else None and why."""
    from cnnexp.data import idx

    if data.name not in ("mnist", "folder"):  # a series, volume or clip is no 2-D picture to draw over
        return None, f"no picture: data={data.name} is not 2-D; the shape table's rf column gives them"
    if data.name == "mnist":
        try:
            _, raw = idx.read_local(data.root, "t10k-images-idx3-ubyte")
        except idx.CorruptFile as e:
            return None, f"no MNIST digit ({e}); an empty grid instead"
        return raw[IDX_HEADER: IDX_HEADER + math.prod(idx.IMAGE_SHAPE)], "MNIST's first test digit"
    from PIL import Image

    from cnnexp.data import images

    folder = images.scan(data.root, data.strict, data.val_fraction, data.test_fraction, 0)
    path = folder.files["train"][0][0]
    height, width = data.image_size
    with Image.open(path) as image:
        return image.convert("L").resize((width, height)).tobytes(), f"{path.name}"


def folder(value: str) -> Path:
    """draw=DIR: a folder, made if need be, that can be written to; else SettingsError."""
    path = Path(value).expanduser()
    what = "a folder to draw the pictures into"
    if not value:
        raise SettingsError("draw", value, f"{what}, e.g. draw=pictures")
    if path.exists() and not path.is_dir():
        raise SettingsError("draw", value, f"{what}; this is a file: give a folder's name")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".cnnexp-draw-probe"
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise SettingsError("draw", value, f"{what}; it cannot be written ({e.strerror}): give another") from None
    return path


def draw_network(settings, path: Path) -> str:
    """Every picture of the configured network into `path`; what was drawn, in a line."""
    start = time.perf_counter()
    digit, source = first_digit(settings.data)
    layers = settings.model.layers
    digit = digit if layers[0].dims == 2 else None  # a volume's boxes go over an empty height×width grid
    written = draw(layers, path, digit, f"over {source}" if layers[0].dims == 2 else "over an empty height×width grid")
    where = {1: "the table's rf column: no picture for a series", 2: f"receptive fields over {source}",
             3: "receptive fields over an empty height×width grid"}[layers[0].dims]
    return f"drew {len(written)} pictures into {path} in {time.perf_counter() - start:.1f} s ({where})"
