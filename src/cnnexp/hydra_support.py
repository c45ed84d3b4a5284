"""Hydra glue: resolvers for paths and run names, and the settings check that runs before
Hydra creates a run folder. Imports no torch."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from cnnexp import CONF_DIR, PROJECT_DIR, config
from cnnexp.models.geometry import ShapeError, plan


# ------------------------------------------------------------------ resolvers
def _fresh_dir(path: str) -> str:
    """Claim `path` by creating it; if another run already did (same second), try path-2, -3 …"""
    base, n = Path(path), 1
    while True:
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return str(candidate)
        except FileExistsError:
            n += 1


def _run_dir(resume: Any, fresh: str) -> str:
    """A resumed run continues in its own folder; a new one claims a fresh folder."""
    return str(Path(resume).resolve()) if resume else _fresh_dir(fresh)


def _hydra_subdir(resume: Any, stamp: str) -> str:
    return f".hydra/resume-{stamp}" if resume else ".hydra"


def run_name(override_dirname: str) -> str:
    """`model.kernel_size=5,model.stride=2` → `kernel_size=5,stride=2`: the group prefix is implied."""
    parts = []
    for item in filter(None, override_dirname.split(",")):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key.count(".") >= 1 and not key.startswith("hydra."):
            key = key.split(".", 1)[1]
        parts.append(f"{key}={value}".replace("/", "_"))
    return ",".join(parts) or "defaults"


def register_resolvers() -> None:
    resolvers = {
        "cnnexp.project_dir": (lambda: str(PROJECT_DIR), True),
        "cnnexp.fresh": (_fresh_dir, True),      # cached: resolved once per config
        "cnnexp.run_dir": (_run_dir, True),
        "cnnexp.hydra_subdir": (_hydra_subdir, True),
        "cnnexp.run_name": (run_name, False),
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)


register_resolvers()


def compose_config(overrides: list) -> DictConfig:
    """conf/train.yaml composed with overrides, outside @hydra.main (shapes, bench, tests)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


# ------------------------------------------------------------------ the check
def user_config(cfg: DictConfig) -> DictConfig:
    """The config without its `hydra` node, unresolved: resolving hydra.run.dir would claim a folder."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return OmegaConf.create(plain)


def check_writable(output_dir: str) -> None:
    """Probe the nearest existing folder on the way to output_dir with a real (removed) temp dir:
    permission bits say nothing for root, read-only mounts or /proc."""
    path = Path(output_dir).resolve()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    problem = None
    if existing is None or not existing.is_dir():
        problem = f"{existing} is not a folder"
    else:
        try:
            Path(tempfile.mkdtemp(prefix=".cnnexp-probe-", dir=existing)).rmdir()
        except OSError as e:
            problem = f"cannot create folders in {existing} ({e.strerror or e})"
    if problem:
        raise config.SettingsError(
            "paths.output_dir", output_dir,
            f"{problem}; pick a folder you can write to, e.g. paths.output_dir=$HOME/cnnexp-outputs")


def check_settings(cfg: DictConfig) -> "config.Settings":
    """Types, ranges, the shape chain and the output folder; raises SettingsError or ShapeError."""
    settings = config.load(cfg)
    plan(settings.model)
    if settings.resume:
        from cnnexp.runs import choose_checkpoint

        choose_checkpoint(settings.resume, None, which="last", key="resume")
    else:
        check_writable(settings.paths.output_dir)
    return settings


def fail(error: Exception, code: int = 2) -> None:
    print(f"cnnexp: error: {error}", file=sys.stderr)
    raise SystemExit(code)


class SettingsCheck(Callback):
    """Stops a run with one message before Hydra creates its folder or anything is loaded."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_settings(user_config(config))
        except (config_errors()) as e:
            fail(e)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Each job is checked on its own (a bad one is recorded as failed); the folder is common.
        try:
            check_writable(str(user_config(config).paths.output_dir))
        except config_errors() as e:
            fail(e)
        name_runs_by_swept_keys(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from cnnexp.summary import finish_sweep

        finish_sweep(Path(str(config.hydra.sweep.dir)))


def name_runs_by_swept_keys(config: DictConfig) -> None:
    """Run folders (and TensorBoard runs) are named by what the sweep varies, not by every
    override: the fixed ones join hydra's exclude_keys, through the hydra overrides that each
    job's config is composed from."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    swept = {o.key_or_group for o in task if o.is_sweep_override()} | set(params)
    fixed = {o.key_or_group for o in task} - swept
    exclude = list(config.hydra.job.config.override_dirname.exclude_keys) + sorted(fixed)
    with read_write(config.hydra.overrides):
        config.hydra.overrides.hydra.append(
            f"hydra.job.config.override_dirname.exclude_keys=[{','.join(exclude)}]")


def config_errors() -> tuple:
    from cnnexp.runs import RunError

    return (config.SettingsError, ShapeError, RunError)
