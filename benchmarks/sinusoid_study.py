"""The sinusoid regression study of Finn et al. (2017), section 5.1: MSE against gradient steps.

Three networks of one architecture (Finn et al.'s: an MLP of 2 hidden layers
of 40 ReLU units and a linear output) are trained on the same sinusoid task
distribution (`mgaug_tf.data.sinusoid`), for the same number of steps of
the same meta-batches of tasks:

* MAML: second order, 1 inner step of SGD at 0.01 on K = 10 support
  points, Adam 1e-3 over 25 tasks per meta-step (Finn et al.'s settings),
  built by `mgaug_tf.factory` as `mgaug-train --flagfile=configs/sinusoid_maml.cfg`
  builds it.
* MAML + MGAug: the same with MGAug (`--mgaug_include_dense`: an MLP has
  only Dense kernels to prune), as configs/sinusoid_maml_mgaug.cfg.
* Pretrained: the baseline of Finn et al.: one network trained by plain
  regression (mean squared error, Adam 1e-3) on all K + Q points of the
  same 25 tasks per step, jointly over the tasks.

Each is then fine-tuned on each of 600 fixed test tasks (`--eval_seed`)
from K = 5 and K = 10 support points by 0 to 10 steps of plain gradient
descent at 0.01 (the learners' inner loop at test time), and its mean
squared error on `--eval_points` query points of the task is recorded after
every step. K = 5 uses the first 5 of the task's 10 support points, so both
K see the same tasks. Finn et al. tuned the pretrained network's
fine-tuning step size; here every network uses 0.01.

Output: one JSON file (per network, K and number of steps: the mean MSE
over the test tasks and its 95 % interval, 1.96 std / sqrt(tasks)) and,
with matplotlib, a plot of MSE against gradient steps.

    taskset -c 1 nice python -m benchmarks.sinusoid_study --steps=20000 \\
        --output=docs/results/sinusoid_study.json --plot=docs/plots/sinusoid_mse.png

`--steps` is the number of meta-steps (and pretraining steps); Finn et
al. ran 70,000. docs/results.md ("Sinusoid regression") has the measured
numbers and the steps used.
"""

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import mgaug_tf as mg  # noqa: E402
from mgaug_tf import config as config_lib  # noqa: E402
from mgaug_tf import factory, functional, inner_loop  # noqa: E402
from mgaug_tf.backbones.mlp import FINN_HIDDEN_UNITS, FewShotRegressor, MLP  # noqa: E402
from mgaug_tf.data import sinusoid  # noqa: E402
from mgaug_tf.learners.base import mean_squared_error  # noqa: E402
from mgaug_tf.training.evaluation import confidence_interval_95  # noqa: E402

ARMS = ("maml", "maml_mgaug", "pretrained")
LABELS = {"maml": "MAML", "maml_mgaug": "MAML + MGAug", "pretrained": "pretrained"}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The study's settings (Finn et al.'s unless said otherwise)."""

    steps: int = 20000
    meta_batch_size: int = 25
    k_shot: int = 10          # support points in training
    k_query: int = 10         # query points in training
    inner_lr: float = 0.01
    outer_lr: float = 1e-3
    mgaug_strategy: str = "catfish"
    num_subnets: int = 1
    test_tasks: int = 600
    eval_shots: tuple = (5, 10)
    eval_points: int = 100    # query points per test task
    max_grad_steps: int = 10
    seed: int = 0
    eval_seed: int = 0


def model_config(settings, mgaug):
    """The `ModelConfig` of MAML (with MGAug or without) on the sinusoid tasks."""
    return config_lib.ModelConfig(
        backbone=config_lib.BackboneConfig("mlp", hidden_units=FINN_HIDDEN_UNITS),
        learner=config_lib.LearnerConfig("maml", inner_lr=settings.inner_lr, inner_steps=1),
        mgaug=(config_lib.MGAugConfig(settings.mgaug_strategy, num_subnets=settings.num_subnets,
                                      include_dense=True)
               if mgaug else config_lib.MGAugConfig()))


def training_tasks(settings):
    """The training stream: meta-batch s holds tasks 25s .. 25s + 24 of the train split."""
    return sinusoid.task_dataset(sinusoid.SinusoidTasks("train"), settings.k_shot,
                                 settings.k_query, settings.meta_batch_size, seed=settings.seed)


def train_maml(settings, mgaug):
    """A MAML learner (`factory.build_learner`) meta-trained for `settings.steps`; its network."""
    keras.utils.set_random_seed(settings.seed)
    learner = factory.build_learner(model_config(settings, mgaug), sinusoid.SinusoidTasks
                                    .example_shape, seed=settings.seed, objective="regression")
    learner.compile(optimizer=keras.optimizers.Adam(settings.outer_lr))
    history = learner.fit(training_tasks(settings), epochs=1, steps_per_epoch=settings.steps,
                          verbose=0)
    return learner.network, float(history.history["loss"][-1])


def pretrain(settings):
    """The pretrained baseline: plain MSE regression on every point of the same tasks."""
    keras.utils.set_random_seed(settings.seed)
    network = FewShotRegressor(MLP(FINN_HIDDEN_UNITS), 1)
    network.build((None,) + sinusoid.SinusoidTasks.example_shape)

    def points(inputs, query_y):
        support_x, support_y, query_x = inputs
        x = tf.concat([support_x, query_x], axis=1)
        y = tf.concat([support_y, query_y], axis=1)
        return tf.reshape(x, [-1, 1]), tf.reshape(y, [-1, 1])

    network.compile(optimizer=keras.optimizers.Adam(settings.outer_lr), loss="mse")
    history = network.fit(training_tasks(settings).map(points), epochs=1,
                          steps_per_epoch=settings.steps, shuffle=False, verbose=0)
    return network, float(history.history["loss"][-1])


def test_tasks(settings):
    """The fixed test tasks: `(support_x, support_y, query_x, query_y)` `[T, K, 1]`, `[T, Q, 1]`."""
    batches = sinusoid.task_dataset(
        sinusoid.SinusoidTasks("test"), max(settings.eval_shots), settings.eval_points,
        settings.test_tasks, training=False, seed=settings.eval_seed,
        num_episodes=settings.test_tasks)
    (support_x, support_y, query_x), query_y = next(iter(batches))
    return support_x, support_y, query_x, query_y


def fine_tuning_curves(network, tasks, k_shot, max_steps, learning_rate):
    """Query MSE of every task after 0 .. `max_steps` gradient steps from the network's weights.

    Each task is fine-tuned alone (plain gradient descent on the mean
    squared error of its first `k_shot` support points, by `inner_loop.adapt`,
    the learners' inner loop); the tasks run one after another through one
    traced function.

    Returns:
        float64 `[tasks, max_steps + 1]`.
    """
    support_x, support_y, query_x, query_y = tasks
    support_x, support_y = support_x[:, :k_shot], support_y[:, :k_shot]
    start = functional.read_values(network.trainable_variables)
    num_tasks = int(support_x.shape[0])

    def predict(weights, x):
        outputs, _ = functional.call_with_weights(network, weights, [], x)
        return outputs

    def task_mse(weights, x, y):
        return mean_squared_error(y, predict(weights, x))

    @tf.function(autograph=False)
    def curve(x_support, y_support, x_query, y_query):
        weights = list(start)
        errors = [task_mse(weights, x_query, y_query)]
        for _ in range(max_steps):  # one step at a time: the curve needs every step's MSE
            weights = inner_loop.adapt(task_mse, weights, learning_rate, steps=1,
                                       inputs=(x_support, y_support))
            errors.append(task_mse(weights, x_query, y_query))
        return tf.stack(errors)

    return np.stack([curve(support_x[i], support_y[i], query_x[i], query_y[i]).numpy()
                     for i in range(num_tasks)]).astype(np.float64)


def summarise(curves):
    """`{"mean", "ci95", "median", "max"}` over tasks, each a list with one entry per step count.

    The median and the largest task MSE show when a few tasks, not all, make
    the mean (fine-tuning that diverges on some tasks).
    """
    return {"mean": [float(v) for v in curves.mean(axis=0)],
            "ci95": [confidence_interval_95(curves[:, step]) for step in range(curves.shape[1])],
            "median": [float(v) for v in np.median(curves, axis=0)],
            "max": [float(v) for v in curves.max(axis=0)]}


def plot(results, settings, path):
    """MSE against gradient steps, one panel per K; returns False without matplotlib."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    except ImportError:
        return False
    steps = np.arange(settings.max_grad_steps + 1)
    panels = len(settings.eval_shots)
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6), sharey=True)
    for axis, k_shot in zip(np.atleast_1d(axes), settings.eval_shots):
        for arm in ARMS:
            curve = results["arms"][arm]["curves"][str(k_shot)]
            mean, ci95 = np.array(curve["mean"]), np.array(curve["ci95"])
            label = LABELS[arm] + (f" {settings.mgaug_strategy}" if arm == "maml_mgaug" else "")
            axis.plot(steps, mean, marker="o", markersize=3, label=label)
            axis.fill_between(steps, mean - ci95, mean + ci95, alpha=0.2)
        axis.set_title(f"K = {k_shot} points, {settings.test_tasks} test tasks")
        axis.set_xlabel("gradient steps (SGD, lr 0.01)")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("query MSE (mean, 95 % interval)")
    np.atleast_1d(axes)[0].legend()
    figure.suptitle(f"Sinusoid regression after {settings.steps} meta-steps of "
                    f"{settings.meta_batch_size} tasks")
    figure.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def run(settings, arms=ARMS, log=print):
    """Trains the arms and fine-tunes them on the test tasks; returns the results dict."""
    mg.configure_tensorflow()
    tasks = test_tasks(settings)
    results = {"settings": dataclasses.asdict(settings), "arms": {}}
    for arm in arms:
        start = time.perf_counter()
        if arm == "pretrained":
            network, final_loss = pretrain(settings)
        else:
            network, final_loss = train_maml(settings, mgaug=arm == "maml_mgaug")
        trained = time.perf_counter() - start
        curves = {str(k): summarise(fine_tuning_curves(network, tasks, k,
                                                       settings.max_grad_steps,
                                                       settings.inner_lr))
                  for k in settings.eval_shots}
        results["arms"][arm] = {"train_seconds": round(trained, 1),
                                "final_train_loss": final_loss, "curves": curves}
        log(f"{LABELS[arm]}: trained {settings.steps} steps in {trained:.0f} s; " + "; ".join(
            f"K={k}: " + ", ".join(f"{n} step(s) {curves[str(k)]['mean'][n]:.3f} ± "
                                   f"{curves[str(k)]['ci95'][n]:.3f}" for n in (0, 1, 10)
                                   if n <= settings.max_grad_steps)
            for k in settings.eval_shots))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=Settings.steps,
                        help="meta-steps (and pretraining steps) per network")
    parser.add_argument("--test_tasks", type=int, default=Settings.test_tasks)
    parser.add_argument("--mgaug", default=Settings.mgaug_strategy,
                        help="MGAug strategy of the MAML + MGAug arm")
    parser.add_argument("--num_subnets", type=int, default=Settings.num_subnets)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--eval_seed", type=int, default=Settings.eval_seed)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of "
                        + ", ".join(ARMS))
    parser.add_argument("--output", help="write the results here (JSON)")
    parser.add_argument("--plot", help="write the plot here (PNG; needs matplotlib)")
    args = parser.parse_args()
    arms = tuple(args.arms.split(","))
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        parser.error(f"--arms: unknown {unknown}; expected some of {list(ARMS)}")
    settings = Settings(steps=args.steps, test_tasks=args.test_tasks, mgaug_strategy=args.mgaug,
                        num_subnets=args.num_subnets, seed=args.seed, eval_seed=args.eval_seed)
    results = run(settings, arms, log=lambda text: print(text, flush=True))
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    if args.plot:
        if set(arms) != set(ARMS):
            print("Not plotted: the plot needs every arm.")
        elif not plot(results, settings, args.plot):
            print("Not plotted: matplotlib is not installed.")


if __name__ == "__main__":
    main()
