"""results.json in each run folder: status (ok / failed / running), the reason, the metrics."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

RESULTS = "results.json"


def write_json_atomic(path: Path, data: Dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def read_results(run_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads((Path(run_dir) / RESULTS).read_text())
    except (OSError, ValueError):
        return None


class RunRecord:
    def __init__(self, run_dir: Path, overrides: list, write: bool = True):
        self.path = Path(run_dir) / RESULTS
        self.data: Dict[str, Any] = {"status": "running", "overrides": overrides,
                                     "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.t0 = time.perf_counter()
        self.write = write
        if write:
            write_json_atomic(self.path, self.data)

    def finish(self, status: str, reason: str = "", **metrics: Any) -> Dict[str, Any]:
        self.data.update(status=status, seconds=round(time.perf_counter() - self.t0, 1), **metrics)
        if reason:
            self.data["reason"] = reason
        if self.write:
            write_json_atomic(self.path, self.data)
        return self.data
