"""`python -m cnnexp.dashboard SWEEP_FOLDER [port=8080] [host=127.0.0.1]`: a search's study in
optuna-dashboard (history, importances, each trial's reported values), wherever the sweep folder
records it is stored — also while the search runs. Needs the `dashboard` extra:

    pip install 'cnnexp[dashboard]'      # `make setup` installs it
    python -m cnnexp.dashboard outputs/multirun/2026-11-25/10-31-02 port=8081
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List

from cnnexp.config import args as cli_args
from cnnexp.core.errors import RunError, UserError, fail

USAGE = "usage: python -m cnnexp.dashboard SWEEP_FOLDER [port=8080] [host=127.0.0.1]"


@dataclass
class DashboardArgs:
    port: int = 8080
    host: str = "127.0.0.1"   # this machine only; host=0.0.0.0 serves the network (no password)


def main(argv: List[str] | None = None) -> None:
    from cnnexp.search.study import open_storage, study_record

    args = sys.argv[1:] if argv is None else argv
    cli_args.exit_on_help(__doc__, args, DashboardArgs)
    folders = [a for a in args if "=" not in a]
    if len(folders) != 1:
        fail(USAGE)
    folder = Path(folders[0]).expanduser()
    try:
        options = cli_args.parse(DashboardArgs, [a for a in args if "=" in a])
        if not folder.is_dir():
            raise RunError(f"{folders[0]}: no such folder")
        record = study_record(folder)
        if record is None:
            raise RunError(f"{folders[0]}: not a search's sweep folder (no study.json or study.db); "
                           "pass the folder of a -m hydra/sweeper=optuna run")
        try:
            import optuna_dashboard
        except ImportError:
            raise RunError("optuna-dashboard is not installed: pip install 'cnnexp[dashboard]' "
                           "(or make setup)") from None
    except UserError as e:
        fail(e)
    print(f"optuna-dashboard of {folder} ({record['storage']} storage): http://{options.host}:{options.port}/  "
          "(Ctrl-C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(open_storage(folder, record["storage"]), host=options.host, port=options.port)
    except KeyboardInterrupt:
        pass
    except OSError as e:  # the port is taken
        fail(f"port={options.port}: cannot serve there ({e.strerror or e}); pick another, e.g. port={options.port + 1}")


if __name__ == "__main__":
    main()
