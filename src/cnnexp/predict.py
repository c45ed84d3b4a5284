"""`python -m cnnexp.predict run=FOLDER images='my_digits/*.png'`: classify your own images.

A run trained on a folder of images (data=folder) reads each file as it trained: its channels,
size and per-channel normalisation, and answers with its class names. For an MNIST run, any
PNG/JPEG, any size or colour, is turned into an MNIST-style digit first: greyscale; inverted
when the background is light (MNIST digits are white on black); cropped to the ink; scaled so the
longer side is 20 px; placed in a 28×28 frame with its centre of mass at the centre.

    python -m cnnexp.predict run=outputs/2026-11-25/10-31-02 images='digits/*.png' [top=3] [json=true]
    python -m cnnexp.predict run=outputs/2026-11-25/10-31-02 backend=onnx images=…   # or model=path/model.onnx
    python -m cnnexp.predict run=RUN inputs=cases.ts   # a data=series run: .ts/.npy/.npz; data=volumes: .npy/.npz

inputs= reads series and volumes by the run's own rules (cnnexp.data.inputs), with backend=torch.

backend=onnx runs the run's exported model.onnx (python -m cnnexp.export) with onnxruntime and
never imports torch. Both backends, and data=folder's training, read images with the one reader
(images.read_array, PIL and numpy): the same pixels, the same answers and JSON.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from cnnexp.data import images
from cnnexp.data.images import EXTENSIONS
from cnnexp.data.idx import IMAGE_SHAPE
from cnnexp.core.errors import RunError, SettingsError, UserError, fail

BACKENDS = ("torch", "onnx")
DIGIT_SIDE = 20  # px: MNIST's digits were scaled to fit a 20×20 box, then centred in the frame


@dataclass
class PredictArgs:
    run: Optional[str] = None     # a run folder: its best.ckpt (else last.ckpt)
    ckpt: Optional[str] = None    # or a checkpoint file
    images: Optional[str] = None  # a file, a folder, or a glob pattern (quoted)
    inputs: Optional[str] = None  # a .ts/.npy/.npz file of series, or .npy/.npz volumes (data=series, volumes)
    top: int = 3                  # classes listed per image, most probable first
    json: bool = False            # the answers as JSON, probabilities to 4 decimals
    backend: str = "torch"        # or onnx: the exported model.onnx, run by onnxruntime without torch
    model: Optional[str] = None   # an exported .onnx file (implies backend=onnx)


def mnist_style(path: Path):
    """An image file → a uint8 array of MNIST's height × width, white digit on black, centred like
    MNIST; None when the image holds no ink (blank, or a single shade)."""
    import numpy as np

    a = images.to_channels(images.read_rgb(path), 1)[0]
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if border.mean() > 127:                     # dark ink on light paper → MNIST's white on black
        a = 255 - a
    if int(a.max()) - int(a.min()) < 16:        # no stroke stands out from the paper
        return None
    ink = a > 0.25 * a.max()
    rows, cols = np.where(ink.any(1))[0], np.where(ink.any(0))[0]
    digit = a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1][None]
    scale = DIGIT_SIDE / max(digit.shape[1:])   # the longer side to 20 px, as MNIST's digits
    h, w = (max(1, round(n * scale)) for n in digit.shape[1:])
    d = images.resize(images.resize(digit, w, axis=2), h, axis=1)[0].astype(np.float32)
    ys, xs = np.indices(d.shape)
    mass = d.sum() or 1.0
    cy, cx = (ys * d).sum() / mass, (xs * d).sum() / mass
    height, width = IMAGE_SHAPE[1:]
    canvas = np.zeros((height, width), np.uint8)  # centre of mass at the centre
    top, left = int(round(height // 2 - cy)), int(round(width // 2 - cx))
    top, left = min(max(top, 0), height - d.shape[0]), min(max(left, 0), width - d.shape[1])
    canvas[top:top + d.shape[0], left:left + d.shape[1]] = d
    return canvas


def find_images(pattern: str) -> List[Path]:
    path = Path(pattern).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS)
    elif path.exists():  # a file named as typed, `[1]` and `*` in its name included
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(path)))
    if not files:
        raise RunError(f"images={pattern}: no image files found")
    odd = next((f for f in files if not f.is_file()), None)  # a pipe or a device would hang the reader
    if odd is not None:
        raise RunError(f"images={pattern}: {odd} is not a plain file (a folder, a pipe or a device); name image files")
    return files


@dataclass
class Classifier:
    """What predict needs of a trained network, whichever backend runs it."""

    folder: bool                                 # data=folder: read as it trained; else MNIST-style digits
    classes: List[str]
    read: Callable[[Path], object]               # a data=folder image → uint8 array (C, H, W)
    probabilities: Callable[[object], object]    # uint8 array (N, C, H, W) → float array (N, classes)


def torch_classifier(args: PredictArgs) -> Classifier:
    from cnnexp.run.restore import load_task
    from cnnexp.core.catalogue import TASKS

    task, _ = load_task(args.run, args.ckpt)  # a bad folder or checkpoint refused before torch is imported

    import torch

    from cnnexp.data.mnist import to_float

    if not TASKS[task.settings.model.task].classifies:
        raise RunError(f"run={args.run}: a {task.settings.model.name} model does not classify images")
    data = task.settings.data
    if data.name not in ("mnist", "folder", "seqmnist"):
        raise SettingsError("images", args.images, f"inputs=FILE for this run: it trained on data={data.name} "
                            "(.ts, .npy or .npz), not on images")
    folder = data.name == "folder"
    if folder:  # the run's own resize and normalisation, and its class names
        from cnnexp.data.image_folder import channel_stats

        stats = channel_stats(data)
    else:
        stats = ()

    def read(path: Path):
        return images.read_array(path, data.channels, data.image_size)

    def probabilities(pixels):
        x = to_float(torch.from_numpy(pixels), data.normalize, *stats)
        if data.name == "seqmnist":  # the digit read pixel by pixel, in the run's order
            from cnnexp.data.seqmnist import permutation

            x = x.reshape(len(x), 1, -1)
            x = x[:, :, torch.from_numpy(permutation(data.permute_seed))] if data.permute else x
        with torch.no_grad():
            return torch.softmax(task(x), dim=1).numpy()

    return Classifier(folder, list(data.classes or []) if folder else [], read, probabilities)


def onnx_classifier(args: PredictArgs) -> Classifier:
    """The exported model and the facts it carries: numpy and onnxruntime only."""
    import numpy as np

    from cnnexp.models import onnx_network

    model = onnx_network.load(args.run, args.model)
    facts = model.facts
    if not facts.classes:  # only a classifier's file names classes
        raise RunError(f"{model.path}: a {facts.model} model does not classify images")
    mean, std = (np.asarray(v, np.float32).reshape(-1, 1, 1) for v in (facts.mean, facts.std))

    def probabilities(pixels):  # memory.to_float's arithmetic, in numpy
        x = pixels.astype(np.float32) / np.float32(255)
        return onnx_network.softmax(model((x - mean) / std if facts.normalize else x))

    read = lambda path: images.read_array(path, facts.channels, facts.input_shape[1:])  # noqa: E731
    return Classifier(facts.data == "folder", facts.classes, read, probabilities)


def ranked(probs, k: int, label: str, name=lambda i: i) -> dict:
    """The best class and the top k with their probabilities, under `label` ("digit" or "class")."""
    import numpy as np

    top = np.argsort(-probs, kind="stable")[:k]
    return {label: name(int(top[0])),
            "top": [{label: name(int(i)), "probability": four_digits(float(probs[i]))} for i in top]}


def four_digits(p: float) -> float:
    """4 decimals, and more where p is near 0 or 1, so that 0.999996 and 2.3e-05 stay themselves:
    4 significant digits of its distance to the nearer end. Only an exact 0 or 1 reads as one."""
    import math

    near = min(p, 1 - p)
    return round(p, 4 if near <= 0 else min(12, max(4, 3 - math.floor(math.log10(near)))))


def predict_inputs(args: PredictArgs) -> List[dict]:
    """inputs=FILE: each series or volume of the file, read by the run's rules, ranked by its classes."""
    from cnnexp.core.catalogue import TASKS
    from cnnexp.data import inputs
    from cnnexp.run.restore import load_task

    if args.images or args.backend != "torch" or args.model:
        raise SettingsError("inputs", args.inputs, "alone, with backend=torch (images= is for images; an exported "
                            "model reads series and volumes in a later version)")
    task, _ = load_task(args.run, args.ckpt)
    data = task.settings.data
    if not TASKS[task.settings.model.task].classifies:
        raise RunError(f"run={args.run}: a {task.settings.model.name} model does not classify")
    names, x, labels = inputs.read(args.inputs, data)
    import torch

    with torch.no_grad():
        probs = torch.softmax(task(torch.from_numpy(x)), dim=1).numpy()
    return [{"file": n, **ranked(p, args.top, "class", list(data.classes).__getitem__),
             **({"label": l} if l is not None else {})} for n, p, l in zip(names, probs, labels)]


def predict(args: PredictArgs) -> List[dict]:
    import numpy as np

    if args.inputs:
        return predict_inputs(args)
    if not args.images:
        raise RunError("say which images: images=FILE, FOLDER or a quoted glob, e.g. images='my_digits/*.png'")
    if args.backend not in BACKENDS:
        raise SettingsError("backend", args.backend, " or ".join(BACKENDS))
    onnx = args.backend == "onnx" or args.model is not None
    if onnx and args.ckpt:
        raise SettingsError("ckpt", args.ckpt, "a checkpoint runs with backend=torch; for onnx give run= or model=")
    files = find_images(args.images)  # before the model: a wrong pattern is reported at once
    model = onnx_classifier(args) if onnx else torch_classifier(args)
    if model.folder:
        probs = model.probabilities(np.stack([model.read(f) for f in files]))
        return [{"file": str(f), **ranked(p, args.top, "class", model.classes.__getitem__)} for f, p in zip(files, probs)]
    digits = [mnist_style(f) for f in files]                      # all read before any is predicted
    inked = [d for d in digits if d is not None]
    probs = iter(model.probabilities(np.stack(inked)[:, None]) if inked else [])
    results = []
    for f, d in zip(files, digits):
        if d is None:
            results.append({"file": str(f), "digit": None, "top": [], "note": "no digit found (blank image)"})
            continue
        results.append({"file": str(f), **ranked(next(probs), args.top, "digit")})
    return results


def main(argv=None) -> None:
    from cnnexp.config import args as cli_args

    cli_args.exit_on_help(__doc__, argv, PredictArgs)
    try:
        args = cli_args.parse(PredictArgs, argv)
        if args.top < 1:
            raise SettingsError("top", args.top, "an integer ≥ 1")
        results = predict(args)
    except UserError as e:
        fail(e)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    width = max(len(r["file"]) for r in results)
    for r in results:
        label = "class" if "class" in r else "digit"
        if r[label] is None:
            print(f"{r['file']:<{width}}  → {r['note']}")
            continue
        tops = "  ".join(f"{t[label]}: {100 * t['probability']:5.1f} %" for t in r["top"])
        print(f"{r['file']:<{width}}  → {r[label]}   ({tops})")
    labelled = [r for r in results if r.get("label") is not None]
    if labelled:  # a labelled .ts: how many the run gets right, as eval would count them
        right = sum(str(r["class"]) == str(r["label"]) for r in labelled)
        print(f"accuracy on the {len(labelled)} labelled cases of the file: {100 * right / len(labelled):.1f} % "
              f"({right} of {len(labelled)})")


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "nothing was written")
