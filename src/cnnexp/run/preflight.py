"""A run's settings checked once, before any folder is written: the settings, the shapes, the
output folder (or, for a resume, the run it continues), the data files, and what Lightning
rejects. The Hydra callback calls `check_run` before Hydra creates the folder; the job then
reuses its answer, and every later step receives the checked settings.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from cnnexp.config.own_network import as_typed
from cnnexp.config.settings import Settings, load
from cnnexp.core.errors import SettingsError
from cnnexp.data.facts import FROM_MNIST
from cnnexp.data.sources import ensure_mnist
from cnnexp.records.folder import check_writable
from cnnexp.run import resume as resuming
from cnnexp.run.trainer import check_trainer
from cnnexp.tracking.loggers import check_tracking
from cnnexp.tracking.wandb_run import check_wandb


@dataclass
class Checked:
    settings: Settings
    resume: Optional[resuming.Resume] = None

    @property
    def config(self) -> dict:
        """The effective config, as config.yaml records it: per-block values as built; an own
        network's constructor arguments as typed (`model.width`), as sweeps and HParams name them."""
        return as_typed(dataclasses.asdict(self.settings))


_checked: Dict[str, Checked] = {}


def check_run(cfg: DictConfig, overrides: List[str]) -> Checked:
    """Pure Python until Lightning's check: a typo is answered before torch is imported.
    Memoised, so the Hydra callback's check is the job's."""
    key = OmegaConf.to_yaml(cfg) + repr(overrides)
    if key not in _checked:
        try:
            config = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # an interpolation that cannot resolve: name its key
            raise SettingsError(getattr(e, "full_key", None) or "?", getattr(e, "value", None) or "${…}",
                                str(e).splitlines()[0]) from None
        config.pop("hydra", None)
        settings = load(config)
        if settings.resume:
            found = resuming.prepare(settings.resume, overrides)
            checked = Checked(found.settings, found)
        else:
            check_writable(settings.paths.output_dir)
            checked = Checked(settings)
        check_wandb(checked.settings)  # before the data and Lightning: a missing W&B key is said in a second
        # MNIST verified (or fetched) before a folder exists, on a thread while Lightning imports (unzip
        # and sha256 free the GIL); leaving the pool waits for it, also when Lightning refuses the run:
        # the thread may be writing a fetched file into data.root
        with ThreadPoolExecutor(max_workers=1) as pool:
            data_check = pool.submit(ensure_mnist, checked.settings.data) \
                if checked.settings.data.name in FROM_MNIST else None
            check_trainer(checked.settings)
            if data_check is not None:
                data_check.result()
        check_tracking(checked.settings)
        _checked[key] = checked
    return _checked[key]
