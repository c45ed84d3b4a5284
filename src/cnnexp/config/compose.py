"""Hydra's side of a run: the resolvers that name and claim folders, and composing `conf/`
outside `@hydra.main` (shapes, bench, tests). Imports no torch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from cnnexp import CONF_DIR, PROJECT_DIR
from cnnexp.config.overrides import hydra_quoted, key_value
from cnnexp.records.folder import claim_fresh


NAME_BYTES = 200  # a folder name stays under the file systems' 255 bytes, with room for -2, .part …
NO_OVERRIDES = "no-overrides"  # a sweep job's folder when the command set nothing that names it: conf/ as it is


def run_name(task: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """A sweep job's folder: its overrides (Hydra's parser splits them, so `hidden=[64,32]` stays
    one; a key given twice names the last value, which Hydra keeps) less the excluded keys,
    `model.kernel_size=5` → `kernel_size=5`: the group prefix is implied, unless two keys would read
alike (`augment.shift`, `tta.shift`). The seed comes last, so
    that a setting's replicates share a prefix (and sort together)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    typed = {key_value(o.input_line)[0]: o.input_line for o in OverridesParser.create().parse_overrides(list(task))}
    short = {key: key.split(".", 1)[1] if "." in key and not key.startswith("hydra.") else key
             for key in typed if key not in exclude}
    named = list(short.values())
    parts = []
    for line in sorted(typed.values()):
        key, value = key_value(line)
        if key in exclude:
            continue
        if named.count(short[key]) == 1:  # augment.shift and tta.shift keep their groups: two `shift=` are no name
            key = short[key]
        parts.append(f"{key}={value}".replace("/", "_"))
    parts.sort(key=lambda part: part.startswith("seed="))
    name = ",".join(parts) or NO_OVERRIDES
    if len(name.encode()) > NAME_BYTES:  # a long swept value: a name the disk accepts, still one per setting
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name.encode()[:NAME_BYTES - 12].decode(errors="ignore") + "~" + digest
    return name


def _run_or_sweep_dir(resume: Any, fresh: str) -> str:
    """A resumed run (`resume=RUN`) or sweep (`-m resume=SWEEP`) continues in its own folder; a new
    one claims a fresh folder."""
    return str(Path(resume).expanduser().resolve()) if resume else claim_fresh(fresh)


def _hydra_subdir(resume: Any, stamp: str) -> str:
    return f".hydra/resume-{stamp}" if resume else ".hydra"


def _slurm_tasks(strategy: Any, devices: Any) -> int:
    """SLURM tasks per node: one per DDP device (SLURM starts the ranks), else one."""
    return devices if str(strategy).startswith("ddp") and isinstance(devices, int) and devices > 1 else 1


def register_resolvers() -> None:
    """The `${cnnexp.…:}` resolvers conf/ uses; called before any composition."""
    resolvers = {
        "cnnexp.project_dir": (lambda: str(PROJECT_DIR), True),
        "cnnexp.fresh": (claim_fresh, True),      # cached: resolved (and the folder claimed) once
        "cnnexp.run_dir": (_run_or_sweep_dir, True),
        "cnnexp.sweep_dir": (_run_or_sweep_dir, True),
        "cnnexp.hydra_subdir": (_hydra_subdir, True),
        "cnnexp.run_name": (run_name, False),
        "cnnexp.slurm_tasks": (_slurm_tasks, False),
    }
    for name, (fn, cache) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)


def compose_config(overrides: list) -> DictConfig:
    """conf/train.yaml composed with overrides, outside @hydra.main."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    register_resolvers()
    overrides = quote_folders(list(overrides))  # shapes, bench: a folder as typed, as train reads it
    if GlobalHydra.instance().is_initialized():  # inside @hydra.main (a callback): its own loader
        return GlobalHydra.instance().config_loader().load_configuration("train", list(overrides), RunMode.RUN)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def user_config(cfg: DictConfig) -> DictConfig:
    """The config without its `hydra` node, unresolved: resolving hydra.run.dir would claim a folder."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return OmegaConf.create(plain)


SWEEP_FUNCTIONS = ("choice(", "range(", "interval(", "glob(", "tag(", "shuffle(", "sort(")


def quote_folders(argv: list) -> list:
    """A folder named on the command line (config.schema.PATH_KEYS: resume=, paths.output_dir=,
    data.root=, hydra.run.dir= …) is taken as typed: Hydra's grammar would read `,` as a sweep,
    ` #` or `é` as an error, `'` as a quote; a sweep names its runs' folders by their settings
    (`kernel_size=3,seed=1`). So the value is quoted for Hydra, as the user would otherwise have to
    — unless the user quoted it already, or it is a sweep function (`choice(a,b)`) or `null`. A
    leading `~` is the home folder, as the shell reads it after the `=` of an assignment."""
    from cnnexp.config.schema import PATH_KEYS

    quoted = []
    for arg in own_arguments(argv):
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in PATH_KEYS and not _typed_for_hydra(value):
            arg = f"{key}={hydra_quoted(os.path.expanduser(value))}"
        quoted.append(arg)
    return quoted


OWN_FIXED = ("name", "task", "_target_", "input_shape", "num_classes")  # conf/model/own.yaml's keys


def own_chosen(argv: list) -> bool:
    """model=own on this command line (the last model= wins, as in Hydra)."""
    chosen = [a.split("=", 1)[1] for a in argv if a.startswith("model=")]
    return bool(chosen) and chosen[-1] == "own"


def own_arguments(argv: list) -> list:
    """model=own: `model.width=32` is a constructor argument conf/model/own.yaml cannot list, given
    to Hydra as `++model.width=32` (add or set), so the user types no `+` (sweeps included)."""
    if not own_chosen(argv):
        return list(argv)
    given = []
    for arg in argv:
        key = arg.partition("=")[0]
        if key.startswith("model.") and key.split(".")[1] not in OWN_FIXED:
            arg = "++" + arg
        given.append(arg)
    return given


def as_typed(overrides: list) -> list:
    """Recorded overrides as the user typed them: own_arguments' `++model.width=32` back to
    `model.width=32` (a printed command the user pastes goes through own_arguments again)."""
    if not own_chosen(overrides):
        return list(overrides)
    return [o[2:] if o.startswith("++model.") and o[2:].partition("=")[0].split(".")[1] not in OWN_FIXED else o
            for o in overrides]


def _typed_for_hydra(value: str) -> bool:
    """Already in Hydra's grammar: quoted by the user (or by quote_folders: it is idempotent), a
    sweep function, or null."""
    if value == "null" or value.startswith(SWEEP_FUNCTIONS):
        return True
    if value[:1] not in ("'", '"'):
        return False
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        OverridesParser.create().parse_override(f"key={value}")
        return True
    except HydraException:  # `'abc` without its closing quote: a name that starts with a quote
        return False


def check_override_keys(argv: list) -> None:
    """Every plain `key=value` on the command line names a setting that exists, and parses.

    Hydra answers a typo'd key with advice to add it with `+` (the wrong fix) and a lexer error
    with its exception's name; here both become a SettingsError naming the key.
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from cnnexp.config.messages import suggest_key
    from cnnexp.config.schema import Settings
    from cnnexp.core.errors import SettingsError

    args, _ = get_args_parser().parse_known_args(quote_folders(argv))
    parser = OverridesParser.create()
    data = next((o.split("=", 1)[1] for o in reversed(args.overrides or []) if o.startswith("data=")), "mnist")
    own = own_chosen(args.overrides or [])
    for text in args.overrides or []:
        try:
            override = parser.parse_override(text)
        except HydraException as e:  # the lexer's and the parser's errors
            key = text.split("=", 1)[0]
            raise SettingsError(key, text.split("=", 1)[1] if "=" in text else "",
                                "this override cannot be read: a key is a dotted name without spaces "
                                "(model.kernel_size); quote a value with spaces or symbols (key='a b'); "
                                f"Hydra says: {str(e).splitlines()[0][:120]}") from None
        key = override.key_or_group
        check_path(key, override)
        sweeper_option_chosen(key, text, args.overrides)
        if "." not in key and "/" not in key and not (override.is_add() or override.is_delete() or override.package):
            group_option_exists(key, override)
            continue
        if override.is_add() or override.is_delete() or override.package or key.startswith("hydra") or "." not in key:
            continue  # +/~ and hydra's groups: the schema merge and Hydra name those
        if own and key.startswith("model."):
            continue  # model=own: its constructor names its arguments (config.own_network)
        suggest_key(Settings, key, data)  # data's keys are those of the chosen source (conf/train.yaml: mnist)
        block_exists(key, text, args.overrides)


BASIC_SWEEPER_KEYS = ("hydra.sweeper.params", "hydra.sweeper.max_batch_size")  # the grid's own


def sweeper_option_chosen(key: str, text: str, overrides: list) -> None:
    """`hydra.sweeper.n_trials=3` without `hydra/sweeper=optuna`: the grid's sweeper has no such
    option, and Hydra's answer (six lines, advising `+hydra.sweeper.n_trials`) is the wrong fix."""
    from cnnexp.core.errors import RunError

    bare = key.lstrip("+~")
    if not bare.startswith("hydra.sweeper.") or bare.startswith(BASIC_SWEEPER_KEYS):
        return
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra/sweeper=")]
    if chosen and chosen[-1] != "basic":  # optuna (or a sweeper of the user's: its own options)
        return
    raise RunError(f"{text}: an option of the search's sweeper, which this command does not choose; add "
                   "hydra/sweeper=optuna (python -m cnnexp.train -m hydra/sweeper=optuna …)")


def check_path(key: str, override) -> None:
    """An empty folder (`paths.output_dir=''`, `hydra.run.dir=`) refused before Hydra resolves it
    into a run folder at the file-system root or in the current folder; every value of a sweep."""
    from cnnexp.config import schema

    if key not in schema.PATH_KEYS or override.is_delete():
        return
    value = override.value()
    for one in getattr(value, "list", None) or (value if isinstance(value, list) else [value]):
        schema.check_path(key, one)


def group_option_exists(group: str, override) -> None:
    """`optimizer=adamx`: the options conf/ holds for the group, named in one line (Hydra's own
    answer is a dozen lines and exit 1)."""
    import difflib

    from cnnexp.config.messages import suggest_key, unknown
    from cnnexp.config.schema import Settings
    from cnnexp.core.errors import SettingsError

    folder = CONF_DIR / group
    if not folder.is_dir():
        try:
            suggest_key(Settings, group, "mnist")
            return  # a root key (seed=3): the settings check reads its value
        except SettingsError as e:
            if "did you mean" in str(e):  # a root key misspelt (seedd=3)
                raise
            groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
            near = ", ".join(difflib.get_close_matches(group, groups, n=3, cutoff=0.0))
            raise unknown(group, f"unknown key or config group; nearest groups: {near} (all: --help)") from None
    options = sorted(p.stem for p in folder.glob("*.yaml"))
    value = override.value()
    chosen = list(getattr(value, "list", None) or (value if isinstance(value, list) else [value]))
    for choice in chosen:
        if choice is None:
            raise SettingsError(group, "null", f"an option of conf/{group}/ ({', '.join(options)}); to choose none, "
                                f"leave {group}= out (or drop a default with ~{group})")
        if str(choice) not in options:
            raise SettingsError(group, choice, f"one of {', '.join(options)} (conf/{group}/)")


def block_exists(key: str, text: str, overrides: list) -> None:
    """`model.blocks.5.kernel_size=3` on a network of 3 blocks: named here, not by Hydra's merge error."""
    from cnnexp.core.errors import SettingsError

    parts = key.split(".")
    if parts[:2] != ["model", "blocks"] or len(parts) < 3 or not parts[2].isdigit():
        return
    groups = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0] and not o.startswith(("hydra", "-"))]
    try:
        blocks = len(compose_config(groups).model.blocks)
    except Exception:  # the groups themselves are wrong: Hydra names that
        return
    if int(parts[2]) >= blocks:
        raise SettingsError(key, text.split("=", 1)[1], f"this network has {blocks} blocks (model.blocks.0 … "
                            f"model.blocks.{blocks - 1}); to change their number give the whole list, "
                            "model.blocks=[{…},{…}]")


def task_overrides(hydra_node) -> list:
    """The command line's overrides as typed: `key=${…}` is text here, not an interpolation."""
    return OmegaConf.to_container(hydra_node.overrides.task, resolve=False)


def reference_model(model):
    """The task's reference network (the catalogue names it) on this model's input and classes: what
    a costly setting is measured against (arithmetic.table); None for a task without one."""
    from cnnexp.core.catalogue import REFERENCE_MODELS

    name = REFERENCE_MODELS.get(model.task)
    return None if name is None else conf_model(name, model.input_shape, model.num_classes)


def conf_model(name: str, input_shape, num_classes: int):
    """conf/model/<name>.yaml on this input and these classes, as ModelSettings, without composing."""
    from cnnexp.config.schema import ModelSettings

    recorded = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))
    recorded.update(input_shape=list(input_shape), num_classes=num_classes)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelSettings), recorded))
