"""What `python -m cnnexp.predict run=RUN inputs=FILE` reads for a run that did not train on
images: a .ts, .npy or .npz file of series for a data=series run, or an .npy/.npz of volumes for a
data=volumes run — turned into the network's input by the same rules its training used (padding
to data.length, gaps, data.scaling; a volume's per-channel normalisation). numpy only.

    series:  .ts (labels optional: '@classLabel false'), .npy N×L or N×C×L (one series: L or C×L), .npz with x
    volumes: .npy C×D×H×W or D×H×W (one volume) or N×C×D×H×W, .npz with x
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

from cnnexp.core.errors import RunError, SettingsError

KINDS = {"series": 1, "volumes": 3}  # data.name → spatial axes of the inputs predict reads
NOUNS = {"series": "series", "seqmnist": "sequences", "volumes": "volumes", "moving_mnist": "clips"}


def noun(data_name: str) -> str:
    """What eval, export and predict call one example of the run's data: images unless it is not."""
    return NOUNS.get(data_name, "images")


def read(path: str, data) -> Tuple[List[str], "numpy.ndarray", List[Optional[str]]]:
    """(a name per example, float32 N×C×… as the network takes it, the file's own label or None)."""
    import numpy as np

    if data.name not in KINDS:
        raise SettingsError("inputs", path, f"a file of series or volumes; this run trained on data={data.name} — "
                            "give its images with images=FILE")
    file = Path(path).expanduser()
    if not file.is_file():
        raise RunError(f"inputs={path}: no such file; give a .ts, .npy or .npz file")
    labels: List[Optional[str]] = []
    if file.suffix == ".ts":
        if data.name != "series":
            raise SettingsError("inputs", path, "an .npy or .npz of volumes for this data=volumes run")
        from cnnexp.data import ts

        cases = ts.parse(file, labelled=False)
        length = max(cases.longest, data.length)
        x, labels = ts.to_array(cases, length), cases.labels
    else:
        x = _array(file, np)
    x = _shaped(file, x, data)
    labels = labels or [None] * len(x)
    names = [f"{file.name}#{i + 1}" for i in range(len(x))]
    return names, _scaled(x, data), labels


def _array(file: Path, np):
    """The file's array, read and checked by the one reader training uses (data/npy.py)."""
    from cnnexp.data import npy

    if file.suffix == ".npz":
        z = npy.load_npz(file)
        if "x" not in z:
            raise RunError(f"inputs={file}: holds {', '.join(z) or 'no arrays'}; an .npz to predict holds x")
        x = z["x"]
    else:
        x = npy.load_npy(file)
    if x.ndim == 0:
        raise RunError(f"inputs={file}: a single number; give an array of series or volumes")
    return npy.numbers(f"inputs={file}", x)


def _shaped(file: Path, x, data):
    """N×C×… as the run's input: a single example gets its batch axis, a missing channel axis its 1;
    a series shorter than data.length is NaN-padded (0 after scaling), a longer one refused."""
    import numpy as np

    want = [int(data.channels), int(data.length)] if data.name == "series" else [int(v) for v in data.shape]
    spatial, shape = KINDS[data.name], x.shape
    if x.ndim == spatial:                      # one example, one channel
        x = x[None, None]
    elif x.ndim == spatial + 1:                # N examples of one channel, or one example of C channels
        x = x[:, None] if want[0] == 1 else x[None]
    if x.ndim != spatial + 2 or x.shape[1] != want[0]:
        raise RunError(f"inputs={file}: an array of {'×'.join(map(str, shape))}, but the run takes "
                       f"{'×'.join(map(str, want))} per example (channels first)")
    if data.name == "series":
        if x.shape[2] > want[1]:
            raise RunError(f"inputs={file}: series {x.shape[2]} steps long; the run was trained on {want[1]} "
                           f"(data.length): cut them to {want[1]}")
        short = int(np.isnan(x[:, 0, -1]).sum()) if x.shape[2] == want[1] else len(x)
        if short and getattr(data, "padded", None) is False:
            raise RunError(f"inputs={file}: {short} of {len(x)} series shorter than {want[1]} steps, but every "
                           f"series the run trained on was {want[1]} long (nothing padded); give {want[1]} steps")
        if short:
            print(f"cnnexp: note: inputs={file}: {short} of {len(x)} series shorter than the run's {want[1]} steps "
                  "(data.length); padded at the end as training pads them (zeros after scaling)", file=sys.stderr)
        x = np.pad(x, ((0, 0), (0, 0), (0, want[1] - x.shape[2])), constant_values=np.nan)
    elif tuple(x.shape[1:]) != tuple(want):
        raise RunError(f"inputs={file}: volumes of {'×'.join(map(str, x.shape[1:]))}, but the run takes "
                       f"{'×'.join(map(str, want))}; resample them")
    return x


def _scaled(x, data):
    if data.name == "series":
        from cnnexp.data.series import prepare

        return prepare(x, data.scaling, data.mean, data.std)
    from cnnexp.data.volumes import scale

    return scale(x, data)
