"""The search's options are stated once, in `cnnexp.search.options.SearchOptions`: Hydra's
conf/hydra/sweeper/optuna.yaml and the options table of docs/search.md are written from it.
`python tests/test_search_options.py` writes both; these tests fail when either has drifted."""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cnnexp.core.errors import SettingsError
from cnnexp.search.options import PLUGIN, SearchOptions, conf_default, helps

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf" / "hydra" / "sweeper" / "optuna.yaml"
DOCS = ROOT / "docs" / "search.md"
BEGIN, END = "<!-- options: written by `python tests/test_search_options.py` -->", "<!-- /options -->"
HEADER = """\
# Search with Optuna instead of a grid: python -m cnnexp.train -m hydra/sweeper=optuna
#   'model.kernel_size=choice(3,5,7)' 'optimizer.lr=tag(log,interval(1e-4,1e-2))'
# The study is SWEEP_FOLDER/study.db (SQLite) unless `storage` says otherwise; -m resume=SWEEP_FOLDER
# continues it, or joins it as one more worker while it runs (docs/search.md).
# Written from cnnexp.search.options by `python tests/test_search_options.py`: change them there.
"""


def conf_text() -> str:
    lines = [f"_target_: {PLUGIN}"]
    lines += [f"{f'{name}: {conf_default(name)}':<24} # {help}" for name, help in helps().items()]
    return HEADER + "\n".join(lines) + "\n"


def docs_table() -> str:
    bar = "\\|"  # a | inside a cell
    rows = [f"| `{name}` | `{conf_default(name)}` | {help.replace('|', bar)} |" for name, help in helps().items()]
    return "\n".join([BEGIN, "| `hydra.sweeper.` | default | what it does |", "|---|---|---|", *rows, END])


def docs_with_table(text: str) -> str:
    if BEGIN not in text:  # the first time: a section of its own at the end
        return text.rstrip("\n") + "\n\n## Options\n\n" + docs_table() + "\n"
    return re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: docs_table(), text, flags=re.S)


def test_the_conf_is_written_from_the_options():
    assert CONF.read_text() == conf_text(), "run `python tests/test_search_options.py` after changing the options"


def test_the_conf_defaults_are_the_dataclass_defaults():
    """Hydra's defaults, composed, are a valid SearchOptions equal to the dataclass's own defaults
    (the seed follows the run's)."""
    node = OmegaConf.load(CONF)
    node.seed = None
    assert SearchOptions.from_node(node) == SearchOptions()
    assert set(OmegaConf.to_container(node)) - {"_target_"} == {f.name for f in fields(SearchOptions)}


def test_the_docs_table_is_written_from_the_options():
    text = DOCS.read_text()
    assert BEGIN in text and text == docs_with_table(text), \
        "run `python tests/test_search_options.py` after changing the options"


def test_a_bad_option_names_its_flag():
    with pytest.raises(SettingsError, match=r"hydra\.sweeper\.sampler"):
        SearchOptions(sampler="bayes")
    with pytest.raises(SettingsError, match=r"hydra\.sweeper\.grace_s"):
        SearchOptions(heartbeat_s=10, grace_s=5)
    with pytest.raises(SettingsError, match=r"hydra\.sweeper\.n_trial\b.*the options are"):
        SearchOptions.from_node({"n_trial": 3})


if __name__ == "__main__":
    CONF.write_text(conf_text())
    DOCS.write_text(docs_with_table(DOCS.read_text()))
    print(f"wrote {CONF.relative_to(ROOT)} and the options table of {DOCS.relative_to(ROOT)}", file=sys.stderr)
