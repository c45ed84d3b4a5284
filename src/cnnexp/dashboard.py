"""`python -m cnnexp.dashboard SWEEP_FOLDER [port=8080] [host=127.0.0.1] [storage=URL]`: a search's
study in optuna-dashboard (history, importances, each trial's reported values) — also while the
search runs. It is opened read-only: in the sweep folder, or in the database you name with
storage=URL (one the folder's study.json names is not connected to on its word). Needs the
`dashboard` extra:

    pip install 'cnnexp[dashboard]'      # `make setup` installs it
    python -m cnnexp.dashboard outputs/multirun/2026-11-25/10-31-02 port=8081
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import List

from cnnexp.config import args as cli_args
from cnnexp.core.errors import RunError, SettingsError, UserError, fail

USAGE = "usage: python -m cnnexp.dashboard SWEEP_FOLDER [port=8080] [host=127.0.0.1] [storage=URL]"


@dataclass
class DashboardArgs:
    port: int = 8080
    host: str = "127.0.0.1"   # this machine only; host=0.0.0.0 serves the network (no password)


def main(argv: List[str] | None = None) -> None:
    from cnnexp.search.study import is_search_folder, load_study, shown, storage_arg, study_record

    args = sys.argv[1:] if argv is None else argv
    cli_args.exit_on_help(__doc__, args, DashboardArgs)
    from cnnexp.config.own_network import never_import

    never_import()  # a read-only command: no class a handed folder names is ever imported
    folders = [a for a in args if "=" not in a]
    if len(folders) != 1:
        fail(USAGE)
    folder = cli_args.folder_argument(folders[0], "SWEEP_FOLDER")
    try:
        rest, named = storage_arg([a for a in args if "=" in a])
        options = cli_args.parse(DashboardArgs, rest)
        if not 0 < options.port < 65536:
            raise SettingsError("port", options.port, "a port number from 1 to 65535, e.g. port=8081")
        if not folder.is_dir():
            raise RunError(f"{folders[0]}: no such folder")
        if not is_search_folder(folder):
            raise RunError(f"{folders[0]}: not a search's sweep folder (no study.json or study.db); "
                           "pass the folder of a -m hydra/sweeper=optuna run")
        try:
            import optuna_dashboard
        except ImportError:
            raise RunError("optuna-dashboard is not installed: pip install 'cnnexp[dashboard]' "
                           "(or make setup)") from None
        study = load_study(folder, named=named)  # read-only: the dashboard's own notes cannot land either
    except UserError as e:
        fail(e)
    print(f"optuna-dashboard of {folder} ({shown(study_record(folder)['storage'])} storage): "
          f"http://{options.host}:{options.port}/  (Ctrl-C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(study._storage, host=options.host, port=options.port)
    except KeyboardInterrupt:
        pass
    except OSError as e:  # the port is taken
        fail(f"port={options.port}: cannot serve there ({e.strerror or e}); pick another, e.g. port={options.port + 1}")


if __name__ == "__main__":
    main()
