"""What a run writes and says as it starts: its record (results.json says `running`; a resume's
only once training has started, so that a resume that fails before leaves the folder as it was),
config.yaml and shapes.txt, provenance.json (and code.patch: what produced it, cnnexp.run.provenance), and the console's header with the estimated time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

from cnnexp.arithmetic.table import cost_warning, format_table
from cnnexp.config.compose import reference_model
from cnnexp.config.settings import Settings
from cnnexp.core.console import job_header
from cnnexp.core.files import write_atomic
from cnnexp.records.folder import RUN_FILES, RunRecord, config_path, read_results, remove_stale_parts, shapes_path
from cnnexp.run import provenance
from cnnexp.run.preflight import Checked
from cnnexp.run.resources import share_cores

log = logging.getLogger("cnnexp")


@dataclass
class Start:
    run_dir: Path
    record: RunRecord
    previous: Optional[dict]  # a resume's results.json, as it found it
    table: str                # the shape table shapes.txt holds
    config_yaml: str          # the effective config config.yaml holds
    rank_zero: bool           # DDP: every rank runs the job; rank 0 writes the files

    def began(self, config_yaml: str) -> None:
        """A resume's first write, once training has started: its config, its record."""
        if self.rank_zero:
            remove_stale_parts(self.run_dir)  # the run is ours again: what a killed write left goes
            write_config(self.run_dir, config_yaml, self.table)
        self.record.start()


def start_run(checked: Checked, run_dir: Path, overrides: List[str], multirun: bool, rank_zero: bool) -> Start:
    """The record, the config and shape table (a new run's, written now), and the header."""
    previous = read_results(run_dir) if checked.resume else None
    extends = previous if previous and previous.get("status") == "ok" else (previous or {}).get("extends")
    fresh = rank_zero and not checked.resume
    try:
        record = RunRecord(run_dir, overrides, write=rank_zero, start=not checked.resume, extends=extends,
                           earlier_s=float((previous or {}).get("seconds") or 0))
        start = Start(run_dir, record, previous, shape_table(checked.settings),
                      OmegaConf.to_yaml(OmegaConf.create(checked.config)), rank_zero)
        if fresh:
            write_config(run_dir, start.config_yaml, start.table)
            share_cores(checked.settings)  # as fit will: the threads the record names are those that train
            provenance.record(run_dir, checked.config, overrides)  # code, packages, machine, data (docs/reproduce.md)
        if rank_zero:
            _announce(checked, start, multirun)
    except KeyboardInterrupt:  # stopped while the record was being laid down: a new run's go with it, so
        if fresh:              # that "nothing was recorded" is true (not a results.json saying running)
            for name in RUN_FILES:
                (Path(run_dir) / name).unlink(missing_ok=True)
        raise
    return start


def write_config(run_dir: Path, config_yaml: str, table: str) -> None:
    write_atomic(config_path(run_dir), config_yaml)
    write_atomic(shapes_path(run_dir), table + "\n")


def _announce(checked: Checked, start: Start, multirun: bool) -> None:
    settings = checked.settings
    # config.yaml and shapes.txt have both; a sweep's job shows its one-line header alone
    shown = [start.config_yaml, start.table] if settings.print_config else [] if multirun else [start.table]
    log.info("\n".join([job_header(start.run_dir, multirun, eta=True), *shown]))
    costly = cost_warning(settings.model, reference_model(settings.model))  # before a setting that takes many times the reference's time
    if costly:
        log.warning(costly)
    if not multirun:  # a sweep said its total before launching; its jobs' headers carry the ETA
        log.info(cost_line(settings, checked.resume.epochs_done if checked.resume else 0))


def shape_table(settings: Settings) -> str:
    return format_table(settings.model.layers)


def cost_line(settings: Settings, done: int = 0) -> str:
    """The run's estimated seconds (cnnexp.cost.estimate) for the epochs not `done` before a resume; the
    first run on a machine measures it first."""
    from cnnexp.cost import estimate as cost
    from cnnexp.cost.calibration import for_estimates

    return cost.line(settings, for_estimates(), read=False, done=done)
