"""THE inner loop: gradient descent on fast weights, shared by every learner.

MAML, FOMAML, ANIL, Meta-SGD and every MGAug sub-network adapt through
`adapt`; they differ only in the loss they pass (which weights it reads,
which masks it applies) and in their learning rates.
"""

import tensorflow as tf


def _is_float_tensor(value):
    return tf.is_tensor(value) and tf.as_dtype(value.dtype).is_floating


def adapt(loss_fn, weights, learning_rates, steps, first_order=False, recompute=False,
          inputs=()):
    """Takes `steps` gradient-descent steps on `loss_fn` from `weights`.

    Called under an outer `tf.GradientTape`, the result is differentiable with
    respect to the initial weights (and learning rates, and `inputs`): second
    order unless `first_order`, which stops gradients through the inner
    gradients (FOMAML).

    Args:
        loss_fn: Maps `(weights, *inputs)` (a list of weight tensors, then the
            `inputs`) to a scalar loss. It must read every tensor other than
            the weights through `inputs`, not from its closure: see
            `recompute`.
        weights: The initial weights (list of tensors).
        learning_rates: A scalar, or a list aligned with `weights` of scalars or
            tensors of the weights' shapes (Meta-SGD).
        steps: Number of steps (a Python int: the loop is unrolled, so the
            second-order graph is explicit).
        first_order: Treat inner gradients as constants.
        recompute: Keep only each step's weights for the outer backward pass
            and recompute the step's forward and backward passes there
            (`tf.recompute_grad`): memory of one inner step instead of all of
            them, for about one more support pass per step. Exact: the
            recomputed step receives the weights, learning rates and every
            floating-point tensor of `inputs` as explicit arguments, because
            `tf.recompute_grad` differentiates only its arguments (and
            variables): a tensor captured from the closure would get no
            gradient, silently (e.g. ANIL's support features, which depend
            on the backbone). So in this mode a `loss_fn` that captures a
            floating-point tensor raises `ValueError`; integer tensors
            (labels) and variables may be captured.
        inputs: Tuple of the loss's other arguments: tensors or nested
            structures of them (`None` entries allowed), e.g.
            `(support_images, support_labels, masks)`.

    Returns:
        The adapted weights.

    Raises:
        ValueError: Mismatched learning rates, or (with `recompute`) a
            `loss_fn` that captures a floating-point tensor.

    Example:
        >>> fast = adapt(lambda w, x, y: support_loss(w, x, y), theta, 0.01, steps=5,
        ...              inputs=(support_images, support_labels))
    """
    weights = list(weights)
    if not isinstance(learning_rates, (list, tuple)):
        learning_rates = [learning_rates] * len(weights)
    if len(learning_rates) != len(weights):
        raise ValueError(f"Got {len(learning_rates)} learning rates for {len(weights)} weights.")
    count = len(weights)
    inputs = tuple(inputs)
    # Floating-point tensors of `inputs` travel as arguments of the
    # (recomputed) step; the rest (labels, None, Python values) stay constants.
    leaves = tf.nest.flatten(inputs)
    positions = [index for index, leaf in enumerate(leaves) if _is_float_tensor(leaf)]

    def call_loss(current, tensors):
        filled = list(leaves)
        for position, tensor in zip(positions, tensors):
            filled[position] = tensor
        return loss_fn(list(current), *tf.nest.pack_sequence_as(inputs, filled))

    @tf.function
    def symbolic_gradients(*state):
        # tf.recompute_grad runs its forward pass with tapes paused, so the
        # inner gradient must come from the graph (tf.gradients), not a tape.
        current = list(state[:count])
        return tf.gradients(call_loss(current, state[count:]), current,
                            unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def step(*state):
        current = list(state[:count])
        rates = list(state[count:2 * count])
        tensors = list(state[2 * count:])
        if recompute:
            gradients = list(symbolic_gradients(*current, *tensors))
        else:
            with tf.GradientTape() as tape:
                tape.watch(current)
                loss = call_loss(current, tensors)
            gradients = tape.gradient(loss, current,
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if first_order:
            gradients = [tf.stop_gradient(gradient) for gradient in gradients]
        return [weight - tf.cast(rate, weight.dtype) * gradient
                for weight, rate, gradient in zip(current, rates, gradients)]

    tensors = [leaves[position] for position in positions]
    if recompute:
        _check_no_captured_tensors(symbolic_gradients, weights + tensors)
        step = tf.recompute_grad(step)
    # Learning rates travel as arguments so that Meta-SGD's rates get their
    # gradients through a recomputed step too.
    rates = [tf.convert_to_tensor(rate, dtype=weight.dtype if not hasattr(rate, "dtype")
                                  else rate.dtype) for rate, weight in zip(learning_rates, weights)]
    for _ in range(steps):
        weights = list(step(*weights, *rates, *tensors))
    return weights


def _check_no_captured_tensors(function, arguments):
    """Raises if the traced `function` captures a floating-point tensor.

    Such a tensor (not a variable, not an argument) would be a constant to
    `tf.recompute_grad`: the gradient paths through it would be dropped.
    """
    captured = [tensor for tensor in function.get_concrete_function(*arguments).captured_inputs
                if tf.as_dtype(tensor.dtype).is_floating]
    if captured:
        described = ", ".join(f"{getattr(t, 'name', '<eager tensor>')} {t.dtype.name}"
                              f"{list(t.shape)}" for t in captured[:5])
        raise ValueError(
            f"inner_loop.adapt(recompute=True): loss_fn captures {len(captured)} floating-point "
            f"tensor(s) from its closure ({described}). tf.recompute_grad differentiates only "
            "the recomputed step's arguments, so gradients through them would be silently "
            "dropped; pass them to adapt through `inputs` and take them as loss_fn's extra "
            "arguments.")
