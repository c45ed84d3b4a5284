"""The UCR/UEA `.ts` format, read without torch: header, cases, class names.

    @problemName GunPoint            @univariate true | @dimensions 12
    @timeStamps false                @equalLength true + @seriesLength 150 (or false: any length)
    @missing false                   @classLabel true 1 2      (the class names, in their order)
    @data
    -0.64,-0.64,…:1                  one case a line: dimensions split by ':', the label last

The rules (docs/dims.md states them for users):
- unequal lengths: every series is padded at its end to the longest of the set (`pad`), with zeros
  after normalisation — the channel's mean, or a flat line at the series' own level;
- missing values (`?` or NaN) are refused unless the header says `@missing true`; then each gap is
  filled by linear interpolation between its neighbours (the nearest value at either end, 0 for a
  dimension with no value at all);
- `@timeStamps true`: the `(time,value)` pairs are read for their values, in file order.
Every refusal names the file and the case (1-based, as the lines after @data count them) and is
one line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from cnnexp.core.errors import DataUnavailable

HEADER_KEYS = ("problemname", "timestamps", "missing", "univariate", "dimensions", "equallength",
               "serieslength", "classlabel", "targetlabel")
MISSING = ("?", "nan", "NaN")
FLOAT32_MAX = 3.4028235e38


@dataclass
class Cases:
    """A parsed file: `series[i]` is case i's list of dimensions, each a list of floats (NaN where missing)."""
    path: Path
    series: List[List[List[float]]]
    labels: List[str]
    classes: List[str]       # from @classLabel, in the file's order
    missing: bool            # @missing true: gaps are filled, not refused

    @property
    def dims(self) -> int:
        return len(self.series[0]) if self.series else 0

    @property
    def longest(self) -> int:
        return max((len(d) for case in self.series for d in case), default=0)


def _bool(path: Path, key: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise DataUnavailable(f"{path}: @{key} {value!r} is neither true nor false; fix the header line")
    return value.lower() == "true"


def _header(path: Path, lines: List[str]) -> tuple:
    """(the header as a dict, the index of the first line after @data)."""
    head = {}
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith(("#", "%")):
            continue
        if not text.startswith("@"):
            raise DataUnavailable(f"{path}: line {i + 1} comes before @data and is not a @key line; "
                                  "a .ts file is a header of @key value lines, then @data and the cases")
        key, _, value = text[1:].partition(" ")
        key = key.lower()
        if key == "data":
            return head, i + 1
        if key not in HEADER_KEYS:
            raise DataUnavailable(f"{path}: unknown header @{key} (line {i + 1}); the .ts keys are "
                                  f"{', '.join('@' + k for k in HEADER_KEYS[:-1])}")
        head[key] = value.strip()
    raise DataUnavailable(f"{path}: no @data line; a .ts file lists its cases after @data")


def _classes(path: Path, head: dict, labelled: bool = True) -> List[str]:
    value = head.get("classlabel")
    if not labelled and (value or "false").lower().startswith("false"):
        return []  # cases to predict: no label after the last ':'
    if not labelled:
        return value.split()[1:]
    if value is None or "targetlabel" in head:
        raise DataUnavailable(f"{path}: no @classLabel line (a regression set?); cnnexp trains classifiers, "
                              "which need '@classLabel true <the class names>'")
    flag, _, names = value.partition(" ")
    if not _bool(path, "classLabel", flag) or not names.split():
        raise DataUnavailable(f"{path}: '@classLabel {value}' names no classes; give '@classLabel true A B …'")
    twice = sorted({n for n in names.split() if names.split().count(n) > 1})
    if twice:
        raise DataUnavailable(f"{path}: @classLabel names {' '.join(twice)} more than once; name each class once")
    return names.split()


def parse(path: Path, labelled: bool = True) -> Cases:
    """One .ts file → its cases, each checked against the header. `labelled=False` (predict): a file
    with '@classLabel false' holds cases without labels; labels that are there are read, not checked."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataUnavailable(f"{path}: cannot be read as a .ts text file ({e}); replace it") from None
    head, start = _header(path, lines)
    classes = _classes(path, head, labelled)
    missing = _bool(path, "missing", head.get("missing", "false"))
    stamps = _bool(path, "timeStamps", head.get("timestamps", "false"))
    univariate = _bool(path, "univariate", head.get("univariate", "true"))
    dims = 1 if univariate else _int(path, head, "dimensions", 1)
    equal = _bool(path, "equalLength", head.get("equallength", "false"))
    length = _int(path, head, "serieslength", 1) if equal and "serieslength" in head else None
    out = Cases(path, [], [], classes, missing)
    case = 0
    for i in range(start, len(lines)):
        text = lines[i].strip()
        if not text or text.startswith(("#", "%")):
            continue
        case += 1
        where = f"{path}: case {case} (line {i + 1})"
        series, label = _case(where, text, stamps, missing, has_label=labelled or bool(classes))
        if len(series) != dims:
            raise DataUnavailable(f"{where} has {len(series)} dimensions, the header says {dims}; "
                                  "every case holds the same dimensions, separated by ':'")
        lengths = {len(d) for d in series}
        if len(lengths) > 1:
            raise DataUnavailable(f"{where}: ragged dimensions (lengths {', '.join(str(len(d)) for d in series)}); "
                                  "the dimensions of one case are read at the same times, so must be as long as each other")
        if length is not None and lengths != {length}:
            raise DataUnavailable(f"{where} is {lengths.pop()} long, but @seriesLength is {length}; "
                                  "fix the case, or say '@equalLength false'")
        if labelled and label not in classes:
            raise DataUnavailable(f"{where}: label {label!r} is not among @classLabel's {' '.join(classes)}; "
                                  "add it to the header or fix the case")
        out.series.append(series)
        out.labels.append(label)
    if not out.series:
        raise DataUnavailable(f"{path}: no cases after @data; a set needs at least one case per class")
    return out


def _int(path: Path, head: dict, key: str, least: int) -> int:
    value = head.get(key)
    if value is None or not value.isdigit() or int(value) < least:
        raise DataUnavailable(f"{path}: @{key} {value!r} is not a whole number ≥ {least}; fix the header line")
    return int(value)


STAMPED = re.compile(r"\(([^(),]*),([^()]*)\)")


def _case(where: str, text: str, stamps: bool, missing: bool, has_label: bool = True):
    """One data line → (dimensions as lists of floats, label or None)."""
    parts = (_outside_brackets(text) if stamps else text.split(":")) + ([] if has_label else [""])
    if has_label and (len(parts) < 2 or not parts[-1].strip()):
        raise DataUnavailable(f"{where}: no class label after the last ':'; a case is "
                              "'v1,v2,…:label' (dimensions separated by ':')")
    label = parts[-1].strip() or None
    series = []
    for d, part in enumerate(parts[:-1]):
        tokens = [m.group(2) for m in STAMPED.finditer(part)] if stamps else part.split(",")
        values = []
        for t in (t.strip() for t in tokens):
            value = _number(t)
            if value is None:
                raise DataUnavailable(f"{where}, dimension {d + 1}: {t[:20]!r} is not a number; "
                                      "values are numbers separated by ',' ('?' where missing, with @missing true)")
            if math.isnan(value) and not missing:
                raise DataUnavailable(f"{where}, dimension {d + 1}: a missing value ({t!r}) but the header says "
                                      "'@missing false'; fill it, or say '@missing true' to interpolate gaps")
            if math.isinf(value):
                raise DataUnavailable(f"{where}, dimension {d + 1}: an infinite value; replace it")
            if abs(value) > FLOAT32_MAX:
                raise DataUnavailable(f"{where}, dimension {d + 1}: {t[:20]} is beyond float32 (|x| > 3.4e38), "
                                      "where the network computes; rescale the set")
            values.append(value)
        if not values:
            raise DataUnavailable(f"{where}, dimension {d + 1}: empty; each dimension holds at least one value")
        series.append(values)
    return series, label


def _outside_brackets(text: str) -> List[str]:
    """Split on the ':' between dimensions, not those inside '(2007-01-01 00:00:00,241.9)'."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == ":" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _number(token: str) -> Optional[float]:
    if token in MISSING:
        return math.nan
    try:
        return float(token)
    except ValueError:
        return None


def fill_gaps(values):
    """NaNs of one dimension (numpy, 1-D) → linear interpolation between neighbours; the nearest
    value at the ends; all missing → zeros."""
    import numpy as np

    gaps = np.isnan(values)
    if not gaps.any():
        return values
    if gaps.all():
        return np.zeros_like(values)
    at = np.arange(len(values))
    return np.interp(at, at[~gaps], values[~gaps]).astype(values.dtype)


def to_array(cases: Cases, length: int):
    """Cases → float32 array N×C×length, each dimension's gaps filled (`fill_gaps`); a series
    shorter than `length` is padded with NaN here, which normalisation turns to 0 (`series.pad`)."""
    import numpy as np

    x = np.full((len(cases.series), cases.dims, length), np.nan, np.float32)
    for i, case in enumerate(cases.series):
        for c, values in enumerate(case):
            if len(values) > length:
                raise DataUnavailable(f"{cases.path}: case {i + 1} is {len(values)} long, longer than the "
                                      f"{length} steps the network takes; cut it to {length}")
            x[i, c, : len(values)] = fill_gaps(np.asarray(values, np.float32))
    return x
