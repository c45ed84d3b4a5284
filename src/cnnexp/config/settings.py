"""A run's settings, loaded: a composed config (or a recorded config.yaml) brought up to today's
keys (`migrations`), merged into the typed schema (`schema`: an unknown key or a wrong type is
named by `messages`) and checked once (`validate`). `load` is the one way in. Pure Python: no
torch.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cnnexp.config.messages import describe_omegaconf_error, locate_key, user_key
from cnnexp.config.migrations import data_name, migrate
from cnnexp.config.own_network import OWN, OwnModelSettings, own_node
from cnnexp.config.schema import DATASETS, ModelSettings, Settings
from cnnexp.config.validate import require, validate


def load(cfg: DictConfig | dict) -> Settings:
    """Merge a composed config into the schema, check it, and return plain dataclasses."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = {k: v for k, v in cfg.items() if k != "hydra"}
    name = data_name(cfg)  # first: the schema of the data's settings depends on it
    require(name in DATASETS, "data.name", name, f"one of {', '.join(DATASETS)} (data=folder for your own images)")
    cfg = migrate(cfg)
    own = isinstance(cfg.get("model"), dict) and cfg["model"].get("name") == OWN
    if own:  # model=own: any constructor argument, kept under `arguments`
        cfg["model"] = own_node(cfg["model"])
    try:
        schema = OmegaConf.structured(Settings)
        schema.data = OmegaConf.structured(DATASETS[name])
        schema.model = OmegaConf.structured(OwnModelSettings if own else ModelSettings)
        settings = OmegaConf.to_object(OmegaConf.merge(schema, cfg))
    except OmegaConfBaseException as e:
        raise describe_omegaconf_error(e, typed_key=locate_key(cfg, user_key(getattr(e, "full_key", "") or "")),
                                       data=name) from None
    return validate(settings)
