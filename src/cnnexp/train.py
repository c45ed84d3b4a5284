"""`python -m cnnexp.train [overrides]`: check the settings, train, test the best checkpoint.

    python -m cnnexp.train model=cnn3 trainer.max_epochs=15
    python -m cnnexp.train -m model.kernel_size=3,5,7 model.stride=1,2
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnnexp import CONF_DIR
from cnnexp.hydra_support import check_settings, config_errors, fail
from cnnexp.run_record import RunRecord

log = logging.getLogger("cnnexp")


def run(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    # DDP starts one process per device with the same command: only rank 0 writes the run's files
    rank_zero = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    record = RunRecord(run_dir, list(hc.overrides.task), write=rank_zero)

    try:  # a sweep reaches here with each job's own settings; a single run was checked already
        settings = check_settings(cfg)
        resume_from = None
        if settings.resume:
            cfg, settings, resume_from = resumed(cfg, settings, list(hc.overrides.task))
    except config_errors() as e:
        record.finish("failed", reason=str(e))
        log.error("invalid settings: %s", e)
        return fail(e) if not multirun else record.data

    from cnnexp.models.geometry import plan
    from cnnexp.models.table import format_table

    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    table = format_table(plan(settings.model))
    if rank_zero:
        (run_dir / "config.yaml").write_text(resolved)
        (run_dir / "shapes.txt").write_text(table + "\n")
        log.info("run folder: %s\n%s\n%s", run_dir, resolved, table)

    from cnnexp.data.sources import DataUnavailable
    from cnnexp.training import fit_and_test

    share_cores(hc, settings)

    try:
        results = fit_and_test(settings, run_dir, OmegaConf.to_container(cfg, resolve=True), resume_from)
    except DataUnavailable as e:
        record.finish("failed", reason=str(e))
        return fail(e) if not multirun else record.data
    except Exception as e:
        record.finish("failed", reason=f"{type(e).__name__}: {e}")
        if not multirun:
            raise
        log.error("run failed:\n%s", traceback.format_exc())
        return record.data
    except KeyboardInterrupt:
        record.finish("interrupted")
        raise
    data = record.finish("ok", **results)
    if "test_acc" in data:
        log.info("test accuracy: %.2f %% (%s) — run folder %s", 100 * data["test_acc"], data["tested_checkpoint"], run_dir)
    elif "test_loss" in data:
        log.info("test loss: %.4f (%s) — run folder %s", data["test_loss"], data["tested_checkpoint"], run_dir)
    return data


def resumed(cfg: DictConfig, settings, overrides: list):
    """The run folder's own config (plus any dotted overrides, e.g. trainer.max_epochs=20 to extend
    it) and its last checkpoint, checked before anything is written."""
    from cnnexp.runs import RunError, choose_checkpoint, load_checkpoint

    from hydra.core.override_parser.overrides_parser import OverridesParser

    folder = Path(settings.resume)
    saved = OmegaConf.load(folder / "config.yaml")
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key == "resume":
            continue
        if "." not in key:
            raise RunError(f"{override.input_line}: a resumed run keeps its model, data and optimizer groups; "
                           "only dotted overrides (e.g. trainer.max_epochs=20) apply")
        OmegaConf.update(saved, key, override.value(), force_add=False)
    saved.resume = str(folder)
    checkpoint = choose_checkpoint(str(folder), None, which="last", key="resume")
    load_checkpoint(checkpoint)  # truncated or foreign: RunError now, not mid-way through fit
    return saved, check_settings(saved), checkpoint


def share_cores(hc, settings) -> None:
    """Processes that run side by side split the cores: processes × torch threads ≤ cores.
    They are parallel sweep jobs, or DDP's CPU processes."""
    launcher = hc.launcher if "launcher" in hc else {}
    n_jobs = OmegaConf.select(launcher, "n_jobs", default=None) or 1
    cpus = OmegaConf.select(launcher, "cpus_per_task", default=None)  # submitit (SLURM or local)
    t = settings.trainer
    if t.strategy.startswith("ddp") and t.accelerator == "cpu" and isinstance(t.devices, int):
        n_jobs *= t.devices
    threads = max(1, (os.cpu_count() or 1) // n_jobs) if n_jobs > 1 else cpus
    if threads:
        import torch

        torch.set_num_threads(int(threads))


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> dict:
    return run(cfg)


if __name__ == "__main__":
    main()
