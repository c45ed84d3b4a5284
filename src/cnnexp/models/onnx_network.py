"""An exported network, `model.onnx`: the facts it carries inside the file, and running it with
onnxruntime alone — importing this module, or running a model with it, loads no torch.

The file is enough to predict: its metadata_props say what the network takes and answers
(`cnnexp.*` keys below, JSON values), written by `cnnexp.export` and read back here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from cnnexp.core.errors import RunError
from cnnexp.core.console import command

ONNX_FILE = "model.onnx"
INPUT, OUTPUT = "input", "output"  # the graph's tensor names; the batch axis (0) is dynamic
PREFIX = "cnnexp."
INSTALL = "pip install 'cnnexp[export]' (onnx and onnxruntime)"


@dataclass
class Facts:
    """What a model needs beside its weights to be used alone: one record, written and read."""

    task: str                       # classification or reconstruction
    model: str                      # the model config's name (cnn3, speed, convae …)
    data: str                       # mnist or folder: how predict reads an image
    classes: List[str]              # the output's class names, in order; none when it does not classify
    input_shape: List[int]          # C, *spatial: C×L (a series), C×H×W, C×D×H×W (a volume)
    channels: int
    normalize: bool                 # (x / 255 − mean) / std per channel, else x / 255
    mean: List[float]
    std: List[float]
    monitor: str                    # the metric best.ckpt was chosen by, and its value then
    best_value: Optional[float]
    version: str                    # of cnnexp
    exporter: str                   # which torch.onnx exporter wrote the graph
    parity: Dict[str, float]        # the check against PyTorch that let this file be written

    def props(self) -> Dict[str, str]:
        return {PREFIX + k: json.dumps(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_props(cls, props: Dict[str, str], path: Path) -> "Facts":
        try:
            return cls(**{k: json.loads(props[PREFIX + k]) for k in cls.__dataclass_fields__})
        except (KeyError, ValueError) as e:
            raise RunError(f"{path}: not a model exported by cnnexp (metadata {e} missing or unreadable); "
                           "export it with python -m cnnexp.export run=FOLDER") from None


def session(data: bytes, path: Path):
    """An onnxruntime session on the CPU for a serialised model; `path` names it in errors."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RunError(f"running an ONNX model needs onnxruntime: {INSTALL}") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors: bytes that are not an ONNX model
        raise RunError(f"{path}: not a readable ONNX model ({str(e).strip().splitlines()[0][:160]})") from None


def run(session, x, batch: int = 256):
    """float32 inputs (N, C, *spatial), already normalised → outputs (N, …), batch by batch."""
    import numpy as np

    parts = [session.run([OUTPUT], {INPUT: np.ascontiguousarray(x[i:i + batch], np.float32)})[0]
             for i in range(0, len(x), batch)]
    return np.concatenate(parts)


class OnnxModel:
    """A model.onnx file and its Facts; calling it runs onnxruntime."""

    def __init__(self, path: Path):
        self.path = path
        try:
            data = path.read_bytes()
        except OSError as e:
            raise RunError(f"{path}: cannot be read ({e.strerror or e})") from None
        self.session = session(data, path)
        self.facts = Facts.from_props(self.session.get_modelmeta().custom_metadata_map, path)

    def __call__(self, x):
        return run(self.session, x)


def load(run: Optional[str], model: Optional[str]) -> OnnxModel:
    """model= wins; else the run folder's model.onnx."""
    from cnnexp.records.folder import open_run

    if model:
        path = Path(model).expanduser()
        if not path.is_file():
            raise RunError(f"model={model}: no such file")
        return OnnxModel(path)
    if not run:
        raise RunError("say which model: run=outputs/<date>/<time> (its model.onnx) or model=path/to/model.onnx")
    from cnnexp.records.reading import record_file

    folder = open_run(run)
    path = folder / ONNX_FILE
    if record_file(folder, path) is None:  # a link out of the folder, a pipe: one line, never opened
        raise RunError(f"run={run}: no {ONNX_FILE} in this run; export it first: {command('export', f'run={run}')}")
    model = OnnxModel(path)
    behind = exported_behind(folder, model.facts)
    if behind:
        raise RunError(f"run={run}: its {ONNX_FILE} {behind}; export it again: {command('export', f'run={run}')}")
    return model


def exported_behind(folder: Path, facts: Facts) -> Optional[str]:
    """How a run's model.onnx lags its best.ckpt, or None: a resume that trained further and found a
    better epoch made a new best.ckpt, and the file exported before would answer for the old one."""
    from cnnexp.records.folder import best_key, read_results

    recorded = (read_results(folder) or {}).get(best_key(str(facts.monitor)))
    if not isinstance(recorded, (int, float)) or not isinstance(facts.best_value, (int, float)):
        return None
    if math.isclose(recorded, facts.best_value, rel_tol=1e-6, abs_tol=1e-9):
        return None
    return (f"was exported from an earlier best.ckpt ({facts.monitor} {facts.best_value:.6g}); the run was trained "
            f"further since, and its best.ckpt now has {facts.monitor} {recorded:.6g}")


def softmax(logits):
    """Row-wise, in float64 then back: the same probabilities torch.softmax gives, to 1e-7."""
    import numpy as np

    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
