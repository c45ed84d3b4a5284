"""The house: each folder of src/cnnexp is a layer, and imports run one way, down — function-level
imports included (a lazy import that climbs back up is still a module that knows its caller).

The layers are derived from the folders and their imports, not listed by hand: a folder's floor
is one above the highest floor it imports; the top-level modules (the entry points), the
benchmark and the Hydra plugin stand above every folder. docs/layout.md's table is this
derivation, printed; `python tests/test_layers.py` writes it there after a folder changes.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LAYOUT = ROOT / "docs" / "layout.md"
TOP = ("bench", "hydra_plugins")  # beside the entry points: they use the product, nothing uses them


def modules() -> Dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports() -> Dict[str, Set[str]]:
    """module → the project modules it imports anywhere in its file (`from pkg import submodule`
    counts as the submodule, as Python runs it)."""
    mods = modules()
    graph: Dict[str, Set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            else:
                continue
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def room(module: str) -> str:
    """The folder a module lives in (`run` for cnnexp.run.lifecycle); `entry` for a top-level
    module, the benchmark or the plugin; `cnnexp` for the package itself (its paths)."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins" or parts[:2] == ["cnnexp", "bench"]:
        return "entry"
    if len(parts) == 1:
        return "cnnexp"
    if len(parts) == 2 and not (SRC / "cnnexp" / parts[1]).is_dir():
        return "entry"
    return parts[1]


def folder_imports() -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for module, targets in imports().items():
        graph.setdefault(room(module), set()).update(room(t) for t in targets if room(t) != room(module))
    return graph


def floors() -> Dict[str, int]:
    """Each folder's floor: 0 for one that imports no other folder, else one above the highest it
    imports. Raises on a cycle between folders: then no floor exists."""
    graph, floor = folder_imports(), {}

    def visit(folder: str, path: List[str]) -> int:
        if folder in path:
            raise AssertionError("folders that import each other: " + " → ".join([*path[path.index(folder):], folder]))
        if folder not in floor:
            below = [visit(t, [*path, folder]) for t in sorted(graph.get(folder, ()))]
            floor[folder] = 1 + max(below, default=-1)
        return floor[folder]

    for folder in sorted(graph):
        visit(folder, [])
    return floor


def summary(folder: str) -> str:
    """A folder's docstring, on one line: what it holds."""
    init = SRC / "cnnexp" / folder / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) if init.exists() else None
    assert doc, f"src/cnnexp/{folder}/__init__.py needs a docstring: what the folder holds"
    return " ".join(doc.split())


def table() -> str:
    """docs/layout.md's table of layers, bottom floor first."""
    floor = floors()
    rows = ["| floor | folder | modules | what it holds |", "|---|---|---|---|"]
    for folder in sorted((f for f in floor if f not in ("entry", "cnnexp")), key=lambda f: (floor[f], f)):
        names = sorted(p.stem for p in (SRC / "cnnexp" / folder).glob("*.py") if p.stem != "__init__")
        rows.append(f"| {floor[folder]} | `{folder}/` | {' '.join(f'`{n}`' for n in names)} | {summary(folder)} |")
    entries = sorted(p.stem for p in (SRC / "cnnexp").glob("*.py") if p.stem != "__init__")
    rows.append(f"| {floor['entry']} | entry points | {' '.join(f'`{n}`' for n in entries)} `bench/`; and "
                "`src/hydra_plugins/` beside the package | thin: parse, call, print; each answers `--help` |")
    return "\n".join(rows)


MARKERS = ("<!-- layers: written by `python tests/test_layers.py` -->", "<!-- /layers -->")


def written_table() -> str:
    text = LAYOUT.read_text()
    start, end = (text.index(m) for m in MARKERS)
    return text[start + len(MARKERS[0]):end].strip()


def test_no_import_cycle():
    graph = imports()
    state: Dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for target in sorted(graph[module]):
            assert state.get(target) != 1, "import cycle: " + " → ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_imports_go_down_the_floors():
    """No folder imports one that imports it back (a climb makes such a loop), and no folder
    imports an entry point."""
    floor = floors()
    climbing = [f"{m} imports {t}" for m, targets in imports().items() for t in targets
                if room(t) == "entry" and room(m) != "entry"]
    assert not climbing, "imports of an entry point from below:\n" + "\n".join(climbing)
    assert floor["entry"] == max(floor.values())


def test_the_drawn_layers_are_the_folders():
    """docs/layout.md shows the layers as the folders make them: a new folder, a moved module or
    a new import that changes a floor changes the table (`python tests/test_layers.py`)."""
    assert written_table() == table(), "docs/layout.md is out of date: run `python tests/test_layers.py`"


def test_only_entry_points_at_the_top():
    """The package's top holds the commands users type; everything else lives in a layer folder."""
    top = sorted(p.stem for p in (SRC / "cnnexp").glob("*.py") if p.stem != "__init__")
    for name in top:
        source = (SRC / "cnnexp" / f"{name}.py").read_text()
        assert 'if __name__ == "__main__":' in source, f"cnnexp/{name}.py is at the top but is no command"


def test_hparams_splits_overrides_without_composing():
    """What HParams shows is pure Python: it reads an override's key from config.overrides, the one
    splitter, not from compose (Hydra's side, OmegaConf); nothing else defines a second one."""
    graph, reached, todo = imports(), set(), ["cnnexp.tracking.hparams"]
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert "cnnexp.config.compose" not in reached, sorted(reached)
    defined = [name for name, path in modules().items() for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == "key_value"]
    assert defined == ["cnnexp.config.overrides"]


if __name__ == "__main__":  # rewrite docs/layout.md's table from the folders
    text = LAYOUT.read_text()
    new = re.sub(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]),
                 lambda _: f"{MARKERS[0]}\n{table()}\n{MARKERS[1]}", text, flags=re.S)
    LAYOUT.write_text(new)
    sys.stdout.write(table() + "\n")
