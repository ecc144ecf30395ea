"""`mgaug-train --dataset=arrays --backbone=mlp`: sequences in npz files train and evaluate."""

import json

import numpy as np

from tests.trainers.conftest import call_train

RUN = ["--dataset=arrays", "--backbone=mlp", "--hidden_units=16", "--learner=maml",
       "--inner_steps=1", "--n_way=3", "--k_shot=1", "--k_query=2", "--meta_batch_size=1",
       "--train_steps=2", "--eval_every=2", "--val_episodes=2", "--eval_episodes=3",
       "--checkpoint_every=2", "--mode=train_and_eval"]


def _write_arrays(root, counts):
    """One data.npz of [N, 10, 3] sequences with string labels, and a CSV split file."""
    root.mkdir()
    names = [f"signal{index}" for index in range(len(counts))]
    y = np.repeat(names, counts)
    x = np.random.default_rng(0).normal(size=(len(y), 10, 3)).astype(np.float32)
    np.savez(root / "data.npz", x=x, y=y)
    splits = ["train"] * 4 + ["val"] * 3 + ["test"] * 3
    (root / "splits.csv").write_text("".join(f"{name},{split}\n"
                                             for name, split in zip(names, splits)))
    return root


def test_sequences_in_one_npz_train_and_evaluate(tmp_path):
    data_dir = _write_arrays(tmp_path / "arrays", [6] * 10)
    model_dir = tmp_path / "run"
    code, out, err = call_train([f"--data_dir={data_dir}", f"--split_file={data_dir / 'splits.csv'}",
                            f"--model_dir={model_dir}", *RUN])
    assert code == 0, err
    assert "3-way 1-shot, 10x3" in out
    result = json.loads((model_dir / "eval_test.json").read_text())
    assert result["dataset"] == "arrays" and result["num_episodes"] == 3
    assert 0 <= result["mean_accuracy"] <= 1


def test_a_short_class_of_arrays_stops_the_cli(tmp_path):
    data_dir = _write_arrays(tmp_path / "arrays", [6, 6, 6, 2] + [6] * 6)
    code, _, err = call_train([f"--data_dir={data_dir}", f"--split_file={data_dir / 'splits.csv'}",
                          f"--model_dir={tmp_path / 'run'}", *RUN])
    assert code == 2
    assert ("--k_shot + --k_query = 1 + 2 = 3 examples per class, but 1 class of arrays train "
            "(--train_split) has fewer: 'signal3' (2).") in err


def test_image_flags_are_refused_for_arrays_by_name(tmp_path):
    data_dir = _write_arrays(tmp_path / "arrays", [6] * 10)
    argv = [f"--data_dir={data_dir}", f"--split_file={data_dir / 'splits.csv'}",
            f"--model_dir={tmp_path / 'run'}", *RUN]
    code, _, err = call_train(argv + ["--augment=on"])
    assert code == 2
    assert ("--augment=on, but arrays train (--train_split) holds non-image examples of shape "
            "(10, 3), which are never augmented; use --augment=auto or off.") in err
    code, _, err = call_train(argv + ["--image_size=28"])
    assert code == 2
    assert ("--image_size=28: --dataset=arrays does not take it (it takes --split_file); leave "
            "it unset.") in err
