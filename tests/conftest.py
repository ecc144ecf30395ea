"""Shared test configuration and helpers."""

import os
import tarfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mgaug_tf  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; excluded from the default run")


@pytest.fixture(scope="session", autouse=True)
def configured_tensorflow():
    # Tests act as a program does (configures once); no-side-effect tests use a fresh subprocess.
    mgaug_tf.configure_tensorflow()


def make_episode_batch(seed, tasks=2, n_way=3, k_shot=2, k_query=2, size=16, channels=1,
                       dtype="float32"):
    """A random episode batch in the learners' format (labels shuffled per task)."""
    rng = np.random.default_rng(seed)
    support_labels = np.stack([rng.permutation(np.repeat(np.arange(n_way), k_shot))
                               for _ in range(tasks)]).astype("int32")
    query_labels = np.stack([rng.permutation(np.repeat(np.arange(n_way), k_query))
                             for _ in range(tasks)]).astype("int32")
    # Class-dependent means make the tasks learnable, not pure noise.
    means = rng.normal(size=(tasks, n_way, size, size, channels))
    support_images = means[np.arange(tasks)[:, None], support_labels] + rng.normal(
        size=(tasks, n_way * k_shot, size, size, channels))
    query_images = means[np.arange(tasks)[:, None], query_labels] + rng.normal(
        size=(tasks, n_way * k_query, size, size, channels))
    return ((support_images.astype(dtype), support_labels, query_images.astype(dtype)),
            query_labels)


def traced_bodies(concrete):
    """The nodes of a traced function's graph, then of each function it calls (loop bodies).

    One list per body: a node's inputs name nodes of its own body only.
    """
    graph_def = concrete.graph.as_graph_def()
    return [list(graph_def.node)] + [list(function.node_def)
                                     for function in graph_def.library.function]


def traced_nodes(concrete):
    """Every node of a traced function's graph and of the functions it calls (loop bodies)."""
    return [node for body in traced_bodies(concrete) for node in body]


def _downstream_ops(start):
    """`start` and every graph op that depends on it, by data or control edges."""
    downstream, frontier = {start}, [start]
    while frontier:
        op = frontier.pop()
        for consumer in [c for output in op.outputs for c in output.consumers()] + list(
                op._control_outputs):  # pylint: disable=protected-access
            if consumer not in downstream:
                downstream.add(consumer)
                frontier.append(consumer)
    return downstream


def second_order_ops(loss_fn, shape, scope):
    """Where a second derivative's activation-sized ops sit in a traced graph.

    Traces the outer gradient of `loss_fn`'s gradient at float32 inputs of
    `shape` (rank 4), seeded by a `seed` argument as MAML's outer pass
    seeds it, and returns `(ops, early)`: the rank-4 ops under the name
    scope `scope`, and the names of those that do not depend on the seed,
    which the executor could run during the inner step and hold.
    """
    import tensorflow as tf  # here: the helpers above need no TensorFlow

    spec = tf.TensorSpec(shape, tf.float32)

    @tf.function(input_signature=[spec, spec])
    def hessian_vector_product(x, seed):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = loss_fn(x)
            inner_gradient = inner.gradient(loss, x)
        return outer.gradient(inner_gradient, x, output_gradients=seed)

    graph = hessian_vector_product.get_concrete_function().graph
    seed = next(op for op in graph.get_operations() if op.type == "Placeholder"
                and op.name.startswith("seed"))
    downstream = _downstream_ops(seed)
    ops = [op for op in graph.get_operations() if scope in op.name
           and any(output.shape.rank == 4 for output in op.outputs)]
    return ops, [op.name for op in ops if op not in downstream]


def shared_data_candidate():
    """`$MGAUG_SHARED_DATA`, else `../shared/data` beside the repository."""
    return Path(os.environ.get("MGAUG_SHARED_DATA")
                or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def shared_data_dir():
    """The real benchmark data folder, or None when it is absent."""
    path = shared_data_candidate()
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data():
    """The real benchmark data folder; skips (naming the path) when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip(f"real benchmark data not found at {shared_data_candidate()} (../shared/data "
                    "beside the repository, or set MGAUG_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def omniglot_dir(shared_data):
    """The real Omniglot folder (`images_background.zip`, `images_evaluation.zip`)."""
    path = shared_data / "omniglot"
    if not (path / "images_background.zip").is_file():
        pytest.skip(f"{path}/images_background.zip is absent")
    return path


@pytest.fixture(scope="session")
def mini_subset_dir(shared_data, tmp_path_factory):
    """The 2,000-image miniImageNet subset (Ravi layout), extracted once per session."""
    archive = shared_data / "miniimagenet" / "miniimagenet_subset20.tar"
    if not archive.is_file():
        pytest.skip(f"{archive} is absent")
    target = tmp_path_factory.mktemp("miniimagenet")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


@pytest.fixture
def episode_batch():
    return make_episode_batch
