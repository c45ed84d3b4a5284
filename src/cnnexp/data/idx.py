"""MNIST's IDX files: the official checksums, finding and verifying them, encoding. No torch needed."""

from __future__ import annotations

import gzip
import logging
import hashlib
import struct
import zlib
from pathlib import Path
from typing import Dict, List, Tuple

# sha256 of the *uncompressed* IDX bytes (gzip output differs between encoders; the bytes do not).
SHA256: Dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# md5 of the .gz files on the public mirrors (what torchvision checks when it downloads).
MIRROR_GZ_MD5: Dict[str, str] = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
FILES = tuple(SHA256)
TRAIN_IMAGES, IMAGE_SHAPE = 60000, (1, 28, 28)  # the training set's size; one image, C×H×W
TEST_IMAGES = 10000  # the test set's size
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


class CorruptFile(ValueError):
    pass


def raw_dir(root: str | Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def present(root: str | Path) -> bool:
    """root/MNIST/raw holds the four files (gz or not): nothing to download there."""
    raw = raw_dir(Path(root).expanduser())
    return all((raw / name).is_file() or (raw / f"{name}.gz").is_file() for name in FILES)


def read_verified(path: Path, name: str) -> bytearray:
    """The uncompressed bytes of `path` (.gz or plain), or CorruptFile if they are not MNIST's.
    Read into one writable buffer that a tensor can take as it is: a bytes object, copied into a
    tensor, held the 47 MB of the training images twice at a run's start (its peak memory)."""
    try:
        with (gzip.open(path) if path.suffix == ".gz" else path.open("rb")) as f:
            data = bytearray()
            while chunk := f.read(1 << 22):
                data += chunk
    except (OSError, EOFError, zlib.error) as e:  # a .gz cut short, not gzip, or with a garbled stream
        raise CorruptFile(f"{path}: unreadable ({e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise CorruptFile(f"{path}: sha256 of the uncompressed bytes is {digest[:12]}…, "
                          f"expected {SHA256[name][:12]}… (truncated or altered)")
    return data


def local_copies(root: str | Path, name: str) -> List[Path]:
    """The files for `name` under root/MNIST/raw: plain, .gz, or both."""
    return [p for p in (raw_dir(root) / name, raw_dir(root) / f"{name}.gz") if p.is_file()]


_kept: Dict[tuple, bytearray] = {}  # verified by the run's check, handed to the decoder once: read and hashed once


def read_local(root: str | Path, name: str, keep: bool = False) -> Tuple[Path, bytearray]:
    """The first local copy of `name` that verifies, and its bytes; CorruptFile naming every copy
    that does not (a corrupt plain file never hides a good .gz beside it). keep=True holds the bytes
    for the next read of the same unchanged file, which takes them."""
    problems = []
    for path in local_copies(root, name):
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        try:
            data = _kept.pop(key, None) or read_verified(path, name)
        except CorruptFile as e:
            problems.append(str(e))
            continue
        if problems:
            logging.getLogger(__name__).warning("corrupt MNIST file, not used (%s verified instead): %s",
                                                path.name, "; ".join(problems))
        if keep:
            _kept[key] = data
        return path, data
    raise CorruptFile("; ".join(problems) or f"{raw_dir(root) / name}: missing")


def encode_images(pixels: bytes, n: int, rows: int = IMAGE_SHAPE[1], cols: int = IMAGE_SHAPE[2]) -> bytes:
    return struct.pack(">IIII", IMAGE_MAGIC, n, rows, cols) + pixels


def encode_labels(labels: bytes, n: int) -> bytes:
    return struct.pack(">II", LABEL_MAGIC, n) + labels
