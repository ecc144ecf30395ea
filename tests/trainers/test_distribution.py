"""Distributed meta-steps give the single-device update: 2 logical CPUs, 2 worker processes."""

import json

import numpy as np

from tests.trainers.conftest import (REFERENCE_FLAGS, RUN, Cli, checkpoint_tensors, cli_env,
                                     free_port, max_difference)

FINAL = "ckpt-6"
# float32 round-off of the replicas' sums, carried through 6 momentum steps.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)


def _assert_same_run(reference_dir, model_dir):
    expected = checkpoint_tensors(reference_dir / FINAL)
    got = checkpoint_tensors(model_dir / FINAL)
    assert expected.keys() == got.keys()
    for name in expected:  # weights, BN moving statistics, momentum slots, meta_step
        np.testing.assert_allclose(got[name], expected[name], err_msg=name, **TOLERANCE)
    reference_eval = json.loads((reference_dir / "eval_test.json").read_text())
    evaluation = json.loads((model_dir / "eval_test.json").read_text())
    assert evaluation["per_episode_accuracy"] == reference_eval["per_episode_accuracy"]
    return max_difference(expected, got, only="learner_variables")


def test_mirrored_on_two_logical_cpus_matches_one_device(reference_run, reference_runs):
    cli, model_dir = reference_runs.finished("mirrored")  # --cpu_devices=2 --strategy=mirrored
    assert "2 replica(s) on 1 worker(s)" in cli.stdout
    difference = _assert_same_run(reference_run, model_dir)
    print(f"mirrored vs one device, max |difference| of the weights: {difference:.3g}")


def test_two_worker_processes_match_one_process(reference_run, tmp_path):
    model_dir = tmp_path / "model"
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster,
                                    "task": {"type": "worker", "index": index}})
            workers.append(Cli(RUN, REFERENCE_FLAGS + [f"--model_dir={model_dir}",
                                                       "--strategy=multi_worker"],
                               tmp_path, f"worker{index}", env=cli_env(TF_CONFIG=tf_config)))
        for worker in workers:
            worker.check()
    finally:
        for worker in workers:
            worker.kill()
    assert "2 replica(s) on 2 worker(s)" in workers[0].stdout
    assert workers[1].stdout == ""  # only the chief reports
    # The chief keeps the files; the other worker's scratch copies are gone.
    assert not list(model_dir.glob(".worker_*"))
    difference = _assert_same_run(reference_run, model_dir)
    print(f"2 workers vs 1 process, max |difference| of the weights: {difference:.3g}")

