"""`python -m cnnexp.export run=FOLDER`: the run's best network as a file that runs without
cnnexp — `model.onnx` (onnxruntime, any language) or `model.torchscript.pt` (torch.jit.load) —
checked against PyTorch before it is left in the run folder.

    python -m cnnexp.export run=outputs/2026-11-25/10-31-02 [format=onnx|torchscript] [images=1000] [tolerance=1e-4] [out=FILE]

The network comes from checkpoints/best.ckpt, with a dynamic batch axis. ONNX: torch.onnx's
dynamo exporter first, the TorchScript-based one if it fails; the file carries what it needs to
be used alone (onnx_network.Facts: classes, input shape, normalisation, the run's monitor and best
value, cnnexp's version, the exporter, the parity check). Parity, every time: `images` of the
run's own test split go through PyTorch and through the exported file; a largest absolute
difference of outputs (logits; reconstructions for an autoencoder) above `tolerance`, or any
prediction that differs, leaves no file (an earlier export stays as it was) and exits 2. out=
writes the file elsewhere (a file, or a folder to put it in) — for a run on a read-only disk; a
write the disk refuses is one line, and no part of the file is left.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

from cnnexp.models import onnx_network
from cnnexp.core.errors import RunError, SettingsError, UserError, fail
from cnnexp.eval import EvalData
from cnnexp.core.files import WriteError, write_atomic
from cnnexp.run.restore import data_there, load_checkpoint, rebuild_task
from cnnexp.records.folder import CHECKPOINTS, checkpoint_path, holds_run_record, open_run
from cnnexp.records.reading import record_file

FORMATS = {"onnx": onnx_network.ONNX_FILE, "torchscript": "model.torchscript.pt"}


@dataclass
class ExportArgs:
    run: Optional[str] = None
    format: str = "onnx"
    images: int = 1000       # test images the parity check runs (fewer if the split holds fewer)
    tolerance: float = 1e-4  # largest absolute output difference allowed
    out: Optional[str] = None  # where the file goes: a file, or a folder (default: the run folder)
    data: EvalData = field(default_factory=EvalData)


def check_args(args: ExportArgs) -> None:
    """The arguments, and that what the format needs is installed, before any file is read."""
    if args.format not in FORMATS:
        raise SettingsError("format", args.format, " or ".join(FORMATS))
    if args.images < 1:
        raise SettingsError("images", args.images, "the number of test images to check, ≥ 1 (e.g. images=1000)")
    if not args.tolerance >= 0:
        raise SettingsError("tolerance", args.tolerance, "the largest absolute output difference allowed, ≥ 0 (e.g. 1e-4)")
    if not args.run:
        raise RunError("say which run: run=outputs/<date>/<time>")
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise RunError(f"format=onnx needs onnx and onnxruntime: {onnx_network.INSTALL}") from None


def test_images(task, n: int):
    """The first n images of the run's own test split, as the network takes them, and the data's class names."""
    import torch

    from cnnexp.data import make_datamodule

    datamodule = make_datamodule(task.settings)
    datamodule.prepare_data()
    datamodule.setup("test")
    batches, count = [], 0
    for x, _ in datamodule.test_dataloader():
        batches.append(x)
        count += len(x)
        if count >= n:
            break
    return torch.cat(batches)[:n].contiguous(), list(datamodule.class_names)


def best_score(checkpoint: dict) -> Tuple[str, Optional[float]]:
    """The metric best.ckpt was chosen by and its value, as the checkpoint callback recorded them."""
    for state in checkpoint.get("callbacks", {}).values():
        if isinstance(state, dict) and "best_model_score" in state:
            score = None if state["best_model_score"] is None else float(state["best_model_score"])
            return state.get("monitor"), score if score is not None and math.isfinite(score) else None
    return "", None


def to_onnx(net, example) -> Tuple[bytes, str]:
    """The network as ONNX bytes with a dynamic batch axis, and the exporter that made them."""
    import onnx
    import torch

    failures = []
    try:
        with _quiet():
            program = torch.onnx.export(net, (example,), dynamo=True, verbose=False, input_names=[onnx_network.INPUT],
                                        output_names=[onnx_network.OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},))
        return program.model_proto.SerializeToString(), f"torch.onnx dynamo (torch {torch.__version__})"
    except Exception as e:  # an op or a guard torch.export cannot take: try the older exporter
        failures.append(f"dynamo: {_reason(e)}")
    try:
        buffer = io.BytesIO()
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")  # its deprecation notice: this is the fallback on purpose
            torch.onnx.export(net, (example,), buffer, dynamo=False, input_names=[onnx_network.INPUT],
                              output_names=[onnx_network.OUTPUT],
                              dynamic_axes={onnx_network.INPUT: {0: "batch"}, onnx_network.OUTPUT: {0: "batch"}})
        onnx.checker.check_model(buffer.getvalue())
        return buffer.getvalue(), f"torch.onnx torchscript (torch {torch.__version__}; {failures[0]})"
    except Exception as e:
        failures.append(f"torchscript: {_reason(e)}")
    raise RunError(f"the network cannot be exported to ONNX: {'; '.join(failures)}")


def to_torchscript(net, example) -> Tuple[bytes, str]:
    import torch

    buffer = io.BytesIO()
    try:
        torch.jit.save(torch.jit.trace(net, example), buffer)
    except Exception as e:
        raise RunError(f"the network cannot be traced to TorchScript — {_reason(e)}") from None
    return buffer.getvalue(), f"torch.jit.trace (torch {torch.__version__})"


@contextlib.contextmanager
def _quiet():
    """Standard output off, down to the file descriptor: on failure the exporters print graphs and
    reports (the TorchScript one from C++), where cnnexp says what went wrong in one line."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            with contextlib.redirect_stdout(devnull):
                yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _reason(e: BaseException) -> str:
    """An exporter's error in one line: the summary the dynamo exporter puts under its advice."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1].strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return re.sub(r"^<class '[\w.]+\.(\w+)'>", r"\1", line)[:200]


def parity(reference, outputs, classify: bool, tolerance: float) -> dict:
    """How far the exported outputs are from PyTorch's on the same images. A class that flips
    between two logits PyTorch itself holds within `tolerance` of each other is a tie, not a
    differing prediction (an untrained network has many near-ties)."""
    import numpy as np

    result = {"images": len(reference), "max_abs_diff": float(np.abs(reference - outputs).max()), "tolerance": tolerance}
    if classify:
        rows, ours, theirs = np.arange(len(reference)), reference.argmax(1), outputs.argmax(1)
        flipped = ours != theirs
        tie = flipped & (reference[rows, ours] - reference[rows, theirs] <= tolerance)
        result.update(differing_predictions=int((flipped & ~tie).sum()), ties=int(tie.sum()))
    result["ok"] = result["max_abs_diff"] <= tolerance and not result.get("differing_predictions")
    return result


def describe(result: dict, what: str = "images") -> str:
    n = f"{result['images']:,}"
    if "differing_predictions" not in result:
        return f"parity on {n} test {what}: max |reconstruction diff| {result['max_abs_diff']:.2e} (tolerance {result['tolerance']:g})"
    ties = f" ({result['ties']} ties within tolerance)" if result["ties"] else ""
    return (f"parity on {n} test {what}: max |logit diff| {result['max_abs_diff']:.2e}, "
            f"{result['differing_predictions']} of {n} predictions differ{ties} (tolerance {result['tolerance']:g})")


def export(args: ExportArgs) -> dict:
    check_args(args)
    folder = open_run(args.run)
    path = destination(args, folder)  # checked before any work: never a record, never a checkpoint
    ckpt = checkpoint_path(folder, "best")
    if record_file(folder, ckpt) is None:  # a link out of the folder, a device: one line, never opened
        raise RunError(f"run={args.run}: no {CHECKPOINTS}/{ckpt.name} (written when the run first validates); "
                       "train it further, or resume it: python -m cnnexp.train resume=" + args.run)
    import torch

    from cnnexp.core.catalogue import TASKS

    checkpoint = load_checkpoint(ckpt)
    task = rebuild_task(checkpoint, ckpt, args.data.root)
    settings, net = task.settings, task.net.float().eval()
    data_there(settings.data.name, settings.data.root, str(ckpt), bool(args.data.root))  # before any download
    x, classes = test_images(task, args.images)
    classify = TASKS[settings.model.task].classifies
    with torch.no_grad():
        reference = torch.cat([net(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()
    example = torch.cat([x, x])[:2]  # two images: a batch of one could be specialised as a constant
    started = time.perf_counter()
    data, exporter, outputs, loaded = convert(args.format, net, x, example, path)
    seconds = time.perf_counter() - started
    result = parity(reference, outputs, classify, args.tolerance)
    from cnnexp.data.inputs import noun

    summary = describe(result, noun(settings.data.name))
    if not result["ok"]:
        raise RunError(f"{path.name} not written — the export disagrees with PyTorch: {summary}; "
                       f"exporter {exporter.split(';')[0]}")
    facts = run_facts(settings, checkpoint, classes if classify else [], exporter, result)
    data = with_facts(args.format, data, loaded, facts, f"cnnexp {settings.model.name} from {ckpt.name}")
    try:
        write_atomic(path, data)  # only now: a failed check or a kill leaves no file, or the earlier one
    except WriteError as e:  # a read-only disk, a file-size limit …: one line, nothing half-written
        e.elsewhere = "out=…"
        raise
    return {"file": str(path), "exporter": exporter, "seconds": round(seconds, 2), "summary": summary, **result}


def destination(args: ExportArgs, folder: Path) -> Path:
    """out= as typed (a folder, or a name ending in /: the format's file name in it), else the run
    folder's file."""
    if not args.out:
        return folder / FORMATS[args.format]
    out = Path(args.out).expanduser()
    path = out / FORMATS[args.format] if out.is_dir() or args.out.endswith("/") else out
    suffix = Path(FORMATS[args.format]).suffix
    if path.suffix != suffix:  # a record, a checkpoint, a config: never replaced by an export
        raise SettingsError("out", args.out, f"an exported {args.format} file's name ends in {suffix} (e.g. "
                                             f"out=exports/{FORMATS[args.format]}), or name a folder")
    inside = path.parent.parent if path.parent.name == CHECKPOINTS else path.parent
    if holds_run_record(inside) and (path.name != FORMATS[args.format] or path.parent.resolve() != folder.resolve()):
        raise SettingsError("out", args.out, f"inside a run folder an export is only that run's own "
                                             f"{FORMATS[args.format]}; name a folder of your own")
    if path.exists() and not path.is_file():
        raise SettingsError("out", args.out, "not a plain file (a device or a pipe); name a file or a folder")
    return path


def convert(fmt: str, net, x, example, path: Path):
    """(bytes, exporter, outputs on x, loaded module): the network in `fmt`, what made it, what the
    exported network answers for x, and for TorchScript the loaded module (None for ONNX)."""
    import torch

    if fmt == "torchscript":
        warnings.filterwarnings("ignore", message=".*torch.jit.* is deprecated.*")  # it is the format asked for
        data, exporter = to_torchscript(net, example)
        loaded = torch.jit.load(io.BytesIO(data))
        with torch.no_grad():
            outputs = torch.cat([loaded(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy()
        return data, exporter, outputs, loaded
    data, exporter = to_onnx(net, example)
    return data, exporter, onnx_network.run(onnx_network.session(data, path), x.numpy()), None


def run_facts(settings, checkpoint: dict, classes: list, exporter: str, result: dict) -> "onnx_network.Facts":
    """What the exported file carries to be used alone (onnx_network.Facts)."""
    from cnnexp import __version__
    from cnnexp.data.mnist import MEAN, STD

    monitor, best = best_score(checkpoint)
    own_stats = getattr(settings.data, "mean", None) is not None  # recorded per channel (folder, series, volumes)
    return onnx_network.Facts(
        task=settings.model.task, model=settings.model.name, data=settings.data.name,
        classes=classes, input_shape=list(settings.model.input_shape),
        channels=int(settings.model.input_shape[0]), normalize=settings.data.normalize,
        mean=list(settings.data.mean) if own_stats else [MEAN],
        std=list(settings.data.std) if own_stats else [STD],
        monitor=monitor, best_value=best, version=__version__, exporter=exporter,
        parity={k: v for k, v in result.items() if k != "ok"})


def with_facts(fmt: str, data: bytes, loaded, facts, doc: str) -> bytes:
    """The exported bytes carrying their facts: ONNX's model properties (and doc string), or an
    extra file inside the TorchScript archive."""
    if fmt == "onnx":
        import onnx

        proto = onnx.load_from_string(data)
        onnx.helper.set_model_props(proto, facts.props())
        proto.doc_string = doc
        return proto.SerializeToString()
    import torch

    buffer = io.BytesIO()
    torch.jit.save(loaded, buffer, _extra_files={"cnnexp.json": json.dumps(facts.__dict__)})
    return buffer.getvalue()


def main(argv=None) -> None:
    from cnnexp.config import args as cli_args

    cli_args.exit_on_help(__doc__, argv, ExportArgs)
    try:
        result = export(cli_args.parse(ExportArgs, argv))
    except UserError as e:
        fail(e)
    print(result["summary"])
    print(f"wrote {result['file']} ({Path(result['file']).stat().st_size / 1024:,.0f} KB, {result['exporter']})")


if __name__ == "__main__":
    from cnnexp.core.stopping import run_command

    run_command(main, "no file was written (an export appears whole or not at all)")
