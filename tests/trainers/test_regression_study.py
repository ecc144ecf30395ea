"""benchmarks/sinusoid_study.py: its fine-tuning curves, MAML against pretraining, the plot."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import mgaug_tf as mg
from benchmarks import sinusoid_study as study
from mgaug_tf import factory


@pytest.fixture(scope="module", autouse=True)
def configured():
    with mg.runtime.tensorflow_options():
        yield


def test_fine_tuning_curves_are_the_learners_adaptation():
    """Each point of a curve is what a MAML learner with eval_inner_steps=n predicts."""
    settings = study.Settings(test_tasks=3, eval_points=7)
    keras.utils.set_random_seed(2)
    model = study.model_config(settings, mgaug=False)
    learner = factory.build_learner(model, (1,), objective="regression")
    tasks = study.test_tasks(settings)
    curves = study.fine_tuning_curves(learner.network, tasks, 5, 3, settings.inner_lr)
    assert curves.shape == (3, 4)
    for steps in (0, 1, 3):
        adapted = factory.build_learner(
            dataclasses.replace(model, learner=dataclasses.replace(model.learner,
                                                                   eval_inner_steps=steps)),
            (1,), objective="regression")
        adapted.network.set_weights(learner.network.get_weights())
        for task in range(3):
            predictions = adapted.adapt_and_predict(tasks[0][task][:5], tasks[1][task][:5],
                                                    tasks[2][task])
            mse = float(tf.reduce_mean(tf.square(predictions - tasks[3][task])))
            assert curves[task, steps] == pytest.approx(mse, rel=1e-5)
    assert curves[:, 1].mean() < curves[:, 0].mean()  # one step on the support set helps


def test_maml_beats_the_pretrained_network_after_10_steps():
    """400 meta-steps of Finn et al.'s setting against 400 pretraining steps on the same tasks."""
    settings = study.Settings(steps=400, test_tasks=100, eval_shots=(10,))
    tasks = study.test_tasks(settings)
    maml, _ = study.train_maml(settings, mgaug=False)
    pretrained, _ = study.pretrain(settings)
    after = {name: study.fine_tuning_curves(network, tasks, 10, 10, settings.inner_lr)[:, 10]
             for name, network in (("maml", maml), ("pretrained", pretrained))}
    # Paired over the same 100 test tasks: the pretrained network's MSE minus MAML's,
    # above zero by more than its 95 % interval.
    gain = after["pretrained"] - after["maml"]
    assert gain.mean() - 1.96 * gain.std() / np.sqrt(len(gain)) > 0, (
        after["maml"].mean(), after["pretrained"].mean())


def test_summary_and_plot(tmp_path):
    settings = study.Settings(steps=1, test_tasks=4, max_grad_steps=2)
    curves = np.arange(12, dtype=np.float64).reshape(4, 3)
    summary = study.summarise(curves)
    assert summary["mean"] == [4.5, 5.5, 6.5]
    assert summary["median"] == [4.5, 5.5, 6.5] and summary["max"] == [9.0, 10.0, 11.0]
    assert summary["ci95"][0] == pytest.approx(1.96 * curves[:, 0].std() / 2)
    results = {"arms": {arm: {"curves": {str(k): summary for k in settings.eval_shots}}
                        for arm in study.ARMS}}
    path = tmp_path / "plots" / "sinusoid.png"
    if study.plot(results, settings, str(path)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        pytest.importorskip("matplotlib")  # False only without matplotlib
