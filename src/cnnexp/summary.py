"""`python -m cnnexp.summary SWEEP_FOLDER`: the table of a sweep again, from its runs' results.json.

    python -m cnnexp.summary outputs/multirun/2026-11-25/10-31-02
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

from omegaconf import OmegaConf

from cnnexp.errors import fail
from cnnexp.sweeps.summary import collect, write_summary


def main(argv: List[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        fail("usage: python -m cnnexp.summary SWEEP_FOLDER (a folder under outputs/multirun/)")
    folder = Path(args[0]).expanduser()
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder")
    if not (folder / "multirun.yaml").is_file():  # Hydra writes it at the root of every sweep
        fail(f"{args[0]}: not a sweep folder (no multirun.yaml); pass a folder under outputs/multirun/, "
             "e.g. outputs/multirun/2026-11-25/10-31-02")
    if not collect(folder):
        fail(f"{args[0]}: this sweep holds no runs yet")
    from cnnexp.sweeps.naming import recorded_sweep

    try:
        recorded = OmegaConf.load(recorded_sweep(folder))
        keys = OmegaConf.select(recorded, "sweep_options.replicate_keys", default=None) or ["seed"]
    except Exception as e:
        fail(f"{args[0]}/multirun.yaml: not readable ({str(e).splitlines()[0][:160]}); "
             "`python -m cnnexp.check` says what else is wrong in this folder")
    write_summary(folder, keys)


if __name__ == "__main__":
    main()
