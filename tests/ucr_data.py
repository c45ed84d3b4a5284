"""Real UCR/UEA sets for the tests, in .ts, fetched the way a run fetches MNIST's fallback: the
aeon wheel on the package index (pip download --no-deps: never installed) bundles GunPoint,
ItalyPowerDemand, JapaneseVowels, BasicMotions, ArrowHead, OSULeaf …; their two files are read out
of the zip and cached under the tests' data folder (data/ucr/<Name>/, or a read-only
CNNEXP_TEST_DATA/UCR/<Name>/ where one exists). With neither the index nor a cache, tests skip."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import PROJECT, SHARED_DATA

WHEEL = ("aeon", "1.6.0", "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409")
CACHE = PROJECT / "data" / "ucr"


def _wanted(folder: Path, name: str) -> bool:
    return all((folder / f"{name}_{s}.ts").is_file() for s in ("TRAIN", "TEST"))


def ucr(name: str) -> Path:
    """The folder of `name`'s _TRAIN.ts and _TEST.ts; skips the test when they cannot be had."""
    for folder in (SHARED_DATA / "UCR" / name, CACHE / name):
        if _wanted(folder, name):
            return folder
    package, version, sha256 = WHEEL
    with tempfile.TemporaryDirectory(prefix="cnnexp-ucr-") as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-q", "-d", tmp, f"{package}=={version}"],
                              capture_output=True, text=True, timeout=300)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            pytest.skip(f"UCR {name}: no cache and pip download {package}=={version} failed")
        blob = wheels[0].read_bytes()
        if hashlib.sha256(blob).hexdigest() != sha256:
            pytest.skip(f"UCR {name}: {wheels[0].name} has another sha256 than the tests know")
        with zipfile.ZipFile(wheels[0]) as zf:
            for n in zf.namelist():  # every bundled set at once: the next test finds its cache
                folder = Path(n).parent.name  # a set's own two files (not JapaneseVowels_eq_…, a variant)
                if n.startswith("aeon/datasets/data/") and Path(n).name in (f"{folder}_TRAIN.ts", f"{folder}_TEST.ts"):
                    target = CACHE / folder / Path(n).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    part = target.with_suffix(".part")
                    part.write_bytes(zf.read(n))
                    part.replace(target)
    if not _wanted(CACHE / name, name):
        pytest.skip(f"UCR {name}: not in {package} {version}")
    return CACHE / name
