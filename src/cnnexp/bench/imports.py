"""Where a run's start-up goes (`imports=true`): `python -X importtime -m cnnexp.train` of the
start-up run, its modules' own import time summed by package, and for each package the package
whose import first pulled it in, so that what is left can be told apart by whose it is."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

from cnnexp.bench.runs import load_average
from cnnexp.bench.startup import STARTUP_RUN

Node = Tuple[str, float, float, str]  # module, own seconds, cumulative seconds, importer ("" at the top)

# The subtrees named in docs/performance.md: what they cost and which package pulls them in.
WATCHED = ("lightning", "torch", "torch._dynamo", "torchmetrics.functional", "scipy.signal", "torchvision",
           "matplotlib", "hydra")


def parse_importtime(stderr: str) -> List[Node]:
    """-X importtime's lines (a module is printed once its own imports are done, indented by depth)
    as (module, own s, cumulative s, the module that imported it)."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line[12:] or "self [us]" in line:
            continue
        own, cumulative, name = line[12:].split("|", 2)
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), int(own) / 1e6, int(cumulative) / 1e6, depth))
    nodes, pending = [], defaultdict(list)  # depth → indices of modules whose importer is not yet printed
    for i, (name, own, cumulative, depth) in enumerate(rows):
        for child in pending.pop(depth + 1, []):
            nodes[child] = nodes[child][:3] + (name,)
        nodes.append((name, own, cumulative, ""))
        pending[depth].append(i)
    return nodes


def by_package(nodes: List[Node]) -> Dict[str, Tuple[float, str]]:
    """package → (own import seconds of all its modules, the package that first imported it)."""
    seconds: Dict[str, float] = defaultdict(float)
    pulled_by: Dict[str, str] = {}
    for name, own, _, importer in nodes:
        package = name.split(".")[0]
        seconds[package] += own
        by = importer.split(".")[0] if importer else "(the command)"
        if by != package and package not in pulled_by:
            pulled_by[package] = by
    return {p: (s, pulled_by.get(p, "(the command)")) for p, s in seconds.items()}


def startup_profile(overrides: List[str], workdir: Path) -> Tuple[int, List[Node], str]:
    """Exit code, -X importtime and its `cnnexp: error:` line (if any) of the start-up run that
    `startup_seconds` times (2 batches, no validation)."""
    out = Path(tempfile.mkdtemp(dir=workdir))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cnnexp.train", *overrides, *STARTUP_RUN,
                           f"paths.output_dir={out}"], cwd=workdir, capture_output=True, text=True)
    said = [line for line in proc.stderr.splitlines() if line.startswith("cnnexp: error:")]
    return proc.returncode, parse_importtime(proc.stderr), said[-1] if said else ""


def import_table(overrides: List[str], workdir: Path, top: int = 14) -> None:
    before = load_average()
    rc, nodes, said = startup_profile(overrides, workdir)
    if rc != 0:  # a profile of a run that failed would be another run's
        print(f"\nimports of the start-up run: none — the run exited {rc}: {said or 'run it alone to see why'}")
        return
    total = sum(own for _, own, _, _ in nodes)
    print(f"\nimports of the start-up run (python -X importtime -m cnnexp.train …): {total:.2f} s in {len(nodes):,} modules "
          f"(load average before {before})")
    print(f"  {'subtree':<26} {'cumulative s':>12}   first imported by")
    first = {}
    for name, _, cumulative, importer in nodes:
        first.setdefault(name, (cumulative, importer))
    for name in WATCHED:
        if name in first:
            cumulative, importer = first[name]
            print(f"  {name:<26} {cumulative:>12.2f}   {importer or '(the command)'}")
    print(f"  {'package':<26} {'own s':>12}   {'share':>6}   pulled in by")
    packages = sorted(by_package(nodes).items(), key=lambda kv: -kv[1][0])
    for package, (seconds, by) in packages[:top]:
        print(f"  {package:<26} {seconds:>12.2f}   {seconds / total:>6.0%}   {by}")
