"""`trainers/study.py`: the study file, the run plan, and the scarcity study's quick mode."""

import dataclasses
import json
import subprocess
import sys

import pytest

from mgaug_tf import presets
from mgaug_tf_cli import flags as run_flags
from mgaug_tf_cli import study
from tests.results.conftest import PNG_SIGNATURE, REPO, cli_env

SCARCITY = REPO / "configs" / "study" / "scarcity.study"


def test_the_plan_puts_seeds_outermost_and_fills_in_each_settings_config(tmp_path):
    settings, arms, seeds = study.parse_study(SCARCITY)
    assert list(arms) == ["baseline", "catfish", "random_width"]
    runs = study.plan_runs(settings, arms, seeds, str(tmp_path))
    assert len(runs) == 1 * 5 * 3 + 3 * 3 * 3
    assert [run["seed"] for run in runs[:12]] == [0] * 12  # every setting and arm at seed 0 first
    catfish = next(run for run in runs if run["arm"] == "catfish"
                   and run["setting"] == "mini42_protonet")
    assert "--flagfile=configs/study/catfish_mini42_protonet.cfg" in catfish["args"]
    assert catfish["model_dir"] == str(tmp_path / "mini42_protonet" / "catfish_seed0")
    quick = study.plan_runs(settings, arms, seeds, str(tmp_path), ["omniglot_c50_protonet"],
                            quick=True, extra_flags=["--data_dir=/x"])
    assert [run["arm"] for run in quick] == ["baseline", "catfish", "random_width"]
    assert all(run["args"][-1] == "--data_dir=/x" and "--train_steps=2" in run["args"]
               for run in quick)
    with pytest.raises(study.StudyError, match=r"unknown setting or arm \['nope'\]"):
        study.plan_runs(settings, arms, seeds, str(tmp_path), ["nope"])


def test_every_run_of_the_scarcity_study_is_the_released_preset_on_its_setting(tmp_path,
                                                                               monkeypatch):
    monkeypatch.chdir(REPO)  # the study's relative config paths
    settings, arms, seeds = study.parse_study(SCARCITY)
    for run in study.plan_runs(settings, arms, seeds, str(tmp_path)):
        config = run_flags.parse_config(run["args"])
        learner = run["setting"].rsplit("_", 1)[1]
        assert config.model.learner.name == learner and config.trainer.seed == run["seed"]
        if run["setting"].startswith("omniglot_c"):
            assert config.data.max_train_classes == int(run["setting"].split("_")[1][1:])
        if run["arm"] == "baseline":
            assert not config.model.mgaug.enabled
            continue
        # The released setting of the learner with the arm's strategy, resolutions scaled
        # to the image size.
        size = 28 if run["setting"].startswith("omniglot") else 42
        assert config.data.image_size == size
        assert config.model.mgaug == dataclasses.replace(
            presets.released_mgaug(learner, size), strategy=run["arm"])


@pytest.mark.parametrize("text, message", [
    ("arm=baseline\n", "names no settings"),
    ("setting=a\narm=baseline\n", "a setting needs a name and a config file"),
    ("setting=a x.cfg\narm=baseline\n", "no seeds for setting 'a'"),
    ("setting=a x.cfg\narm=baseline\nseeds=* 0 one\n", "seeds must be integers"),
    ("setting=a x.cfg\nbranch=b\n", "expected 'setting=NAME CONFIG"),
])
def test_malformed_study_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.study"
    path.write_text(text)
    with pytest.raises(study.StudyError, match=message):
        study.parse_study(path)


@pytest.mark.slow  # an end-to-end study of real Omniglot runs: about a minute
def test_quick_mode_runs_the_omniglot_setting_end_to_end_and_resumes(omniglot_dir, tmp_path):
    output, plots = tmp_path / "results.md", tmp_path / "plots"
    command = [sys.executable, "trainers/study.py", f"--study={SCARCITY}",
               f"--root={tmp_path / 'runs'}", f"--output={output}", f"--plots_dir={plots}",
               "--settings", "omniglot_c50_protonet", "--quick",
               f"--run_flag=--data_dir={omniglot_dir}", "--run_flag=--filters=8"]
    completed = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    text = output.read_text()
    begin, end = study.markers("omniglot_c50_protonet")
    block = text[text.index(begin):text.index(end)]
    for arm in ("baseline", "catfish", "random_width"):
        assert f"| {arm} | 1 |" in block
    assert "Wall time per run" in block
    assert (plots / "study_omniglot_c50_protonet_validation.png").read_bytes().startswith(
        PNG_SIGNATURE)
    timing = json.loads((tmp_path / "runs" / "timing.json").read_text())
    assert len(timing) == 3 and all(seconds > 0 for seconds in timing.values())
    flagfile = (tmp_path / "runs" / "omniglot_c50_protonet" / "catfish_seed0" / "flags.cfg")
    assert "--max_train_classes=50" in flagfile.read_text()
    again = subprocess.run(command, cwd=REPO, env=cli_env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "3 runs, 3 finished earlier" in again.stdout


@pytest.mark.parametrize("study_file, n_settings", [("precision.study", 2),
                                                     ("omniglot_maml_precision.study", 1)])
def test_the_precision_studies_differ_between_arms_only_in_dtype(tmp_path, study_file,
                                                                  n_settings):
    settings, arms, seeds = study.parse_study(REPO / "configs" / "results" / study_file)
    runs = study.plan_runs(settings, arms, seeds, str(tmp_path))
    assert len(runs) == n_settings * 2 * 3
    values = {(run["setting"], run["arm"], run["seed"]): run_flags.parse_config(run["args"])
              for run in runs}
    for (setting, arm, seed), config in values.items():
        assert config.model.backbone.dtype == arm and config.trainer.seed == seed
        other = values[(setting, "float32" if arm != "float32" else "mixed_bfloat16", seed)]
        # Everything but the dtype and the run folder.
        assert dataclasses.replace(
            config, model=dataclasses.replace(config.model, backbone=dataclasses.replace(
                config.model.backbone, dtype=other.model.backbone.dtype)),
            runtime=dataclasses.replace(config.runtime, model_dir=other.runtime.model_dir)) == other


def test_wall_times_are_medians_over_seeds_with_their_range():
    runs = [{"setting": "s", "arm": arm, "seed": seed} for arm in ("baseline", "catfish")
            for seed in (0, 1, 2)]
    timing = {"s/baseline_seed0": 600.0, "s/baseline_seed1": 60.0, "s/baseline_seed2": 120.0,
              "s/catfish_seed0": 900.0, "s/catfish_seed1": 180.0, "s/catfish_seed2": 240.0}
    rows = [{"arm": "baseline", "seeds": 3, "per_seed": [90.0, 91.0, 92.0], "mean": 91.0,
             "std": 1.0, "ci": 0.5}]
    block = study.setting_block("s", rows, "baseline", "plot.png", timing, runs)
    # A seed slowed by other work (600 s) moves the range, not the median or the ratio.
    assert ("baseline 2.0 min (1.0-10.0); catfish 4.0 min (3.0-15.0), 2.00x." in block)
