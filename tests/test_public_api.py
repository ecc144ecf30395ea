"""The package's public surface: lazy imports, annotations, `py.typed`."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mgaug_tf

ROOT = Path(__file__).resolve().parents[1]

# A fresh interpreter (this one has imported TensorFlow already): the config
# modules first, then the lazy attributes, which import TensorFlow on use.
_FRESH = """
import sys
import mgaug_tf.config, mgaug_tf.errors, mgaug_tf.presets, mgaug_tf.choices
config = mgaug_tf.config.ExperimentConfig()
mgaug_tf.presets.get
print(sorted(name for name in ("tensorflow", "keras") if name in sys.modules))
import mgaug_tf as mg
print("glyphs" in mg.data.available_datasets(), mg.MAML.__name__, "tensorflow" in sys.modules)
import json, keras, mgaug_tf.factory
print(json.dumps(sorted(name for name in keras.saving.get_custom_objects()
                        if name.startswith("mgaug_tf>"))))
"""


def test_config_imports_without_tensorflow_and_the_lazy_attributes_import_it():
    result = subprocess.run([sys.executable, "-c", _FRESH], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["[]", "True MAML True"]
    # `import mgaug_tf.factory` registers every class a `.keras` file may name
    # (README: loading a saved learner), found here from the decorators in the source.
    decorated = sorted(
        f"mgaug_tf>{name}" for path in (ROOT / "mgaug_tf").rglob("*.py")
        for name in re.findall(r"^@keras\.saving\.register_keras_serializable\("
                               r"package=\"mgaug_tf\"\)\nclass (\w+)",
                               path.read_text(), flags=re.M))
    assert len(decorated) >= 10
    assert json.loads(lines[2]) == decorated


def test_every_exported_name_and_subpackage_is_an_attribute():
    import mgaug_tf.data
    import mgaug_tf.learners

    assert mgaug_tf.data is sys.modules["mgaug_tf.data"]
    assert mgaug_tf.MAML is mgaug_tf.learners.MAML
    assert mgaug_tf.configure_tensorflow is sys.modules["mgaug_tf.runtime"].configure_tensorflow
    for name in mgaug_tf.__all__:
        assert getattr(mgaug_tf, name) is not None
    for name in ("data", "config", "presets", "runtime"):
        assert name in dir(mgaug_tf)
    assert mgaug_tf.distribute is sys.modules["mgaug_tf.distribute"]
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        mgaug_tf.nonexistent  # noqa: B018


def test_choice_lists_match_the_modules_that_implement_them():
    from mgaug_tf import choices
    from mgaug_tf.augment import strategies

    assert tuple(strategies.STRATEGIES) == choices.MGAUG_STRATEGIES


def _exported_callables():
    """`(label, function)` for every function and public method `mgaug_tf` exports.

    Classes count with their constructor and the public methods that the
    package's own classes define along their MRO (Keras's are Keras's).
    """
    for name in mgaug_tf.__all__:
        value = getattr(mgaug_tf, name)
        if inspect.isfunction(value):
            yield name, value
        elif inspect.isclass(value):
            for klass in value.__mro__:
                if not klass.__module__.startswith("mgaug_tf."):
                    continue
                for attribute, member in vars(klass).items():
                    if attribute.startswith("_") and attribute != "__init__":
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    elif isinstance(member, property):
                        member = member.fget
                    if inspect.isfunction(member):
                        yield f"{name}.{attribute} ({klass.__qualname__})", member


def test_every_exported_callable_is_annotated():
    unannotated = []
    for label, function in _exported_callables():
        signature = inspect.signature(function)
        missing = [parameter.name for parameter in signature.parameters.values()
                   if parameter.name not in ("self", "cls")
                   and parameter.annotation is inspect.Parameter.empty]
        if signature.return_annotation is inspect.Signature.empty:
            missing.append("return")
        if missing:
            unannotated.append(f"{label}: {', '.join(missing)}")
    assert not unannotated, "\n".join(unannotated)


def test_the_exported_surface_is_not_empty():
    labels = [label for label, _ in _exported_callables()]
    assert "build_learner" in labels and "configure_tensorflow" in labels
    assert "MAML.__init__ (GradientLearner)" in labels
    assert "MAML.fit (MetaLearner)" in labels
    assert "MGAug.task_gradients (MGAug)" in labels


def test_py_typed_ships_with_the_package():
    assert (Path(mgaug_tf.__file__).parent / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'mgaug_tf = ["py.typed"]' in pyproject


_LOAD_FRESH = """
import sys
import numpy as np
import keras
import mgaug_tf as mg
try:
    keras.saving.load_model(sys.argv[1])
except TypeError as error:
    print("keras alone:", "Could not locate class" in str(error))
learner = mg.load_model(sys.argv[1])
print(type(learner).__name__, type(learner.network.backbone).__name__)
print(float(np.abs(learner.network.predict(np.load(sys.argv[2]), verbose=0)).sum()))
"""


def test_load_model_registers_the_classes_a_keras_file_names(tmp_path):
    """`import mgaug_tf` is lazy, so Keras alone cannot find MAML; `mg.load_model` can."""
    import numpy as np

    learner = mgaug_tf.MAML(mgaug_tf.FewShotClassifier(mgaug_tf.Conv4(filters=4), n_way=3),
                            n_way=3, inner_steps=1)
    learner.build((28, 28, 1))
    images = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    expected = float(np.abs(learner.network.predict(images, verbose=0)).sum())
    learner.save(tmp_path / "learner.keras")
    np.save(tmp_path / "images.npy", images)
    result = subprocess.run([sys.executable, "-c", _LOAD_FRESH, str(tmp_path / "learner.keras"),
                             str(tmp_path / "images.npy")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["keras alone: True", "MAML Conv4"]
    assert float(lines[2]) == pytest.approx(expected, rel=1e-6)
