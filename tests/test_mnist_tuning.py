"""`python run.py mnist --tune` on a tiny slice: studies, reports, resume, flags.

Every setting trains 1 epoch on 128 images with a 128-unit dense layer (where
the dense study does not vary it); the accuracies are meaningless, the
mechanics are what is checked. Such a trial spends most of its time tracing
Keras' training graphs, so the all-studies run trains eagerly (`counting_fits(
eager=True)`), twice as fast; the trial-cap test keeps the compiled path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

from hw1_keras.mnist import pipeline
from hw1_keras.mnist.config import MnistConfig
from conftest import consecutive_free_ports, run_tuner_cluster, write_mnist_slice
from test_cli import assert_single_line, assert_user_error
from tuning.mnist_settings import STUDIES, StudySettings, apply_setting, study

SLICE = {"train": 700, "test": 100}
TINY = {"validation_size": 200, "dense_units": 128, "augmented_copy": 0, "epochs": 1}
TRIAL = {"epochs_per_trial": 1, "trial_images": 128}
CRASH_AT = ("filters", 64)  # The first run is interrupted while training this setting.


def flags(options: dict) -> list[str]:
    return [text for name, value in options.items()
            for text in ("--" + name.replace("_", "-"), str(value))]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory, mnist_file):
    return write_mnist_slice(mnist_file, tmp_path_factory.mktemp("mnist-tune") / "tiny.npz",
                             train=SLICE["train"], test=SLICE["test"])


@contextlib.contextmanager
def counting_fits(crash_at=None, eager=False):
    """Records the setting of every model the studies train; interrupts `crash_at`'s.

    With `eager`, every model (the retrained winner too) trains eagerly.
    """
    from hw1_keras.mnist import model as mnist_model
    from tuning.mnist_trial import StudyHyperModel

    trained = []
    fit = StudyHyperModel.fit
    compile_model = mnist_model.compile_model

    def eager_compile(model, *args, **kwargs):
        compile_model(model, *args, **kwargs)
        model.run_eagerly = True

    def counting_fit(self, hp, *args, **kwargs):
        setting = (self.study.name, hp.get(self.study.parameter))
        if setting == crash_at:
            raise KeyboardInterrupt  # Like Ctrl-C or a kill: nothing catches it.
        trained.append(setting)
        return fit(self, hp, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StudyHyperModel, "fit", counting_fit)
        if eager:
            patch.setattr(mnist_model, "compile_model", eager_compile)
        yield trained


@pytest.fixture(scope="module")
def tuned(tiny_npz, tmp_path_factory):
    """All studies, interrupted mid-way, then the same command again.

    Returns `(run_dir, runs)`, `runs` holding each run's exit status, output
    and trained settings.
    """
    from hw1_keras.cli import main

    run_dir = tmp_path_factory.mktemp("tuned") / "run"
    argv = ["mnist", "--tune", "--data", tiny_npz, *flags(TINY), *flags(TRIAL),
            "--out", str(run_dir)]
    runs = []
    for crash_at in (CRASH_AT, None):
        output = io.StringIO()
        with counting_fits(crash_at, eager=True) as trained, \
                contextlib.redirect_stdout(output):
            status = main(argv)
        runs.append({"status": status, "out": output.getvalue(), "trained": trained})
    return run_dir, runs


def trial_lines(text):
    return [line for line in text.splitlines() if line.startswith("trial ")]


def test_each_study_varies_only_its_own_setting():
    base = MnistConfig()
    assert apply_setting(base, study("depth"), 3).filters == (32, 64, 128)
    assert apply_setting(base, study("depth"), 1).filters == (32,)
    assert apply_setting(base, study("filters"), 16).filters == (16, 32)
    assert apply_setting(base, study("downsampling"), "stride").downsampling == "stride"
    for each in STUDIES:
        changed = [apply_setting(base, each, value) for value in each.values]
        differing = {name for config in changed
                     for name, value in dataclasses.asdict(config).items()
                     if value != getattr(base, name)}
        expected = {"depth": {"filters"}, "filters": {"filters"},
                    # A batch size brings its learning rate (the square-root rule).
                    "batch_size": {"batch_size", "learning_rate"}}.get(each.name,
                                                                       {each.parameter})
        assert differing == expected
        assert base in changed  # The configuration itself is one of each study's settings.


def test_batch_norm_statistics_are_the_mean_over_the_settling_batches():
    import keras

    from tuning.mnist_trial import SETTLE_BATCH_SIZE, SettledBatchNorm

    images = np.stack([np.full((28, 28), 10 * i, np.uint8) for i in range(3)])
    images = np.repeat(images, SETTLE_BATCH_SIZE, axis=0)  # Batch i: every pixel 10 i.
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.BatchNormalization()])
    settle = SettledBatchNorm(pipeline.fixed_batches(images, SETTLE_BATCH_SIZE))
    settle.set_model(model)
    settle.on_test_begin()
    layer = model.layers[0]
    assert float(layer.moving_mean[0]) == pytest.approx(10.0)  # (0 + 10 + 20) / 3
    assert float(layer.moving_variance[0]) == pytest.approx(0.0, abs=1e-4)
    assert layer.momentum == 0.99  # Restored.


def test_every_setting_is_one_trial_and_a_rerun_redoes_no_finished_one(tuned):
    run_dir, (first, second) = tuned
    assert first["status"] == 130 and second["status"] == 0
    # Run 1: depth 1, 2, 3, filters 16 (filters 32 is depth's 2 blocks), then the kill.
    assert first["trained"] == [("depth", 1), ("depth", 2), ("depth", 3), ("filters", 16)]
    assert len(trial_lines(first["out"])) == 5
    # Run 2 starts with the interrupted setting and trains each of the rest once.
    assert second["trained"][0] == CRASH_AT
    assert not set(first["trained"]) & set(second["trained"])
    assert len(second["trained"]) == len(set(second["trained"]))
    # The base configuration recurs in all 7 studies but trains once: 19 - 6 = 13;
    # then the check of the winners together, trained only if no study trained it.
    summary = json.loads((run_dir / "tuning.json").read_text())
    (check,) = summary["check"]["trials"]
    checked = [setting for setting in second["trained"] if setting[0] == "combined"]
    assert len(checked) == (0 if "same_as" in check else 1)
    assert len(first["trained"] + second["trained"]) == 13 + len(checked)
    assert len(trial_lines(second["out"])) == 19 - 5 + 1
    assert "same configuration as depth trial 2: not trained again" in second["out"]
    assert "(resuming; --fresh starts over)" in second["out"]
    assert "Epoch 1/1" not in second["out"] and "━" not in second["out"]  # Keras stays quiet.
    assert "Reloading Tuner" not in second["out"]  # So does KerasTuner: the line above says it.

    trials = [t for s in summary["studies"] for t in s["trials"]]
    assert [(t["study"], t["value"]) for t in trials] == [
        (s.name, v) for s in STUDIES for v in s.values]
    assert all(t["status"] == "COMPLETED" and len(t["curve"]) == 1 for t in trials)
    assert all(t["best"] == max(t["curve"]) for t in trials)
    copies = [t for t in trials if "same_as" in t]
    assert len(copies) == 6 and all(t["same_as"] == "depth trial 2" for t in copies)
    base = trials[1]
    assert base["label"] == "2 blocks (32/64)" and "same_as" not in base
    assert {t["best"] for t in copies} == {base["best"]}
    assert (summary["trial_images"], summary["validation_images"]) == (128, 200)


def test_a_smaller_batch_trains_the_same_steps_on_fewer_images(tuned):
    run_dir, _ = tuned
    summary = json.loads((run_dir / "tuning.json").read_text())
    trials = {(t["study"], t["value"]): t for s in summary["studies"] for t in s["trials"]}
    own = trials[("depth", 2)]
    assert (own["images"], own["steps"]) == (128, 1)  # 128 images at batch 128, 1 epoch.
    small = trials[("batch_size", 16)]
    assert (small["images"], small["steps"]) == (16, 1)
    assert trials[("batch_size", 64)]["images"] == 64
    assert all(t["steps"] == 1 for t in trials.values())
    assert small["config"]["learning_rate"] == pytest.approx(
        own["config"]["learning_rate"] / 8 ** 0.5)


def test_each_trial_keeps_which_validation_images_its_best_epoch_got_right(tuned):
    # In the oracle's own files, which a resumed search and a distributed chief read.
    from keras_tuner.src.engine.trial import Trial

    from tuning.mnist_trial import correct_from_metrics

    run_dir, _ = tuned
    files = sorted((run_dir / "tuning" / "dense").glob("trial_*/trial.json"))
    assert len(files) == 3
    for path in files:
        metrics = Trial.load(str(path)).metrics
        values = {name: metrics.get_last_value(name) for name in metrics.metrics}
        correct = correct_from_metrics(values, 200)
        assert correct.shape == (200,)
        assert correct.mean() == pytest.approx(values["val_accuracy"])


def test_correct_masks_survive_the_metrics_they_travel_as():
    from tuning.mnist_trial import CORRECT_BITS, correct_from_metrics, correct_metrics

    mask = np.random.default_rng(1).random(12_000) > 0.3
    metrics = correct_metrics(mask)
    assert len(metrics) == 12_000 // CORRECT_BITS
    assert all(value == int(value) < 2**53 for value in metrics.values())  # Exact in doubles.
    np.testing.assert_array_equal(correct_from_metrics(metrics, 12_000), mask)
    odd = mask[:101]
    np.testing.assert_array_equal(correct_from_metrics(correct_metrics(odd), 101), odd)
    assert correct_from_metrics({}, 101) is None  # A trial that did not record them.


def test_each_combination_is_checked_in_a_project_of_its_own():
    # A rerun that adds studies may combine other winners: the earlier check's
    # finished trial must not stand in for the new one.
    from tuning.mnist_settings import combination_study, combination_value
    from tuning.mnist_studies import _check_project

    deeper = combination_study(combination_value([("depth", 3)]))
    assert _check_project(deeper) == _check_project(
        combination_study(combination_value([("depth", 3)])))
    assert _check_project(deeper) != _check_project(
        combination_study(combination_value([("depth", 3), ("batch_norm", 0)])))
    assert _check_project(deeper).startswith("combined-")


def test_the_decision_names_each_study_s_verdict_and_the_retrained_configuration(tuned):
    run_dir, (_, second) = tuned
    summary = json.loads((run_dir / "tuning.json").read_text())
    decision = summary["decision"]
    assert [v["study"] for v in decision["verdicts"]] == [s.name for s in STUDIES]
    for verdict in decision["verdicts"]:
        assert verdict["changed"] == (verdict["study"] in decision["changed_by"])
        if "margin" in verdict:  # Compared with the run's own setting, image by image.
            assert verdict["changed"] == (
                verdict["margin"] > decision["noise_ses"] * verdict["margin_se"])
            assert (verdict["study"] in decision["inside_noise"]) == (
                0 < verdict["margin"] <= decision["noise_ses"] * verdict["margin_se"])
    combination = decision["combination"]
    assert combination["checked"] and summary["check"]["value"] == combination["value"]
    assert [name for name, _ in json.loads(combination["value"])] == decision["changed_by"]
    winner = summary["winner"]
    assert winner == decision["retrained"]
    assert winner["kind"] in ("base", "single", "combination")
    if winner["kind"] == "base":
        assert winner["config"] == summary["base_config"]
    assert f"chosen: {winner['label']}: {winner['reason']}" in second["out"]
    assert "studies -> one configuration" in second["out"]


def test_one_plot_per_study_and_a_summary_table(tuned):
    run_dir, _ = tuned
    for each in STUDIES:
        assert (run_dir / "studies" / f"{each.name}.png").stat().st_size > 10_000
    table = (run_dir / "studies.md").read_text()
    # 128 trial images: fewer than the 2,560 BatchNorm would otherwise be settled on.
    assert "re-estimated on 128 training images" in table
    settings_table, decision_table = table.split("## From the studies to one model")
    rows = [line for line in settings_table.splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 19
    verdicts = [line for line in decision_table.splitlines() if line.startswith("| ")][2:]
    assert [row.split(" | ")[0] for row in verdicts] == [f"| {s.name}" for s in STUDIES]
    assert "Chosen: " in decision_table and "Equal budget: every setting 1 epoch" in table
    assert rows[0].startswith("| depth | ") and "1 block (32)" in rows[0]
    assert rows[3].startswith("| filters | ") and rows[4].startswith("|  | ")
    summary = json.loads((run_dir / "tuning.json").read_text())
    rows = iter(rows)  # One per setting, in the order of tuning.json.
    for each in summary["studies"]:
        best = max(t["best"] for t in each["trials"])
        for trial in each["trials"]:
            row = next(rows)
            assert trial["label"] in row and f"{trial['best']:.2%}" in row
            assert (f"**{trial['best']:.2%}**" in row) == (trial["best"] == best)
    assert "Quick run" not in table  # Only --quick calls itself noisy.


def test_the_best_setting_is_retrained_and_exported_like_a_plain_run(tuned):
    run_dir, (_, second) = tuned
    for name in ("metrics.json", "config.json", "accuracy.png", "filters.png",
                 "activations.png", "confusion.png", "mistakes.png", "model.onnx",
                 "saved_model/saved_model.pb", "training_log.csv"):
        assert (run_dir / name).exists(), name
    winner = json.loads((run_dir / "tuning.json").read_text())["winner"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"] == winner["config"]  # epochs: the run's, 1, as in the trials.
    assert metrics["tuning"]["winner"]["label"] == winner["label"]
    assert metrics["tuning"]["changed_by"] == json.loads(
        (run_dir / "tuning.json").read_text())["decision"]["changed_by"]
    assert metrics["epochs"] == TINY["epochs"] and 0 <= metrics["test_accuracy"] <= 1
    assert f"retraining {winner['label']} for 1 epoch" in second["out"]


def test_a_trial_cap_stops_early_and_a_larger_one_continues(tiny_npz, tmp_path, capsys):
    from tuning.mnist_studies import search

    config = MnistConfig(data=tiny_npz, **TINY)
    settings = StudySettings(studies=("batch_norm", "downsampling"), trials=1, **TRIAL)
    with counting_fits() as trained:
        summary = search(config, settings, str(tmp_path / "run")).summary
        assert trained == [("batch_norm", 0)]
        assert [len(s["trials"]) for s in summary["studies"]] == [1]
        # Stopped by the cap: no check of a combination; nothing to compare with.
        assert summary["check"] is None and not summary["decision"]["combination"]["checked"]
        assert summary["winner"]["kind"] == "base" and summary["winner"]["best"] is None
        summary = search(config, dataclasses.replace(settings, trials=None),
                         str(tmp_path / "run")).summary
    # batch norm on is the base configuration; downsampling's max-pool is it again.
    studied = [setting for setting in trained if setting[0] != "combined"]
    assert studied == [("batch_norm", 0), ("batch_norm", 1), ("downsampling", "stride")]
    assert [len(s["trials"]) for s in summary["studies"]] == [2, 2]
    assert summary["check"] is not None  # Now complete: the winners were checked together.
    assert len(trial_lines(capsys.readouterr().out)) == 1 + 3 + 1


def test_other_trial_settings_in_the_same_folder_are_refused(tuned, tiny_npz, capsys):
    from hw1_keras.cli import main

    run_dir, _ = tuned
    before = (run_dir / "tuning.json").read_bytes()
    argv = ["mnist", "--tune", "--data", tiny_npz, *flags(TINY),
            *flags({**TRIAL, "epochs_per_trial": 2}), "--out", str(run_dir)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "holds a search with other settings (epochs_per_trial 1 -> 2)" in error
    assert "--fresh" in error
    assert len(error.splitlines()) == 1
    assert (run_dir / "tuning.json").read_bytes() == before


@pytest.mark.parametrize("jit, expected", [("on", True), ("off", False)])
def test_trials_compile_as_jit_says(tiny_npz, tmp_path, monkeypatch, jit, expected):
    import keras

    from hw1_keras.cli import main
    from hw1_keras.mnist import model as mnist_model

    compiled = []

    def record(model, hp, learning_rate, jit_compile="auto"):
        if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            compiled.append(jit_compile)  # The trial's training compile: stop there.
            raise KeyboardInterrupt

    monkeypatch.setattr(mnist_model, "compile_model", record)
    argv = ["mnist", "--tune", "--data", tiny_npz, *flags(TINY), *flags(TRIAL),
            "--studies", "batch_norm", "--jit", jit, "--out", str(tmp_path / "run")]
    assert main(argv) == 130
    assert compiled == [expected]


def test_a_folder_holding_no_search_is_refused(tiny_npz, tmp_path, capsys):
    from hw1_keras.cli import main

    out = tmp_path / "plain_run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # E.g. a plain run's folder.
    argv = ["mnist", "--tune", "--data", tiny_npz, *flags(TINY), *flags(TRIAL),
            "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"--out {out}: is not empty and holds no search" in error
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_more_trial_images_than_the_training_split(tiny_npz, tmp_path, capsys):
    from hw1_keras.cli import main

    argv = ["mnist", "--tune", "--data", tiny_npz, *flags(TINY), "--trial-images", "501",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--trial-images got 501; the training split has only 500 images" in error
    assert not (tmp_path / "run").exists()  # Validated before the run folder is made.
    # Set by --quick, not typed: the message says where the number came from.
    argv = ["mnist", "--tune", "--quick", "--data", tiny_npz, "--validation-size", "100",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--trial-images got 16000 (the --quick preset's)" in error
    assert "pass --trial-images 600 or fewer" in error  # 700 images, 100 held out.


@pytest.mark.parametrize("argv, fragments", [
    (["--trials", "3"], ["--trials applies to a search; add --tune"]),
    (["--studies", "depth"], ["--studies applies to a search"]),
    (["--tune", "--epochs-per-trial", "0"], ["--epochs-per-trial", "'0'", "whole number"]),
    (["--tune", "--trials", "0"], ["--trials", "'0'"]),
    (["--tune", "--studies", "depth,width"], ["--studies", "width", "depth,filters,dense"]),
    (["--tune", "--studies", "depth,depth"], ["--studies", "distinct"]),
])
def test_bad_tune_flags_are_one_line_errors(cli, argv, fragments):
    result = cli("mnist", *argv)
    assert_user_error(result, *fragments)
    assert_single_line(result)


def test_help_lists_the_tune_flags(cli):
    result = cli("mnist", "--help")
    for flag in ("--tune", "--studies", "--trials", "--epochs-per-trial", "--trial-images",
                 "--fresh"):
        assert flag in result.stdout


@pytest.mark.integration
def test_a_chief_and_two_workers_share_the_studies(tiny_npz, tmp_path):
    # KerasTuner's chief/worker mode on loopback: each study is its own grid
    # search with its own oracle server (ports base + study index).
    import sys

    from hw1_keras.cluster import RUN_PY

    base = consecutive_free_ports(3)  # One oracle per study, one for the check.
    studies = ["dropout", "batch_norm"]  # 3 + 2 settings.
    argv = [sys.executable, str(RUN_PY), "mnist", "--tune", "--data", tiny_npz,
            "--studies", ",".join(studies), *flags(TINY), *flags(TRIAL)]
    stdout = run_tuner_cluster(
        {tuner_id: [*argv, "--out", tmp_path / tuner_id]
         for tuner_id in ("chief", "worker0", "worker1")}, base, timeout=240)
    workers = [stdout["worker0"], stdout["worker1"]]
    # Each worker prints one line per setting it trained: 5 and the check, both busy.
    trained = [sum(line.startswith("trial ") for line in out.splitlines()) for out in workers]
    assert sum(trained) == 5 + 1 and min(trained) >= 1, trained
    summary = json.loads((tmp_path / "chief" / "tuning.json").read_text())
    completed = [t for s in summary["studies"] for t in s["trials"] if "best" in t]
    assert len(completed) == 5
    # The workers' per-image results reached the chief: every study was compared.
    assert all("margin_se" in v or v["reason"] == "no other setting trained"
               for v in summary["decision"]["verdicts"])
    (check,) = summary["check"]["trials"]
    assert check["status"] == "COMPLETED" and summary["decision"]["combination"]["checked"]
    assert summary["winner"]["config"] == json.loads(
        (tmp_path / "chief" / "metrics.json").read_text())["config"]
    assert (tmp_path / "chief" / "saved_model").exists()  # The chief retrained the winner.
    assert "So Far" not in stdout["chief"]  # Quiet (TrialLines) on the chief too: no KerasTuner tables.
    assert "worker done" in workers[0]


@pytest.mark.parametrize("augmented_copy", [0, 1])
def test_a_study_settles_batch_norm_on_batches_like_its_training_ones(monkeypatch, augmented_copy):
    import keras_tuner

    from hw1_keras.mnist.model import MnistHyperModel
    from tuning.mnist_trial import (SETTLE_BATCH_SIZE, SETTLE_BATCHES, SettledBatchNorm,
                                    StudyHyperModel)

    seen = {}
    monkeypatch.setattr(MnistHyperModel, "fit",
                        lambda self, hp, model, x, y, callbacks=None, **kwargs:
                        seen.setdefault("callbacks", callbacks))
    count = SETTLE_BATCHES * SETTLE_BATCH_SIZE
    images = np.zeros((count + 10, 28, 28), np.uint8)
    images[:, 4:24, 12:16] = 255  # A bar, which every augmentation moves.
    hypermodel = StudyHyperModel(MnistConfig(augmented_copy=augmented_copy), study("dropout"), 1)
    hp = keras_tuner.HyperParameters()
    hp.Fixed("dense_dropout", 0.5)
    hypermodel.fit(hp, None, images, np.zeros(len(images), int))
    (settle,) = [c for c in seen["callbacks"] if isinstance(c, SettledBatchNorm)]
    assert {len(batch) for batch in settle.batches} == {SETTLE_BATCH_SIZE}
    settled = np.concatenate(settle.batches)[..., 0]
    assert len(settled) == count
    np.testing.assert_array_equal(settled[0::2], images[0:count:2])
    changed = [not np.array_equal(a, images[0]) for a in settled[1::2]]
    assert np.mean(changed) > 0.95 if augmented_copy else not any(changed)


def test_an_interrupted_retraining_of_a_superseded_winner_is_dropped(tmp_path, capsys):
    # A rerun that extends the search may pick another winner; the interrupted
    # retraining of the old one cannot resume, and kept, it would refuse every
    # rerun. The same winner's keeps its backup, to resume from.
    from hw1_keras.config import to_dict
    from hw1_keras.runs import write_json
    from tuning.mnist_studies import _drop_superseded_retraining

    earlier = MnistConfig(data="mnist.npz", **TINY)
    write_json(tmp_path / "config.json", to_dict(earlier))
    (tmp_path / "backup").mkdir()
    _drop_superseded_retraining(tmp_path, earlier)
    assert (tmp_path / "backup").is_dir()
    _drop_superseded_retraining(tmp_path, dataclasses.replace(earlier, batch_size=16))
    assert not (tmp_path / "backup").exists()
    assert "dropped (batch_size 128 -> 16)" in capsys.readouterr().out
