"""The training progress bar: its first ETA comes from the steps' pace, not the graph build."""

import re
import time

from mgaug_tf.training import trainer


def test_the_first_eta_leaves_out_the_first_steps_graph_build(monkeypatch, capsys):
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # Keras's Progbar reads time.time
    progress = trainer.Progress(5)  # not a terminal here: a line at most every 30 s
    clock[0] += 600.0  # step 1 builds the meta-step graph: 10 min
    progress.update(1, {"loss": 1.5})
    clock[0] += 40.0  # step 2: 40 s
    progress.update(2, {"loss": 1.25})
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line)
             for line in capsys.readouterr().out.splitlines() if line.strip()]
    # One line, after step 2: 3 steps left at 40 s each (drawn at step 1, the ETA
    # was 4 x 600 s = 40:00).
    assert len(lines) == 1 and lines[0].startswith("2/5 ")
    assert " 2:00 40s/step - loss: 1.2500" in lines[0]
    progress.message("step 2: a message")  # on a line of its own after the open bar line
    assert capsys.readouterr().out == "\nstep 2: a message\n"
