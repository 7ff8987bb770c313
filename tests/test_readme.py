"""The README's Python examples run as written, in order."""

import importlib.util
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_commands():
    head = README.read_text().splitlines()[:10]
    assert any("make demo" in line for line in head)
    assert any("make test" in line for line in head)


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README should show a runnable example"
    namespace: dict = {}  # the blocks build on each other, as a reader runs them
    for block in blocks:
        if "import transformers" in block and importlib.util.find_spec("transformers") is None:
            continue  # the text example needs the `text` extra (make test installs it)
        exec(compile(block, str(README), "exec"), namespace)
