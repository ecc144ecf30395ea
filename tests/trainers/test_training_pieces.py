"""The trainer's pieces alone: inputs, CI, roles, summaries, NaN stop."""

import traceback

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from mgaug_tf import data, distribute
from mgaug_tf.data import preprocess
from mgaug_tf.training import checkpoints, evaluation, inputs, summaries, trainer
from tests.trainers.conftest import checkpoint_tensors


@pytest.fixture(scope="module")
def glyph_spec():
    split = data.load("glyphs", split="train", image_size=16)
    return inputs.EpisodeSpec(split, n_way=3, k_shot=1, k_query=2, image_size=16, seed=7)


def _flat(element):
    return [np.asarray(part) for part in tf.nest.flatten(element)]


def test_meta_batches_start_at_any_step(glyph_spec):
    reference = list(data.episode_dataset(glyph_spec.split, 3, 1, 2, meta_batch_size=4,
                                          image_size=16, seed=7).take(3))
    resumed = next(iter(inputs.meta_batches(glyph_spec, 4, first_step=2)))
    for got, expected in zip(_flat(resumed), _flat(reference[2])):
        np.testing.assert_array_equal(got, expected)


def test_workers_and_replicas_get_contiguous_slices(glyph_spec):
    """2 workers x 2 replicas: replica r gets tasks r of each 4-task meta-batch."""
    whole = list(inputs.meta_batches(glyph_spec, 4).take(2))
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                             num_replicas_in_sync=4)
        per_replica = list(inputs.meta_batches(glyph_spec, 4, context).take(4))
        for position, batch in enumerate(per_replica):
            step, local_replica = divmod(position, 2)
            task = worker * 2 + local_replica  # global replica index = task index
            for got, expected in zip(_flat(batch), _flat(whole[step])):
                assert got.shape[0] == 1
                np.testing.assert_array_equal(got[0], expected[task])


def test_evaluation_episodes_are_the_data_packages_fixed_episodes(glyph_spec):
    expected = list(data.episode_dataset(glyph_spec.split, 3, 1, 2, meta_batch_size=1,
                                         image_size=16, training=False, num_episodes=5, seed=7))
    got = list(inputs.meta_batches(glyph_spec, 2, training=False, num_steps=3).take(3))
    got_tasks = [np.concatenate([_flat(batch)[part] for batch in got])[:5] for part in range(4)]
    for part in range(4):
        np.testing.assert_array_equal(got_tasks[part],
                                      np.concatenate([_flat(e)[part] for e in expected]))


def test_confidence_interval_and_json():
    accuracies = np.array([0.2, 0.6, 0.4, 1.0])
    result = evaluation.EvaluationResult("test", accuracies, np.ones(4))
    assert result.ci95 == pytest.approx(1.96 * accuracies.std() / 2)
    assert result.mean_accuracy == pytest.approx(0.55)
    payload = result.to_json(bn_mode="transductive")
    assert payload["num_episodes"] == 4 and payload["bn_mode"] == "transductive"
    assert payload["per_episode_accuracy"] == accuracies.tolist()
    assert "55.00 % +- " in result.summary()


def test_worker_roles():
    assert distribute.WorkerRole().is_chief
    assert distribute.WorkerRole("worker", 0, 2).is_chief
    assert not distribute.WorkerRole("worker", 1, 2).is_chief
    assert not distribute.WorkerRole("worker", 0, 3, cluster_has_chief=True).is_chief
    assert distribute.WorkerRole("chief", 0, 3, cluster_has_chief=True).is_chief


def test_bad_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {}}')
    with pytest.raises(distribute.DistributionError, match="TF_CONFIG is not valid"):
        distribute.create_strategy("multi_worker")
    with pytest.raises(distribute.DistributionError, match="Unknown strategy"):
        distribute.create_strategy("tpu")


def test_learning_rate_summaries():
    meta_sgd = mg.MetaSGD(mg.FewShotClassifier(mg.Conv4(filters=4), 3), 3, inner_lr=0.05)
    meta_sgd.build((16, 16, 1))
    rates = summaries.learning_rates(meta_sgd, keras.optimizers.Adam(0.002))
    assert rates["learning_rate/outer"] == pytest.approx(0.002)
    assert rates["learning_rate/inner/mean"] == pytest.approx(0.05)
    assert np.ndim(rates["learning_rate/inner"]) == 1  # a histogram of every entry
    protonet = mg.ProtoNet(mg.Conv4(filters=4), 3)
    assert set(summaries.learning_rates(protonet, keras.optimizers.SGD(0.1))) == {
        "learning_rate/outer"}


def test_progress_counts_this_sessions_steps_and_keeps_messages_on_their_own_lines(capsys):
    progress = trainer.Progress(3)
    for done in (1, 2):  # the first step is recorded, the second drawn
        progress.update(done, {"loss": 1.25, "accuracy": 0.5})
    progress.message("step 5: validation")
    progress.update(3, {"loss": 0.75, "accuracy": 0.5})
    out = capsys.readouterr().out
    assert "\nstep 5: validation\n" in out  # never glued to a bar line
    assert "3/3" in out and "loss: 0.7500" in out  # the latest value, not a running mean
    trainer.Progress(3, enabled=False).message("hidden")
    assert capsys.readouterr().out == ""


def test_non_finite_message_reads_right_with_and_without_a_checkpoint():
    with_checkpoint = str(trainer.NonFiniteError(7, "The meta-loss became nan", "runs/x/ckpt-6"))
    assert with_checkpoint == ("The meta-loss became nan at step 7; training stopped. The last "
                               "good checkpoint, runs/x/ckpt-6, is intact. Resume from it with "
                               "a lower outer or inner learning rate.")
    without = str(trainer.NonFiniteError(1, "The meta-loss became nan", None))
    assert "No checkpoint had been written yet, so there is nothing to resume from" in without
    assert "Resume from it" not in without


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(glyph_spec, tmp_path):
    keras.utils.set_random_seed(0)
    learner = mg.ProtoNet(mg.Conv4(filters=4), 3)
    learner.build((16, 16, 1))
    optimizer = keras.optimizers.SGD(0.01)
    learner.compile(optimizer=optimizer)
    optimizer.build(learner.trainable_variables)
    run_checkpoints = checkpoints.RunCheckpoints(str(tmp_path), distribute.WorkerRole(),
                                                 learner, optimizer)
    meta_trainer = trainer.MetaTrainer(
        learner, tf.distribute.get_strategy(), glyph_spec, 2, run_checkpoints,
        summaries.RunSummaries(str(tmp_path), enabled=False), checkpoint_every=2,
        show_progress=False)
    meta_trainer.train(2)
    # The input iterator outlives train(): destroying it can block for a minute in
    # TensorFlow 2.21, so run.py keeps it until os._exit. It still streams meta-batches.
    (support_images, _, _), _ = next(meta_trainer.train_iterator)
    assert support_images.shape[0] == 2
    saved = checkpoint_tensors(tmp_path / "ckpt-2")

    resume = meta_trainer.resume

    def resume_into_a_blown_up_state():  # as if the weights had diverged
        step = resume()
        last_beta = learner.trainable_variables[-1]  # inf embeddings: NaN distances
        last_beta.assign(tf.fill(last_beta.shape, np.inf))
        return step

    meta_trainer.resume = resume_into_a_blown_up_state
    with pytest.raises(trainer.NonFiniteError,
                       match=r"meta-loss became nan at step 3.*ckpt-2, is intact") as failure:
        meta_trainer.train(4)
    traceback.clear_frames(failure.tb)  # frees the failed run's tf.data iterator
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    for name, value in checkpoint_tensors(tmp_path / "ckpt-2").items():
        np.testing.assert_array_equal(value, saved[name])

    # Blown up before any save: nothing to resume from, and the message says so.
    empty_dir = tmp_path / "fresh"
    fresh = trainer.MetaTrainer(
        learner, tf.distribute.get_strategy(), glyph_spec, 2,
        checkpoints.RunCheckpoints(str(empty_dir), distribute.WorkerRole(), learner, optimizer),
        summaries.RunSummaries(str(empty_dir), enabled=False), checkpoint_every=2,
        show_progress=False)
    fresh.resume = lambda: resume_into_a_blown_up_state() * 0
    with pytest.raises(trainer.NonFiniteError, match=r"at step 1; training stopped\. No "
                       r"checkpoint had been written yet, so there is nothing to resume from"
                       ) as failure:
        fresh.train(2)
    traceback.clear_frames(failure.tb)
    assert tf.train.latest_checkpoint(str(empty_dir)) is None
