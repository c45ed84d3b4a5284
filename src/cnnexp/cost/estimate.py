"""What a run will cost on this machine, before it is paid: seconds per epoch and for the whole
run, from the shape plan's work and this machine's measured rates. Pure Python, no torch.

    training batch   = per_batch + B·(per_mac·MACs + per_value·values) + per_param·params
    evaluation batch = per_batch + B·(per_mac·MACs + per_value·values)          (forward only)

MACs and values (the layers' outputs, the input included) are per image, from the plan; the rates
are per device and per mode — precision (fp32, bf16, fp16) × memory layout (NCHW, channels_last) —
and were measured once on this machine (`cnnexp.cost.calibration`: a short benchmark of a few of the
product's own networks). They are cached in $XDG_CACHE_HOME/cnnexp/calibration.json (else
~/.cache/…) under a key — CPU model, core count, accelerator, torch version — and are measured
again when the key changes. Where there is no calibration yet, `line` says so, and the first
training run (or `python -m cnnexp.shapes calibrate=true`) measures it.

An epoch is its training batches and the validations that fall in it; the run is its epochs and
the test. Each also pays a fixed cost the MACs do not see — Lightning's loop per step, the epoch's
end (checkpoints, loggers, its line), a validation's and the test's start, a run's set-up and
pictures — which dominates tiny epochs (a UCR set of one batch: ~0.0 s of MACs, ~1.5 s an epoch
on 2 busy cores): OVERHEAD, measured on this project's 2-core CPU. The calibration measured 2-D
networks only: a 1-D or 3-D network's estimate is said to be rough, without the ±30 %. Process
start-up (imports, composition, data) is not in the estimate: a few seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from cnnexp.core.console import WIDTH, duration, folded
from cnnexp.core.files import write_atomic
from cnnexp.arithmetic.geometry import total_macs, total_params

log = logging.getLogger("cnnexp")

CACHE_NAME = "calibration.json"
# seconds each loop pays beyond its batches' MACs (2-core CPU, quiet; a busy machine: more — busy_note)
OVERHEAD = {"step": 0.004, "epoch": 0.6, "validation": 0.2, "test": 0.6, "run": 2.0}
CALIBRATED_DIMS = 2  # the calibration's probes are 2-D networks (C×H×W inputs)
MEASURE_HINT = "python -m cnnexp.shapes calibrate=true"


# ------------------------------------------------------------------ where the rates are kept, and for which machine
def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "cnnexp" / CACHE_NAME


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _accelerators() -> List[str]:
    """GPUs the NVIDIA driver lists (no torch, no subprocess); Apple silicon has MPS."""
    found = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            found += [l.split(":", 1)[1].strip() for l in info.read_text().splitlines() if l.startswith("Model")]
        except OSError:
            pass
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        found.append("mps")
    return found


def machine_key() -> Dict[str, Any]:
    """What the rates depend on: a change in any of these measures them again."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "accelerators": _accelerators(), "torch": torch_version}


CACHE_LIMIT = 2**20  # bytes: a real cache is ~10 KB
RATES = ("per_batch", "per_mac", "per_value")
_noted: set = set()  # caches already said to be ignored (one note per process)


def read_calibration(path: Optional[Path] = None) -> Optional[Dict[str, Any]]:
    """This machine's calibration, or None: none yet, measured for another key, or not one a
    calibration writes. The cache is a file the product reads, so it is read as a record is
    (records/reading.py: a plain file, never a pipe that would hang the reader, size capped) and
    its rates are checked (numbers ≥ 0, finite): a bad one is ignored with a one-line note, and
    measured again, rather than crashing the settings check or printing negative estimates."""
    from cnnexp.records.reading import RecordError, read_record_text

    path = Path(path or cache_file())
    try:
        text = read_record_text(path.parent, path, CACHE_LIMIT)
        data = None if text is None else json.loads(text)
    except RecordError as e:
        return _ignored(path, str(e).removeprefix(f"{path}: "))
    except ValueError:
        return None  # not JSON (an interrupted write of an old version, random bytes): measured again
    if not isinstance(data, dict) or data.get("key") != machine_key():
        return None
    wrong = _bad_rates(data.get("devices"))
    return _ignored(path, wrong) if wrong else data


def _bad_rates(devices: Any) -> Optional[str]:
    """What is wrong with a cache's rates, or None: device → mode → train/eval → finite rates ≥ 0."""
    if not isinstance(devices, dict):
        return "its `devices` is not a table of devices"
    for device, modes in devices.items():
        if not isinstance(modes, dict):
            return f"its rates of {device} are not a table of modes"
        for mode, stages in modes.items():
            for stage in ("train", "eval"):
                rates = stages.get(stage) if isinstance(stages, dict) else None
                if not isinstance(rates, dict) or not all(_rate(rates.get(n)) for n in RATES) or \
                        not _rate(rates.get("per_param", 0.0)):
                    return f"its {device} {mode} {stage} rates are not numbers in [0, 1e6]"
    return None


def _rate(v: Any) -> bool:
    # ≤ 1e6 s per unit: far beyond any machine, and products of such rates stay finite (1e308 would not)
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1e6


def _ignored(path: Path, why: str) -> None:
    if str(path) not in _noted:
        _noted.add(str(path))
        log.warning("%s: ignored (%s); the next training run measures this machine again, or `%s`",
                    path, why, MEASURE_HINT)
    return None


def write_calibration(devices: Dict[str, Any], seconds: float, path: Optional[Path] = None, busy: bool = False,
                      load: Optional[float] = None) -> Path:
    """`busy`: measured while other work loaded the cores — the next run on a quiet machine measures
    again; `load`: the load average it was measured at (a later estimate says when it is busier now)."""
    import time

    path = path or cache_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": machine_key(), "measured_unix": round(time.time()), "busy": busy,
              "measure_s": round(seconds, 2), "devices": devices}
    if load is not None:
        record["load"] = round(load, 2)
    write_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


# ------------------------------------------------------------------ the run's work
@dataclass
class Work:
    """Batches and images of one run, per process."""
    epochs: int
    train_batches: int          # per epoch
    batch: int
    val_batches: int            # per validation
    validations: float          # per epoch
    eval_batch: int
    val_images: int
    test_batches: int
    test_images: int


def _limit(batches: int, limit: Any) -> int:
    if isinstance(limit, float):
        return int(batches * limit)
    return min(batches, int(limit))


def _splits(settings) -> tuple[int, int, int]:
    from cnnexp.data.facts import sizes_of  # each data's split sizes, from the files the check read too

    return sizes_of(settings.data.name)(settings.data, settings.seed)


def work(settings) -> Work:
    t, d = settings.trainer, settings.data
    n_train, n_val, n_test = _splits(settings)
    devices = t.devices if isinstance(t.devices, int) and t.devices > 1 and t.strategy.startswith("ddp") else 1
    per_rank = lambda n: math.ceil(n / devices)
    train_batches = _limit(per_rank(n_train) // d.batch_size, t.limit_train_batches)
    epochs = t.max_epochs
    if t.max_steps > 0:
        steps_per_epoch = max(train_batches // t.accumulate_grad_batches, 1)
        by_steps = math.ceil(t.max_steps / steps_per_epoch)
        epochs = by_steps if epochs == -1 else min(epochs, by_steps)
    val_batches = _limit(math.ceil(per_rank(n_val) / d.eval_batch_size), t.limit_val_batches)
    every = t.check_val_every_n_epoch or 1
    v = t.val_check_interval
    per_epoch = (1 / v if isinstance(v, float) else max(train_batches // v, 1)) if train_batches else 0
    test_batches = _limit(math.ceil(per_rank(n_test) / d.eval_batch_size), t.limit_test_batches)
    return Work(epochs, train_batches, d.batch_size, val_batches, per_epoch / every, d.eval_batch_size,
                min(n_val, val_batches * d.eval_batch_size),
                test_batches if settings.test_after_fit else 0, min(n_test, test_batches * d.eval_batch_size))


# ------------------------------------------------------------------ modes and rates
def device_of(settings, calibration: Dict[str, Any]) -> str:
    a = settings.trainer.accelerator
    if a == "auto":
        return next((d for d in ("cuda", "mps") if d in calibration["devices"]), "cpu")
    return "cuda" if a == "gpu" else a


def rate_mode(settings, device: str) -> str:
    """`<precision>-<layout>`: the rates differ by both (bf16 autocast, oneDNN's NHWC kernels)."""
    p = str(settings.trainer.precision)
    precision = "bf16" if "bf16" in p else "fp16" if p.startswith("16") else "fp32"
    if precision == "fp16" and device == "cpu":
        precision = "bf16"  # the CPU's 16-bit path
    cl = settings.performance.channels_last
    layout = "cl" if cl is True or (cl == "auto" and (device == "cpu" or precision != "fp32")) else "nchw"
    return f"{precision}-{layout}"


def values_per_image(layers) -> int:
    """Values each image's forward writes: its input and every layer's output."""
    return math.prod(layers[0].in_shape) + sum(math.prod(layer.out_shape) for layer in layers)


def batch_seconds(rates: Dict[str, float], macs: int, values: int, params: int, batch: int) -> float:
    return (rates["per_batch"] + batch * (rates["per_mac"] * macs + rates["per_value"] * values)
            + rates.get("per_param", 0.0) * params)


@dataclass
class Estimate:
    epoch_s: float
    total_s: float
    epochs: int
    device: str
    mode: str
    tested: bool
    done: int = 0  # epochs trained before a resume: not in `epochs` nor `total_s`
    rough: bool = False  # a 1-D or 3-D network: the calibration measured none


def is_rough(layers) -> bool:
    """A network of other than 2-D inputs (C×L, C×D×H×W): rates measured on 2-D ones, roughly."""
    return len(layers[0].in_shape) != CALIBRATED_DIMS + 1


def estimate(settings, calibration: Optional[Dict[str, Any]], done: int = 0) -> Optional[Estimate]:
    """Seconds per epoch (training and its validations) and for the run (the epochs left after
    the `done` ones a resume continues from, and the test), or None without a calibration for
    the device the run uses."""
    if calibration is None:
        return None
    device = device_of(settings, calibration)
    mode = rate_mode(settings, device)
    rates = calibration["devices"].get(device, {}).get(mode)
    if rates is None:
        return None
    layers = settings.model.layers
    macs, values, params = total_macs(layers), values_per_image(layers), total_params(layers)
    w = work(settings)
    train = w.train_batches * (batch_seconds(rates["train"], macs, values, params, w.batch) + OVERHEAD["step"])
    validation = w.validations * (w.val_batches * batch_seconds(rates["eval"], macs, values, 0, w.eval_batch)
                                  + (OVERHEAD["validation"] if w.val_batches else 0.0))
    test = w.test_batches * batch_seconds(rates["eval"], macs, values, 0, w.eval_batch) \
        + (OVERHEAD["test"] if w.test_batches else 0.0)
    epoch = train + validation + OVERHEAD["epoch"]
    left = max(w.epochs - done, 0)
    return Estimate(epoch, left * epoch + test + OVERHEAD["run"], left, device, mode, w.test_batches > 0,
                    min(done, w.epochs), is_rough(layers))


def line(settings, calibration: Optional[Dict[str, Any]] = None, read: bool = True, done: int = 0) -> str:
    """The one line the shape check and a run's start print (a resume's: for the epochs left)."""
    calibration = read_calibration() if calibration is None and read else calibration
    if calibration is None:
        return (f"cost: this machine is not calibrated yet — the first training run measures it "
                f"(a few seconds), or `{MEASURE_HINT}`")
    e = estimate(settings, calibration, done)
    if e is None:
        return f"cost: no rates for {device_of(settings, calibration)} in this machine's calibration; `{MEASURE_HINT}`"
    epochs = f"{e.epochs} epoch{'s' if e.epochs != 1 else ''}"
    if e.done:
        epochs = f"the {epochs} left of {e.epochs + e.done}"
    epochs += " and the test" if e.tested else ""
    done = f"{e.done} trained before this resume; " if e.done else ""
    text = (f"cost: ~{duration(e.epoch_s)} per epoch, ~{duration(e.total_s)} for {epochs} "
            f"({done}{e.device}, {e.mode}; {how_sure(e.rough)})"
            + busy_note(calibration))
    return folded(text, "  ", WIDTH - len("[00:00:00] "))  # a log line's time stamp comes before it


def how_sure(rough: bool) -> str:
    """What an estimate rests on, and how far to trust it."""
    if rough:
        return ("rough: the calibration measured 2-D networks, not this one's 1-D or 3-D layers; "
                "its MACs and fixed per-epoch costs only")
    return "from the MACs, the fixed per-epoch costs and this machine's calibration, ±30 %"


def busy_note(calibration: Dict[str, Any], load: Optional[float] = None, cores: Optional[int] = None) -> str:
    """Other processes' work slows the run more than it slowed the calibration: the ±30 % then does
    not hold, and the user should know before trusting the figure (load: this machine's now). A
    calibration measured busy already runs long — up to the load it saw (a fifth more, for the
    load's own wobble); past that, the note again. One measured busy before the load was recorded
    is taken at its word."""
    load = os.getloadavg()[0] if load is None else load
    cores = (os.cpu_count() or 1) if cores is None else cores
    if load <= cores:
        return ""
    if not calibration.get("busy"):
        return f"; the machine is busy now (load {load:.1f} on {cores} cores): expect it to take longer"
    seen = calibration.get("load")
    if not isinstance(seen, (int, float)) or isinstance(seen, bool) or load <= 1.2 * max(seen, cores):
        return ""
    return (f"; the machine is busier now than when it was calibrated (load {load:.1f} on {cores} cores, "
            f"{seen:.1f} then): expect it to take longer")
