"""Sweep run folders (and so TensorBoard run names) are named by what the sweep varies."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, read_write


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


def name_runs_by_swept_keys(config: DictConfig) -> None:
    """The fixed overrides join hydra's exclude_keys, through the hydra overrides that each
    job's config is composed from, so only swept keys name a run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.compose import task_overrides

    task = OverridesParser.create().parse_overrides(task_overrides(config.hydra))
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    swept = {o.key_or_group for o in task if o.is_sweep_override()} | set(params)
    fixed = {o.key_or_group for o in task} - swept
    exclude = list(config.hydra.job.config.override_dirname.exclude_keys) + sorted(fixed)
    with read_write(config.hydra.overrides):
        config.hydra.overrides.hydra.append(
            f"hydra.job.config.override_dirname.exclude_keys=[{','.join(exclude)}]")


def drop_duplicate_values(config: DictConfig) -> None:
    """`model.kernel_size=3,5,3` would run 3 twice into one folder: each value runs once."""
    import logging

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cnnexp.compose import task_overrides

    parsed = OverridesParser.create().parse_overrides(task_overrides(config.hydra))
    kept = []
    for o in parsed:
        if o.is_sweep_override() and not o.is_interval_sweep() and not o.is_range_sweep():
            values = list(o.sweep_string_iterator())
            unique = list(dict.fromkeys(values))
            if len(unique) < len(values):
                logging.getLogger("cnnexp").warning("%s: duplicate values dropped, each runs once: %s",
                                                     o.get_key_element(), ",".join(unique))
                kept.append(f"{o.get_key_element()}={','.join(unique)}")
                continue
        kept.append(o.input_line)
    with read_write(config.hydra.overrides):
        config.hydra.overrides.task = kept
