"""The console's promises, cheap: one line for a search option without the search's sweeper,
every refused setting named, a costs-only search refused, lines that fit 100 columns."""

from __future__ import annotations

import pytest

from tests.helpers import cli


@pytest.mark.parametrize("option", ["hydra.sweeper.n_trials=3", "hydra.sweeper.objectives=[val/acc,macs]"])
def test_a_search_option_without_the_search_sweeper_is_one_line_naming_it(option, tmp_path, calibrated):
    proc = cli("train", "-m", "model.kernel_size=3,5", option, f"paths.output_dir={tmp_path / 'out'}")
    assert proc.returncode == 2 and "add hydra/sweeper=optuna" in proc.stderr, proc.stderr[-1500:]
    assert len(proc.stderr.strip().splitlines()) == 1 and "+hydra.sweeper" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_search_over_costs_known_without_training_is_refused_in_one_line():
    from cnnexp.core.errors import SettingsError
    from cnnexp.search.objectives import check_names

    for costs in (["macs", "params"], ["params", "macs"]):
        with pytest.raises(SettingsError, match="known without training.*name one metric"):
            check_names(costs)
    check_names(["train_s", "macs"])  # measured: the trials must train
    check_names(["val/acc", "macs"])
