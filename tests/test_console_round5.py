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


def _settings(*overrides):
    from cnnexp.config.compose import compose_config, user_config
    from cnnexp.config.settings import load

    return load(user_config(compose_config(list(overrides))))


RATES = {"per_batch": 1e-3, "per_mac": 1e-11, "per_value": 1e-10, "per_param": 1e-9}
CALIBRATION = {"devices": {"cpu": {m: {"train": RATES, "eval": RATES}
                                   for m in ("fp32-cl", "fp32-nchw", "bf16-cl", "bf16-nchw")}}}


def test_estimates_count_the_fixed_costs_of_tiny_epochs_and_call_1d_3d_rough():
    from cnnexp.cost import estimate as cost
    from tests.helpers import QUICK

    tiny = cost.estimate(_settings(QUICK[0], "trainer.limit_train_batches=1", "trainer.max_epochs=3"), CALIBRATION)
    fixed = cost.OVERHEAD
    assert tiny.epoch_s >= fixed["epoch"] + fixed["validation"] and not tiny.rough
    assert tiny.total_s >= 3 * tiny.epoch_s + fixed["test"] + fixed["run"]
    assert "±30 %" in cost.line(_settings(QUICK[0]), CALIBRATION)
    series = cost.line(_settings(QUICK[0], "data=seqmnist"), CALIBRATION)
    assert "rough" in series and "±30" not in series and max(map(len, series.splitlines())) <= 89, series


PATCH = ("diff --git a/src/cnnexp/train.py b/src/cnnexp/train.py\nindex ac4dbcb..a6df7b9 100644\n"
         "--- a/src/cnnexp/train.py\n+++ b/src/cnnexp/train.py\n@@ -1,2 +1,3 @@\n x = 1\n+# a comment\n y = 2\n")


def test_compare_shows_a_code_change_not_a_diff_of_git_headers():
    from cnnexp.records.provenance import patch_diff

    alone = patch_diff({"patch": ""}, {"patch": PATCH})
    assert "B alone changes src/cnnexp/train.py:" in alone and "+# a comment" in alone, alone
    assert not any(line.startswith(("+src/", "+index", "+---", "+diff")) for line in alone), alone
    both = patch_diff({"patch": PATCH}, {"patch": PATCH.replace("a comment", "another")})
    assert "-+# a comment" in both and "++# another" in both and not any("index" in x for x in both), both


def test_printed_commands_give_own_network_arguments_as_typed():
    from cnnexp.config.compose import as_typed, own_arguments

    typed = ["model=own", "model._target_=mynets.SmallNet", "model.width=16", "seed=1"]
    assert own_arguments(typed)[2] == "++model.width=16"
    assert as_typed(own_arguments(typed)) == typed
    assert as_typed(["++model.width=16"]) == ["++model.width=16"], "not model=own: left as recorded"
