"""A search's study and where it is stored — the one reader of a sweep's study. SWEEP/study.json
says which storage: SWEEP/study.db (Optuna's SQLite), SWEEP/study.journal, or a database URL. A
folder may have been handed over, so its record is not trusted as a location: a study is opened
only inside the folder, or in a database the user named (`storage=URL` on summary and the
dashboard, `hydra.sweeper.storage=URL` on a launch or resume). Readers open it read-only; a file
that is not ours is refused before Optuna sees it (which would add its tables). Also: what the
study optimises, and the sampler and pruner it asks with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote

from omegaconf import DictConfig, OmegaConf

from cnnexp.core.errors import RunError
from cnnexp.core.files import write_atomic
from cnnexp.search.objectives import listed, study_objectives
from cnnexp.search.options import STORAGES, SearchOptions
from cnnexp.search.space import grid

log = logging.getLogger("cnnexp")

STUDY_FILE = "study.db"
STUDY_NAME = "cnnexp"
STUDY_RECORD = "study.json"      # which storage holds the sweep's study: read by its jobs and by joining workers
JOURNAL_FILE = "study.journal"
STORAGE_ARG = "storage="         # summary, dashboard: the database a user names on the command line
RECORD_LIMIT = 64 * 1024         # a study.json is a few lines: a larger file is not ours
OPTUNA_TABLES = {"studies", "trials", "version_info", "alembic_version"}
SQLITE_WAIT_S = 120              # many processes write a study.db: wait for its lock rather than fail


class StudyRefused(RunError):
    """A sweep's study that is not opened: its record or file is not ours or not readable, or it
    is in a database the user did not name. str() is the one line."""


class StudyMissing(StudyRefused):
    """The record's study.db or study.journal is not there (yet): its search stopped before creating it."""


class StudyInterrupted(StudyRefused):
    """A study.db a killed process left mid-write (a hot journal beside it): only a writer rolls it back."""


_named: set = set()  # database URLs this process's user named: the command line, or the launch's own config


def name_storage(url: Optional[str]) -> None:
    """A database URL the user named (command line, launch config): a record naming it is opened."""
    if url and "://" in url:
        _named.add(url)


def named_storage(config: DictConfig) -> Optional[str]:
    """The database URL a launch's user named: a new search's hydra.sweeper.storage; on a resume,
    only one typed on its command line (the recorded sweeper's is the folder's word, not the user's)."""
    if OmegaConf.select(config, "resume", default=None):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        lines = OmegaConf.select(config, "hydra.overrides.hydra", default=None)
        lines = OmegaConf.to_container(lines, resolve=False) if lines is not None else []  # ${hydra.job.num} stays text
        typed = [o for o in lines if str(o).lstrip("+").startswith("hydra.sweeper.storage=")]
        value = OverridesParser.create().parse_overrides([typed[-1]])[0].value() if typed else None
    else:
        value = OmegaConf.select(config, "hydra.sweeper.storage", default=None)
    return str(value) if value is not None and "://" in str(value) else None


def storage_arg(args: Iterable[str]) -> Tuple[List[str], Optional[str]]:
    """(the other arguments, the URL of `storage=URL`, taken as typed): a command's named database."""
    rest, named = [], None
    for a in args:
        if a.startswith(STORAGE_ARG):
            named = a[len(STORAGE_ARG):]
            if "://" not in named:
                raise StudyRefused(f"{a}: not a database URL; name one such as storage=postgresql://user@host/db "
                                   "(a study in the sweep folder needs none)")
        else:
            rest.append(a)
    return rest, named


def named_fits(sweep_dir: Path, named: Optional[str]) -> None:
    """storage=URL is for a study in a database: on a sweep whose study is a file of its folder (or
    that is no search) it would be ignored without a word — StudyRefused instead."""
    if named is None:
        return
    record = study_record(sweep_dir)
    if record is None or record["storage"] in STORAGES:
        where = "holds no study" if record is None else f"keeps its study in the folder ({record['storage']})"
        raise StudyRefused(f"storage={shown(named)}: {sweep_dir} {where}, so a database named here would not be "
                           "read; leave storage= out")


def shown(url: str) -> str:
    """A URL as a line may show it: user@host, its password left out."""
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{user.split(':')[0]}@{host}" if sep and at else url


def is_search_folder(sweep_dir: Path) -> bool:
    """Whether a sweep folder holds a search's study record (or, from before the record, its
    study.db), readable or not: what a search's summary and plots ask."""
    return any(os.path.lexists(Path(sweep_dir) / name) for name in (STUDY_RECORD, STUDY_FILE))


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{Path(sweep_dir).resolve() / STUDY_FILE}"


def study_record(sweep_dir: Path) -> Optional[Dict[str, str]]:
    """{"storage": sqlite | journal | URL, "study_name": …} of a search's sweep folder, or None
    (a sweep folder from before the record, with its study.db, is sqlite). A record that is not
    one is StudyRefused."""
    path = Path(sweep_dir) / STUDY_RECORD
    if not os.path.lexists(path):
        return {"storage": "sqlite", "study_name": STUDY_NAME} if os.path.lexists(Path(sweep_dir) / STUDY_FILE) else None
    inside(sweep_dir, path)
    try:
        with open(path, "rb") as f:
            text = f.read(RECORD_LIMIT + 1)
        if len(text) > RECORD_LIMIT:
            raise ValueError(f"over {RECORD_LIMIT // 1024} KB")
        record = json.loads(text.decode("utf-8"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0][:120]
        raise StudyRefused(f"{path}: not readable ({why}); restore the sweep folder's study record from a copy") from None
    storage, name = (record.get("storage"), record.get("study_name")) if isinstance(record, dict) else (None, None)
    if not (isinstance(storage, str) and (storage in STORAGES or "://" in storage) and isinstance(name, str) and name):
        raise StudyRefused(f"{path}: not a study record (it holds {json.dumps(record)[:80]}; a search writes "
                           '{"storage": "sqlite", "study_name": "cnnexp"}); restore it from a copy')
    return {"storage": storage, "study_name": name}


def inside(sweep_dir: Path, path: Path) -> Path:
    """`path` (which exists), refused if it or the link it is leads out of the sweep folder, or is
    not a plain file (a named pipe would hang its reader)."""
    if os.path.commonpath([Path(sweep_dir).resolve(), path.resolve()]) != str(Path(sweep_dir).resolve()):
        raise StudyRefused(f"{path}: a link to {path.resolve()}, outside the sweep folder; a study is opened only "
                           "inside its folder — put the file itself there")
    if not path.is_file():
        raise StudyRefused(f"{path}: not a file; move it away, or restore the study from a copy")
    return path


def study_file(sweep_dir: Path, storage: str) -> Path:
    """SWEEP/study.db or SWEEP/study.journal, as the record's `storage` names it."""
    return Path(sweep_dir) / (STUDY_FILE if storage == "sqlite" else JOURNAL_FILE)


def study_where(sweep_dir: Path) -> Path:
    """Where a search's study is, as its start and its end both name it: SWEEP/study.db (or
    study.journal); a database elsewhere: study.json, which names it (its URL may hold a password)."""
    from cnnexp.search.options import STORAGES

    storage = (study_record(sweep_dir) or {}).get("storage", "sqlite")
    return study_file(sweep_dir, storage) if storage in STORAGES else Path(sweep_dir) / STUDY_RECORD


def open_storage(sweep_dir: Path, storage: str, read_only: bool = False):
    """The Optuna storage `storage` names (sqlite, journal: the folder's file; else a URL) — whether
    it may be opened is load_study's question. `read_only`: nothing a reader does can change it."""
    import optuna

    if storage == "sqlite":
        path = Path(sweep_dir).resolve() / STUDY_FILE
        if read_only:
            return _read_only_sqlite(path)
        return optuna.storages.RDBStorage(storage_url(sweep_dir), engine_kwargs={"connect_args": {"timeout": SQLITE_WAIT_S}})
    if storage == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = str(Path(sweep_dir).resolve() / JOURNAL_FILE)  # the open lock also works on NFS
        return optuna.storages.JournalStorage(_read_only_journal(path) if read_only else
                                              JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if storage.startswith("postgresql://"):  # the driver the `postgres` extra installs, whatever SQLAlchemy's default
        storage = "postgresql+psycopg://" + storage[len("postgresql://"):]
    engine: Dict[str, Any] = {"pool_pre_ping": True}
    if read_only and storage.startswith("postgresql"):
        engine["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    if read_only and storage.startswith("sqlite:///"):  # a named SQLite file: read-only too
        return _read_only_sqlite(Path(storage[len("sqlite:///"):]))
    return optuna.storages.RDBStorage(storage, engine_kwargs=engine, skip_table_creation=read_only)


def _read_only_sqlite(path: Path):
    """Optuna's storage on a SQLite file in SQLite's read-only mode: a write fails, never lands."""
    import optuna
    import sqlalchemy

    def connect():
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=SQLITE_WAIT_S,
                               check_same_thread=False)

    return optuna.storages.RDBStorage("sqlite://", skip_table_creation=True,
                                      engine_kwargs={"creator": connect, "poolclass": sqlalchemy.pool.NullPool})


def _read_only_journal(path: str):
    """A journal file read as it is: never created, never appended to, no lock file made."""
    from optuna.storages.journal import JournalFileBackend

    class ReadOnlyJournal(JournalFileBackend):
        def append_logs(self, logs):
            raise StudyRefused(f"{path}: opened read-only; this command does not write a study")

    if not os.path.isfile(path):
        raise StudyMissing(f"{path}: not there")
    return ReadOnlyJournal(path, lock_obj=None)  # the lock is taken only to append


def sqlite_problem(db: Path, study_name: str, creating: bool = False) -> Optional[str]:
    """Why a study.db is not our study, asked of SQLite itself in read-only mode; None: ours.
    `creating`: a search's first worker may create the study in an Optuna file that holds none."""
    try:
        con = sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True, timeout=SQLITE_WAIT_S)
        try:
            tables = {row[0] for row in con.execute("select name from sqlite_master where type='table'")}
            if not OPTUNA_TABLES <= tables:
                return f"not an Optuna study (tables: {', '.join(sorted(tables))[:120] or 'none'})"
            if not (con.execute("select count(*) from version_info").fetchone()[0]
                    and con.execute("select count(*) from alembic_version").fetchone()[0]):
                return "not a whole Optuna study (no schema version recorded)"
            names = {row[0] for row in con.execute("select study_name from studies")}
        finally:
            con.close()
    except sqlite3.Error as e:
        if getattr(e, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
            raise StudyInterrupted(f"{db}: left mid-write by a process that was killed ({db.name}-journal beside it); "
                                   "-m resume=SWEEP rolls it back") from None
        return f"not a readable SQLite database ({e})"
    if study_name in names or (creating and not names):
        return None
    return f"holds no study named {study_name!r} (it holds {', '.join(sorted(map(str, names)))[:120] or 'none'})"


def _refused_url(record_path: Path, url: str) -> StudyRefused:
    return StudyRefused(f"{record_path}: the study is in a database outside the folder ({shown(url)}), which is "
                        "not opened on a folder's word; if you trust it, name it yourself: storage=URL "
                        "(summary, dashboard) or -m resume=SWEEP hydra.sweeper.storage=URL")


def _storage(sweep_dir: Path, record: Dict[str, str], named: Optional[str], write: bool):
    """The record's storage, opened if it may be: inside the folder and ours, or a database the
    user named."""
    storage = record["storage"]
    if storage not in STORAGES:
        if storage != named and storage not in _named:
            raise _refused_url(Path(sweep_dir) / STUDY_RECORD, storage)
        return open_storage(sweep_dir, storage, read_only=not write)
    path = study_file(sweep_dir, storage)
    if not os.path.lexists(path):
        if write:
            return open_storage(sweep_dir, storage)
        raise StudyMissing(f"{path}: not there, though {STUDY_RECORD} records the study in it; "
                           "the search stopped before it asked its first trial")
    inside(sweep_dir, path)
    if storage == "sqlite":
        if write:  # a killed writer's hot journal is rolled back by any read-write connection, as SQLite does
            _roll_back(path)
        problem = sqlite_problem(path, record["study_name"], creating=write)
        if problem:
            raise StudyRefused(f"{path}: {problem}; move it away, or restore the study from a copy")
    elif write:  # a journal is appended to only once a read-only replay found it ours
        _load(record, lambda: open_storage(sweep_dir, storage, read_only=True), path, creating=True)
    return open_storage(sweep_dir, storage, read_only=not write)


def _roll_back(path: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_WAIT_S)) as con:
            con.execute("select count(*) from sqlite_master").fetchall()
    except sqlite3.Error:  # not a database: sqlite_problem says so next
        pass


def _load(record: Dict[str, str], storage_of: Callable[[], Any], where: Path, creating: bool = False):
    """optuna.load_study on the storage `storage_of` opens, its failures one line naming `where`;
    None: `creating` and no study there yet."""
    import optuna
    import sqlalchemy.exc

    failures = (optuna.exceptions.OptunaError, sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, ValueError, TypeError,
                KeyError, AttributeError, RuntimeError, OSError)  # Optuna wraps a database's errors in its own
    try:
        storage = storage_of()  # SQLite's schema check, a journal's replay: garbage fails here
        studies = {s.study_name for s in storage.get_all_studies()}
    except failures as e:
        if isinstance(e, StudyRefused):
            raise
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise StudyRefused(f"{where}: not a readable study ({why}); move it away, or restore it from a copy") from None
    if record["study_name"] not in studies:
        if creating and not studies:
            return None
        raise StudyRefused(f"{where}: holds no study named {record['study_name']!r}; move it away, or restore the "
                           "study from a copy")
    return optuna.load_study(study_name=record["study_name"], storage=storage)


def load_study(sweep_dir: Path, named: Optional[str] = None, write: bool = False):
    """The study of a search's sweep folder — read-only unless `write` (a search's workers, its
    trials' jobs) — where its record says it is stored, if it may be opened there: a file inside the
    folder that is ours, or a database the user named (`named`, or `name_storage`). Anything else
    is StudyRefused, one line; nothing is created or written on the way."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    record = study_record(sweep_dir)
    if record is None:
        raise RunError(f"{sweep_dir}: not a search's sweep folder (no {STUDY_RECORD} or {STUDY_FILE})")
    where = Path(sweep_dir) / STUDY_RECORD if record["storage"] not in STORAGES else \
        study_file(sweep_dir, record["storage"])
    return _load(record, lambda: _storage(sweep_dir, record, named, write), where)


def study_problem(sweep_dir: Path) -> Optional[str]:
    """`cnnexp.check`'s finding about a sweep's study, or None: a record or file not ours or not
    readable, or a database its first launch did not name. Read-only; it connects to no database."""
    try:
        record = study_record(sweep_dir)
        if record is None:
            return None
        if record["storage"] not in STORAGES:
            launched = launch_storage(sweep_dir)
            return None if launched == record["storage"] else (
                f"{Path(sweep_dir) / STUDY_RECORD}: names a database outside the folder ({shown(record['storage'])}) "
                f"that its launch did not (hydra.sweeper.storage={shown(launched or '?')}); no command opens it "
                "unless you name it")
        path = study_file(sweep_dir, record["storage"])
        if not os.path.lexists(path):
            return None  # a search stopped before its first trial: its resume creates the study
        inside(sweep_dir, path)
        if record["storage"] == "sqlite":  # asked of SQLite alone: no Optuna to import
            problem = sqlite_problem(path, record["study_name"])
            return problem and f"{path}: {problem}; move it away, or restore the study from a copy"
        load_study(sweep_dir)
    except StudyRefused as e:
        return str(e)
    return None


def launch_storage(sweep_dir: Path) -> Optional[str]:
    """hydra.sweeper.storage as the sweep's first launch recorded it (its multirun.yaml)."""
    from cnnexp.records.folder import first_sweep_config_path, read_config, sweep_config_path

    path = first_sweep_config_path(sweep_dir)
    try:
        recorded = read_config(sweep_dir, path if path.is_file() else sweep_config_path(sweep_dir), values_only=False)
        value = OmegaConf.select(OmegaConf.create(recorded), "hydra.sweeper.storage", default=None)
        return None if value is None else str(value)
    except Exception:  # its own finding, from check
        return None


def create_study(sweep_dir: Path, options: SearchOptions, space: Dict[str, Any], objectives: List[Dict[str, str]],
                 named: Optional[str] = None):
    """The sweep's study, created by its first worker (which records where it lives, for the jobs
    and the workers to come) and loaded by the others; `named`: the database the launch's user
    named (`named_storage`); `objectives`: [{"name", "direction"}], which a resume may not change.
    Called while `one_at_a_time`."""
    import optuna

    record = study_record(sweep_dir)
    if record is None:
        storage = options.storage
        name = STUDY_NAME if storage in STORAGES else \
            f"{STUDY_NAME}-{sweep_dir.parent.name}-{sweep_dir.name}-{uuid.uuid4().hex[:8]}"
        record = {"storage": storage, "study_name": name}
        named = storage  # this launch's own setting
        write_atomic(sweep_dir / STUDY_RECORD, json.dumps(record, indent=2) + "\n")
    elif record["storage"] != options.storage:
        log.info("the study stays in %s storage, as the sweep's %s records", shown(record["storage"]), STUDY_RECORD)
    storage = _storage(sweep_dir, record, named, write=True)
    name_storage(record["storage"] if record["storage"] not in STORAGES else None)  # the summary at its end reads it
    try:
        existing = optuna.load_study(study_name=record["study_name"], storage=storage)
    except KeyError:  # none yet: this worker creates it
        existing = None
    directions = [o["direction"] for o in objectives]
    names = [o["name"] for o in objectives]
    if existing is not None:
        was, problem = study_objectives(existing)
        if problem is not None:  # a handed study: its own names decide; the search records them again
            log.warning("%s: %s", sweep_dir, problem)
        if len(was) == 1:  # one objective: the runs' monitor, which the search records
            was = [{**was[0], "name": str(existing.user_attrs.get("monitor", "its metric"))}]
        if [(o["name"], o["direction"]) for o in was] != list(zip(names, directions)) and \
                (len(objectives) > 1 or [o["direction"] for o in was] != directions):
            raise StudyRefused(f"{sweep_dir}: its study optimises {listed(was)}, not {listed(objectives)} "
                               "as this launch's settings say; a resume keeps the study's objectives — "
                               "leave hydra.sweeper.objectives (and direction) as the search began")
    return optuna.create_study(storage=storage, study_name=record["study_name"],
                               load_if_exists=True, sampler=sampler(options, space), pruner=pruner(options),
                               directions=list(directions))


def sampler(options: SearchOptions, space: Dict[str, Any], offset: int = 0):
    """hydra.sweeper.sampler; `offset`: a joining worker's, so that a seeded sampler does not replay the first's draws."""
    import optuna

    seed = None if options.seed is None else options.seed + offset
    if options.sampler == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if options.sampler == "nsga2" or (options.sampler == "auto" and options.several):
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)  # with several objectives: its multi-objective mode


def pruner(options: SearchOptions):
    import optuna

    if options.several:  # Optuna prunes no multi-objective study (optuna#3450): the loop says so, once
        return optuna.pruners.NopPruner()
    if options.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options.pruner_startup_trials)
    if options.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def objective(config: DictConfig) -> Tuple[str, str]:
    """(metric, direction): what the runs' best checkpoint is chosen by, as the settings check
    resolves it (cnnexp.core.catalogue.monitor_and_mode) — the study optimises the same "best"."""
    from cnnexp.core.catalogue import monitor_and_mode

    monitor, mode = monitor_and_mode(str(config.model.task),
                                     OmegaConf.select(config, "callbacks.checkpoint.monitor", default="auto"),
                                     OmegaConf.select(config, "callbacks.checkpoint.mode", default="auto"))
    return monitor, "maximize" if mode == "max" else "minimize"
