"""The committed notebooks (tutorials/*.ipynb, built by `make tutorials`) match their scripts.

The percent-format scripts are the source; a notebook is the script's cells after one set-up
cell, executed, with figures. Reading both needs only the standard library (no jupytext).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from docs.build_notebooks import SETUP, SETUP_TAG, TUTORIALS

SCRIPTS = sorted(TUTORIALS.glob("*.py"))
MAX_BYTES = 700_000  # figures are re-encoded small; a notebook stays well under 1 MB
REBUILD = "run `make tutorials` (or `python docs/build_notebooks.py NAME`) and commit the result"
HEADER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?:\s.*)?$")


def percent_cells(text: str) -> list[tuple[str, str]]:
    """`(cell_type, source)` pairs of a percent-format script, as jupytext reads them.

    `# %%` opens a code cell, `# %% [markdown]` a markdown cell whose lines lose their
    leading `# ` (or `#`); blank lines at either end of a cell are dropped, and so is
    anything before the first marker that is only blank lines.
    """
    cells: list[tuple[str, list[str]]] = [("code", [])]
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            cells.append(("markdown" if header["markdown"] else "code", []))
        elif cells[-1][0] == "markdown":
            cells[-1][1].append(re.sub(r"^# ?", "", line))
        else:
            cells[-1][1].append(line)
    parsed = [(kind, "\n".join(lines).strip("\n")) for kind, lines in cells]
    return [(kind, source) for kind, source in parsed if source or kind == "markdown"]


def _notebook(script: Path) -> dict:
    path = script.with_suffix(".ipynb")
    if not path.is_file():
        pytest.fail(f"{path.name} is missing: {REBUILD}")
    return json.loads(path.read_text())


def _source_text(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)


def _source(cell: dict) -> str:
    return _source_text(cell["source"])


def test_the_percent_parser_reads_markers_markdown_and_blank_lines():
    script = (
        "# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\ny = 2\n\n# %% a title\nz = 3\n"
    )
    assert percent_cells(script) == [
        ("markdown", "# Title\n\ntext"),
        ("code", "x = 1\n\n\ny = 2"),
        ("code", "z = 3"),
    ]


def test_every_tutorial_has_a_notebook_and_every_notebook_a_tutorial():
    notebooks = {path.stem for path in TUTORIALS.glob("*.ipynb")}
    assert notebooks == {script.stem for script in SCRIPTS}, REBUILD


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_notebook_cells_match_the_script(script):
    cells = _notebook(script)["cells"]
    assert SETUP_TAG in cells[0]["metadata"].get("tags", []), f"{script.stem}: {REBUILD}"
    assert _source(cells[0]) == SETUP, f"{script.stem}: the set-up cell changed; {REBUILD}"
    built = [(cell["cell_type"], _source(cell)) for cell in cells[1:]]
    expected = percent_cells(script.read_text())
    for index, (have, want) in enumerate(zip(built, expected, strict=False)):
        assert have == want, f"{script.stem}: cell {index + 1} differs from the script; {REBUILD}"
    assert len(built) == len(expected), f"{script.stem}: cell count differs; {REBUILD}"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.stem)
def test_notebook_was_executed_with_figures_and_is_small(script):
    notebook = _notebook(script)
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert [cell["execution_count"] for cell in code] == list(range(1, len(code) + 1)), REBUILD
    outputs = [output for cell in code for output in cell["outputs"]]
    assert not [output for output in outputs if output["output_type"] == "error"]
    printed = "".join(_source_text(output.get("text", "")) for output in outputs)
    machine_path = re.search(r"/[^\s/]+/(site-packages|captum_simec)/", printed)
    assert not machine_path, "a path of the build machine"
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert figures, f"{script.stem}: no figure in the notebook"
    size = script.with_suffix(".ipynb").stat().st_size
    assert size < MAX_BYTES, f"{script.stem}.ipynb is {size} bytes"
