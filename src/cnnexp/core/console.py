"""What a person reads: one log format for Hydra's lines and cnnexp's, log lines that do not land
on a progress bar, a sweep job's one-line header, and Lightning's tips, warnings and device
report cut to what applies here. conf/hydra/default.yaml names the formatter, handler and filter."""

from __future__ import annotations

import logging
import os
import select
import signal
import statistics
import sys
import warnings


SWEEP_SIZE = "CNNEXP_SWEEP_SIZE"  # set by the Hydra callback; parallel jobs inherit it
SWEEP_COST = "CNNEXP_SWEEP_COST"  # the same: the sweep's start (unix) and each job's estimated seconds
SWEEP_REFUSED = "CNNEXP_SWEEP_REFUSED"  # the same: run name → why, for a grid's settings refused before launch
WIDTH = 100  # the columns every printed line fits (a wider table is folded, or its CSV holds the rest)


class Formatter(logging.Formatter):
    """`[14:34:31] message`; warnings and errors say so: `[14:34:31] warning: message`."""

    def __init__(self, **_):  # Hydra's own `format` keys are merged in: this format replaces them
        super().__init__("[%(asctime)s] %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = text.partition("] ")
            text = f"{stamp}] {record.levelname.lower()}: {message}"
        return text


class ConsoleHandler(logging.StreamHandler):
    """A StreamHandler that writes through tqdm while a progress bar is open: the bar is cleared,
    the line written whole, the bar drawn again below it."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm = _open_bars()
        if tqdm is None:
            return super().emit(record)
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """A console whose reader went away (`| head`) stops the run as SIGPIPE stops other tools
        — recorded, through cnnexp.core.stopping — instead of a traceback for every line after it."""
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            from cnnexp.core import stopping

            silence_closed_streams()
            stopping.received = signal.SIGPIPE
            return
        super().handleError(record)


def _open_bars():
    module = sys.modules.get("tqdm")  # imported only where a bar exists
    if module is None or not getattr(module.tqdm, "_instances", None):
        return None
    return module.tqdm


class HydraLines(logging.Filter):
    """Hydra's launchers list every job (`#3 : model.kernel_size=5 …`); each job prints its own
    header instead (`job_header`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith("#")


def silence_closed_streams() -> None:
    """After a broken pipe (`python -m cnnexp.train … | head`): the standard streams whose reader
    went away write to /dev/null from here on, so that the run can record how it stopped; a stream
    still read (stderr on the terminal) keeps its reader."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            poll = select.poll()
            poll.register(fd, select.POLLOUT)
            closed = any(event & select.POLLERR for _, event in poll.poll(0))  # Linux: a pipe without reader
        except (OSError, ValueError):
            continue
        if closed:
            os.dup2(devnull, fd)
    os.close(devnull)


def report_like_cat() -> None:
    """A report's entry point (shapes, check, summary, compare, eval, predict): piped to `head`,
    it ends quietly once head has read enough, as `cat` does — no BrokenPipeError traceback.
    Not for training, which records how it stopped (ConsoleHandler.handleError)."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def command(module: str, *args) -> str:
    """`python -m cnnexp.<module> args…` as a user pastes it into a shell: each argument quoted where
    the shell would split it or read it (a space, `#`, `:`, `$`, a quote in a folder's name)."""
    import shlex

    return " ".join(["python", "-m", f"cnnexp.{module}", *(shlex.quote(str(a)) for a in args)])


def job_header(run_dir, multirun: bool, eta: bool = False) -> str:
    """`run folder: …` for one run; `[3/12] kernel_size=5,stride=2` for a sweep's job (eta: with
    the ETA for the rest of the sweep, as the job starts)."""
    if not multirun:
        return f"run folder: {run_dir}"
    from hydra.core.hydra_config import HydraConfig

    number = HydraConfig.get().job.num + 1
    size = os.environ.get(SWEEP_SIZE)
    header = f"[{number}/{size}] {run_dir.name}" if size else f"[{number}] {run_dir.name}"
    return header + sweep_eta(number - 1) if eta else header


def refused_before_launch(run_name: str):
    """Why the sweep refused this job's settings before it launched (sweeps.refusals), or None."""
    import json

    try:
        return json.loads(os.environ.get(SWEEP_REFUSED) or "{}").get(run_name)
    except (ValueError, AttributeError):
        return None


def folded(text: str, indent: str = "      ", width: int = WIDTH) -> str:
    """A long entry (a reason, a command) as lines of at most `width` columns, continued indented;
    a word longer than a line is left whole."""
    import re
    import textwrap

    lead = text[:len(text) - len(text.lstrip())]
    glued = re.sub(r"(\d) (s|ms|min|h|%|GB|MB|KB)\b", "\\1\u00a0\\2", text)  # `1.9 s`, `±30 %` kept whole
    return "\n".join(textwrap.wrap(glued, width, initial_indent="", subsequent_indent=lead + indent,
                                   break_long_words=False, break_on_hyphens=False,
                                   drop_whitespace=True)).replace("\u00a0", " ") or text


STAMP = len("[00:00:00] ")  # what Formatter puts before each log line
WARNING_STAMP = len("[00:00:00] warning: ")


def items_folded(head: str, items: list, width: int = WIDTH - STAMP, indent: str = "    ") -> str:
    """`head` then the items two spaces apart, continued indented where a line would pass `width`
    columns; an item (`val/acc 0.9214`) is never cut in two."""
    import textwrap

    glued = [str(item).replace(" ", "\u00a0") for item in items]  # textwrap breaks at ASCII spaces only
    text = (head.replace(" ", "\u00a0") if len(head) <= width else head) + " " + "  ".join(glued)
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines).replace("\u00a0", " ")


def shell_lines(words: list, indent: str = "  ", width: int = WIDTH) -> str:
    """A command as the shell reads it, continued with ` \\` where a line would pass `width` columns."""
    lines, line = [], indent
    for word in words:
        if line.strip() and len(line) + 1 + len(word) + 2 > width:
            lines.append(line + " \\")
            line = indent + "    "
        line += ("" if not line.strip() else " ") + word
    return "\n".join(lines + [line])


def duration(seconds: float, unit: str | None = None) -> str:
    """`42 s`, `3.5 min`, `2.1 h` — the unit that suits `seconds`, or the one given (a sweep's ETAs
    all in the unit of its total, so that they read as one falling count)."""
    unit = unit or unit_of(seconds)
    if unit == "s":
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if unit == "min" else f"{seconds / 3600:.1f} h"


def unit_of(seconds: float) -> str:
    return "s" if seconds < 90 else "min" if seconds < 5400 else "h"


_job_starts: dict = {}  # when each job of this process's sweep began (0-based job → unix time), keyed by the sweep's start


def sweep_eta(done: int) -> str:
    """` — ETA 4.2 min for the rest` when job `done` (0-based) starts (remaining_seconds)."""
    import json
    import time

    try:
        cost = json.loads(os.environ[SWEEP_COST])
        started, jobs = float(cost["started"]), [float(s) for s in cost["jobs"]]
    except (KeyError, ValueError, TypeError):
        return ""
    now = time.time()
    starts = _job_starts.setdefault(started, {})  # a second sweep in this process has its own
    starts[done] = now
    rest = remaining_seconds(jobs, done, starts, started, now)
    return f" — ETA {duration(rest, unit_of(sum(jobs)))} for the rest of the sweep" if rest else ""


def remaining_seconds(jobs: list, done: int, starts: dict, started: float, now: float) -> float:
    """The estimates of the jobs still to run (this one included), scaled by how long the finished
    ones took against theirs (the median of their ratios: one slow job does not swing it). A job's time is measured from its start to the next job's, where
    both started in this process (the basic launcher's jobs, one after another): the sweep's launch
    before the first job is not a job's cost, and counting it made the second job's ETA jump up.
    Jobs started elsewhere (parallel, SLURM): the time since the sweep began."""
    rest = sum(jobs[done:]) if done < len(jobs) else (sum(jobs) / len(jobs) if jobs else 0.0)
    begun = sorted(k for k in starts if k <= done)
    ratios = [(starts[b] - starts[a]) / sum(jobs[a:b]) for a, b in zip(begun, begun[1:]) if sum(jobs[a:b]) > 0]
    if len(begun) < 2:
        estimated = sum(jobs[:done])
        ratios = [(now - started) / estimated] if done and estimated > 0 else []
    if len(ratios) > 1:  # the first job also paid the imports and the data's first read: once the
        ratios = ratios[1:]  # others are timed it would swing the ETA (8.6 s → 1.7 min → 4.1 s)
    return rest * (statistics.median(ratios) if ratios else 1.0)


class _Quiet(logging.Filter):
    """Lightning's advertising, its echo of limit_* settings the user typed themselves, device
    lines for hardware this machine does not have (the GPU line becomes `accelerator: cpu`, once
    per process: a sweep's jobs share it), the end of a fit that ran all its epochs (the result
    line follows; an early or max_steps stop is still said), and the checkpoint it restores for
    the test (the result line names it), and its own word on a Ctrl-C or SIGTERM (cnnexp's
    `interrupted` line names the signal and what was recorded)."""

    DROP = ("Tip:", "was configured so", "TPU available: False", "HPU available: False",
            "Restoring states from the checkpoint path", "Loaded model weights from the checkpoint",
            "stopped: `max_epochs=", "to estimate number of stepping batches", "Detected KeyboardInterrupt",
            "Received SIGTERM")
    said_accelerator = False

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if any(text in message for text in self.DROP):
            return False
        if message.startswith("GPU available: False"):
            if _Quiet.said_accelerator:
                return False
            _Quiet.said_accelerator = True
            record.msg, record.args = "accelerator: cpu", ()
        return True


def quiet_lightning() -> None:
    """Call after Hydra has set up logging: Lightning's own console handler would print twice."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning_utilities.core.rank_zero", "lightning.pytorch.trainer.connectors.signal_connector"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Quiet) for f in logger.filters):
            logger.addFilter(_Quiet())
    # in-memory loaders need no worker processes; Lightning suggests them for DataLoaders
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")  # resume
    warnings.filterwarnings("ignore", message=".*torch.jit.trace.* is deprecated.*")  # logger.log_graph
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*The number of training batches.*is smaller than the logging interval.*")
    # a machine with SLURM installed but a run started outside it: cnnexp's SLURM path is hydra/launcher=slurm
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system but is not used.*")
