"""Batch normalization whose statistics are differentiable to every order."""

from typing import Any, Optional, Sequence

import keras
import tensorflow as tf

from mgaug_tf.backbones.reduction import channel_sum
from mgaug_tf.errors import ArgumentError

# `fused` settings of `MetaBatchNormalization`.
FUSED_CHOICES = ("auto", True, False)
_FUSED_DTYPES = (tf.float32, tf.bfloat16, tf.float16)
# Name scope of the fused kernel's second derivative (`_fused_batch_norm_gradient`).
SECOND_ORDER_SCOPE = "batch_norm_second_order"


def check_fused(value, argument="fused", owner=None):
    """Returns `value` if it is a `fused` setting (`FUSED_CHOICES`).

    Raises:
        mgaug_tf.errors.ArgumentError: Naming `argument` (the caller's name
            for the setting) otherwise.
    """
    if not any(value is choice or (isinstance(value, str) and value == choice)
               for choice in FUSED_CHOICES):
        raise ArgumentError(argument, value, f"must be one of {FUSED_CHOICES}", owner=owner)
    return value


def use_fused(fused, dtype, rank):
    """Whether batch norm of a rank-`rank` `dtype` input takes the fused kernel.

    `"auto"` and `True` fuse float32 and 16-bit inputs (the kernel's
    dtypes); `False` never fuses. float64 (no fused kernel) and inputs other
    than 4-D NHWC always take the plain ops.

    Raises:
        mgaug_tf.errors.ArgumentError: `fused` is not in `FUSED_CHOICES`.
    """
    check_fused(fused)
    dtype = tf.as_dtype(dtype)
    return rank == 4 and dtype in _FUSED_DTYPES and fused is not False


def _values_per_channel(inputs, dtype):
    """`N`, the number of values per channel of `[..., C]` `inputs`, as a `dtype` scalar."""
    return tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], dtype)


def fused_batch_norm(inputs, gamma, beta, epsilon):
    """Batch-statistics batch norm of NHWC `inputs` as one fused kernel.

    TensorFlow's `FusedBatchNormV3` (oneDNN on x86 CPUs) reads 16-bit
    `inputs` directly and computes the moments and the normalization with
    float32 accumulation, so no float32 copy of the activations is made.
    Its gradient is the fused `FusedBatchNormGradV3` (float32 arithmetic
    inside), and the gradient of that (MAML's second-order terms) is
    `batch_norm_second_derivative`, computed from the saved activations and
    batch statistics only when the outer backward pass reaches it
    (`_fused_batch_norm_gradient`).

    Args:
        inputs: `[B, H, W, C]`, float32, bfloat16 or float16.
        gamma, beta: `[C]` float32 scale and offset.
        epsilon: Added to the variance.

    Returns:
        `(outputs, mean, variance)`: outputs with `inputs`' dtype and shape;
        the float32 batch mean and biased (population) variance `[C]`, which
        feed the moving statistics and carry no gradient (as TensorFlow's
        own fused batch norm).
    """
    gamma, beta = tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)

    @tf.custom_gradient
    def normalize(x, scale, offset):
        empty = tf.zeros([0], tf.float32)
        outputs, mean, variance, reserve_1, reserve_2, reserve_3 = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # The kernel returns the Bessel-corrected variance; this layer's
        # moving statistics and the second derivative use the population one.
        count = _values_per_channel(x, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)

        def gradient(grad_outputs, *unused_statistics_gradients):
            return _fused_batch_norm_gradient(grad_outputs, x, scale, (reserve_1, reserve_2,
                                                                       reserve_3),
                                              (mean, variance), epsilon)

        return (outputs, tf.stop_gradient(mean), tf.stop_gradient(variance)), gradient

    return normalize(inputs, gamma, beta)


def _fused_batch_norm_gradient(grad_outputs, inputs, gamma, reserved, statistics, epsilon):
    """`FusedBatchNormGradV3`, whose own gradient waits for the outer backward pass.

    TensorFlow's registered second derivative of the fused gradient kernel
    rebuilds the first derivative as plain ops from the activations alone
    and differentiates that, so the executor runs the rebuild as soon as an
    inner step's forward pass is done and holds its activation-sized results
    (the centred activations and gradients) until the outer backward pass:
    two extra activations per batch norm and inner step, alive through the
    query pass, where second-order MAML's memory peaks. Here the second
    derivative is `batch_norm_second_derivative` in closed form, from the
    forward pass's `statistics` (mean, population variance), and every
    activation-sized op of it depends on the outer gradient, so it runs only
    when needed (docs/performance.md has the memory profile).
    """

    @tf.custom_gradient
    def gradient_kernel(grad_y, x, scale):
        grad_x, grad_scale, grad_offset, _, _ = tf.raw_ops.FusedBatchNormGradV3(
            y_backprop=grad_y, x=x, scale=scale, reserve_space_1=reserved[0],
            reserve_space_2=reserved[1], reserve_space_3=reserved[2], epsilon=epsilon,
            data_format="NHWC", is_training=True)

        def second_order(*grad_grads):
            grad_grads = [tf.zeros_like(value) if grad is None else grad
                          for grad, value in zip(grad_grads, (grad_x, grad_scale, grad_offset))]
            with tf.name_scope(SECOND_ORDER_SCOPE):
                with tf.control_dependencies(grad_grads):
                    late_x = tf.identity(x)
                return batch_norm_second_derivative(grad_y, late_x, scale, *statistics, epsilon,
                                                    grad_scale, grad_offset, *grad_grads)

        return (grad_x, grad_scale, grad_offset), second_order

    return gradient_kernel(grad_outputs, inputs, gamma)


def batch_norm_second_derivative(grad_outputs, inputs, gamma, mean, variance, epsilon,
                                 grad_gamma, grad_beta, grad_grad_inputs, grad_grad_gamma,
                                 grad_grad_beta):
    """The vector-Jacobian product of training-mode batch norm's gradient, in closed form.

    For `y = gamma * x_hat + beta` with `x_hat = (x - mean) * s`,
    `s = 1 / sqrt(variance + epsilon)`, the batch's mean and population
    variance over the `[B, H, W]` axes (`N` values per channel) and `m(.)`
    the per-channel mean, the gradient is `grad_beta = sum(dy)`,
    `grad_gamma = sum(dy * x_hat)` and `grad_x = gamma * s * (dy - m(dy) -
    x_hat * m(dy * x_hat))` (Ioffe & Szegedy 2015). This is its derivative
    with respect to `(dy, x, gamma)`, applied to the outer gradients
    `(u, a, b)` of its three outputs: what second-order MAML's outer pass
    needs from every inner step's batch norm. With
    `k = sum(u * (dy - m(dy) - x_hat * m(dy * x_hat)))`:

    * `d/d dy = gamma * s * (u - m(u) - x_hat * m(u * x_hat)) + a * x_hat + b`
      (the gradient is linear in `dy` with a symmetric map);
    * `d/d gamma = s * k`;
    * `d/d x = s * (g - m(g) - x_hat * m(g * x_hat)) - gamma * s**2 * k *
      x_hat / N`, with `g = a * dy - gamma * s * (m(dy * x_hat) * u +
      m(u * x_hat) * dy)`: the derivative through `x_hat`, projected as
      batch norm's own Jacobian projects, plus the one through `s`.

    The sums of `dy` and `dy * x_hat` are the first derivative's
    `grad_beta` and `grad_gamma`; the three others are
    `reduction.channel_sum`s. Fewer passes over the activations than
    automatic differentiation of the gradient written in plain ops, and
    equal to that in float64 (tests/backbones/test_fused_batch_norm.py).
    Computed in float32 for 16-bit inputs, else in `inputs`' dtype. `mean`
    and `variance` are treated as given, so this is exact to the second
    derivative, not beyond.

    Args:
        grad_outputs: `[B, H, W, C]` gradient of batch norm's outputs (`dy`).
        inputs: `[B, H, W, C]` activations (`x`).
        gamma: `[C]` scale.
        mean, variance: `[C]` batch mean and population variance of `inputs`.
        epsilon: Added to the variance.
        grad_gamma, grad_beta: `[C]` the first derivative's outputs for
            `gamma` and `beta`: `sum(dy * x_hat)` and `sum(dy)`.
        grad_grad_inputs: `[B, H, W, C]` outer gradient of `grad_x` (`u`).
        grad_grad_gamma, grad_grad_beta: `[C]` outer gradients of
            `grad_gamma` and `grad_beta` (`a`, `b`).

    Returns:
        `(grad_grad_outputs, grad_inputs, grad_gamma)`: `grad_outputs`' and
        `inputs`' dtypes, then `[C]` in the computation's dtype.
    """
    dtype = tf.float32 if inputs.dtype in (tf.bfloat16, tf.float16) else inputs.dtype
    x, dy, u = (tf.cast(value, dtype) for value in (inputs, grad_outputs, grad_grad_inputs))
    gamma, mean, variance, sum_dy_normalized, sum_dy, a, b = (tf.cast(value, dtype) for value in (
        gamma, mean, variance, grad_gamma, grad_beta, grad_grad_gamma, grad_grad_beta))
    count = _values_per_channel(x, dtype)
    s = tf.math.rsqrt(variance + epsilon)
    normalized = (x - mean) * s
    mean_dy, mean_dy_normalized = sum_dy / count, sum_dy_normalized / count
    sum_u = channel_sum(u)
    sum_u_normalized = channel_sum(u * normalized)
    k = channel_sum(u * dy) - sum_u * mean_dy - sum_u_normalized * mean_dy_normalized
    gamma_s = gamma * s
    mean_u, mean_u_normalized = sum_u / count, sum_u_normalized / count
    # g = dy * dy_scale - u * u_scale; each per-channel scale is computed
    # once, as Grappler shares no repeated expression under configure_tensorflow.
    dy_scale = a - gamma_s * mean_u_normalized
    u_scale = gamma_s * mean_dy_normalized
    grad_dy = gamma_s * u + normalized * dy_scale + (b - gamma_s * mean_u)
    # m(g) and m(g * x_hat) follow from the sums above, without another pass.
    mean_g = dy_scale * mean_dy - u_scale * mean_u
    mean_g_normalized = dy_scale * mean_dy_normalized - u_scale * mean_u_normalized
    grad_x = (dy * (s * dy_scale) - u * (s * u_scale)
              - normalized * (s * (mean_g_normalized + gamma_s * k / count))
              - s * mean_g)
    return tf.cast(grad_dy, grad_outputs.dtype), tf.cast(grad_x, inputs.dtype), s * k


def batch_normalize(inputs, gamma, beta, moving_mean, moving_variance, epsilon, fused="auto",
                    training=False):
    """`MetaBatchNormalization`'s computation on explicit parameters and statistics.

    The layer's `call` and the sliced sub-networks of MGAug
    (`Conv4.sliced_call`, on the kept channels' slices) share it.

    Args:
        inputs: `[..., C]` activations (4-D NHWC for the fused kernel).
        gamma, beta: `[C]` scale and offset.
        moving_mean, moving_variance: `[C]` statistics used when not training.
        epsilon: Added to the variance.
        fused: As `MetaBatchNormalization`'s `fused` (`use_fused`).
        training: Normalize with the batch's moments (and return them) or
            with the moving statistics.

    Returns:
        `(outputs, mean, variance)`: outputs in `inputs`' dtype; the batch
        mean and population variance `[C]` when `training`, else `None`s.
    """
    if training and use_fused(fused, inputs.dtype, len(inputs.shape)):
        return fused_batch_norm(inputs, gamma, beta, epsilon)
    axes = list(range(len(inputs.shape) - 1))
    output_dtype = inputs.dtype
    if output_dtype in (tf.bfloat16, tf.float16):
        # Moments of 16-bit activations are too coarse (mixed precision):
        # normalize in float32 and hand back the compute dtype.
        inputs = tf.cast(inputs, tf.float32)
    if training:
        mean = tf.reduce_mean(inputs, axis=axes)
        variance = tf.reduce_mean(tf.square(inputs - mean), axis=axes)
        statistics = mean, variance
    else:
        mean = tf.cast(moving_mean, inputs.dtype)
        variance = tf.cast(moving_variance, inputs.dtype)
        statistics = None, None
    gamma, beta = tf.cast(gamma, inputs.dtype), tf.cast(beta, inputs.dtype)
    scale = gamma * tf.math.rsqrt(variance + epsilon)
    return (tf.cast((inputs - mean) * scale + beta, output_dtype),) + statistics


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MetaBatchNormalization(keras.layers.Layer):
    """Batch normalization safe for second-order meta-gradients.

    Keras's stock `BatchNormalization` on the TensorFlow backend computes the
    variance around `stop_gradient(mean)`, which silently breaks MAML's
    second-order meta-gradients. This layer computes the moments with plain
    differentiable ops, so gradients of gradients are exact.

    In training mode (`training=True`) it normalizes with the statistics of the
    current batch and updates the moving statistics; with `training=False` it
    uses the moving statistics (the "inductive" test mode).

    Training-mode calls on 4-D float32 or 16-bit inputs take TensorFlow's
    fused batch-norm kernel (`fused_batch_norm`): one pass for the moments
    and the normalization (float32 arithmetic inside, 16-bit in and out under
    mixed precision), the fused gradient kernel, and second-order terms
    exact to the second derivative, which is all MAML, Meta-SGD and ANIL
    differentiate (proven by float32 central differences of its gradient in
    tests/backbones/test_fused_batch_norm.py); it is the default because it
    makes second-order steps faster and smaller than the plain ops
    (docs/performance.md). float64 has no fused kernel and takes the plain
    ops, which the float64 finite-difference tests check.

    Args:
        momentum: Momentum of the moving statistics.
        epsilon: Added to the variance for numerical stability.
        fused: `"auto"` or `True` (the fused kernel wherever it exists:
            float32, bfloat16, float16) or `False` (plain differentiable
            ops, exact to every order, e.g. for third derivatives; float64
            always uses them). A caller may override it per call (`call`'s
            `fused`).
        **kwargs: Standard layer arguments (`name`, `dtype`).

    Raises:
        mgaug_tf.errors.ArgumentError: `fused` is not one of `FUSED_CHOICES`.

    Example:
        >>> bn = MetaBatchNormalization()
        >>> y = bn(tf.random.normal([8, 5, 5, 3]), training=True)
    """

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5, fused: bool | str = "auto",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fused = check_fused(fused, owner="MetaBatchNormalization")
        self.momentum = momentum
        self.epsilon = epsilon

    def build(self, input_shape: Sequence[Optional[int]]) -> None:
        channels = input_shape[-1]
        # autocast=False: statistics and affine parameters stay float32 under
        # mixed precision.
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma",
                                     autocast=False)
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta",
                                    autocast=False)
        # `aggregation="mean"` keeps replicas' moving statistics in agreement
        # under tf.distribute instead of letting them drift apart.
        self.moving_mean = self.add_weight(
            shape=(channels,), initializer="zeros", trainable=False,
            name="moving_mean", aggregation="mean", autocast=False)
        self.moving_variance = self.add_weight(
            shape=(channels,), initializer="ones", trainable=False,
            name="moving_variance", aggregation="mean", autocast=False)

    def _update_moving(self, mean, variance):
        new_mean = tf.cast(tf.stop_gradient(mean), self.moving_mean.dtype)
        new_variance = tf.cast(tf.stop_gradient(variance), self.moving_variance.dtype)
        self.moving_mean.assign(
            self.momentum * self.moving_mean + (1.0 - self.momentum) * new_mean)
        self.moving_variance.assign(
            self.momentum * self.moving_variance + (1.0 - self.momentum) * new_variance)

    def call(self, inputs: tf.Tensor, training: bool = False,
             fused: Optional[bool | str] = None) -> tf.Tensor:
        """Normalizes `inputs` `[..., C]`; `fused` (if not None) overrides the layer's."""
        outputs, mean, variance = batch_normalize(
            inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance, self.epsilon,
            self.fused if fused is None else fused, training)
        if training:
            self._update_moving(mean, variance)
        return outputs

    def compute_output_shape(self, input_shape: Sequence[Optional[int]]
                             ) -> Sequence[Optional[int]]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, fused=self.fused)
        return config
