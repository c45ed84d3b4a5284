"""A multi-objective search (`hydra.sweeper.objectives=[val/acc,macs]`): its options refused in
one line before any folder, the front and hypervolume on plain numbers, the front printed from a
real Optuna study with seed replicates, and (slow) a real two-objective search over kernel, stride
and learning rate whose printed front is recomputed here from its runs' own records, then resumed."""

from __future__ import annotations

import itertools
import json
import re
import random

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from cnnexp.core.errors import SettingsError
from cnnexp.search.objectives import decide, front, hypervolume, hypervolume_history
from cnnexp.search.options import SearchOptions
from tests.helpers import SHORT, cli, sweep_dir

pytestmark = pytest.mark.xdist_group("test_search")


def brute_front(points, signs):
    """Non-dominated by definition, written apart from cnnexp's: no other point is as good everywhere
    and better somewhere (signs: +1 maximised, -1 minimised)."""
    def better_or_equal(a, b):
        return all(s * x >= s * y for s, x, y in zip(signs, a, b))

    return {i for i, p in enumerate(points)
            if not any(better_or_equal(q, p) and q != p for q in points)}


# ------------------------------------------------------------------ plain numbers, no training
def test_the_front_is_the_non_dominated_set_best_trade_off_first():
    rng = random.Random(0)
    directions = ["maximize", "minimize"]
    for _ in range(50):
        points = [[round(rng.random(), 2), rng.choice([1e5, 5e5, 1e6, 9e6])] for _ in range(rng.randint(1, 15))]
        assert set(front(points, directions)) == brute_front(points, [1, -1])
    points = [[0.99, 9e6], [0.95, 1e6], [0.60, 1e5], [0.90, 2e6]]  # the last: worse than the second in both
    order = front(points, directions)
    assert order[0] == 1 and set(order) == {0, 1, 2}, "the balanced one first, the extremes after"


def test_hypervolume_of_known_shapes():
    assert hypervolume([[0.0, 0.0]], [1.0, 1.0]) == pytest.approx(1.0)
    assert hypervolume([[0.0, 0.5], [0.5, 0.0]], [1.0, 1.0]) == pytest.approx(0.75)  # two rectangles, overlap 0.25
    assert hypervolume([[0.5, 0.5], [0.6, 0.6]], [1.0, 1.0]) == pytest.approx(0.25)  # a dominated point adds nothing
    assert hypervolume([[0.0, 0.0, 0.0]], [1.0, 2.0, 3.0]) == pytest.approx(6.0)
    history = hypervolume_history([[0.5, 5e5], [0.9, 9e6], [0.4, 9e6], [0.8, 1e5]], ["maximize", "minimize"])
    assert all(b >= a for a, b in itertools.pairwise(history)) and history[2] == history[1]


def test_objectives_are_checked_and_their_directions_decided_once():
    with pytest.raises(SettingsError, match="flops is neither a metric nor a cost"):
        SearchOptions(objectives=["val/acc", "flops"])
    with pytest.raises(SettingsError, match="two or more objectives"):
        SearchOptions(objectives=["macs"])
    assert SearchOptions(objectives=["val/acc", "macs"]).several and not SearchOptions().several
    assert decide(["val/acc", "macs", "train_s"], "classification", "val/acc") == [
        {"name": "val/acc", "direction": "maximize"}, {"name": "macs", "direction": "minimize"},
        {"name": "train_s", "direction": "minimize"}]
    assert decide(["val/loss", "params"], "reconstruction", "val/loss")[0]["direction"] == "minimize"
    with pytest.raises(SettingsError, match=r"add callbacks.checkpoint.monitor=val/loss, or name val/acc"):
        decide(["val/loss", "macs"], "classification", "val/acc")
    with pytest.raises(SettingsError, match="hydra.sweeper.direction"):
        decide(["val/acc", "macs"], "classification", "val/acc", "maximize")


def test_nsga2_for_several_objectives_unless_tpe_is_asked():
    from cnnexp.search.study import pruner, sampler

    two = ["val/acc", "macs"]
    assert type(sampler(SearchOptions(objectives=two), {})).__name__ == "NSGAIISampler"
    assert type(sampler(SearchOptions(objectives=two, sampler="tpe"), {})).__name__ == "TPESampler"
    assert type(sampler(SearchOptions(), {})).__name__ == "TPESampler"
    assert type(pruner(SearchOptions(objectives=two, pruner="median"))).__name__ == "NopPruner"


def test_an_unknown_objective_is_one_line_and_no_folder(tmp_path, calibrated):
    out = tmp_path / "out"
    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.objectives=[val/acc,flops]",
               "model.kernel_size=choice(3,5)", f"paths.output_dir={out}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.startswith("cnnexp: error: hydra.sweeper.objectives=") and "flops" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_with_seed_replicates_the_front_is_over_settings_means_with_intervals(tmp_path, capsys):
    """A real study (in memory): kernel 3 and 5, each with seeds 1 and 2; their means make the front."""
    from cnnexp.search.pareto import print_front
    from cnnexp.sweeps.stats import interval

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("objectives", [{"name": "val/acc"}, {"name": "macs"}])
    space = {"model.kernel_size": CategoricalDistribution([3, 5, 7]), "seed": CategoricalDistribution([1, 2]),
             "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True)}
    for kernel, seed, acc, macs in [(3, 1, 0.90, 5e5), (3, 2, 0.92, 5e5), (5, 1, 0.95, 9e6), (5, 2, 0.97, 9e6),
                                    (7, 1, 0.80, 2e7), (7, 2, 0.99, 2e7)]:
        study.add_trial(create_trial(params={"model.kernel_size": kernel, "seed": seed, "optimizer.lr": 1e-3},
                                     distributions=space, values=[acc, macs], state=TrialState.COMPLETE,
                                     user_attrs={"run": f"kernel_size={kernel},seed={seed},lr=0.001"}))
    kept = print_front(tmp_path, study, study.get_trials(), interval)
    said = capsys.readouterr().out
    joined = " ".join(x.strip() for x in said.splitlines())
    assert "2 of 3 settings (means over their seeds) are non-dominated" in joined, said
    assert [e["name"] for e in kept] == ["kernel_size=3,lr=0.001", "kernel_size=5,lr=0.001"] or \
        [e["name"] for e in kept] == ["kernel_size=5,lr=0.001", "kernel_size=3,lr=0.001"]
    assert "val/acc 0.9100 [" in said and "over 2" in said and "macs 500,000" in said, said
    assert "python -m cnnexp.train model.kernel_size=3 seed=1 optimizer.lr=0.001" in said
    assert max(map(len, said.splitlines())) <= 100, said
    assert "ties: by the first objective, then the earlier trial" in joined


# ------------------------------------------------------------------ a real two-objective search
def recorded_points(folder):
    """{run: (best val/acc, MACs)} from each trained run's own records: results.json, and the MACs
    of the shape plan of the config.yaml it ran with."""
    from cnnexp.arithmetic.geometry import total_macs
    from cnnexp.config.settings import load

    points = {}
    for run in folder.iterdir():
        results = run / "results.json"
        if not results.is_file() or json.loads(results.read_text())["status"] != "ok":
            continue
        settings = load(OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True))
        points[run.name] = (json.loads(results.read_text())["best_val_acc"], total_macs(settings.model.layers))
    return points


def printed_front(stdout):
    lines = stdout.split("pareto front of val/acc (max) and macs (min): ", 1)[1].splitlines()[1:]
    return [re.match(r"  \d+\. ([^:]*):", line).group(1) for line in lines if re.match(r"  \d+\. ", line)]


@pytest.mark.slow  # two searches of a few one-epoch trials: ~1 min
def test_a_two_objective_search_prints_draws_and_resumes_its_front(tmp_path, calibrated):
    out = tmp_path / "out"
    space = ["model.kernel_size=choice(3,5,7)", "model.stride=choice(1,2)", "optimizer.lr=tag(log,interval(1e-4,1e-2))"]
    proc = cli("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.objectives=[val/acc,macs]",
               "hydra.sweeper.pruner=median", *space, *SHORT, "trainer.limit_train_batches=5", f"paths.output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = sweep_dir(out)
    said = proc.stdout + proc.stderr
    assert " ".join(said.split()).count("Optuna prunes no multi-objective study (optuna#3450)") == 1
    assert "Launching 1 jobs locally" not in said
    for p in (folder / "search_pareto.png", folder / "search_hypervolume.png"):
        assert p.stat().st_size > 0
    study = optuna.load_study(study_name="cnnexp", storage=f"sqlite:///{folder / 'study.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.user_attrs["objectives"] == [{"name": "val/acc", "direction": "maximize"},
                                              {"name": "macs", "direction": "minimize"}]
    assert study.metric_names == ["val/acc", "macs"]  # optuna-dashboard's axes

    def check_front(stdout):
        points = recorded_points(folder)
        names = list(points)
        expected = {names[i] for i in brute_front([points[n] for n in names], [1, -1])}
        assert set(printed_front(stdout)) == expected, stdout[-3000:]
        assert len(printed_front(stdout)) == len(expected)
        return points

    first = check_front(proc.stdout)
    assert "best run:" not in proc.stdout and "best vs runner-up" not in proc.stdout, "the front is the answer"
    # a long path alone (with a command's continuation ` \`) is one word: it cannot fold
    wide = [x for x in said.splitlines() if len(x) > 100 and len([w for w in x.split() if w != "\\"]) > 1]
    assert not wide, f"the search's lines fit 100 columns: {wide}"
    assert len(first) == 4
    more = cli("train", "-m", f"resume={folder}", "hydra.sweeper.n_trials=6")
    assert more.returncode == 0, more.stderr[-3000:]
    second = check_front(more.stdout)
    assert len(second) == 6 and set(first) <= set(second)
    assert len([t for t in optuna.load_study(study_name="cnnexp", storage=f"sqlite:///{folder / 'study.db'}").trials
                if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]) == 6
    summary = cli("summary", str(folder))
    assert summary.returncode == 0 and printed_front(summary.stdout) == printed_front(more.stdout)


def test_a_resume_keeps_the_study_objectives(tmp_path):
    """A study made for [val/acc,macs], asked for [val/acc,params] or for val/acc alone: refused in
    one line, the study untouched."""
    from cnnexp.search.study import StudyRefused, create_study

    two = decide(["val/acc", "macs"], "classification", "val/acc")
    study = create_study(tmp_path, SearchOptions(objectives=["val/acc", "macs"]), {}, two)
    study.set_user_attr("objectives", two)
    with pytest.raises(StudyRefused, match=r"optimises val/acc \(max\), macs \(min\), not val/acc \(max\), params \(min\) as this launch"):
        create_study(tmp_path, SearchOptions(objectives=["val/acc", "params"]), {},
                     decide(["val/acc", "params"], "classification", "val/acc"))
    with pytest.raises(StudyRefused, match=r"optimises val/acc \(max\), macs \(min\), not val/acc \(max\) as this launch's settings say; a resume keeps"):
        create_study(tmp_path, SearchOptions(), {}, [{"name": "val/acc", "direction": "maximize"}])
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"] and study.user_attrs["objectives"] == two


@pytest.mark.parametrize("attr", ["swapped", "a string"])
def test_a_handed_studys_objectives_attribute_never_relabels_its_own(tmp_path, attr, caplog):
    """hostile2 MO1/MO2: an `objectives` attribute swapped against the study's directions and
    metric names labelled the front `macs (max)`, `val/acc (min)` without a word; a string was
    read letter by letter. The study's own names and directions win, and the mismatch is one line."""
    import warnings

    from cnnexp.search.objectives import study_objectives
    from cnnexp.search.study import StudyRefused, create_study

    two = decide(["val/acc", "macs"], "classification", "val/acc")
    study = create_study(tmp_path, SearchOptions(objectives=["val/acc", "macs"]), {}, two)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["val/acc", "macs"])
    study.set_user_attr("objectives", two[::-1] if attr == "swapped" else "garbage")
    found, problem = study_objectives(study)
    assert found == two
    said = "macs (min), val/acc (max)" if attr == "swapped" else "'garbage'"
    assert problem == (f"its study's recorded objectives ({said}) are not the study's own "
                       "(val/acc (max), macs (min)); shown by the study's own")
    create_study(tmp_path, SearchOptions(objectives=["val/acc", "macs"]), {}, two)  # its own: continued
    assert f"{tmp_path}: {problem}" in caplog.text
    with pytest.raises(StudyRefused, match=r"optimises val/acc \(max\), macs \(min\), not macs"):
        create_study(tmp_path, SearchOptions(objectives=["macs", "val/acc"]), {}, two[::-1])


def test_the_named_pareto_search_composes_and_passes_its_check():
    from hydra import compose, initialize_config_dir

    from cnnexp import CONF_DIR
    from cnnexp.config.compose import register_resolvers
    from cnnexp.search.space import check_search

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("train", ["sweep=search_pareto"], return_hydra_config=True)
    options = check_search(config)
    assert options.objectives == ["val/acc", "macs"] and options.several and options.sampler == "auto"
    assert set(options.params) == {"model.kernel_size", "model.stride", "optimizer.lr"}
