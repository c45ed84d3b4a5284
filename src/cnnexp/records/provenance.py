"""A run's provenance as a record: reading provenance.json and code.patch from a folder someone
handed over, and saying what differs between two of them (code, packages, machine, data). What
is captured, and how, is cnnexp.run.provenance's; this module only reads and compares, torch-free.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cnnexp.records.folder import code_patch_path, provenance_path
from cnnexp.records.reading import RecordError, read_record_text

SECTIONS = ("code", "packages", "machine", "data")  # what compare and reproduce set side by side, in this order
NOT_RECORDED = "no provenance.json (a run from before cnnexp recorded where it came from)"


def read_provenance(folder: Path) -> Optional[Dict[str, Any]]:
    """provenance.json (with `patch`: code.patch's text, or "") — None where the run has none;
    RecordError where it is not a plain file of the folder or not a mapping."""
    path = provenance_path(folder)
    text = read_record_text(folder, path)
    if text is None:
        return None
    try:
        found = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise RecordError(f"{path}: not readable JSON ({str(e)[:100]})") from None
    if not isinstance(found, dict) or not isinstance(found.get("code"), dict):
        raise RecordError(f"{path}: not a run's provenance (no `code` mapping)")
    found["patch"] = read_record_text(folder, code_patch_path(folder)) or ""
    return found


def patch_digest(patch: str) -> str:
    """The uncommitted change's fingerprint: two runs on the same commit ran the same code iff equal."""
    return hashlib.sha256(patch.encode()).hexdigest()[:16] if patch else ""


def code_of(record: Dict[str, Any]) -> Dict[str, Any]:
    """The facts of the code that ran, flat: commit, branch, dirty, the patch's digest, or why none."""
    code = record.get("code") or {}
    if not code.get("commit"):
        return {"git": code.get("note", "not recorded")}
    return {"commit": code["commit"], "branch": code.get("branch"), "dirty": bool(code.get("dirty")),
            "patch": patch_digest(record.get("patch", "")) or "none"}


def flat_section(record: Dict[str, Any], section: str) -> Dict[str, Any]:
    if section == "code":
        return code_of(record)
    value = record.get(section) or {}
    return dict(_flatten(value)) if isinstance(value, dict) else {section: value}


def _flatten(tree: Dict[str, Any], prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def differences(a: Dict[str, Any], b: Dict[str, Any], sections=SECTIONS) -> List[Tuple[str, str, Any, Any]]:
    """(section, key, a's value, b's value) for each fact that differs; nothing that is the same."""
    found = []
    for section in sections:
        one, other = flat_section(a, section), flat_section(b, section)
        for key in dict.fromkeys([*one, *other]):
            if one.get(key) != other.get(key):
                found.append((section, key, one.get(key, "—"), other.get(key, "—")))
    return found


def patch_diff(a: Dict[str, Any], b: Dict[str, Any], lines: int = 40) -> List[str]:
    """The difference between two runs' uncommitted changes (a diff of their patches), at most
    `lines` lines; empty where the patches are the same."""
    one, other = a.get("patch", ""), b.get("patch", "")
    if one == other:
        return []
    found = list(difflib.unified_diff(one.splitlines(), other.splitlines(), "A code.patch", "B code.patch", lineterm="", n=1))
    return found[:lines] + ([f"… {len(found) - lines} more lines: diff the two code.patch files"] if len(found) > lines else [])


def short(value: Any, width: int = 40) -> str:
    """A value for a console line: one line, at most `width` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"
