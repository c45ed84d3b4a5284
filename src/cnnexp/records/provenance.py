"""A run's provenance as a record: reading provenance.json and code.patch from a folder someone
handed over, and saying what differs between two of them (code, packages, machine, data). What
is captured, and how, is cnnexp.run.provenance's; this module only reads and compares, torch-free.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from cnnexp.records.folder import code_patch_path, provenance_path
from cnnexp.records.reading import RecordError, parse_json, read_record_text

SECTIONS = ("code", "packages", "machine", "data")  # what compare and reproduce set side by side, in this order
NOT_RECORDED = "no provenance.json (a run from before cnnexp recorded where it came from)"


def read_provenance(folder: Path) -> Optional[Dict[str, Any]]:
    """provenance.json (with `patch`: code.patch's text, or "") — None where the run has none;
    RecordError where it is not a plain file of the folder or not a mapping."""
    path = provenance_path(folder)
    text = read_record_text(folder, path)
    if text is None:
        return None
    found = parse_json(path, text)
    if not isinstance(found, dict) or not isinstance(found.get("code"), dict):
        raise RecordError(f"{path}: not a run's provenance (no `code` mapping)")
    wrong = wrong_types(found)
    if wrong:
        raise RecordError(f"{path}: {wrong}; not what cnnexp writes (edited by hand?) — nothing of it was used")
    found["patch"] = read_record_text(folder, code_patch_path(folder)) or ""
    return found


COMMIT = re.compile(r"[0-9a-f]{7,40}")  # what `git rev-parse HEAD` prints; nothing else reaches git's argv
TEXTS = ("branch", "note", "root", "rebuilt")  # code's other facts: text, or absent


def wrong_types(found: Dict[str, Any]) -> str:
    """What in a handed provenance.json is not of the type cnnexp writes, in words ("" if nothing):
    every value a reader uses — the commit (which goes to git), the code's texts, the overrides
    (which go to train's command line) — is checked here, once, for every reader."""
    code = found["code"]
    commit = code.get("commit")
    if commit is not None and not (isinstance(commit, str) and COMMIT.fullmatch(commit)):
        return f"code.commit is {short(repr(commit), 50)}, not a commit (7 to 40 hex digits)"
    bad = next((k for k in TEXTS if code.get(k) is not None and not isinstance(code[k], str)), None)
    if bad:
        return f"code.{bad} is {short(repr(code[bad]), 50)}, not text"
    if "dirty" in code and not isinstance(code["dirty"], bool):
        return f"code.dirty is {short(repr(code['dirty']), 50)}, not true or false"
    return overrides_problem(found.get("overrides", []), "overrides")


def overrides_problem(overrides: Any, name: str) -> str:
    """A record's overrides are a list of key=value texts; an option (`--config-dir=…`) is no override."""
    if overrides is None:
        return ""
    if not isinstance(overrides, list):
        return f"{name} is {type(overrides).__name__} {short(repr(overrides), 40)}, not a list of key=value"
    bad = next((o for o in overrides if not isinstance(o, str) or o.startswith("-")
                or ("=" not in o and not o.startswith("~"))), None)
    if bad is not None:
        return f"{name} holds {short(repr(bad), 50)}, not a key=value override"
    return ""


def patch_digest(patch: str) -> str:
    """The uncommitted change's fingerprint: two runs on the same commit ran the same code iff equal."""
    return hashlib.sha256(patch.encode()).hexdigest()[:16] if patch else ""


def code_of(record: Dict[str, Any]) -> Dict[str, Any]:
    """The facts of the code that ran, flat: commit, branch, dirty, the patch's digest, or why none."""
    code = record.get("code") or {}
    if not code.get("commit"):
        return {"git": code.get("note", "not recorded")}
    return {"commit": code["commit"][:12], "branch": code.get("branch"), "dirty": bool(code.get("dirty")),
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


def by_file(patch: str) -> Dict[str, str]:
    """A patch's change to each file, by the file's path."""
    parts = ("\n" + patch).split("\ndiff --git a/")[1:]
    return {part.split(" b/", 1)[0]: part for part in parts}


def hunks(change: str) -> List[str]:
    """A file's change without git's header lines (`diff --git`, index, ---/+++): its @@ hunks."""
    lines = change.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("@@")), len(lines))
    return lines[start:]


def patch_diff(a: Dict[str, Any], b: Dict[str, Any], lines: int = 30) -> List[str]:
    """How two runs' uncommitted changes differ: the files whose change differs, then a diff of
    those files' changes, at most `lines` lines; empty where the patches are the same."""
    one, other = by_file(a.get("patch", "")), by_file(b.get("patch", ""))
    files = [f for f in sorted({*one, *other}) if one.get(f) != other.get(f)]
    if not files:
        return []
    found = []
    for f in files:
        a_hunks, b_hunks = hunks(one.get(f, "")), hunks(other.get(f, ""))
        if not a_hunks or not b_hunks:  # one side left the file as committed: the other's change itself
            found += [f"{'B' if b_hunks else 'A'} alone changes {f}:", *(b_hunks or a_hunks)]
        else:  # both changed it: how their changes differ (a diff of the two hunks, headers left out)
            found += list(difflib.unified_diff(a_hunks, b_hunks, f"A's change to {f}", f"B's change to {f}",
                                               lineterm="", n=1))
    head = [f"files: {', '.join(files[:8])}" + (f" and {len(files) - 8} more" if len(files) > 8 else "")]
    return head + found[:lines] + ([f"… {len(found) - lines} more lines: diff the two code.patch files"]
                                   if len(found) > lines else [])


def short(value: Any, width: int = 40) -> str:
    """A value for a console line: one line, at most `width` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def side_by_side(letters: List[str], records: List[Optional[Dict[str, Any]]], rows_per_section: int = 12) -> List[str]:
    """The lines compare prints under "what else differs": per section, each fact that is not the
    same for every entry (one column per entry), then the diff between the first entry's
    uncommitted change and each other's. An entry without a record is said, not guessed."""
    lines = [f"{letter}: {NOT_RECORDED}" for letter, r in zip(letters, records) if r is None]
    known = [(letter, r) for letter, r in zip(letters, records) if r is not None]
    if len(known) < 2:
        return lines
    for section in SECTIONS:
        flats = [flat_section(r, section) for _, r in known]
        keys = [k for k in dict.fromkeys(k for f in flats for k in f) if len({repr(f.get(k)) for f in flats}) > 1]
        if not keys:
            continue
        lines.append(f"{section}:")
        for key in keys[:rows_per_section]:
            lines.append(f"  {short(key, 28):<28} " + "  ".join(f"{letter} {short(f.get(key, '—'), 60 // len(known))}"
                                                             for (letter, _), f in zip(known, flats)))
        if len(keys) > rows_per_section:
            lines.append(f"  … {len(keys) - rows_per_section} more: see each run's provenance.json")
    first_letter, first = known[0]
    for letter, other in known[1:]:
        diff = patch_diff(first, other)
        if diff:
            lines.append(f"code: the uncommitted changes differ ({first_letter}'s code.patch → {letter}'s):")
            lines += ["  " + short_line(line) for line in diff]
    return lines


def short_line(line: str, width: int = 96) -> str:
    return line if len(line) <= width else line[:width - 1] + "…"
