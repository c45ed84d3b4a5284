"""`python -m cnnexp.shapes [overrides]`: the shape table of a model, worked by the textbook
formulas, without loading data or torch.

    python -m cnnexp.shapes model=cnn3 model.kernel_size=7 model.stride=2
"""

from __future__ import annotations

import sys

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from cnnexp import config
from cnnexp.hydra_support import compose_config, fail
from cnnexp.models.geometry import ShapeError, plan
from cnnexp.models.table import format_table


def main(argv: list[str] | None = None) -> None:
    overrides = sys.argv[1:] if argv is None else argv
    try:
        settings = config.load(compose_config(overrides))
        table = format_table(plan(settings.model))
        print(f"{settings.model.name}: input {'×'.join(map(str, settings.model.input_shape))}")
        print(table)
    except (config.SettingsError, ShapeError, HydraException, OmegaConfBaseException) as e:
        fail(e)


if __name__ == "__main__":
    main()
