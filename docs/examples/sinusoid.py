"""Few-shot regression: MAML on the sinusoid tasks of Finn et al. (2017), section 5.1.

Each task is a sine wave y = A sin(x - phase) (A in [0.1, 5.0], phase in
[0, pi]) seen through K = 10 points x in [-5, 5]. The network is Finn et
al.'s: an MLP of 2 hidden layers of 40 ReLU units with one linear output
(`FewShotRegressor`); `objective="regression"` makes the loss the mean
squared error and needs `n_way=None` (a regression task has no classes).
MAML meta-trains for a few hundred meta-steps (Finn et al. ran 70,000: see
docs/results.md for the full study), then adapts to new test tasks from
their 10 support points and predicts 100 query points of each.

    python docs/examples/sinusoid.py
"""

import keras
import numpy as np

import mgaug_tf as mg
from mgaug_tf.backbones.mlp import MLP, FewShotRegressor
from mgaug_tf.data import sinusoid


def main(meta_steps=600, test_tasks=40):
    mg.configure_tensorflow()
    keras.utils.set_random_seed(0)
    train = mg.data.load("sinusoid", split="train")  # a SinusoidTasks: no files
    batches = sinusoid.task_dataset(train, k_shot=10, k_query=10, meta_batch_size=25)

    network = FewShotRegressor(MLP(hidden_units=(40, 40)), output_size=1)
    learner = mg.MAML(network, n_way=None, objective="regression", inner_lr=0.01,
                      inner_steps=1, eval_inner_steps=10, log_before_adaptation=True)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = learner.fit(batches, steps_per_epoch=meta_steps, epochs=1, verbose=0)
    print(f"after {meta_steps} meta-steps: query MSE {history.history['loss'][-1]:.3f} after "
          f"one inner step (before it: {history.history['loss_before'][-1]:.3f})")

    # Fixed test tasks (seed 0): 10 gradient steps on the support points, then predict.
    test = mg.data.load("sinusoid", split="test")
    errors = []
    for (support_x, support_y, query_x), query_y in sinusoid.task_dataset(
            test, k_shot=10, k_query=100, meta_batch_size=1, training=False,
            num_episodes=test_tasks):
        predictions = learner.adapt_and_predict(support_x[0], support_y[0], query_x[0])
        errors.append(float(np.mean((predictions - query_y[0]) ** 2)))
    print(f"test MSE after 10 steps on 10 points, {len(errors)} new tasks: "
          f"{np.mean(errors):.3f} +- {1.96 * np.std(errors) / np.sqrt(len(errors)):.3f}")
    return errors


if __name__ == "__main__":
    main()
