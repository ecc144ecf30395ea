"""docs/examples/cross_domain.py runs as written: glyphs -> a folder of RGB shapes in grey."""

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "cross_domain.py"


@pytest.mark.slow  # two mgaug-train processes
def test_cross_domain_example_trains_then_tests_on_another_dataset(capsys):
    results = runpy.run_path(str(EXAMPLE))["main"]()
    out = capsys.readouterr().out
    assert ("trained on glyphs: any-size x3 images -> 28x28x1 (resized by folder's reader at "
            "image_size=28; channels RGB -> grey (Pillow's ITU-R 601-2 luma)).") in out
    in_domain, cross = results["eval_test.json"], results["eval_test_folder.json"]
    assert in_domain["dataset"] == "glyphs" and "cross_domain" not in in_domain
    assert cross["dataset"] == "folder" and cross["num_episodes"] == 10
    assert cross["cross_domain"]["native"] == {"size": None, "channels": 3}
    assert cross["checkpoint"] == in_domain["checkpoint"]  # the same best checkpoint
    # 10 episodes of 3-way tasks with 2 queries per class: accuracies in sixths (float32).
    assert all(abs(accuracy * 6 - round(accuracy * 6)) < 1e-5
               for accuracy in cross["per_episode_accuracy"])
    for name, result in results.items():
        assert (f"{name}: {result['dataset']} {100 * result['mean_accuracy']:.2f} % "
                f"+- {100 * result['ci95']:.2f} % over 10 episodes") in out
