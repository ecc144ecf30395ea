"""ReLU, leaky ReLU and max-pooling whose second derivatives build no zero tensors.

These ops are piecewise linear, so the derivative of their gradient with
respect to their inputs is zero almost everywhere; only the incoming
gradient carries second-order terms (MAML's outer pass through the inner
loop's gradients). TensorFlow's registered second derivatives (of
`ReluGrad`, `LeakyReluGrad` and `MaxPoolGrad`) return those zero terms as
`zeros_like(activation)` tensors. They depend on the activations only, so
the executor builds them during the inner step and holds them, one or two
activations per layer and step, until the outer backward pass adds them in:
through the query pass, where second-order MAML's memory peaks. Here the
first and second derivatives are TensorFlow's own kernels or their values
from faster ops (max-pool's second derivative: `max_pool`), and the zero
terms are left out (`None`): the same values without those tensors, which
lowers the memory peak of a second-order step (docs/performance.md has
the profile).
"""

import keras
import tensorflow as tf
from tensorflow.python.ops import gen_nn_ops  # the gradient kernels' raw ops

# Name scope of max-pool's second derivative from `MaxPoolGrad` (`_pooled_at_maxima`).
MAX_POOL_SECOND_ORDER_SCOPE = "max_pool_second_order"


def relu(inputs):
    """`tf.nn.relu` whose second derivative has no zero term for `inputs`.

    Args:
        inputs: A float tensor.

    Returns:
        `max(inputs, 0)`, same shape and dtype.
    """
    return leaky_relu(inputs, 0.0)


def leaky_relu(inputs, alpha):
    """`tf.nn.leaky_relu` (`relu` when `alpha` is 0) without zero second-order terms.

    Args:
        inputs: A float tensor.
        alpha: Python float, the slope for negative inputs.

    Returns:
        The activation, same shape and dtype as `inputs`.
    """

    @tf.custom_gradient
    def forward(features):
        if alpha:
            outputs = tf.nn.leaky_relu(features, alpha=alpha)
        else:
            outputs = tf.nn.relu(features)

        def backward(grad_outputs):
            # ReluGrad reads the outputs (as TensorFlow's own gradient does);
            # LeakyReluGrad the inputs.
            def kernel(grad):
                if alpha:
                    return gen_nn_ops.leaky_relu_grad(grad, features, alpha=alpha)
                return gen_nn_ops.relu_grad(grad, outputs)

            @tf.custom_gradient
            def gradient(grad):
                return kernel(grad), kernel  # linear in `grad`: the same map twice

            return gradient(grad_outputs)

        return outputs, backward

    return forward(inputs)


def max_pool(inputs, pool_size=2, strides=None, padding="VALID"):
    """`tf.nn.max_pool2d` (NHWC) whose second derivative has no zero terms.

    The gradient routes each pooled gradient to the window's first maximum
    (`MaxPoolGrad`), and its gradient is `MaxPoolGradGrad`'s values: for
    windows that tile the input (`strides` = `pool_size`, `"VALID"`) and
    whose area is a power of two (2x2: Conv4's and ResNet-12's pools), from
    `MaxPoolGrad` and an average pool (`_pooled_at_maxima`), else
    TensorFlow's kernel. The zero derivatives with respect to the input and
    the pooled output are left out.

    Args:
        inputs: `[B, H, W, C]` float tensor.
        pool_size: Window size, an int or a pair.
        strides: Stride, an int or a pair (defaults to `pool_size`).
        padding: `"VALID"` or `"SAME"`.

    Returns:
        The pooled `[B, H', W', C]` tensor.
    """
    size = _pair(pool_size)
    step = size if strides is None else _pair(strides)
    ksize, stride = [1, *size, 1], [1, *step, 1]
    # `_pooled_at_maxima` sums windows as averages, which only a
    # power-of-two area keeps exact.
    area = size[0] * size[1]
    tiled = size == step and padding == "VALID" and area & (area - 1) == 0

    @tf.custom_gradient
    def forward(features):
        outputs = tf.nn.max_pool2d(features, ksize, stride, padding)

        def backward(grad_outputs):
            @tf.custom_gradient
            def gradient(grad):
                def second_order(grad_grad):
                    if tiled:
                        return _pooled_at_maxima(features, outputs, grad_grad, ksize)
                    return gen_nn_ops.max_pool_grad_grad(features, outputs, grad_grad, ksize,
                                                         stride, padding)

                return gen_nn_ops.max_pool_grad(features, outputs, grad, ksize, stride,
                                                padding), second_order

            return gradient(grad_outputs)

        return outputs, backward

    return forward(inputs)


def _pooled_at_maxima(features, outputs, grad_grad, ksize):
    """`MaxPoolGradGrad` for `"VALID"` windows that tile the input (stride = window).

    Picks `grad_grad` at each window's first maximum from the one-hot map
    of those maxima (`MaxPoolGrad` of ones: the first derivative's own
    kernel, so the same maximum) and sums each window as an average pool
    times the window's area. The values equal TensorFlow's kernel's for a
    power-of-two area, ties and infinities off the maxima included, with
    three exceptions: signed zeros; float32 and bfloat16 values whose
    average is subnormal (under 2^-124 for 2x2 windows: TensorFlow's CPU
    threads flush subnormals to zero, where the kernel copies them); and
    windows of NaN or -inf only (corrupt activations). On CPU these passes
    run faster than the kernel on support-set-sized maps, where
    second-order MAML needs it (docs/performance.md, "Where the time
    goes"). Not run on a GPU, where `MaxPoolGrad` may pick another of tied
    maxima than `MaxPoolGradGrad` does; the map follows `MaxPoolGrad`.

    Args:
        features, outputs: The max-pool's `[B, H, W, C]` input and pooled output.
        grad_grad: `[B, H, W, C]` outer gradient of the max-pool's gradient.
        ksize: `[1, height, width, 1]` window, also the stride; its area a
            power of two.

    Returns:
        `[B, H', W', C]`, `outputs`' shape and `grad_grad`'s dtype.
    """
    with tf.name_scope(MAX_POOL_SECOND_ORDER_SCOPE):
        # The map waits for `grad_grad`: built from the activations alone, the
        # executor would compute it in the inner step and hold it until then.
        with tf.control_dependencies([grad_grad]):
            ones = tf.ones_like(outputs)
        maxima = gen_nn_ops.max_pool_grad(features, outputs, ones, ksize, ksize, "VALID")
        # float16 averages in float32: a quarter of a small float16 gradient
        # would fall below its normal range and lose bits.
        dtype = tf.float32 if grad_grad.dtype == tf.float16 else grad_grad.dtype
        # multiply_no_nan: an infinite `grad_grad` off the maxima (float16
        # loss scaling) must give 0, as the kernel skips it, not 0 * inf.
        picked = tf.math.multiply_no_nan(tf.cast(grad_grad, dtype), tf.cast(maxima, dtype))
        summed = tf.nn.avg_pool2d(picked, ksize, ksize, "VALID") * (ksize[1] * ksize[2])
        return tf.cast(summed, grad_grad.dtype)


def _pair(value):
    return [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]


@keras.saving.register_keras_serializable(package="mgaug_tf")
class ReLU(keras.layers.Layer):
    """ReLU as a layer, through `relu`.

    Example:
        >>> ReLU()(tf.constant([-1.0, 2.0]))  # [0., 2.]
    """

    def call(self, inputs):
        return relu(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="mgaug_tf")
class MaxPooling2D(keras.layers.Layer):
    """Channels-last max-pooling as a layer, through `max_pool`.

    Args:
        pool_size: Window size and stride (an int or a pair).
        padding: `"valid"` or `"same"`.
        **kwargs: Standard layer arguments (`name`, `dtype`).

    Example:
        >>> MaxPooling2D(2)(tf.zeros([1, 84, 84, 64])).shape  # [1, 42, 42, 64]
    """

    def __init__(self, pool_size=2, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = tuple(_pair(pool_size))
        self.padding = padding.lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}.")

    def call(self, inputs):
        return max_pool(inputs, self.pool_size, padding=self.padding.upper())

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape

        def reduce(length, size):
            if length is None:
                return None
            return length // size if self.padding == "valid" else -(-length // size)

        return (batch, reduce(height, self.pool_size[0]), reduce(width, self.pool_size[1]),
                channels)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, padding=self.padding)
        return config
