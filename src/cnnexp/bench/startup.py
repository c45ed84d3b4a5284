"""Launch → first training step (median of 3, interleaved) and the peak memory of a short run,
cnnexp's and, when `peer=` names a checkout, lightning-hydra-template's beside it."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from cnnexp.bench.runs import PEAK_MB, cli, launch, load_average, record_of


# The start-up run the bench times and profiles (imports.py): 2 batches, no validation (so nothing
# to pick a val/acc best by), no test.
STARTUP_RUN = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=0",
               "callbacks.checkpoint.monitor=train/loss", "test_after_fit=false", "callbacks.progress_bar_refresh=0"]


def startup_seconds(overrides: List[str], workdir: Path) -> float:
    out = Path(tempfile.mkdtemp(dir=workdir))
    launched = time.time()
    rc, _ = cli([*overrides, *STARTUP_RUN, f"paths.output_dir={out}"], workdir, memory=False)
    return record_of(out)["first_step_unix"] - launched


def memory_mb(overrides: List[str], workdir: Path) -> float:
    """Peak resident memory of a 2-epoch default run (no test: the peer's test stage cannot load its
    own checkpoint under torch ≥ 2.6, so neither side tests)."""
    rc, _ = cli([*overrides, "trainer.max_epochs=2", "test_after_fit=false", "callbacks.progress_bar_refresh=0",
                 f"paths.output_dir={tempfile.mkdtemp(dir=workdir)}"], workdir)
    return PEAK_MB["last"] if rc == 0 else float("nan")


def provenance_seconds(rounds: int = 5) -> List[float]:
    """What recording a run's provenance adds to its start (git state and patch, packages, machine,
    data fingerprint; cnnexp.run.provenance), torch imported as in a run: each of `rounds` calls."""
    import torch  # noqa: F401 — a run's capture finds it imported: its threads and GPU are read

    from cnnexp.run.provenance import capture

    config = {"data": {"name": "mnist"}, "trainer": {"deterministic": False}, "seed": 42}
    found = []
    for _ in range(rounds):
        t = time.perf_counter()
        capture(config, ["model.kernel_size=5"])
        found.append(time.perf_counter() - t)
    return found


def provenance_line() -> str:
    found = provenance_seconds()
    return (f"provenance capture at start (git state and patch, packages, machine, data): "
            f"{statistics.median(found):.3f} s median of {len(found)}, first {found[0]:.3f} s (allowed: 0.2 s)")


# ------------------------------------------------------------------ the peer: lightning-hydra-template
def first_step_marker(path: str):
    """A callback for the peer's trainer (+callbacks.first_step._target_=cnnexp.bench.startup.first_step_marker):
    writes the wall clock of its first training step, as cnnexp's results.json records its own."""
    import lightning as L

    class FirstStep(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if not os.path.exists(path):
                Path(path).write_text(repr(time.time()))

    return FirstStep()


def peer_run(peer: Path, data_dir: Path, workdir: Path, args: List[str], startup: bool = False) -> tuple[int, float]:
    """`python src/train.py args` in a lightning-hydra-template checkout, its MNIST where ours is;
    returns exit code and launch → first training step (nan if it never trained)."""
    marker = Path(tempfile.mkdtemp(dir=workdir)) / "first_step"
    src = str(Path(__file__).parents[2])  # where the peer's trainer imports first_step_marker from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), src]))}
    launched = time.time()
    rc, _ = launch([sys.executable, "src/train.py", f"data.data_dir={data_dir}", f"paths.log_dir={workdir / 'peer-logs'}",
                    "test=False", "+callbacks.first_step._target_=cnnexp.bench.startup.first_step_marker",
                    f"+callbacks.first_step.path={marker}", *args], peer, env, memory=not startup)
    return rc, float(marker.read_text()) - launched if marker.exists() else float("nan")


def startup_table(args, overrides: List[str], work: Path, data_dir: Path) -> None:
    """Launch → first training step (median of 3, interleaved) and peak memory, cnnexp and the peer;
    beside the peer both read the same uncompressed IDX files (a .gz costs cnnexp 0.15 s to unzip)."""
    peer = Path(args.peer).expanduser().resolve() if args.peer else None
    print(f"\nstart-up and memory; load average before {load_average()}")
    if peer:
        overrides = [o for o in overrides if not o.startswith("data.root=")] + [f"data.root={data_dir}"]
    ours, theirs = [], []
    for _ in range(3):
        ours.append(startup_seconds(overrides, work))
        if peer:
            # its defaults up to the first step: config tree, model summary, two sanity-validation batches
            theirs.append(peer_run(peer, data_dir, work, ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"],
                                   startup=True)[1])
    print(f"startup, launch → first training step (median of 3): cnnexp {statistics.median(ours):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in ours)})")
    print(provenance_line())
    print(f"peak memory of a 2-epoch default run: cnnexp {memory_mb(overrides, work):,.0f} MB")
    if peer:
        rc, _ = peer_run(peer, data_dir, work, ["trainer.max_epochs=2"])
        print(f"  peer lightning-hydra-template ({peer.name}): startup {statistics.median(theirs):.2f} s "
              f"({', '.join(f'{v:.2f}' for v in theirs)}), peak memory {PEAK_MB['last']:,.0f} MB (exit {rc})")
