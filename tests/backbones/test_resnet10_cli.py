"""mgaug-train with --backbone=resnet10: what a user would try, refused in one line or run.

Every refusal is exit 2, one line naming the flag and its value, before the
model directory is made (`run_main` runs the program's config in-process).
"""

import numpy as np
import pytest

import mgaug_tf as mg
from mgaug_tf import factory
from mgaug_tf_cli import flags as run_flags
from tests.conftest import make_episode_batch
from tests.trainers.conftest import REPO, run_main  # noqa: F401 (a fixture)

# The built-in glyphs dataset (configs/demo.cfg, 28 px grey) on a narrow ResNet-10.
DEMO = [f"--flagfile={REPO / 'configs' / 'demo.cfg'}", "--backbone=resnet10", "--filters=4"]


@pytest.mark.parametrize("flags, expected", [
    # The reference pool needs a last map of 5 to 9 entries a side: 129 to 288 px.
    (["--final_pool=reference", "--image_size=64"],
     ["--image_size=64: ", "129 to 288 px for final_pool='reference'"]),
    (["--final_pool=reference", "--image_size=300"], ["--image_size=300: ", "129 to 288 px"]),
    (["--final_pool=reference", "--image_size=140", "--resolutions=140,100"],
     ["--resolutions=140,100: ", "ResNet10's min_input_size (129 px"]),
    # Averaged features: a flatten-head option has nothing to apply to.
    (["--mgaug_flatten_head=reference"],
     ["--mgaug_flatten_head=reference: ", "--mgaug_flatten_head must be None with ResNet10"]),
    (["--mgaug_flatten_head=resize_features", "--resolutions=28,20"],
     ["--mgaug_flatten_head=resize_features: ", "no flatten head"]),
    (["--mgaug=random_width", "--mgaug_width_execution=sliced"],
     ["--mgaug_width_execution=sliced: ", "(ResNet10) has no sliced_call"]),
    (["--filters=4,8"], ["--filters=4,8: ", "(w, 2w, 4w, 8w)"]),
    (["--final_pool=global", "--backbone=conv4"], ["--final_pool=global"]),
])
def test_refused_in_one_line_naming_the_flag_before_any_work(run_main, flags, expected):
    code, stderr, model_dir = run_main(*DEMO, *flags)
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert all(part in stderr for part in expected), stderr
    assert "Traceback" not in stderr and not model_dir.exists()


def test_flatten_head_option_maps_to_its_config_field():
    config = run_flags.parse_config([*DEMO, "--mgaug_flatten_head=reference"])
    with pytest.raises(mg.config.ConfigFieldError, match="must be None with ResNet10") as error:
        factory.build_learner(config.model, (28, 28, 1))
    assert error.value.paths == ("model.mgaug.flatten_head",)


@pytest.mark.parametrize("flags, size", [
    (["--resolutions=16,12,5"], 16),                     # global pool: any size, even 5 px
    (["--mgaug=random_width", "--mgaug_width_execution=masked"], 16),
    (["--filters=4,8,8,8", "--final_pool=reference", "--mgaug_parity",
      "--resolutions=130,129", "--image_size=130", "--meta_batch_size=1"], 130),
])
def test_combinations_a_user_would_try_build_and_step(flags, size):
    config = run_flags.parse_config([*DEMO, f"--image_size={size}", "--n_way=3", *flags])
    learner = factory.build_learner(config.model, (size, size, 1))
    _, gradients = learner.compute_meta_gradients(make_episode_batch(
        0, tasks=1, n_way=3, k_shot=1, k_query=1, size=size))
    assert all(np.isfinite(gradient).all() for gradient in gradients)
    assert np.any(gradients[0])  # the stem kernel's meta-gradient
