"""A real TensorBoard server on a free loopback port, started as a user starts it (default flags:
TensorBoard 2.21's fast loading), its HTTP data API, and headless Chromium screenshots of it."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoard:
    def __init__(self, url: str):
        self.url = url

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body

    def post(self, path: str, payload: dict):
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def runs(self) -> list:
        return self.get("/data/runs")


@contextmanager
def tensorboard(logdir: Path, timeout: float = 1800, runs: int = 1):
    """Serving `logdir` once it lists `runs` runs. `timeout`: a safety net against a hung server, never
    a measure of a loaded machine's speed. A port another process took between our probe and the
    server's bind is not a failure: the server starts again on another."""
    for attempt in range(3):
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        server = TensorBoard(f"http://127.0.0.1:{port}")
        try:
            if _serves(server, proc, runs, timeout, logdir):
                yield server
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    raise RuntimeError(f"tensorboard found no free port in {attempt + 1} tries")


def _serves(server: TensorBoard, proc: subprocess.Popen, runs: int, timeout: float, logdir: Path) -> bool:
    """True once it lists `runs` runs; False where its port was taken first; else raises."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if len(server.runs()) >= runs:
                return True
        except OSError:
            pass
        if proc.poll() is not None:
            said = proc.stderr.read().decode()
            if "already in use" in said:
                return False
            raise RuntimeError(f"tensorboard did not serve {logdir}: {said[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"tensorboard did not serve {logdir} in {timeout:.0f} s: hung")
        time.sleep(0.5)


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def screenshot(url: str, path: Path, size: str = "1400,1000", wait_ms: int = 15000) -> Path:
    """A headless Chromium's view of `url`, as a PNG at `path`."""
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url],
                   capture_output=True, timeout=1800, check=True)
    return path
