"""The search space, from override lines in the official plugin's grammar, and its points: the
grid sampler's and the cost estimate's expansions are one (`expand`, `points`), and `point_key`
names a point as a run would be named by it."""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any, Callable, Dict, List, Sequence, Tuple

from omegaconf import DictConfig, OmegaConf

from cnnexp.core.errors import SettingsError
from cnnexp.search.objectives import decide, task_monitor
from cnnexp.search.options import SearchOptions, param_lines

GRAMMAR = "use choice(a,b), range(1,5), interval(0.1,1) or tag(log,interval(1e-4,1e-2))"


def search_space(lines: Sequence[str]) -> Tuple[Dict[str, Any], List[str]]:
    """Overrides in the official plugin's grammar → ({key: optuna distribution}, fixed overrides).
    choice(…) and comma lists are categorical; range(…) an evenly stepped number; interval(…)
    a continuous one, tag(log, interval(…)) on a log scale. A later line for a key wins."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    chosen: Dict[str, Any] = {}
    for line in lines:
        try:
            o = OverridesParser.create().parse_override(line)
        except HydraException as e:
            key, _, value = line.partition("=")
            raise SettingsError(key, value, f"not a search space; {GRAMMAR} ({str(e).splitlines()[0][:120]})") from None
        key = o.get_key_element()
        if not o.is_sweep_override():
            chosen[key] = o.input_line
        elif o.is_interval_sweep():
            chosen[key] = interval(key, o.value(), line)
        else:
            chosen[key] = listed(key, o, line)
    space = {k: v for k, v in chosen.items() if not isinstance(v, str)}
    return space, [v for v in chosen.values() if isinstance(v, str)]


def interval(key: str, value, line: str):
    """interval(a,b), tag(log, interval(a,b)): whole numbers stay whole."""
    from optuna.distributions import FloatDistribution, IntDistribution

    low, high, on_log = value.start, value.end, "log" in value.tags
    if not low < high or (on_log and low <= 0):
        raise SettingsError(key, line.partition("=")[2], "an interval needs low < high (and low > 0 on a log scale)")
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=on_log)
    return FloatDistribution(float(low), float(high), log=on_log)


def listed(key: str, o, line: str):
    """choice(…), a comma list, range(…): an unshuffled numeric range is a stepped number, the rest categorical."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    values = list(o.sweep_iterator())
    if not values:  # range(3,3), choice(): Optuna would raise mid-launch
        raise SettingsError(key, line.partition("=")[2], "no values to search: a range(a,b) needs a < b, "
                                                         "a choice at least one value")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if o.is_range_sweep() and numeric and len(values) > 1 and not o.value().shuffle:
        step = values[1] - values[0]
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=step)
        return FloatDistribution(values[0], values[-1], step=step)
    return CategoricalDistribution(list(dict.fromkeys(values)))


def space_of(config: DictConfig, options: SearchOptions = None) -> Tuple[Dict[str, Any], List[str]]:
    """A composed search's space: hydra.sweeper.params, then the command line's sweeps (which win)."""
    from cnnexp.config.compose import task_overrides

    options = options or SearchOptions.from_node(config.hydra.sweeper)
    return search_space(param_lines(options) + task_overrides(config.hydra))


# ------------------------------------------------------------------ the space's points
def steps(key: str, d) -> list:
    """A number's every value: a stepped range has them, a continuous interval has none."""
    if getattr(d, "step", None) is None:
        raise SettingsError(key, "interval(…)", "the grid sampler needs a finite list of values: use choice(…) "
                            "or range(…), or hydra.sweeper.sampler=tpe")
    n = int(round((d.high - d.low) / d.step)) + 1
    return [d.low + i * d.step for i in range(n)]


def ends_and_middle(key: str, d) -> list:
    """A number's low, middle (geometric on a log scale) and high: what a cost estimate draws."""
    middle = math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2
    if isinstance(d.low, int) and isinstance(d.high, int):
        middle = round(middle)
    return list(dict.fromkeys([d.low, middle, d.high]))


def expand(space: Dict[str, Any], numbers: Callable[[str, Any], list] = steps) -> Dict[str, list]:
    """Each key's values: a categorical's choices, a number's `numbers(key, distribution)`."""
    return {key: list(d.choices) if hasattr(d, "choices") else numbers(key, d) for key, d in space.items()}


def points(values: Dict[str, list]) -> List[Dict[str, Any]]:
    """Every combination of the keys' values, as {key: value}."""
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def grid(space: Dict[str, Any]) -> Dict[str, list]:
    """The grid sampler's values: categorical choices, stepped ranges; a continuous interval has none."""
    return expand(space, steps)


def grid_points(space: Dict[str, Any]) -> set:
    """Every point of the grid, each as `point_key` of its settings."""
    return {point_key(p) for p in points(grid(space))}


def samples(space: Dict[str, Any], at_most: int) -> List[Dict[str, Any]]:
    """Settings a cost estimate composes: each choice with each number's ends and middle, at most
    `at_most` of them (a fixed draw, the same every time)."""
    drawn = points(expand(space, ends_and_middle))
    return drawn if len(drawn) <= at_most else random.Random(0).sample(drawn, at_most)


def point_key(params: Dict[str, Any]) -> Tuple:
    """Settings as a run would be named by them: two trials with the same key ran the same settings."""
    return tuple(sorted((k, as_override(k, v)) for k, v in params.items()))


def as_override(key: str, value: Any) -> str:
    if isinstance(value, float):
        text = format(value, ".6g")  # a readable run name; the run records the value it used
    elif isinstance(value, str) and not re.fullmatch(r"[\w.+\-/:]+", value):
        text = "'" + value.replace("'", "\\'") + "'"
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{key}={text}"


def check_search(config: DictConfig) -> SearchOptions:
    """Before the sweep folder exists: the options and the space parse, and a grid is finite."""
    options = SearchOptions.from_node(config.hydra.sweeper)
    space, _ = space_of(config, options)
    if not space:
        raise SettingsError("hydra.sweeper.params", options.params,
                            "nothing to search: give at least one key a choice(…), range(…) or interval(…)")
    if options.sampler == "grid":
        grid(space)
    if options.several:  # a metric the runs record, the directions decided: before any folder
        decide(options.objectives, str(config.model.task), task_monitor(config)[0], options.direction)
    if options.workers and "submitit" not in str(OmegaConf.select(config, "hydra.launcher._target_", default="")):
        raise SettingsError("hydra.sweeper.workers", options.workers, "worker jobs need hydra/launcher=slurm "
                            "(or hydra/launcher=local to try it here); on one machine, start more workers with "
                            "-m resume=SWEEP")
    return options
