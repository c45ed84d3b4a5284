"""The console's promises, cheap: one line for a search option without the search's sweeper,
every refused setting named, a costs-only search refused, lines that fit 100 columns."""

from __future__ import annotations

import pytest

from tests.helpers import cli


@pytest.mark.parametrize("option", ["hydra.sweeper.n_trials=3", "hydra/sweeper=basic hydra.sweeper.objectives=[val/acc,macs]"])
def test_a_search_option_without_the_search_sweeper_is_one_line_naming_it(option, tmp_path, calibrated):
    proc = cli("train", "-m", "model.kernel_size=3,5", *option.split(), f"paths.output_dir={tmp_path / 'out'}")
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


def test_epoch_lines_and_folded_lines_fit_100_columns_with_their_time_stamp():
    from cnnexp.core.console import STAMP, WIDTH, folded, items_folded

    metrics = ["train/acc 0.7812", "train/loss 0.6931", "val/acc 0.5", "val/loss 0.6931", "1.4 s"]
    for head in ("epoch 10 (11 of 30):", "[12/124] kernel_size=5,stride=1,lr=0.000205111: epoch 0 (1 of 2):"):
        lines = items_folded(head, metrics).splitlines()
        assert all(STAMP + len(x) <= WIDTH for x in lines), lines
        assert all(m in "\n".join(lines) for m in metrics), "no metric cut in two"
        assert lines[0].startswith(head + " train/acc")
    said = folded("search: ~1.9 s for 3 trials (n_trials × the mean of 6 settings drawn from its space; 1.9 s if "
                  "all were the cheapest, 1.9 s if all the costliest; pruned trials end sooner; ±30 %)", "  ", 89)
    assert "±30 %" in said and "1.9 s" in said.replace("\n  ", " ") and all(len(x) <= 89 for x in said.splitlines())
    assert not any(x.rstrip().endswith(("1.9", "±30")) for x in said.splitlines()), "a figure kept with its unit"


def test_a_tie_for_best_is_said_with_its_rule(capsys):
    from cnnexp.sweeps.tables import print_best

    rows = [{"run": name, "status": "ok", "monitor": "val/acc", "mode": "max", "best_val_acc": 0.5,
             "overrides": [f"model.kernel_size={name[-1]}"]} for name in ("kernel_size=3", "kernel_size=7")]
    print_best(rows)
    said = capsys.readouterr().out
    assert "best run: kernel_size=3, by best_val_acc (max) (tied with 1 other: the first by name)" in said, said


def test_importances_of_few_trials_carry_a_note():
    import optuna

    from cnnexp.search.pareto import RANKED_FROM, few_trials_note

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(3):
        study.add_trial(optuna.trial.create_trial(values=[0.5, float(i)], params={}, distributions={}))
    assert f"3 trained trials: too few to rank settings, < {RANKED_FROM}" in few_trials_note(study)
    for i in range(RANKED_FROM):
        study.add_trial(optuna.trial.create_trial(values=[0.5, float(i)], params={}, distributions={}))
    assert few_trials_note(study) == ""
