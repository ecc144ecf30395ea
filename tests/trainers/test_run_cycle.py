"""The CLI end to end: train -> validate -> evaluate -> export -> reload -> predict, resume."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import mgaug_tf as mg
from mgaug_tf import config, data
from mgaug_tf.training import checkpoints
from tests.trainers.conftest import (PREDICT, REFERENCE_FLAGS, checkpoint_tensors, cli_env,
                                     max_difference, run_cli)

TRAIN_TAGS = {"loss", "accuracy", "subnet/loss", "subnet/accuracy",
              "meta_gradient_norm/full", "meta_gradient_norm/augmented",
              "sparsity/catfish/subnet_0", "learning_rate/outer", "learning_rate/inner",
              "perf/step_time_s", "perf/tasks_per_s", "flags", "_hparams_/session_start_info"}


def _events(log_dir):
    """`{tag: [(step, value)]}` of the summaries in `log_dir`."""
    values = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                values.setdefault(value.tag, []).append((event.step, array))
    return values


def _eval_episodes(count):
    """The first `count` evaluation episodes of the reference run, rebuilt with the data API."""
    split = data.load("glyphs", split="test", image_size=16)
    dataset = data.episode_dataset(split, 3, 1, 2, meta_batch_size=1, image_size=16,
                                   training=False, num_episodes=count, seed=0)
    return [tuple(np.asarray(part[0]) for part in (support, support_labels, query, labels))
            for (support, support_labels, query), labels in dataset]


def test_first_step_says_it_builds_the_graph_and_how_long_it_took(reference_runs):
    cli, _ = reference_runs.finished("reference")
    lines = cli.stdout.splitlines()
    building = next(index for index, line in enumerate(lines)
                    if line.startswith("Building the meta-step graph"))
    assert lines[building + 1].startswith("Meta-step graph built; the first step took ")
    assert float(lines[building + 1].split("took ")[1].split(" s")[0]) > 0
    # So does the first validation, which builds the evaluation graph.
    assert [line for line in lines if "validating" in line] == [
        "step 3: validating (the first validation also builds the evaluation graph)..."]


def test_tensorboard_has_every_listed_tag(reference_run):
    train = _events(reference_run / "train")
    assert TRAIN_TAGS <= set(train), TRAIN_TAGS - set(train)
    # The unadapted network's accuracy needs --log_before_adaptation.
    assert "accuracy_before_adaptation" not in train
    assert [step for step, _ in train["loss"]] == [2, 4, 6]
    sparsity = [float(value) for _, value in train["sparsity/catfish/subnet_0"]]
    assert all(0.0 < value <= 0.2 + 1e-6 for value in sparsity)  # keep ratios in [0.8, 1]
    assert all(float(value) > 0 for _, value in train["perf/tasks_per_s"])
    assert all(float(value) > 0 for _, value in train["meta_gradient_norm/augmented"])
    val = _events(reference_run / "val")
    assert {"loss", "accuracy", "accuracy_ci95"} <= set(val)
    assert [step for step, _ in val["accuracy"]] == [3, 6]
    assert {"test/accuracy", "test/accuracy_ci95"} <= set(_events(reference_run / "eval"))


def test_evaluation_json_has_mean_ci_and_configuration(reference_run):
    result = json.loads((reference_run / "eval_test.json").read_text())
    accuracies = np.array(result["per_episode_accuracy"])
    assert result["num_episodes"] == len(accuracies) == 6
    assert result["split"] == "test" and result["dataset"] == "glyphs"
    assert result["bn_mode"] == "inductive" and result["eval_inner_steps"] == 2
    assert result["mean_accuracy"] == pytest.approx(accuracies.mean())
    assert result["ci95"] == pytest.approx(1.96 * accuracies.std() / np.sqrt(6))
    assert result["config"]["learner"] == "maml" and result["config"]["n_way"] == 3
    assert result["checkpoint"].startswith(str(reference_run / "best"))
    # Every flag of the run is in the resolved flagfile.
    flagfile = (reference_run / "flags.cfg").read_text()
    for flag in REFERENCE_FLAGS:
        assert flag in flagfile.splitlines(), flag


RELOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    export_dir, episodes_path, out_path = sys.argv[1:]
    predict = tf.saved_model.load(export_dir).signatures["few_shot_preprocessed"]
    episodes = np.load(episodes_path)
    results = {"accuracies": [], "errors": {}}
    for index in range(int(episodes["count"])):
        out = predict(support_images=episodes[f"support{index}"],
                      support_labels=episodes[f"support_labels{index}"],
                      query_images=episodes[f"query{index}"])
        predictions = out["predictions"].numpy()
        assert np.allclose(out["probabilities"].numpy().sum(-1), 1, atol=1e-5)
        assert (predictions == out["logits"].numpy().argmax(-1)).all()
        results["accuracies"].append(float((predictions == episodes[f"labels{index}"]).mean()))
        if index == 0:
            results["logits0"] = out["logits"].numpy().tolist()
    good = dict(support_images=episodes["support0"], support_labels=episodes["support_labels0"],
                query_images=episodes["query0"])
    bad_inputs = {"label_range": dict(support_labels=np.array([0, 1, 3], np.int32)),
                  "unbalanced": dict(support_labels=np.array([0, 1, 1], np.int32)),
                  "count": dict(support_labels=np.array([0, 1], np.int32)),
                  "image_size": dict(query_images=np.zeros([2, 8, 8, 1], np.float32)),
                  "image_size_tensor": dict(query_images=tf.zeros([2, 8, 8, 1])),
                  "rank_tensor": dict(support_images=tf.zeros([3, 16, 16]))}
    for name, change in bad_inputs.items():
        try:
            predict(**dict(good, **change))
            results["errors"][name] = None
        except Exception as error:  # the message is what the test checks
            results["errors"][name] = str(error)
    results["imported_mgaug"] = any(name.startswith("mgaug_tf") for name in sys.modules)
    json.dump(results, open(out_path, "w"))
""")


def test_export_reloads_without_the_package_and_matches_evaluation(reference_run, tmp_path):
    evaluation = json.loads((reference_run / "eval_test.json").read_text())
    episodes = _eval_episodes(6)
    arrays = {"count": np.array(len(episodes))}
    for index, (support, support_labels, query, labels) in enumerate(episodes):
        arrays.update({f"support{index}": support, f"support_labels{index}": support_labels,
                       f"query{index}": query, f"labels{index}": labels})
    np.savez(tmp_path / "episodes.npz", **arrays)
    script = tmp_path / "reload.py"
    script.write_text(RELOAD_SCRIPT)
    # Outside the checkout, without PYTHONPATH: mgaug_tf is not importable there.
    env = cli_env()
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, str(script), str(reference_run / "export"),
                    str(tmp_path / "episodes.npz"), str(tmp_path / "out.json")], check=True,
                   cwd=tmp_path, env=env, timeout=120, capture_output=True)
    results = json.loads((tmp_path / "out.json").read_text())
    assert not results["imported_mgaug"]
    assert results["accuracies"] == pytest.approx(evaluation["per_episode_accuracy"])
    errors = results["errors"]
    assert "support_labels must be in [0, 3)" in errors["label_range"]
    assert "the same number K >= 1" in errors["unbalanced"]
    assert "same number (N*K)" in errors["count"]
    # Wrong shapes, as NumPy arrays or tensors: one short message naming the
    # input, the expected and the given shape (checked in the graph).
    for name, expected in (("image_size", "query_images must have shape [M, 16, 16, 1]; "
                                          "given shape:] [2 8 8 1]"),
                           ("image_size_tensor", "query_images must have shape [M, 16, 16, 1]; "
                                                 "given shape:] [2 8 8 1]"),
                           ("rank_tensor", "support_images must have shape [N*K, 16, 16, 1]; "
                                           "given shape:] [3 16 16]")):
        assert expected in errors[name], errors[name]
        assert len(errors[name]) < 600, errors[name]  # no dump of the arrays

    # The same logits as the learner rebuilt in-process from flags.cfg and
    # the exported checkpoint.
    saved = config.ExperimentConfig.from_json((reference_run / "config.json").read_text())
    learner = mg.build_learner(saved.model, (16, 16, 1), seed=saved.trainer.seed)
    checkpoints.restore_learner(learner, evaluation["checkpoint"])
    support, support_labels, query, _ = episodes[0]
    np.testing.assert_allclose(results["logits0"],
                               learner.adapt_and_predict(support, support_labels, query),
                               rtol=1e-4, atol=1e-5)


def _write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(path)


def test_predict_cli_classifies_query_folder(reference_run, tmp_path):
    support, support_labels, query, _ = _eval_episodes(1)[0]
    for image, label in zip(support, support_labels):
        _write_png(tmp_path / "support" / f"class_{label}" / "shot.png", image)
    for index, image in enumerate(query):
        _write_png(tmp_path / "query" / f"q{index}.png", image)
    cli = run_cli(PREDICT, [f"--saved_model={reference_run / 'export'}",
                            f"--support_dir={tmp_path / 'support'}",
                            f"--query_dir={tmp_path / 'query'}"], tmp_path, "predict")
    assert cli.process.returncode == 0, cli.stderr
    rows = [line.split("\t") for line in cli.stdout.strip().splitlines()]
    assert [row[0] for row in rows] == [f"q{index}.png" for index in range(len(query))]
    # The glyphs are 16 px PNGs of the very pixels evaluated: predict.py must
    # give the SavedModel's predictions on the evaluation tensors.
    model = tf.saved_model.load(str(reference_run / "export")).signatures["few_shot_preprocessed"]
    expected = model(support_images=support, support_labels=support_labels,
                     query_images=query)["predictions"].numpy()
    assert [row[1] for row in rows] == [f"class_{label}" for label in expected]
    assert all(0.0 <= float(row[2]) <= 1.0 for row in rows)

    (tmp_path / "support" / "class_9").mkdir()
    cli = run_cli(PREDICT, [f"--saved_model={reference_run / 'export'}",
                            f"--support_dir={tmp_path / 'support'}",
                            f"--query_dir={tmp_path / 'query'}"], tmp_path, "predict_bad")
    assert cli.process.returncode == 2
    assert "4 class folders" in cli.stderr and "3-way" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_sigkill_then_rerun_ends_with_identical_weights(reference_run, reference_runs):
    # Started with the reference run: SIGKILLed once its first checkpoint
    # existed, then the same command was run again.
    resumed, model_dir = reference_runs.finished("killed")
    assert reference_runs.killed_cli.process.returncode == -9, "ended before it was killed"
    assert "Resuming from step" in resumed.stdout

    expected = checkpoint_tensors(reference_run / "ckpt-6")
    got = checkpoint_tensors(model_dir / "ckpt-6")
    assert expected.keys() == got.keys()
    for name in ("step", "learner/meta_step", "save_counter", "optimizer/_iterations"):
        name += "/.ATTRIBUTES/VARIABLE_VALUE"
        assert got[name] == expected[name], name
    # ckpt-2 of both runs was computed from scratch, before the kill: it shows
    # whether two processes of this command agree bit for bit on this machine
    # right now (heavy load from other processes has been seen to cost a few
    # float32 ulps even between two uninterrupted runs).
    noise = max_difference(checkpoint_tensors(reference_run / "ckpt-2"),
                           checkpoint_tensors(model_dir / "ckpt-2"))
    for name in expected:  # weights, BN statistics, optimizer slots
        if noise == 0:
            np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        else:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-5,
                                       err_msg=name)
    if noise == 0:
        assert (json.loads((model_dir / "eval_test.json").read_text())["per_episode_accuracy"]
                == json.loads((reference_run / "eval_test.json").read_text())[
                    "per_episode_accuracy"])
