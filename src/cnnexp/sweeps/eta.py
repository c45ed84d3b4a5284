"""What a sweep will cost, said before it launches: the sum of its runs' estimates (cnnexp.cost.estimate),
and for each job's header an ETA for the rest (cnnexp.core.console.sweep_eta).

A grid's runs are each composed and estimated (beyond MAX_COMPOSED, an even sample, scaled to
the grid's size). A search's trials are not known before the study asks for them: its total is
n_trials × the mean over settings drawn from its space — every choice, and each interval's ends
and middle — with the range from all-cheapest to all-costliest; pruned trials end early, so the
search costs at most that.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import List, Optional

from omegaconf import DictConfig, OmegaConf

from cnnexp.cost import estimate as cost
from cnnexp.core.console import SWEEP_COST, WIDTH, duration, folded
from cnnexp.sweeps.naming import grid_jobs

log = logging.getLogger("cnnexp")

MAX_COMPOSED = 48  # runs composed to estimate a sweep (a few seconds at most)


def _seconds(overrides: List[str], calibration, done: int = 0) -> Optional[float]:
    """One run's estimated seconds (beyond `done` epochs); 0 for settings that cannot train (they fail at once)."""
    from cnnexp.core.errors import UserError
    from cnnexp.sweeps.refusals import settings_of

    try:
        settings = settings_of(overrides)
        if isinstance(settings, UserError):
            return 0.0
        estimate = cost.estimate(settings, calibration, done)
    except UserError:
        return 0.0
    except Exception:  # an estimate never stops a sweep
        return None
    if estimate is not None and estimate.rough:
        _rough.add(tuple(overrides))
    return None if estimate is None else estimate.total_s


_rough: set = set()  # jobs whose network the calibration did not measure (1-D, 3-D): their estimates are rough


def _sure(jobs) -> str:
    """`±30 %`, or that the estimate is rough (a 1-D or 3-D network among the jobs)."""
    return "rough: 1-D/3-D networks were not calibrated" if any(tuple(j) in _rough for j in jobs) else "±30 %"


def _sample(items: list, n: int) -> list:
    return items if len(items) <= n else [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def epochs_done(config: DictConfig, jobs: List[List[str]]) -> List[Optional[int]]:
    """Per job of a resumed sweep, what its earlier launches left: None for a run that ended ok
    (skipped), else the epochs its last.ckpt continues from (0: it runs from the start)."""
    from cnnexp.run import resume
    from cnnexp.config.compose import run_name
    from cnnexp.records.folder import read_results
    from cnnexp.sweeps.naming import name_exclusions

    if not OmegaConf.select(config, "resume", default=None):
        return [0] * len(jobs)
    sweep, exclude = Path(str(config.hydra.sweep.dir)), name_exclusions(config)
    done = []
    for job in jobs:
        folder = sweep / run_name(job, exclude)
        then = resume.in_earlier_launch(read_results(folder), folder)
        done.append(None if then == "skip" else resume.epochs_done(folder) if then == "continue" else 0)
    return done


def search_samples(config: DictConfig) -> List[List[str]]:
    """Settings drawn from a search's space: each choice, each number's low, middle and high."""
    from cnnexp.search.space import as_override, samples, space_of

    space, fixed = space_of(config)
    return [fixed + [as_override(k, v) for k, v in point.items()] for point in samples(space, MAX_COMPOSED)]


def announce(config: DictConfig, jobs: int) -> None:
    """Log the sweep's estimated total and hand each job the estimates for its ETA (an environment
    variable, which parallel and SLURM jobs inherit as they do the sweep's size)."""
    from cnnexp.cost.calibration import for_estimates
    from cnnexp.search.options import is_search
    from cnnexp.search.trials import trials_left

    search = is_search(config.hydra.sweeper)
    if search:
        jobs = trials_left(config)  # a resumed search: only the trials it will run
        if not jobs:  # the search says it has nothing to run
            return
    calibration = for_estimates()
    if calibration is None:  # a machine that cannot be measured still sweeps
        return
    started = time.perf_counter()
    busy = cost.busy_note(calibration)
    per_job = _search_total(config, calibration, jobs, busy) if search else _grid_total(config, calibration, busy)
    if per_job is None:
        return
    if search:  # a resumed search's jobs go on numbering after the trials it holds ([4/5]): those cost nothing now
        per_job = [0.0] * max(0, int(config.hydra.sweeper.n_trials) - jobs) + per_job
    os.environ[SWEEP_COST] = json.dumps({"started": time.time(), "jobs": [round(s, 1) for s in per_job]})
    log.debug("sweep estimated in %.2f s", time.perf_counter() - started)


def _search_total(config: DictConfig, calibration, jobs: int, busy: str) -> Optional[List[float]]:
    """Logs n_trials × the mean over settings drawn from the space; each trial's estimate, or None."""
    left_word = " left" if OmegaConf.select(config, "resume", default=None) else ""
    drawn = search_samples(config)
    seconds = [_seconds(o, calibration) for o in drawn]
    trained = [s for s in seconds if s]  # settings the shape check rejects cost nothing
    if not trained:
        return None
    mean = statistics.mean(trained)
    _say("search: ~%s for %d trial%s%s (n_trials × the mean of %d settings drawn from its space; "
         "%s if all were the cheapest, %s if all the costliest; pruned trials end sooner; %s)%s",
         duration(jobs * mean), jobs, "" if jobs == 1 else "s", left_word, len(trained),
         duration(jobs * min(trained)), duration(jobs * max(trained)), _sure(drawn), busy)
    return [mean] * jobs


def _grid_total(config: DictConfig, calibration, busy: str) -> Optional[List[float]]:
    """Logs the grid's total (of what is left, on a resume); each job's estimate, or None."""
    every = grid_jobs(config)
    done = epochs_done(config, every)  # a resumed sweep: only what is left
    todo = [(job, d) for job, d in zip(every, done) if d is not None]
    chosen = _sample(todo, MAX_COMPOSED)
    seconds = [_seconds(o, calibration, d) for o, d in chosen]
    if None in seconds:
        return None
    scale = len(todo) / len(chosen) if chosen else 1
    each = iter(seconds) if len(chosen) == len(todo) else itertools.repeat(statistics.mean(seconds))
    per_job = [0.0 if d is None else next(each) for d in done]
    sampled = "" if scale == 1 else f", from {len(chosen)} of them"
    skipped, continued = done.count(None), sum(1 for d in done if d)
    left = ", ".join(filter(None, [skipped and f"{skipped} ended ok before (skipped)", continued and
                                   f"{continued} continue{'s' if continued == 1 else ''} from last.ckpt"]))
    left = f" — {left} —" if left else ""
    if every and not todo:  # a resume of a finished sweep: no estimate of nothing
        log.info("sweep: %d run%s — all ended ok before (skipped): nothing left to run", len(every),
                 "" if len(every) == 1 else "s")
    else:
        _say("sweep: %d run%s%s ~%s %s on this machine (one after another%s; %s)%s",
             len(every), "" if len(every) == 1 else "s", left or ",", duration(sum(seconds) * scale),
             "for what is left" if left else "in all", sampled, _sure(o for o, _ in chosen), busy)
    return per_job


def _say(message: str, *args) -> None:
    """A log line folded to fit the console beside its time stamp."""
    log.info("%s", folded(message % args, "  ", WIDTH - len("[00:00:00] ")))
