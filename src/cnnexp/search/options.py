"""The options of `hydra/sweeper=optuna` (`hydra.sweeper.*`), stated once: each field's default and
one line of help. conf/hydra/sweeper/optuna.yaml and the options table of docs/search.md are
written from them (`python tests/test_search_options.py`), and a test keeps the three the same.

Hydra imports this module at every start (through the plugin): it imports neither optuna nor torch.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from cnnexp.core.errors import SettingsError
from cnnexp.search.objectives import check_names

PLUGIN = "hydra_plugins.cnnexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"
SAMPLERS = ("auto", "tpe", "nsga2", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("auto", "maximize", "minimize")
STORAGES = ("sqlite", "journal")


def option(default: Any, help: str, conf: Optional[str] = None) -> Any:
    """A field with its one line of help; `conf`: what optuna.yaml sets instead of `default`
    (an interpolation such as ${seed})."""
    metadata = {"help": help, "conf": conf}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class SearchOptions:
    n_trials: int = option(20, "trials that train; settings that fail the shape check do not count")
    n_jobs: int = option(1, "trials running at once through hydra/launcher (parallel, slurm)")
    steady: bool = option(True, "start the next trial the moment one ends; false: batches of n_jobs, each waited for")
    sampler: str = option("auto", "auto | tpe | nsga2 | random | grid (auto: nsga2 for several objectives, else tpe)")
    seed: Optional[int] = option(None, "the sampler's seed, the run's unless set (null: unseeded)", conf="${seed}")
    direction: str = option("auto", "auto | maximize | minimize (auto: as the runs' checkpoint metric asks)")
    objectives: List[str] = option([], "[val/acc,macs]: a Pareto front (docs/pareto.md); []: one, the checkpoint's")
    pruner: str = option("none", "none | median | hyperband: stop trials that trail the others")
    pruner_startup_trials: int = option(2, "median: trials that finish before any trial is pruned")
    max_rejected: int = option(100, "stop after this many asked settings failed the shape check or had run already")
    storage: str = option("sqlite", "sqlite (SWEEP/study.db) | journal (SWEEP/study.journal, shared file systems) "
                                    "| postgresql://…")
    heartbeat_s: float = option(30, "a running trial's sign of life, this often")
    grace_s: Optional[float] = option(None, "unheard of this long, its worker is lost and its trial re-run "
                                            "(null: 2 × heartbeat_s)")
    max_retries: int = option(2, "a lost trial runs again from its last.ckpt at most this many times")
    workers: int = option(0, "K > 0 with hydra/launcher=slurm: K worker jobs join the study, this process waits")
    params: Dict[str, Any] = option({}, "key: choice(…) | range(…) | interval(…) | tag(log,interval(…)), "
                                        "as on the command line")

    def __post_init__(self):
        def require(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise SettingsError(f"hydra.sweeper.{key}", getattr(self, key), allowed)

        for key in ("n_trials", "n_jobs", "max_rejected"):
            require(isinstance(getattr(self, key), int) and getattr(self, key) >= 1, key, "a whole number ≥ 1")
        require(isinstance(self.pruner_startup_trials, int) and self.pruner_startup_trials >= 0,
                "pruner_startup_trials", "a whole number ≥ 0")
        require(self.sampler in SAMPLERS, "sampler", f"one of {', '.join(SAMPLERS)}")
        require(self.pruner in PRUNERS, "pruner", f"one of {', '.join(PRUNERS)}")
        require(self.direction in DIRECTIONS, "direction", f"one of {', '.join(DIRECTIONS)}")
        require(self.seed is None or isinstance(self.seed, int), "seed", "a whole number, or null")
        require(isinstance(self.steady, bool), "steady", "true or false")
        require(isinstance(self.storage, str) and (self.storage in STORAGES or "://" in self.storage), "storage",
                "sqlite, journal, or a database URL such as postgresql://user@host/db")
        require(isinstance(self.heartbeat_s, (int, float)) and self.heartbeat_s > 0, "heartbeat_s", "seconds > 0")
        require(self.grace_s is None or isinstance(self.grace_s, (int, float)) and self.grace_s > self.heartbeat_s,
                "grace_s", "seconds > hydra.sweeper.heartbeat_s, or null for twice it")
        require(isinstance(self.max_retries, int) and self.max_retries >= 0, "max_retries", "a whole number ≥ 0")
        require(isinstance(self.workers, int) and self.workers >= 0, "workers", "a whole number ≥ 0")
        check_names(self.objectives)
        self.objectives = list(self.objectives)

    @classmethod
    def from_node(cls, node: DictConfig | dict) -> "SearchOptions":
        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        plain.pop("_target_", None)
        names = {f.name for f in fields(cls)}
        for key in plain:
            if key not in names:
                raise SettingsError(f"hydra.sweeper.{key}", plain[key], f"not an option of hydra/sweeper=optuna; "
                                    f"the options are {', '.join(sorted(names))}")
        return cls(**plain)

    @property
    def several(self) -> bool:
        """Several objectives: a multi-objective study, its Pareto front (docs/pareto.md)."""
        return len(self.objectives) > 1

    @property
    def grace(self) -> float:
        """Seconds a running trial may be unheard of before its worker counts as lost."""
        return self.grace_s if self.grace_s is not None else 2 * self.heartbeat_s


def param_lines(options: SearchOptions) -> List[str]:
    """hydra.sweeper.params as override lines, the command line's grammar."""
    return [f"{k}={v}" for k, v in options.params.items()]


def is_search(sweeper_node: Any) -> bool:
    return OmegaConf.select(sweeper_node, "_target_", default=None) == PLUGIN


def conf_default(name: str) -> str:
    """An option's default as conf/hydra/sweeper/optuna.yaml writes it."""
    f = next(f for f in fields(SearchOptions) if f.name == name)
    if f.metadata["conf"] is not None:
        return f.metadata["conf"]
    value = f.default_factory() if f.default is MISSING else f.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return "{}" if value == {} else str(value)


def helps() -> Dict[str, str]:
    """{option: its one line of help}, in the dataclass's order."""
    return {f.name: f.metadata["help"] for f in fields(SearchOptions)}
