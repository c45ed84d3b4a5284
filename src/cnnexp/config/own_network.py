"""Your own network (`model=own model._target_=package.module.Class model.width=32`): its settings,
and the check that it can work, before any data is read.

The class is an `nn.Module` (or a LightningModule, used as the network: its forward gives the
logits; the task's loss, metrics and optimizer train it) whose constructor takes `input_shape`
and/or `num_classes` when it names them, and the other `model.<arg>=value` settings as keyword
arguments. The check imports it, builds it on the meta device (no memory, no weights) and runs
one dry forward there: the output must be what the task needs, and each leaf module's shapes,
parameters and multiply-accumulates (torch's FlopCounterMode) become the shape table's rows.
Torch is imported only here, inside the functions, and only for `model=own`: the built-in
networks' settings are still checked without it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import sys
from pathlib import Path
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Dict, List, Optional, Set

from cnnexp.arithmetic.geometry import Layer
from cnnexp.core.errors import RunError, SettingsError

OWN = "own"  # model.name of conf/model/own.yaml
OWN_KEYS = ("name", "task", "_target_", "input_shape", "num_classes")  # the rest are constructor arguments
ARGUMENTS = "arguments"  # where the schema keeps them (config.yaml keeps them flat, as typed: as_typed)


@dataclass
class OwnModelSettings:
    name: str
    task: str
    _target_: Optional[str]       # package.module.Class, importable (PYTHONPATH); null: not given yet
    input_shape: Any              # auto (from the data) or [channels, height, width]
    num_classes: Any              # auto (from the data) or an integer
    arguments: Dict[str, Any] = field(default_factory=dict)  # model.<arg>=value: the constructor's others

    @cached_property
    def layers(self) -> List[Layer]:
        """The shape table's rows, from a dry forward on the meta device (checked once)."""
        return dry_forward(self)

    def build(self):
        """The network, with its weights (models.build_network asks this of an own network)."""
        return build(self)


def own_node(model: Dict[str, Any]) -> Dict[str, Any]:
    """A composed (or recorded) model=own node, flat as typed, → the schema's shape: the fixed keys,
    and every other key under `arguments`. A record of the schema itself (a checkpoint's) passes."""
    fixed = {k: model[k] for k in OWN_KEYS if k in model}
    arguments = dict(model.get(ARGUMENTS) or {}) if isinstance(model.get(ARGUMENTS), dict) else {}
    arguments.update({k: v for k, v in model.items() if k not in OWN_KEYS and k != ARGUMENTS})
    return {**fixed, ARGUMENTS: arguments}


def as_typed(config: Dict[str, Any]) -> Dict[str, Any]:
    """A whole config (dataclasses.asdict of the settings) with model=own's arguments flat again,
    as the user typed them: what config.yaml records (own_node reads it back)."""
    model = config.get("model")
    if not isinstance(model, dict) or model.get("name") != OWN:
        return config
    flat = {k: v for k, v in model.items() if k != ARGUMENTS}
    return {**config, "model": {**flat, **(model.get(ARGUMENTS) or {})}}


def is_own(model: Any) -> bool:
    return isinstance(model, OwnModelSettings)


# A handed folder never runs code: a class named by a record (config.yaml, a checkpoint, provenance)
# is imported only when the user types it again (model._target_=pkg.Class) on this command line;
# the read-only commands never import one at all (docs/own-network.md).
_HANDED: List[Path] = []   # the folders this process reads records of (set by their readers)
_TYPED: Set[str] = set()   # model._target_ values typed on this command line (cli args, or argv)
_NEVER = [False]           # check, compare, summary, dashboard: no class a folder names is imported


class NotConfirmed(RunError):
    """A record names a class the user did not name: nothing imported."""


def reading_record(folder: Any) -> None:
    """This process builds from `folder`'s record: its model=own class needs the user's word."""
    from cnnexp.records.folder import is_sweep

    handed = Path(folder).expanduser().resolve()
    # a run of a sweep: the sweep folder around it is handed over too (a module beside its runs)
    _HANDED.extend(p for p in handed.parents if is_sweep(p))
    _HANDED.append(handed)  # last: the folder the messages name


def reset() -> None:
    """A fresh process's state (tests run several commands in one process)."""
    _HANDED.clear()
    _TYPED.clear()
    _NEVER[0] = False


def never_import() -> None:
    """A read-only command: settings are checked without building an own network."""
    _NEVER[0] = True


def imports_allowed() -> bool:
    return not _NEVER[0]


def typed(target: str) -> None:
    _TYPED.update(v.strip().strip("'\"") for v in str(target).split(","))  # a grid's a.B,c.D: each


def typed_targets() -> Set[str]:
    """model._target_ values the user typed (`model._target_=a.B`, `+model._target_=…`, a grid's a.B,c.D)."""
    found = set(_TYPED)
    for arg in sys.argv[1:]:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "model._target_":
            found.update(v.strip().strip("'\"") for v in value.split(","))
    return found


def _confirmed(target: str) -> None:
    """A record's class, imported only on the user's word; a read-only command imports none."""
    if _NEVER[0]:
        raise NotConfirmed(f"model._target_={target}: a read-only command never imports a class a folder names")
    named = typed_targets()
    if _HANDED and target not in named:
        other = f", not the {', '.join(sorted(named))} you named" if named else ""
        raise NotConfirmed(f"{_HANDED[-1]} names its network's class model._target_={target}{other}; a folder's "
                           f"word imports no code — if you trust it, name it yourself: add model._target_={target} "
                           "to the command (docs/own-network.md)")


def _import(module_name: str):
    """import_module without a handed folder (or the current folder, when it lies inside one) on sys.path."""
    if not _HANDED:
        return importlib.import_module(module_name)
    cwd = Path.cwd().resolve()
    inside = any(cwd == h or h in cwd.parents for h in _HANDED)

    def handed(entry: str) -> bool:
        where = Path(entry or ".").resolve()
        return (inside and (entry in ("", ".") or where == cwd)) or any(where == h or h in where.parents
                                                                       for h in _HANDED)
    saved = list(sys.path)
    sys.path[:] = [e for e in saved if not handed(e)]
    try:
        return importlib.import_module(module_name)
    finally:
        sys.path[:] = saved


def network_class(m: OwnModelSettings):
    """The class `model._target_` names, imported; a name that does not import is one line."""
    target = m._target_
    module_name, _, class_name = str(target).rpartition(".")
    if not module_name or target in (None, "???"):
        raise SettingsError("model._target_", target, "model=own needs your network's class: "
                            "model._target_=package.module.Class (importable: its folder on PYTHONPATH; "
                            "docs/own-network.md)")
    _confirmed(str(target))
    try:
        module = _import(module_name)
    except Exception as e:  # ImportError, or an error inside the module itself
        raise SettingsError("model._target_", target, f"cannot import {module_name} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); is its folder on PYTHONPATH?") from None
    cls = getattr(module, class_name, None)
    import torch

    if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module)):
        found = "nothing" if cls is None else f"a {type(cls).__name__}"
        raise SettingsError("model._target_", target, f"{module_name} holds {found} named {class_name}, "
                                                      "not an nn.Module (or LightningModule) class")
    return cls


def build(m: OwnModelSettings):
    """The network, built with its arguments (on the current default device)."""
    cls = network_class(m)
    given = dict(m.arguments)
    accepts = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepts.values())
    for name in ("input_shape", "num_classes"):
        if name in accepts or takes_any:
            given[name] = list(m.input_shape) if name == "input_shape" else m.num_classes
    unknown = [k for k in m.arguments if k not in accepts and not takes_any]
    takes = [k for k in accepts if k != "self"]
    if unknown:
        guess = difflib.get_close_matches(unknown[0], takes, n=1)
        raise SettingsError(f"model.{unknown[0]}", m.arguments[unknown[0]],
                            f"{cls.__name__}() takes no argument {unknown[0]}; "
                            f"{f'did you mean model.{guess[0]}? ' if guess else ''}it takes {', '.join(takes) or 'none'}")
    try:
        return cls(**given)
    except (TypeError, ValueError) as e:  # a missing argument, or a value of the wrong kind
        named = [k for k in m.arguments if k in str(e)] or list(m.arguments)
        bad = named[0] if len(named) == 1 else None
        shown = ", ".join(f"{k}={v!r}" for k, v in m.arguments.items())
        raise SettingsError(f"model.{bad}" if bad else "model._target_", m.arguments[bad] if bad else m._target_,
                            f"{cls.__name__}({shown}) failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                            ) from None
    except SystemExit as e:  # own code ending the process would read as a silent success
        raise SettingsError("model._target_", m._target_, f"{cls.__name__}() called sys.exit({e.code!r}) while being "
                            "built; a network's constructor must return the network") from None


def dry_forward(m: OwnModelSettings) -> List[Layer]:
    """One forward of a batch of 2 on the meta device: the output checked against the task, each
    leaf module a row (its shapes, own parameters and MACs per image)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnexp.core.catalogue import TASKS

    with torch.device("meta"):
        net = build(m)
    rows: List[Layer] = []
    hooks = [module.register_forward_hook(_recorder(name, module, rows))
             for name, module in net.named_modules() if name and not list(module.children())]
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            out = net(torch.empty(2, *m.input_shape, device="meta"))
    except SystemExit as e:
        raise SettingsError("model._target_", m._target_, f"its forward called sys.exit({e.code!r}); a forward "
                            "must return the output") from None
    except Exception as e:  # the network cannot take this input
        raise SettingsError("model._target_", m._target_, f"its forward failed on a batch of "
                            f"{'×'.join(map(str, m.input_shape))} images ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    finally:
        for hook in hooks:
            hook.remove()
    _check_output(m, out, TASKS[m.task].classifies)
    if not any(p.requires_grad for p in net.parameters()):  # the optimizer would die on an empty list
        raise SettingsError("model._target_", m._target_, "it has no trainable parameters; give it at least one "
                            "layer with weights (nn.Conv2d, nn.Linear, …)")
    flops = {name.split(".", 1)[-1] if name != "Global" else name: counts
             for name, counts in counter.get_flop_counts().items()}  # "TinyNet.features.0" → "features.0"
    rows[:] = [replace(row, macs=sum(flops.get(row.block, {}).values()) // 4)  # the batch of 2's FLOPs → MACs per image
               for row in rows]
    unhooked = sum(p.numel() for p in net.parameters()) - sum(r.params for r in rows)
    if unhooked:  # parameters used outside any leaf module (nn.Parameter on the network itself)
        rows.append(Layer("(own)", "parameters", tuple(m.input_shape), tuple(out.shape[1:]), params=unhooked))
    rows.append(Layer("(output)", "output", tuple(m.input_shape), tuple(out.shape[1:]),
                      macs=max(0, sum(flops.get("Global", {}).values()) // 4 - sum(r.macs for r in rows))))
    return rows


def _recorder(name: str, module, rows: List[Layer]):
    def hook(mod, inputs, output) -> None:
        first = inputs[0] if inputs and hasattr(inputs[0], "shape") else None
        if not hasattr(output, "shape"):
            return
        rows.append(Layer(name, type(mod).__name__, tuple(first.shape[1:]) if first is not None else (),
                          tuple(output.shape[1:]), params=sum(p.numel() for p in mod.parameters(recurse=False)),
                          kernel=_first(getattr(mod, "kernel_size", None)), stride=_first(getattr(mod, "stride", None))))
    return hook


def _first(value: Any):
    return value[0] if isinstance(value, tuple) else value if isinstance(value, int) else None


def _check_output(m: OwnModelSettings, out, classifies: bool) -> None:
    """Classification: (batch, num_classes) logits; reconstruction: the input's own shape."""
    want = (m.num_classes,) if classifies else tuple(m.input_shape)
    got = tuple(getattr(out, "shape", ())[1:])
    if got != want:
        what = f"{m.num_classes} class logits" if classifies else "the reconstructed image"
        raise SettingsError("model._target_", m._target_,
                            f"its output per image is {'×'.join(map(str, got)) or type(out).__name__}, where the "
                            f"{m.task} task needs {'×'.join(map(str, want))} ({what}); check its last layer")
    if not math.prod(got):
        raise SettingsError("model._target_", m._target_, "its output is empty")
