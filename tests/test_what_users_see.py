"""What a person sees: the console of a real run, `--help` on every entry point, the costly-network
warning, predict's probabilities, summary.png's marks, and (slow) TensorBoard as a user opens it:
default flags, its data API and a headless Chromium's screenshots."""

from __future__ import annotations

import re
import struct
import subprocess

import pytest

from tests.helpers import PATIENCE_S, QUICK, cli, only_run_dir

pytestmark = pytest.mark.xdist_group("test_what_users_see")  # its module fixtures are built once, on one worker

BAR = re.compile(r"\d+/\d+ \[[\d:]+<")  # tqdm's "20/40 [00:03<00:03"


def shown(console: str) -> list:
    """The lines a terminal shows: a carriage return starts the line again."""
    return [line.split("\r")[-1] for line in console.split("\n")]


# ------------------------------------------------------------------ the console of a real run
@pytest.fixture(scope="module")
def console_run(tmp_path_factory, shared_data, calibrated):
    out = tmp_path_factory.mktemp("console")
    proc = cli("train", *QUICK, "trainer.max_epochs=1", "trainer.limit_train_batches=4", "callbacks.progress_bar_refresh=1",
               f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, only_run_dir(out)


def test_a_run_reaches_its_first_progress_bar_within_25_lines(console_run):
    proc, run_dir = console_run
    lines = shown(proc.stdout + proc.stderr)
    first_bar = next(i for i, line in enumerate(lines) if BAR.search(line))
    before = [line for line in lines[:first_bar] if line.strip()]
    assert len(before) <= 25, "\n".join(before)
    assert "seed: 42" not in proc.stdout and "seed: 42" in (run_dir / "config.yaml").read_text(), \
        "the resolved config is in config.yaml, printed only with print_config=true"
    assert f"run folder: {run_dir}" in proc.stdout and "block3  conv" in proc.stdout
    assert re.search(r"\] cost: ~\S+ (s|min|h) per epoch", proc.stdout)  # the first run on a machine calibrates it


def test_one_log_format_one_accelerator_line_no_line_glued_to_a_bar(console_run):
    proc, _ = console_run
    logged = [line for line in shown(proc.stdout) if line.startswith("[")]
    assert logged and all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in logged), logged
    assert "[HYDRA]" not in proc.stdout and "][INFO]" not in proc.stdout
    assert "TPU available" not in proc.stdout and "HPU available" not in proc.stdout
    assert "GPU available: False" not in proc.stdout and "accelerator: cpu" in proc.stdout
    assert not [line for line in shown(proc.stdout) if BAR.search(line) and re.search(r"\[\d\d:\d\d:\d\d\]", line)]
    assert re.search(r"\] test accuracy: [\d.]+ %", proc.stdout)


def test_the_console_of_a_run_fits_100_columns(console_run):
    """Issue #42: the cost line (~210 columns) and the shape table's worked formula (~116) ran past
    a terminal; only a path as long as it is (the run folder) may."""
    proc, run_dir = console_run
    wide = [line for line in shown(proc.stdout + proc.stderr)
            if len(line) > 100 and not BAR.search(line) and str(run_dir.parent) not in line]
    assert not wide, wide


@pytest.mark.slow  # a multi-epoch training; the progress-bar test keeps the console in the default run
def test_a_log_file_gets_one_plain_line_per_epoch_instead_of_a_bar(tmp_path, shared_data, calibrated):
    """The default (progress_bar_refresh=auto) with the console piped, as `… > log.txt` or `| tee`:
    no carriage returns, no cursor escapes; each epoch's end as one line, and the result line.
    (console_run pipes too, with an explicit refresh: that user gets the bar they asked for.)"""
    quick = [o for o in QUICK if not o.startswith("callbacks.progress_bar_refresh=")]
    proc = cli("train", *quick, "trainer.limit_train_batches=4", f"paths.output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    assert "\r" not in console and "\x1b[" not in console, repr(console[-2000:])
    unfolded = re.sub(r"\n    (?=\S)", "  ", proc.stdout)  # a line past 100 columns goes on, indented
    epochs = re.findall(r"^\[[\d:]+\] epoch (\d) \((\d) of 2\): train/acc [\d.]+  train/loss [\d.]+  "
                        r"val/acc [\d.]+  val/loss [\d.]+  [\d.]+ s$", unfolded, re.MULTILINE)
    assert epochs == [("0", "1"), ("1", "2")], proc.stdout
    assert re.search(r"\] test accuracy: [\d.]+ %", proc.stdout)


@pytest.mark.slow
def test_a_terminal_gets_the_bar_by_default(tmp_path, shared_data, calibrated):
    """The same default on a terminal (a pseudo-terminal 120 columns wide): the bar, no epoch lines."""
    import fcntl
    import os
    import pty
    import sys
    import termios

    from tests.helpers import PROJECT, finish, run_env

    quick = [o for o in QUICK if not o.startswith("callbacks.progress_bar_refresh=")]
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "cnnexp.train", *quick, "trainer.max_epochs=1",
                             "trainer.limit_train_batches=4", f"paths.output_dir={tmp_path}"], cwd=PROJECT,
                            stdout=terminal, stderr=terminal, env=run_env())
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=PATIENCE_S) == 0
    console = b"".join(chunks).decode(errors="replace")
    assert any(BAR.search(line) for line in shown(console.replace("\r\n", "\n"))), console[-2000:]
    assert not re.search(r"\] epoch \d", console), console[-2000:]


# ------------------------------------------------------------------ --help
@pytest.mark.parametrize("module, expected", [
    ("shapes", "json=true"), ("eval", "split=test"), ("predict", "top=3"), ("summary", "SWEEP_FOLDER"),
    ("bench", "rounds=3"), ("export", "tolerance="), ("dashboard", "port="), ("compare", "out=DIR"),
    ("check", "FOLDER"), ("reproduce", "force=true")])
def test_help_shows_usage_keys_and_an_example(module, expected, capsys):
    import importlib

    with pytest.raises(SystemExit) as ended:
        importlib.import_module(f"cnnexp.{module}").main(["--help"])
    assert ended.value.code in (0, None)
    text = capsys.readouterr().out
    assert f"python -m cnnexp.{module}" in text and expected in text, text


def test_train_help_is_hydras_with_the_keys_and_examples(calibrated):
    proc = cli("train", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "python -m cnnexp.train -m model.kernel_size=3,5,7" in proc.stdout and "print_config=true" in proc.stdout
    assert "model: cnn3, convae" in proc.stdout and "shell-completion" not in proc.stdout


def test_a_report_piped_to_head_ends_quietly_as_cat_does(console_run, calibrated):
    import signal
    import sys

    from tests.helpers import PROJECT, finish, run_env

    for module, args in (("shapes", []), ("check", [str(console_run[1])])):
        proc = subprocess.Popen([sys.executable, "-m", f"cnnexp.{module}", *args], cwd=PROJECT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=run_env())
        proc.stdout.close()  # head has read enough before the first line
        _, err = finish(proc)
        assert proc.returncode == -signal.SIGPIPE and "Traceback" not in err, (module, err)


# ------------------------------------------------------------------ warnings and numbers
def test_a_network_far_beyond_the_reference_is_named_with_its_factors(capsys, tmp_path, monkeypatch):
    from cnnexp.shapes import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # its cost line reads no user's calibration

    main(["model.pool=none"])
    out = capsys.readouterr().out
    assert "warning: a costly network: 62.8 M parameters (45.5× the reference cnn3's 1.4 M)" in out, out
    main(["model.kernel_size=5"])
    assert "warning" not in capsys.readouterr().out


def test_probabilities_keep_four_digits_away_from_0_and_1():
    from cnnexp.predict import four_digits

    assert four_digits(0.87654) == 0.8765
    assert four_digits(0.99999632123) == 0.999996321 and four_digits(2.34567e-5) == 2.346e-05
    assert four_digits(1.0) == 1.0 and four_digits(0.0) == 0.0


def test_summary_marks_failed_and_rejected_settings_apart(tmp_path):
    """A hand-made sweep record: one key, values given 2,1,4,8 (4 failed, 8 rejected), one run each."""
    import json

    from cnnexp.sweeps.collect import collect
    from cnnexp.sweeps.plots import plot
    from cnnexp.sweeps.tables import group_table, run_table

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['model.stride=2,1,4,8']\n")
    for stride, record in {2: {"status": "ok", "best_val_acc": 0.9}, 1: {"status": "ok", "best_val_acc": 0.95},
                           4: {"status": "failed", "reason": "RuntimeError: boom"},
                           8: {"status": "failed", "rejected": True, "reason": "block2 conv: 0 < 1"}}.items():
        (tmp_path / f"stride={stride}").mkdir()
        (tmp_path / f"stride={stride}" / "results.json").write_text(
            json.dumps({**record, "overrides": [f"model.stride={stride}"]}))
    rows = collect(tmp_path)
    figure = plot(tmp_path, rows, ["seed"])["sweep/summary"]
    ax = figure.axes[0]
    ticks = dict(zip(ax.get_xticks(), (t.get_text() for t in ax.get_xticklabels())))
    assert ticks == {1: "1", 2: "2", 4: "4", 8: "8"}, "a numeric axis: each value at its place"
    assert ax.get_xscale() == "linear", "1 to 8: less than a decade"
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"failed (1)", "rejected (1)"}
    assert "one run per setting" in figure._suptitle.get_text() and "over seed" not in figure._suptitle.get_text()
    assert not any(c.__class__.__name__ == "ErrorbarContainer" for c in ax.containers), "no error bar for n = 1"
    assert [r[1] for r in run_table(rows)[2]] == ["ok", "ok", "failed", "rejected"]
    _, friendly, _ = group_table([{**r, "overrides": [*r["overrides"], "seed=1"]} for r in rows], ["seed"])
    assert not any("± 0.0000" in cell for row in friendly for cell in row), "no spread from one run"


def test_a_sweep_table_fits_100_columns_and_its_csv_keeps_every_column(tmp_path, capsys):
    """Hand-made records of `-m model.kernel_size=3,5 seed=1,2,3`, then of the same grid without
    replicates: what is the same in every row is said once above the table."""
    import csv
    import json

    from cnnexp.sweeps.summarize import write_summary

    for replicated in (True, False):
        folder = tmp_path / str(replicated)
        (folder).mkdir()
        (folder / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['model.kernel_size=3,5', 'seed=1,2,3']\n")
        for kernel in (3, 5):
            for seed in (1, 2, 3) if replicated else (1,):
                run = folder / (f"kernel_size={kernel},seed={seed}" if replicated else f"kernel_size={kernel}")
                run.mkdir()
                overrides = [f"model.kernel_size={kernel}"] + ([f"seed={seed}"] if replicated else [])
                (run / "results.json").write_text(json.dumps({
                    "status": "ok", "overrides": overrides, "monitor": "val/acc", "mode": "max", "params": 1379557,
                    "best_val_acc": 0.97 + 0.001 * kernel + 0.002 * seed, "test_acc": 0.96 + 0.001 * kernel + 0.003 * seed,
                    "test_loss": 0.1 - 0.01 * seed - 0.001 * kernel, "images_per_s": 1400.0 + kernel, "seconds": 40.0 + kernel}))
        write_summary(folder, ["seed"], write=False)
        table = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("|", "all "))]
        assert all(len(line) <= 100 for line in table), "\n".join(table)
        if replicated:
            assert table[0] == "all settings: n=3, ok=3", table
            assert table[1] == "| setting | val acc | val acc 95% | test acc | test loss |", table
            assert re.fullmatch(r"\| kernel_size=5 \| 0\.9790 ± 0\.0020 \| 0\.\d{4}–0\.\d{4} \| 0\.9710 ± 0\.0030 \| 0\.0750 ± 0\.0100 \|",
                                table[3]), table
        else:
            assert table[0] == "all runs: status=ok, params=1,379,557", table
            assert table[1] == "| run | val acc | test acc | test loss | images/s | time s |", table  # no reason: none failed
    write_summary(tmp_path / "True", ["seed"])
    with (tmp_path / "True" / "summary.csv").open() as f:
        assert len(next(csv.reader(f))) == 3 + 3 * 4, "n, ok, and mean, sd and the interval of each metric"


@pytest.mark.parametrize("key", ["optimizer.lr", "scheduler.max_lr"])
def test_a_learning_rate_spanning_a_decade_is_drawn_on_a_log_axis(tmp_path, key):
    """A hand-made record of a search's draws, log-distributed (0.0006 … 0.008, no value a round one)."""
    import json

    from cnnexp.sweeps.collect import collect
    from cnnexp.sweeps.plots import plot

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: []\n")
    for i, lr in enumerate([0.000561152, 0.00157513, 0.00291064, 0.00796945]):
        (tmp_path / f"lr={lr}").mkdir()
        (tmp_path / f"lr={lr}" / "results.json").write_text(json.dumps(
            {"status": "ok", "best_val_acc": 0.9 - i / 10, "overrides": [f"{key}={lr}"]}))
    ax = plot(tmp_path, collect(tmp_path), ["seed"])["sweep/summary"].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == key
    low, high = ax.get_xlim()
    assert low < 0.000561152 and high > 0.00796945


def test_summary_n_labels_stay_inside_the_frame(tmp_path):
    """Hand-made records of `-m model.kernel_size=3,5 seed=1,2`: each point's `n=2` is drawn inside
    the axes, the rightmost one too (to its point's left), and the title says what the bars are."""
    import json

    from cnnexp.sweeps.collect import collect
    from cnnexp.sweeps.plots import plot

    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['model.kernel_size=3,5', 'seed=1,2']\n")
    for kernel in (3, 5):
        for seed in (1, 2):
            (tmp_path / f"kernel_size={kernel},seed={seed}").mkdir()
            (tmp_path / f"kernel_size={kernel},seed={seed}" / "results.json").write_text(json.dumps(
                {"status": "ok", "best_val_acc": 0.93 + 0.01 * seed, "overrides": [f"model.kernel_size={kernel}", f"seed={seed}"]}))
    figure = plot(tmp_path, collect(tmp_path), ["seed"])["sweep/summary"]
    ax, renderer = figure.axes[0], figure.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text() == "n=2"]
    frame = ax.get_window_extent(renderer)
    assert len(labels) == 2 and all(frame.x0 < (box := t.get_window_extent(renderer)).x0 and box.x1 < frame.x1
                                    for t in labels), [t.get_window_extent(renderer) for t in labels]
    assert "mean and 95 % interval over seed (n = 2 each)" in figure._suptitle.get_text()


# ------------------------------------------------------------------ TensorBoard, as a user opens it
@pytest.fixture(scope="module")
def board(tmp_path_factory, shared_data, calibrated):
    """A 2-run sweep over kernel 3,5 (slow tests only)."""
    out = tmp_path_factory.mktemp("board")
    proc = cli("train", "-m", "model.kernel_size=3,5", *QUICK, "trainer.max_epochs=2", "trainer.limit_train_batches=5",
               f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next((out / "multirun").glob("*/*")), proc


@pytest.mark.slow
def test_plain_tensorboard_shows_swept_keys_first_and_epoch_charts_first(board):
    from tests.tensorboard_server import tensorboard

    folder, _ = board
    with tensorboard(folder, runs=3) as tb:
        runs = tb.runs()
        assert sorted(runs) == ["_sweep", "kernel_size=3", "kernel_size=5"], "no run named ."
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        infos = experiment["hparamInfos"]
        assert infos[0]["name"] == "model.kernel_size" and infos[0]["type"] == "DATA_TYPE_FLOAT64"
        assert len(infos) <= 12 and not [h for h in infos if ".blocks." in h["name"]], [h["name"] for h in infos]
        scalars = tb.get("/data/plugin/scalars/tags")["kernel_size=3"]
        assert sorted(scalars)[:4] == ["epoch/lr", "epoch/train_loss", "epoch/val_acc", "epoch/val_loss"]
        assert "epoch" not in scalars and not [t for t in scalars if t.startswith("hparams/")]


@pytest.mark.slow
@pytest.mark.skipif(subprocess.run(["which", "chromium"], capture_output=True).returncode != 0,
                    reason="no Chromium (apt-get install chromium; .ci/run installs it)")
def test_chromium_shows_time_series_and_hparams(board, tmp_path):
    from tests.tensorboard_server import CHROMIUM, screenshot, tensorboard

    folder, _ = board
    with tensorboard(folder, runs=3) as tb:
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                              "--dump-dom", tb.url + "/#timeseries"], capture_output=True, text=True, timeout=120).stdout
        shots = [screenshot(tb.url + f"/#{tab}", tmp_path / f"{tab}.png") for tab in ("timeseries", "hparams")]
    titles = re.findall(r"(epoch/\w+|features/\w+|filters/\w+|test/\w+|train/\w+|run/\w+)", dom)
    assert titles and titles[0].startswith("epoch/"), titles[:10]
    assert "hparams/" not in dom
    for shot in shots:
        width, height = struct.unpack(">II", shot.read_bytes()[16:24])
        assert (width, height) == (1400, 1000) and shot.stat().st_size > 20_000, "a page was drawn"
