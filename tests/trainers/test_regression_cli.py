"""mgaug-train on the sinusoid tasks: MSE results, the best checkpoint by lowest MSE, refusals."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mgaug_tf.data import sinusoid
from mgaug_tf_cli import flags as run_flags
from mgaug_tf_cli import report
from tests.trainers.conftest import REPO, checkpoint_tensors

SINUSOID = ["--dataset=sinusoid", "--backbone=mlp", "--hidden_units=16,16", "--k_shot=5",
            "--k_query=5", "--meta_batch_size=4", "--inner_steps=1", "--eval_inner_steps=3",
            "--outer_lr=0.01"]


def test_sinusoid_run_reports_mse_and_keeps_the_lowest_validation_mse(run_main):
    code, err, model_dir = run_main(
        *SINUSOID, "--train_steps=6", "--eval_every=2", "--val_episodes=8",
        "--eval_episodes=12", "--eval_k_query=20", "--checkpoint_every=3", "--summary_every=2",
        "--log_before_adaptation")
    assert code == 0, err
    validation = dict(report.read_scalars(str(model_dir / "val"))["loss"])
    assert sorted(validation) == [2, 4, 6]
    best_step = min(validation, key=validation.get)
    best = tf.train.latest_checkpoint(str(model_dir / "best"))
    assert best.endswith(f"best-{best_step}")
    saved = checkpoint_tensors(best)
    assert saved["best_loss/.ATTRIBUTES/VARIABLE_VALUE"] == pytest.approx(
        validation[best_step], rel=1e-6)
    assert not any(name.startswith("best_accuracy") for name in saved)

    result = json.loads((model_dir / "eval_test.json").read_text())
    assert result["objective"] == "regression" and result["n_way"] is None
    assert result["checkpoint"] == best and result["k_query"] == 20
    mse = np.array(result["per_episode_mse"])
    assert len(mse) == 12 and (mse > 0).all()
    assert result["mean_mse"] == pytest.approx(mse.mean())
    assert result["ci95"] == pytest.approx(1.96 * mse.std() / np.sqrt(12))
    assert "mean_accuracy" not in result and "per_episode_accuracy" not in result
    eval_tags = report.read_scalars(str(model_dir / "eval"))
    assert set(eval_tags) == {"test/mse", "test/mse_ci95"}
    train_tags = report.read_scalars(str(model_dir / "train"))
    assert {"loss", "loss_before_adaptation"} <= set(train_tags)
    assert "accuracy" not in train_tags
    # The SavedModel adapts as the evaluation did: test task 0's MSE, recomputed from
    # the export's predictions (TensorFlow only, no mgaug_tf objects).
    exported = tf.saved_model.load(str(model_dir / "export"))
    (support_x, support_y, query_x), query_y = next(iter(sinusoid.task_dataset(
        sinusoid.SinusoidTasks("test"), 5, 20, 1, training=False, num_episodes=1, seed=0)))
    predictions = exported.signatures["serving_default"](
        support_images=support_x[0], support_labels=support_y[0],
        query_images=query_x[0])["predictions"]
    assert predictions.shape == (20, 1)
    assert float(tf.reduce_mean(tf.square(predictions - query_y[0]))) == pytest.approx(
        mse[0], rel=1e-5)

    # mgaug-report gives regression runs their own table, in MSE.
    output = model_dir.parent / "report.md"
    assert report.cli(["--model_dirs", str(model_dir), "--output", str(output),
                       "--plots_dir", str(model_dir.parent / "plots")]) == 0
    text = output.read_text()
    assert (f"| model | sinusoid | 5 | maml | none | {best_step} | 3 | {mse.mean():.4f} "
            f"| ± {result['ci95']:.4f} | 12 |") in text
    assert "accuracy (%)" not in text and not (model_dir.parent / "plots").exists()


def test_protonet_on_sinusoid_is_one_error_naming_both_flags(run_main):
    code, err, model_dir = run_main(*SINUSOID, "--learner=protonet")
    assert code == 2
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "--dataset=sinusoid --learner=protonet: ProtoNet: `objective`" in err
    assert not model_dir.exists()  # refused before any work


@pytest.mark.parametrize("flag", ["--image_size=28", "--augment=on", "--max_train_classes=3",
                                  "--resolutions=16"])
def test_image_and_class_flags_are_refused_for_sinusoid(run_main, flag):
    mgaug = ["--mgaug=catfish", "--mgaug_flatten_head=resize_features"] if "resol" in flag else []
    code, err, _ = run_main(*SINUSOID, *mgaug, flag)
    assert code == 2
    assert f"{flag}: --dataset=sinusoid has points x in [-5, 5], not images or classes" in err


def test_the_sinusoid_configs(monkeypatch, run_main, tmp_path):
    monkeypatch.chdir(REPO)  # the MGAug config includes the MAML one by a relative path
    maml = run_flags.parse_config(["--flagfile=configs/sinusoid_maml.cfg"])
    mgaug = run_flags.parse_config(["--flagfile=configs/sinusoid_maml_mgaug.cfg"])
    # Finn et al. (2017), section 5.1, and their code's 25 tasks per meta-batch.
    assert maml.data.dataset == "sinusoid" and maml.data.data_dir is None
    assert (maml.model.backbone.name, maml.model.backbone.hidden_units) == ("mlp", (40, 40))
    assert (maml.model.learner.name, maml.model.learner.inner_lr,
            maml.model.learner.inner_steps) == ("maml", 0.01, 1)
    assert (maml.episodes.k_shot, maml.episodes.meta_batch_size) == (10, 25)
    assert (maml.optimizer.name, maml.optimizer.learning_rate) == ("adam", 0.001)
    assert not maml.model.mgaug.enabled
    assert (mgaug.model.mgaug.strategy, mgaug.model.mgaug.include_dense) == ("catfish", True)
    assert mgaug.model.learner == maml.model.learner
    # The MGAug config trains (Dense kernels pruned), evaluates and exports.
    code, err, model_dir = run_main(
        "--flagfile=configs/sinusoid_maml_mgaug.cfg", f"--model_dir={tmp_path / 'mgaug'}",
        "--meta_batch_size=2", "--train_steps=2", "--eval_every=2", "--val_episodes=2",
        "--eval_episodes=2", "--checkpoint_every=2", "--summary_every=1",
        model_dir=tmp_path / "mgaug")
    assert code == 0, err
    sparsity = report.read_scalars(str(model_dir / "train"))["sparsity/catfish/subnet_0"]
    assert [step for step, _ in sparsity] == [1, 2]
    assert all(0.0 < value <= 0.2 + 1e-6 for _, value in sparsity)  # keep ratios 0.8-1.0
    assert json.loads((model_dir / "eval_test.json").read_text())["num_episodes"] == 2
    assert (model_dir / "export" / "saved_model.pb").exists()


def test_an_image_backbone_is_refused_for_points(run_main):
    code, err, model_dir = run_main(*[flag for flag in SINUSOID if "backbone" not in flag
                                      and "hidden_units" not in flag], "--backbone=resnet12")
    assert code == 2 and not model_dir.exists()
    assert ("--backbone=resnet12 takes images [height, width, channels], but "
            "--dataset=sinusoid has examples of shape (1,); use --backbone=mlp") in err


def test_mgaug_on_the_mlp_names_the_include_dense_flag(run_main):
    code, err, model_dir = run_main(*SINUSOID, "--mgaug=catfish")
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert ("--nomgaug_include_dense: MGAug: --mgaug_include_dense must be True for network "
            in err)
    assert ("(the default prunes Conv1D/2D/3D kernels only); --mgaug_include_dense prunes its "
            "Dense, recurrent, attention and embedding kernels. Received: "
            "--nomgaug_include_dense") in err
    assert "include_dense=" not in err and "`include_dense`" not in err
    assert not (model_dir / "checkpoint").exists()  # refused before training
