"""meta_step.py's precision options: --dtype builds the mixed-precision learner, --select filters."""

import pytest

from tests.benchmarks.test_retracing import meta_step


def test_dtype_suite_pairs_float32_and_bfloat16_for_each_learner_and_mgaug_setting():
    rows = meta_step.SUITES["dtype"]
    assert len(rows) == 12
    keys = {(row["learner"], row.get("num_subnets", 0), row["dtype"]) for row in rows}
    assert keys == {(learner, k, dtype) for learner in ("maml", "fomaml", "protonet")
                    for k in (0, 3) for dtype in ("float32", "mixed_bfloat16")}


def test_targets_suite_is_issue_13s_table_on_pinned_cores():
    rows = meta_step.SUITES["targets"]
    assert all(row["cores"] in (1, 2) for row in rows)
    assert [row for row in rows if row["cores"] == 2] == [
        dict(learner="maml", cores=2, mgaug="none")]
    issue = [(row["learner"], row.get("num_subnets", 0), row.get("meta_batch_size", 4),
              row.get("resolutions")) for row in rows[:7]]
    assert issue == [("maml", 0, 4, None), ("maml", 3, 4, None), ("fomaml", 0, 4, None),
                     ("fomaml", 3, 4, None), ("protonet", 0, 1, None), ("protonet", 3, 1, None),
                     ("protonet", 3, 1, "84,64,48")]
    assert all(dict(row, cores=1) in rows for row in meta_step.RELEASED_ROWS)


def test_select_keeps_matching_rows_and_compares_unset_keys_with_the_flags():
    args = meta_step.parse_args(["--dtype=float32"])
    rows = meta_step.SUITES["dtype"]
    chosen = meta_step.select_rows(rows, "learner=maml,dtype=mixed_bfloat16", args)
    assert [(row["mgaug"], row["dtype"]) for row in chosen] == [
        ("none", "mixed_bfloat16"), ("catfish", "mixed_bfloat16")]
    # `recompute` is set by no dtype row: compared with the flag's default (False).
    assert meta_step.select_rows(rows, "recompute=False", args) == rows
    with pytest.raises(ValueError, match="no row"):
        meta_step.select_rows(rows, "learner=anil", args)
    with pytest.raises(ValueError, match="key=value"):
        meta_step.select_rows(rows, "colour=red", args)


def test_dtype_flag_builds_a_bfloat16_network_with_float32_weights():
    args = meta_step.parse_args(["--learner=fomaml", "--filters=4", "--image_size=16",
                                 "--channels=1", "--inner_steps=1", "--meta_batch_size=1",
                                 "--dtype=mixed_bfloat16", "--mgaug=none"])
    learner = meta_step.build_learner(args)
    assert learner.network.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in learner.trainable_variables)
    assert all(norm.fused == "auto" for _, norm, _, _ in learner.network.backbone.blocks)
