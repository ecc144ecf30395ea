"""The result-reproduction configs (`configs/results/*.cfg`) parse and point at the shared data."""

import pytest
from absl import flags

from tests.results.conftest import REPO
from trainers import run  # noqa: F401  (defines the CLI's flags)

FLAGS = flags.FLAGS
CONFIGS = sorted((REPO / "configs" / "results").glob("*.cfg"))


def test_there_are_result_configs():
    assert {"omniglot_protonet_5w1s.cfg", "omniglot_fomaml_5w1s.cfg"} <= {c.name for c in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_result_config_parses_with_shared_data_and_tmp_model_dir(path, monkeypatch):
    monkeypatch.chdir(REPO)  # included --flagfile paths are relative to the repository
    FLAGS(["run.py", f"--flagfile={path}"])
    try:
        assert FLAGS.data_dir == "../shared/data/omniglot"
        assert FLAGS.model_dir == f"/tmp/runs/{path.stem}"  # outputs stay out of the repository
        assert (FLAGS.dataset, FLAGS.n_way, FLAGS.k_shot, FLAGS.image_size) == ("omniglot", 5, 1,
                                                                                 28)
        assert FLAGS.eval_episodes == 600 and FLAGS.mgaug == "none"
        assert FLAGS.learner == path.stem.split("_")[1]
    finally:
        FLAGS.unparse_flags()
