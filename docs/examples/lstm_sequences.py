"""An LSTM meta-learned with second-order MAML on generated sequence tasks.

Each task is a 3-way classification of noisy sine sequences (16 steps, one
feature): the classes are a slow, a medium and a fast frequency (drawn for
the task from [0.03, 0.07], [0.12, 0.18] and [0.25, 0.35] cycles per step),
each sequence starts at a random phase, and the labels 0..2 are assigned to
the three at random per task, so a network must adapt to each task's
support set. The network is an ordinary Keras
model (LSTM, then a Dense head); MAML adapts all its weights in the inner
loop and differentiates through it. Runs in about half a minute on a
two-core CPU:

    python docs/examples/lstm_sequences.py
"""

import keras
import numpy as np
import tensorflow as tf

import mgaug_tf as mg

N_WAY, K_SHOT, K_QUERY, STEPS, TASKS_PER_BATCH = 3, 5, 5, 16, 4
BANDS = ((0.03, 0.07), (0.12, 0.18), (0.25, 0.35))  # cycles per step


def sample_tasks(rng, tasks):
    """An episode batch `((support [B, 15, 16, 1], labels, query), labels)`."""
    def sequences(frequencies, labels):
        phases = rng.uniform(0, 2 * np.pi, size=labels.shape)
        time = np.arange(STEPS)
        waves = np.sin(2 * np.pi * frequencies[np.arange(tasks)[:, None], labels][..., None]
                       * time + phases[..., None])
        return (waves + 0.1 * rng.normal(size=waves.shape))[..., None].astype("float32")

    # Row t: the frequency of each label of task t (the bands in a random order).
    bands = np.stack([rng.permutation(N_WAY) for _ in range(tasks)])
    low, high = np.array(BANDS).T
    frequencies = rng.uniform(low[bands], high[bands])
    support_labels = np.stack([rng.permutation(np.repeat(np.arange(N_WAY), K_SHOT))
                               for _ in range(tasks)]).astype("int32")
    query_labels = np.stack([rng.permutation(np.repeat(np.arange(N_WAY), K_QUERY))
                             for _ in range(tasks)]).astype("int32")
    return ((sequences(frequencies, support_labels), support_labels,
             sequences(frequencies, query_labels)), query_labels)


def main(meta_steps=300, seed=0):
    """Meta-trains for `meta_steps` and returns the query accuracy on 100 new tasks."""
    mg.configure_tensorflow()
    keras.utils.set_random_seed(seed)
    network = keras.Sequential([
        keras.Input((STEPS, 1)),
        # use_cudnn=False: cuDNN kernels have no second derivative (docs/models.md).
        keras.layers.LSTM(16, use_cudnn=False),
        keras.layers.Dense(N_WAY),
    ])
    learner = mg.MAML(network, N_WAY, inner_lr=0.5, inner_steps=1, eval_inner_steps=3)
    learner.compile(keras.optimizers.Adam(3e-3))
    rng = np.random.default_rng(seed)
    training = tf.data.Dataset.from_generator(
        lambda: iter(lambda: sample_tasks(rng, TASKS_PER_BATCH), None),
        output_signature=((tf.TensorSpec([TASKS_PER_BATCH, N_WAY * K_SHOT, STEPS, 1]),
                           tf.TensorSpec([TASKS_PER_BATCH, N_WAY * K_SHOT], tf.int32),
                           tf.TensorSpec([TASKS_PER_BATCH, N_WAY * K_QUERY, STEPS, 1])),
                          tf.TensorSpec([TASKS_PER_BATCH, N_WAY * K_QUERY], tf.int32)))
    # Evaluation adapts to each task of a batch in turn: small batches trace fast.
    test_batches = tf.data.Dataset.from_tensor_slices(
        sample_tasks(np.random.default_rng(seed + 1), 100)).batch(2, drop_remainder=True)
    before = learner.evaluate(test_batches, verbose=0, return_dict=True)["accuracy"]
    learner.fit(training, steps_per_epoch=meta_steps, verbose=0)
    after = learner.evaluate(test_batches, verbose=0, return_dict=True)["accuracy"]
    print(f"100 new tasks, query accuracy after 3 inner steps: {before:.3f} before "
          f"meta-training, {after:.3f} after {meta_steps} meta-steps (chance: {1 / N_WAY:.3f})")
    return before, after


if __name__ == "__main__":
    main()
