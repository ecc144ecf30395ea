"""The README's Python examples run as written, in a fresh interpreter.

Every ```python block of README.md runs in order, each in a fresh namespace
(a block defines everything it uses), with warnings turned into errors: a
user who pastes a block sees no warning either.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_RUNNER = """
import sys, warnings
warnings.simplefilter("error")
blocks = {blocks!r}
for index, code in enumerate(blocks):
    print(f"--- block {{index}}", flush=True)
    exec(compile(code, f"README.md python block {{index}}", "exec"), {{"__name__": "__main__"}})
"""


def python_blocks():
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_has_the_python_examples():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert "mg.MAML(" in blocks[0] and "mg.build_learner(" in blocks[1]


def test_every_python_block_of_the_readme_runs_without_warnings(tmp_path):
    blocks = python_blocks()
    result = subprocess.run([sys.executable, "-c", _RUNNER.format(blocks=blocks)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    first, second = result.stdout.split("--- block 1\n")
    # The first block's summary lists the backbone's layers with their shapes.
    assert re.search(r"conv0 \(Conv2D\)\s+│ \(None, 28, 28, 16\)", first)
    assert re.search(r"head \(Dense\)\s+│ \(None, 5\)", first)
    assert first.rstrip().endswith("(25, 5)")
    # Conv4-64 at 84 px with a 5-way head: 4 convolutions, 4 batch norms, the head, the step.
    convolutions = 3 * 3 * 3 * 64 + 64 + 3 * (3 * 3 * 64 * 64 + 64)
    batch_norms = 4 * 4 * 64
    head = 1600 * 5 + 5
    assert int(second.split()[-1]) == convolutions + batch_norms + head + 1
