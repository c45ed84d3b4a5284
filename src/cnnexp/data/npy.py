"""The one reader of numpy files a user hands over — training series (.npz, _X.npy/_y.npy),
volumes, predict's inputs= — and the one check of the numbers they hold. numpy only.

Before any value is read, an .npy's header is checked against the file's size (a cut-short file,
or a header claiming 10^12 values, is named, never allocated) and against the memory free; an
.npz is opened as the zip it must be and each member's header is checked the same way. Nothing is
ever unpickled, and a file that is not numpy's never has its bytes echoed (the error names the
file, not its content). `numbers` is the check every reader applies: real numbers only (no bool,
complex, text, structured or object arrays), at least one value, every value finite in float32
(1e39 is finite in float64 and inf in float32: refused as beyond float32).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Dict, Sequence, Tuple

from cnnexp.core.errors import DataUnavailable

FLOAT32_MAX = 3.4028235e38
HINT = "save it with numpy.save / numpy.savez, without pickled objects"


def mem_available():
    """Bytes of memory free for a new allocation (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _header(f, where: str, np):
    """(shape, dtype, bytes of data claimed) from an open .npy stream at its start; bytes never echoed."""
    try:
        version = np.lib.format.read_magic(f)
    except (ValueError, OSError, EOFError):
        raise DataUnavailable(f"{where}: not an .npy file (it does not start with numpy's .npy signature); "
                              + HINT) from None
    try:
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(version, np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        raise DataUnavailable(f"{where}: its .npy header cannot be read (a damaged file?); " + HINT) from None
    if dtype.hasobject:
        raise DataUnavailable(f"{where}: holds pickled Python objects ({dtype}), which are never loaded; " + HINT)
    count = 1
    for n in shape:
        count *= int(n)
    return tuple(int(n) for n in shape), dtype, count * dtype.itemsize


def _fits(where: str, shape, dtype, claimed: int, held: int) -> None:
    text = f"{'×'.join(map(str, shape)) or 'a scalar'} {dtype}"
    if held < claimed:
        raise DataUnavailable(f"{where}: its header says {text} ({claimed:,} bytes) but the file holds {held:,} bytes "
                              "of data — cut short or damaged; save it again")
    free = mem_available()
    if free is not None and claimed * max(1, 4 // max(dtype.itemsize, 1)) > free:
        raise DataUnavailable(f"{where}: {text} needs {claimed / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB "
                              "of memory free; give a smaller file")


def npy_header(path: Path) -> Tuple[Tuple[int, ...], "object"]:
    """(shape, dtype) of an .npy file, checked against its size; no value read."""
    import numpy as np

    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, dtype, claimed = _header(f, str(path), np)
            held = path.stat().st_size - f.tell()
    except OSError as e:
        raise DataUnavailable(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    _fits(str(path), shape, dtype, claimed, held)
    return shape, dtype


def load_npy(path: Path):
    """An .npy file's array, its header and size checked first."""
    import numpy as np

    npy_header(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise DataUnavailable(f"{path}: not a readable .npy file; " + HINT) from None


def load_npz(path: Path) -> Dict[str, "object"]:
    """An .npz's arrays by name ('x', 'y', …), each member's header checked before it is read."""
    import numpy as np

    path = Path(path)
    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                where = f"{path} (member {info.filename})"
                with z.open(info) as f:
                    shape, dtype, claimed = _header(f, where, np)
                    _fits(where, shape, dtype, claimed, info.file_size - f.tell())
                    f.seek(0)  # read_array reads the header again
                    out[info.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, zlib.error):
        raise DataUnavailable(f"{path}: not a readable .npz (zip) file; " + HINT) from None
    except OSError as e:
        raise DataUnavailable(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    return out


def numbers(where: str, x, axes: Sequence[str] = ()):
    """x as float32 if it holds real numbers, at least one, all finite in float32; else one line
    naming the first bad value by `axes` (e.g. ('case', 'channel', 'step'))."""
    import numpy as np

    kind = {"b": "true/false values", "c": "complex numbers", "U": "text", "S": "bytes", "V": "structured records",
            "O": "Python objects", "M": "dates", "m": "time spans"}.get(x.dtype.kind)
    if kind:
        raise DataUnavailable(f"{where}: holds {kind} ({x.dtype}), not real numbers; save a float or integer array")
    if x.size == 0:
        raise DataUnavailable(f"{where}: holds no values (an array of {'×'.join(map(str, x.shape)) or 'nothing'}); "
                              "give at least one example")
    with np.errstate(over="ignore", invalid="ignore"):
        f = x.astype(np.float32)
    bad = ~np.isfinite(f)
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        own = x[at] if x.ndim else x[()]
        what = f"a value beyond float32 (|{float(own):.3g}| > 3.4e38)" if np.isfinite(own) else \
            ("NaN" if np.isnan(own) else "inf")
        named = [f"{a} {i + 1}" for a, i in zip(axes, at)]
        place = f"{named[0]} holds {what}" + (f" ({', '.join(named[1:])})" if named[1:] else "") if named else f"holds {what}"
        raise DataUnavailable(f"{where}: {place}; arrays have no missing values and every value is a finite number "
                              "within float32 — fill or rescale it (a .ts file with @missing true interpolates gaps)")
    return f
