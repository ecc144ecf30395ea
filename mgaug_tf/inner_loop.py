"""THE inner loop: gradient descent on fast weights, shared by every learner.

MAML, FOMAML, ANIL, Meta-SGD and every MGAug sub-network adapt through
`adapt`; they differ only in the loss they pass (which weights it reads,
which masks it applies) and in their learning rates.
"""

import tensorflow as tf


def adapt(loss_fn, weights, learning_rates, steps, first_order=False):
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
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss = loss_fn(weights)
        gradients = tape.gradient(loss, weights,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if first_order:
            gradients = [tf.stop_gradient(gradient) for gradient in gradients]
        weights = [weight - tf.cast(rate, weight.dtype) * gradient
                   for weight, rate, gradient in zip(weights, learning_rates, gradients)]
    return weights
