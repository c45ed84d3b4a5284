"""logger=mlflow against a real `mlflow server` on a free local port, read back through its REST
API: a run killed and resumed is one MLflow run with every epoch once; a sweep is a parent run
with a child per trial and the summary figure on the parent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from tests.helpers import PATIENCE_S, QUICK, cli, killed_after_epoch, only_run_dir

pytest.importorskip("mlflow")


class Server:
    def __init__(self, url: str):
        self.url = url

    def get(self, path: str, **query):
        with urllib.request.urlopen(f"{self.url}{path}?{urllib.parse.urlencode(query)}", timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict):
        request = urllib.request.Request(f"{self.url}{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def runs(self, experiment: str = "cnnexp") -> list:
        found = self.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=experiment)["experiment"]
        return self.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [found["experiment_id"]]}).get("runs", [])

    def history(self, run_id: str, key: str) -> list:
        return self.get("/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key=key).get("metrics", [])

    def artifacts(self, run_id: str) -> set:
        return {f["path"] for f in self.get("/api/2.0/mlflow/artifacts/list", run_id=run_id).get("files", [])}


@pytest.fixture
def server(tmp_path):
    """`mlflow server` on a free port of 127.0.0.1, with its own store; stopped after the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "server"
    store.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{store}/mlflow.db",
                             "--artifacts-destination", str(store / "artifacts")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        yield Server(url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # its graceful shutdown, on a busy machine
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def test_where_runs_are_tracked_and_a_server_that_does_not_answer(shared_data, tmp_path, monkeypatch):
    from cnnexp.config.compose import compose_config
    from cnnexp.core.errors import RunError
    from cnnexp.tracking.loggers import check_tracking
    from cnnexp.config.settings import load

    base = [f"data.root={shared_data}", f"paths.output_dir={tmp_path}"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load(compose_config(base)).logger.mlflow is None, "off by default"
    both = load(compose_config([*base, "logger=[tensorboard,mlflow]"])).logger
    assert both.tensorboard and both.mlflow.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert not load(compose_config([*base, "logger=mlflow"])).logger.tensorboard
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    settings = load(compose_config([*base, "logger=mlflow"]))
    with pytest.raises(RunError, match=f"MLflow at {dead} does not answer"):
        check_tracking(settings)


@pytest.mark.slow  # a server start and real training: longer than the default run allows
def test_a_killed_and_resumed_run_is_one_mlflow_run_with_every_epoch_once(server, tmp_path, monkeypatch, calibrated):
    out = tmp_path / "out"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    killed_after_epoch([*QUICK, "trainer.max_epochs=3", "trainer.limit_train_batches=60", "logger=mlflow"],
                       out, "*/*/metrics.csv")
    run_dir = only_run_dir(out)
    killed = json.loads((run_dir / "results.json").read_text())
    assert killed["status"] == "running" and killed["mlflow_run_id"], "the id is recorded when the run starts"
    # MLFLOW_TRACKING_URI stays set: a resume talks to a server its config.yaml names only when the user names it too
    again = cli("train", f"resume={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]

    results = json.loads((run_dir / "results.json").read_text())
    (run,) = server.runs()
    assert run["info"]["run_id"] == results["mlflow_run_id"] == killed["mlflow_run_id"]
    assert run["info"]["status"] == "FINISHED" and _tags(run)["cnnexp.status"] == "ok"
    for key in ("val/acc", "val/loss", "train/loss_epoch"):
        steps = [m["step"] for m in server.history(results["mlflow_run_id"], key)]
        assert sorted(steps) == [0, 1, 2], f"{key}: every epoch once, by epoch ({steps})"
    assert all(m["value"] > 0 for m in server.history(results["mlflow_run_id"], "system/process_memory_mb"))
    assert server.history(results["mlflow_run_id"], "system/cpu_percent"), "system metrics (issue #42)"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["model.blocks.0.kernel_size"] == "3" and params["trainer.max_epochs"] == "3"
    final = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert final["final/test_acc"] == pytest.approx(results["test_acc"])
    assert {"config.yaml", "shapes.txt", "metrics.csv", "results.json"} <= server.artifacts(results["mlflow_run_id"])


@pytest.mark.slow
def test_a_sweep_is_a_parent_run_with_a_child_per_trial(server, tmp_path, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "-m", "model.kernel_size=3,5", *QUICK, "model=speed", "trainer.max_epochs=1",
               "trainer.limit_train_batches=3", "logger=[tensorboard,mlflow]", f"paths.output_dir={out}",
               env={"MLFLOW_TRACKING_URI": server.url})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (out / "multirun").glob("*/*")
    parent_id = json.loads((sweep / "mlflow_run.json").read_text())["run_id"]
    runs = {r["info"]["run_id"]: r for r in server.runs()}
    children = [r for r in runs.values() if _tags(r).get("mlflow.parentRunId") == parent_id]
    assert len(runs) == 3 and sorted(r["info"]["run_name"] for r in children) == ["kernel_size=3", "kernel_size=5"]
    assert {"summary.png", "summary.csv"} <= server.artifacts(parent_id)
    assert runs[parent_id]["info"]["status"] == "FINISHED"
    _a_handed_sweep_never_names_the_server(sweep, server)
    for child in children:  # TensorBoard too, beside MLflow
        assert list((sweep / child["info"]["run_name"]).glob("events.out.tfevents.*"))
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if browser:  # the UI itself, rendered by its JavaScript: the sweep in the list, a trial's own page
        experiment = runs[parent_id]["info"]["experiment_id"]

        def page(path: str) -> str:
            return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                   "--virtual-time-budget=20000", "--dump-dom", f"{server.url}/#/experiments/{path}"],
                                  capture_output=True, text=True, timeout=PATIENCE_S).stdout

        assert runs[parent_id]["info"]["run_name"] in page(f"{experiment}/runs")
        trial = page(f"{experiment}/runs/{children[0]['info']['run_id']}")
        assert children[0]["info"]["run_name"] in trial and "val/acc" in trial


def _a_handed_sweep_never_names_the_server(sweep: Path, server) -> None:
    """A sweep folder whose mlflow_run.json names another tracking server (as one handed over may):
    its resume talks only to the server its own launch names — the other is never connected to."""
    elsewhere = socket.socket()
    elsewhere.bind(("127.0.0.1", 0))
    elsewhere.listen()
    recorded = json.loads((sweep / "mlflow_run.json").read_text())
    (sweep / "mlflow_run.json").write_text(json.dumps({**recorded, "tracking_uri": f"http://127.0.0.1:{elsewhere.getsockname()[1]}"}))
    proc = cli("train", "-m", f"resume={sweep}", env={"MLFLOW_TRACKING_URI": server.url})
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere.setblocking(False)
    with pytest.raises(BlockingIOError):
        elsewhere.accept()
    elsewhere.close()
