"""THE inner loop: gradient descent on fast weights, shared by every learner.

MAML, FOMAML, ANIL, Meta-SGD and every MGAug sub-network adapt through
`adapt`; they differ only in the loss they pass (which weights it reads,
which masks it applies) and in their learning rates.
"""

import tensorflow as tf


def adapt(loss_fn, weights, learning_rates, steps, first_order=False, recompute=False):
    """Takes `steps` gradient-descent steps on `loss_fn` from `weights`.

    Called under an outer `tf.GradientTape`, the result is differentiable with
    respect to the initial weights (and learning rates): second order unless
    `first_order`, which stops gradients through the inner gradients (FOMAML).

    Args:
        loss_fn: Maps a list of weight tensors to a scalar loss.
        weights: The initial weights (list of tensors).
        learning_rates: A scalar, or a list aligned with `weights` of scalars or
            tensors of the weights' shapes (Meta-SGD).
        steps: Number of steps (a Python int: the loop is unrolled, so the
            second-order graph is explicit).
        first_order: Treat inner gradients as constants.
        recompute: Keep only each step's weights for the outer backward pass
            and recompute the step's forward and backward passes there
            (`tf.recompute_grad`): memory of one inner step instead of all of
            them, for about one more support pass per step.

    Returns:
        The adapted weights.

    Example:
        >>> fast = adapt(lambda w: support_loss(w), theta, 0.01, steps=5)
    """
    weights = list(weights)
    if not isinstance(learning_rates, (list, tuple)):
        learning_rates = [learning_rates] * len(weights)
    if len(learning_rates) != len(weights):
        raise ValueError(f"Got {len(learning_rates)} learning rates for {len(weights)} weights.")
    count = len(weights)

    @tf.function
    def symbolic_gradients(*current):
        # tf.recompute_grad runs its forward pass with tapes paused, so the
        # inner gradient must come from the graph (tf.gradients), not a tape.
        return tf.gradients(loss_fn(list(current)), list(current),
                            unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def step(*state):
        current, rates = list(state[:count]), list(state[count:])
        if recompute:
            gradients = list(symbolic_gradients(*current))
        else:
            with tf.GradientTape() as tape:
                tape.watch(current)
                loss = loss_fn(current)
            gradients = tape.gradient(loss, current,
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if first_order:
            gradients = [tf.stop_gradient(gradient) for gradient in gradients]
        return [weight - tf.cast(rate, weight.dtype) * gradient
                for weight, rate, gradient in zip(current, rates, gradients)]

    if recompute:
        step = tf.recompute_grad(step)
    # Learning rates travel as arguments so that Meta-SGD's rates get their
    # gradients through a recomputed step too.
    rates = [tf.convert_to_tensor(rate, dtype=weight.dtype if not hasattr(rate, "dtype")
                                  else rate.dtype) for rate, weight in zip(learning_rates, weights)]
    for _ in range(steps):
        weights = list(step(*weights, *rates))
    return weights
