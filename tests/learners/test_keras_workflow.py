"""What Keras users do with any model: fit with the standard callbacks, .keras saving, summary."""

import glob
import io
import json
import os
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from tests.conftest import make_episode_batch

SIZE = 16


def episodes(seed, batches, tasks=2, nan_batch=None):
    """A finite dataset of random episode batches (the same each epoch)."""
    parts = [make_episode_batch(seed * 100 + index, tasks=tasks, n_way=3, k_shot=2, k_query=2,
                                size=SIZE) for index in range(batches)]
    if nan_batch is not None:
        parts[nan_batch][0][0][...] = np.nan
    stacked = tf.nest.map_structure(lambda *arrays: np.stack(arrays), *parts)
    return tf.data.Dataset.from_tensor_slices(stacked)


def make_learner(kind="fomaml", augmentation=None, learning_rate=0.05, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = mg.Conv4(filters=2)
    if kind == "protonet":
        learner = mg.ProtoNet(backbone, 3, augmentation=augmentation)
    else:
        learner = mg.registry.learner_class(kind)(
            mg.FewShotClassifier(backbone, 3), 3, inner_lr=0.1, inner_steps=1,
            augmentation=augmentation)
    learner.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return learner


def weights_of(model):
    return [np.array(variable) for variable in model.variables]


class WeightHistory(keras.callbacks.Callback):
    """Copies of every variable at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(weights_of(self.model))


@pytest.fixture(scope="module")
def train_data():
    return episodes(1, 2)


@pytest.fixture(scope="module")
def val_data():
    return episodes(2, 2)


def read_scalars(folder):
    """{tag: [values]} of the TensorBoard event files in `folder`."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(
                    float(tf.make_ndarray(value.tensor)))
    return scalars


def test_fit_writes_tensorboard_logs(tmp_path, train_data, val_data):
    learner = make_learner()
    history = learner.fit(train_data, validation_data=val_data, epochs=2, verbose=0,
                          callbacks=[keras.callbacks.TensorBoard(str(tmp_path))])
    train = read_scalars(tmp_path / "train")
    validation = read_scalars(tmp_path / "validation")
    np.testing.assert_allclose(train["epoch_loss"], history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(train["epoch_accuracy"], history.history["accuracy"], rtol=1e-6)
    np.testing.assert_allclose(validation["epoch_accuracy"], history.history["val_accuracy"],
                               rtol=1e-6)


def test_model_checkpoint_keeps_the_best_validation_accuracy(tmp_path, train_data, val_data):
    path = str(tmp_path / "best.keras")
    learner = make_learner(learning_rate=0.2)
    weights = WeightHistory()
    history = learner.fit(train_data, validation_data=val_data, epochs=5, verbose=0,
                          callbacks=[weights, keras.callbacks.ModelCheckpoint(
                              path, monitor="val_accuracy", mode="max", save_best_only=True)])
    accuracies = history.history["val_accuracy"]
    best = int(np.argmax(accuracies))  # the first epoch reaching the maximum
    assert best < len(accuracies) - 1, accuracies  # so the last epoch's weights differ
    restored = keras.saving.load_model(path)
    for got, want in zip(weights_of(restored), weights.epochs[best]):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, b) for a, b in zip(weights.epochs[best], weights.epochs[-1]))


class Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_to_the_uninterrupted_result(tmp_path, train_data):
    def augmentation():
        return mg.MGAug("random_param", num_subnets=1, keep_range=(0.5, 0.9), seed=4)

    uninterrupted = make_learner(augmentation=augmentation())
    uninterrupted.fit(train_data, epochs=3, verbose=0)

    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    interrupted = make_learner(augmentation=augmentation())
    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted.fit(train_data, epochs=3, verbose=0, callbacks=[backup, Interrupt(2, 0)])
    # A new process: a fresh learner (other initial weights) and the same callback.
    restarted = make_learner(augmentation=augmentation(), seed=1)
    epochs = []
    restarted.fit(train_data, epochs=3, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))])
    assert epochs == [2]  # resumed after the last complete epoch
    assert int(restarted.meta_step.numpy()) == int(uninterrupted.meta_step.numpy()) == 6
    for got, want in zip(weights_of(restarted), weights_of(uninterrupted)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    for got, want in zip(restarted.optimizer.variables, uninterrupted.optimizer.variables):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_early_stopping_stops_and_restores_the_best_weights(train_data, val_data):
    learner = make_learner()
    weights = WeightHistory()
    # No epoch can improve validation accuracy by 1.0: training stops after
    # `patience` epochs without improvement.
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=1,
                                            min_delta=1.0, restore_best_weights=True)
    history = learner.fit(train_data, validation_data=val_data, epochs=10, verbose=0,
                          callbacks=[weights, stopper])
    assert len(history.history["loss"]) == 2
    assert stopper.stopped_epoch == 1
    for got, want in zip(weights_of(learner), weights.epochs[0]):
        np.testing.assert_array_equal(got, want)


def test_terminate_on_nan_stops_at_the_first_nan_loss():
    data = episodes(3, 4, nan_batch=2)
    learner = make_learner()
    batches = []
    history = learner.fit(data, epochs=3, verbose=0, callbacks=[
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(
            float(logs["loss"])))])
    assert len(batches) == 3 and np.isnan(batches[-1]) and np.all(np.isfinite(batches[:2]))
    assert learner.stop_training
    assert len(history.history.get("loss", [])) <= 1


LEARNER_CONFIGS = [
    ("maml", None), ("fomaml", None), ("anil", None), ("metasgd", None), ("protonet", None),
    ("maml", lambda: mg.MGAug("catfish", num_subnets=2, keep_range=(0.6, 0.9),
                              reduction="maxup", parity=True, seed=7)),
    ("metasgd", lambda: mg.MGAug("random_width", num_subnets=1,
                                 keep_ratio_sampler=mg.augment.ConstantKeepRatio(0.75))),
    ("protonet", lambda: mg.MGAug("snip", num_subnets=2, resolutions=(16,), seed=2)),
    ("fomaml", lambda: mg.MGAug("catfish", num_subnets=1, resolutions=(16,),
                                flatten_head="reference", resize_method="half_pixel")),
]


@pytest.mark.parametrize("kind,augmentation", LEARNER_CONFIGS,
                         ids=[f"{kind}-{'mgaug' if aug else 'plain'}"
                              for kind, aug in LEARNER_CONFIGS])
def test_keras_file_round_trip(tmp_path, kind, augmentation, train_data):
    learner = make_learner(kind, augmentation() if augmentation else None)
    if augmentation is not None and kind == "maml":
        learner.fit(train_data.take(1), epochs=1, verbose=0)  # optimizer state too
    else:
        learner.build((SIZE, SIZE, 1))
        learner.optimizer.build(learner.trainable_variables)
        for variable in learner.non_trainable_variables:  # moving statistics, meta_step
            variable.assign(variable + tf.cast(3, variable.dtype))
    path = str(tmp_path / "learner.keras")
    learner.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(learner)
    assert json.dumps(restored.get_config(), sort_keys=True, default=str) == json.dumps(
        learner.get_config(), sort_keys=True, default=str)
    if augmentation is not None:
        assert restored.augmentation.get_config() == learner.augmentation.get_config()
    for got, want in zip(weights_of(restored), weights_of(learner)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(restored.optimizer.variables, learner.optimizer.variables):
        np.testing.assert_array_equal(got, want)
    (support, support_labels, query), _ = make_episode_batch(9, tasks=1, size=SIZE)
    np.testing.assert_array_equal(
        restored.adapt_and_predict(support[0], support_labels[0], query[0]),
        learner.adapt_and_predict(support[0], support_labels[0], query[0]))


@pytest.mark.parametrize("kind", ["maml", "protonet"])
def test_summary_prints_the_network_and_parameter_counts(kind):
    learner = make_learner(kind)
    learner.build((SIZE, SIZE, 1))
    text = io.StringIO()
    with redirect_stdout(text):
        learner.summary()
    printed = text.getvalue()
    network = type(learner.network).__name__
    assert network in printed
    total = sum(int(np.prod(v.shape)) for v in learner.weights)
    trainable = sum(int(np.prod(v.shape)) for v in learner.trainable_weights)
    assert f"Total params: {total:,}" in printed
    assert f"Trainable params: {trainable:,}" in printed
