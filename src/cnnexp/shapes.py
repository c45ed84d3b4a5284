"""`python -m cnnexp.shapes [overrides] [json=true] [draw=DIR] [calibrate=true]`: the shape table of a
model, worked by the textbook formulas, without loading data or torch: shapes, parameters, receptive
field and jump, multiply-accumulates and output memory per layer, then the estimated seconds per
epoch and for the run on this machine (cnnexp.cost.estimate). draw=DIR also draws each conv, pool and
transposed-conv layer's arithmetic into DIR (see cnnexp.arithmetic.draw, docs/arithmetic.md).
calibrate=true measures this machine's speed again first (a few seconds, with torch; the first
training run does it once by itself). Takes the training's keys (model.*, data.*, groups such as
model=convae; `python -m cnnexp.train --help` lists them). A setting far costlier than the
reference network is named with its factor.

    python -m cnnexp.shapes model=cnn3 model.kernel_size=7 model.stride=2
    python -m cnnexp.shapes model=convae json=true
    python -m cnnexp.shapes data=folder data.root=~/datasets/leaves   # the input shape the folder's images give
    python -m cnnexp.shapes data=seqmnist model.kernel_size=7          # a 1-D table: Conv1d over 1×784 steps
    python -m cnnexp.shapes data=volumes data.root=~/scans model.kernel_size=[3,5,5]   # 3-D, one kernel size per axis
    python -m cnnexp.shapes model=convae draw=pictures                 # GIFs and sheets into pictures/
    python -m cnnexp.shapes experiment=speedrun calibrate=true          # measure this machine, then estimate
"""

from __future__ import annotations

import json
import sys

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from cnnexp.core.console import folded
from cnnexp.cost import estimate as cost
from cnnexp.config.compose import check_override_keys, compose_config, reference_model
from cnnexp.config.settings import load
from cnnexp.core.errors import SettingsError, UserError, fail
from cnnexp.arithmetic.table import cost_warning, format_table, table_json


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from cnnexp.config.args import exit_on_help

    exit_on_help(__doc__, args)
    as_json = [a for a in args if a.startswith("json=")]
    draw = [a.split("=", 1)[1] for a in args if a.startswith("draw=")]
    calibrate = [a for a in args if a.startswith("calibrate=")]
    overrides = [a for a in args if not a.startswith(("json=", "draw=", "calibrate="))]
    try:
        for flag in (as_json, calibrate):
            if flag and flag[-1].split("=", 1)[1] not in ("true", "false"):
                raise SettingsError(flag[-1].split("=", 1)[0], flag[-1].split("=", 1)[1], "true or false")
        check_override_keys(overrides)  # as train does: a key Hydra would reject in many lines, named in one
        settings = load(compose_config(overrides))
        folder = None
        if draw:
            from cnnexp.arithmetic import draw as arithmetic  # Pillow: only when drawing
            folder = arithmetic.folder(draw[-1])
    except (UserError, HydraException, OmegaConfBaseException) as e:
        fail(e)
    layers = settings.model.layers
    calibration = None
    if calibrate and calibrate[-1] == "calibrate=true":
        import logging

        from cnnexp.cost.calibration import calibrate as measure  # torch: only when asked

        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        try:
            calibration = measure(force=True)
        except OSError as e:  # the cache folder read-only or full (a WriteError): one line
            from cnnexp.core.files import os_error_line

            fail(os_error_line(e, elsewhere="XDG_CACHE_HOME=… holds the calibration"))
    if as_json and as_json[-1] == "json=true":
        estimate = cost.estimate(settings, calibration or cost.read_calibration())
        print(json.dumps({"model": settings.model.name, "input_shape": list(settings.model.input_shape),
                          **table_json(layers), "estimate": estimate and {
                              "epoch_s": round(estimate.epoch_s, 2), "total_s": round(estimate.total_s, 2),
                              "epochs": estimate.epochs, "device": estimate.device, "mode": estimate.mode}}, indent=2))
    else:
        data = settings.data
        named = f" ({data.problem})" if data.name == "series" else ""  # a data folder's own classes, read by the check
        source = f" — from data.root={data.root}{named}: {len(data.classes)} classes" \
            if data.name in ("folder", "series", "volumes") else ""
        shape = settings.model.input_shape
        dims = {2: " (1-D: channels×length)", 4: " (3-D: channels×depth×height×width)"}.get(len(shape), "")
        print(folded(f"{settings.model.name}: input {'×'.join(map(str, shape))}{dims}{source}", "  "))  # 100 columns
        print(format_table(layers))
        costly = cost_warning(settings.model, reference_model(settings.model))
        if costly:
            print(f"warning: {costly}")
        print(cost.line(settings, calibration))
    if folder is not None:
        try:
            print(arithmetic.draw_network(settings, folder), file=sys.stderr)
        except OSError as e:
            fail(SettingsError("draw", str(folder), f"the pictures could not be written ({e}); give another folder"))


if __name__ == "__main__":
    from cnnexp.core.console import report_like_cat
    from cnnexp.core.stopping import run_command

    report_like_cat()
    run_command(main, "nothing was written, or only whole pictures")
