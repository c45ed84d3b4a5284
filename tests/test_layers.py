"""The imports follow the layers the README names, one way, with no cycle — function-level imports
included: a lazy import that climbs back up is still a module that knows its caller."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top: a module may import its own layer and the ones below, never one above.
LAYERS = [
    ("facts", ["cnnexp", "cnnexp.errors", "cnnexp.files", "cnnexp.locks", "cnnexp.console", "cnnexp.stopping", "cnnexp.tasks",
               "cnnexp.overrides", "cnnexp.data.idx"]),
    ("arithmetic", ["cnnexp.models.geometry", "cnnexp.models.table", "cnnexp.data.images", "cnnexp.arithmetic",
                    "cnnexp.arithmetic.*"]),
    ("settings", ["cnnexp.settings", "cnnexp.cli_args", "cnnexp.run_folder", "cnnexp.compose", "cnnexp.hparams",
                  "cnnexp.cost"]),
    ("data", ["cnnexp.data", "cnnexp.data.sources", "cnnexp.data.memory", "cnnexp.data.mnist", "cnnexp.data.folder"]),
    ("model", ["cnnexp.models", "cnnexp.models.modules", "cnnexp.models.convnet", "cnnexp.models.convae",
               "cnnexp.exported", "cnnexp.calibration"]),  # exported: a network as an ONNX file, run without torch
    ("task", ["cnnexp.tasks.base", "cnnexp.tasks.classification", "cnnexp.tasks.reconstruction", "cnnexp.tasks.tta"]),
    ("trainer", ["cnnexp.callbacks", "cnnexp.callbacks.*", "cnnexp.board", "cnnexp.events", "cnnexp.slurm", "cnnexp.resources", "cnnexp.loggers",
                 "cnnexp.resume", "cnnexp.sweeps.search", "cnnexp.run"]),  # search: the study a run's trial reports to
    ("sweeps", ["cnnexp.sweeps", "cnnexp.sweeps.*", "cnnexp.hydra_callback", "hydra_plugins.*"]),
    ("entry points", ["cnnexp.train", "cnnexp.eval", "cnnexp.predict", "cnnexp.shapes", "cnnexp.summary",
                      "cnnexp.bench", "cnnexp.compare", "cnnexp.dashboard", "cnnexp.export", "cnnexp.check"]),
]


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


def layer_of(module: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        if module in members:
            return i
    for i, (_, members) in enumerate(LAYERS):
        if any(m.endswith(".*") and module.startswith(m[:-1]) for m in members):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the README's layout)")


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


def test_imports_go_down_the_layers():
    climbing = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
                for m, targets in imports().items() for t in targets if layer_of(t) > layer_of(m)]
    assert not climbing, "imports that climb back up:\n" + "\n".join(climbing)


def test_hparams_splits_overrides_without_composing():
    """What HParams shows is pure Python: it reads an override's key from cnnexp.overrides, the one
    splitter, not from compose (Hydra's side, OmegaConf); nothing else defines a second one."""
    graph, reached, todo = imports(), set(), ["cnnexp.hparams"]
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert "cnnexp.compose" not in reached, sorted(reached)
    defined = [name for name, path in modules().items() for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == "key_value"]
    assert defined == ["cnnexp.overrides"]
