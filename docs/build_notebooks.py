"""Builds tutorials/*.ipynb from the percent-format scripts beside them, executed, with figures.

    python docs/build_notebooks.py [NAME ...]     # make tutorials: every tutorial, or those named

The scripts stay the source: jupytext turns each `tutorials/NAME.py` into cells, one set-up
cell goes first (`SETUP`: it shows below each cell the figures that cell saves, since the
tutorials save their figures to files instead of showing them), nbclient runs the notebook in
a fresh kernel, and the executed notebook is written to `tutorials/NAME.ipynb`. Figures are
re-encoded at most `WIDTH` pixels wide in 256 colours, so a notebook stays well under 1 MB.
`tests/test_notebooks.py` checks that each notebook still matches its script.

Needs the `docs` extra (`pip install -e ".[docs]"`); real data are read from ../shared/data
(or `$CAPTUM_SIMEC_DATA`) when present, as when the scripts run on their own.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
WIDTH = 900  # pixels: figures are shown at most this wide
SETUP_TAG = "notebook-setup"
# warnings name the file that raised them: keep the notebook free of this machine's paths
# (installed packages as .../site-packages/..., the checkout's files relative to its root)
INSTALLED_PATH = re.compile(r"(?:/[^\s/:'\"]+)+/(?=site-packages/)")
SETUP = f"""\
# Notebook set-up, added by `make tutorials` (the script has no such cell): the tutorial saves
# its figures to files; this shows each new one, at a modest size, below the cell that saved it.
import io
import os
import tempfile
from pathlib import Path

from IPython import get_ipython
from IPython.display import Image, display
from PIL import Image as Picture

FIGURES = Path(os.environ.setdefault("CAPTUM_SIMEC_TUTORIAL_OUT", tempfile.mkdtemp()))
FIGURES.mkdir(parents=True, exist_ok=True)
_seen = {{path: path.stat().st_mtime_ns for path in FIGURES.rglob("*.png")}}


def _small_png(path: Path) -> bytes:
    picture = Picture.open(path).convert("RGB")
    picture.thumbnail(({WIDTH}, 4 * {WIDTH}))
    picture = picture.quantize(256, method=Picture.Quantize.FASTOCTREE)
    palette = picture.getpalette()
    for i in range(0, len(palette), 3):  # the octree greys white backgrounds: whiten them
        if min(palette[i : i + 3]) >= 246:
            palette[i : i + 3] = [255, 255, 255]
    picture.putpalette(palette)
    png = io.BytesIO()
    picture.save(png, format="png", optimize=True)
    return png.getvalue()


def _show_new_figures(result) -> None:
    new = [p for p in FIGURES.rglob("*.png") if _seen.get(p) != p.stat().st_mtime_ns]
    for path in sorted(new, key=lambda p: p.stat().st_mtime_ns):
        _seen[path] = path.stat().st_mtime_ns
        display(Image(_small_png(path)))


get_ipython().events.register("post_run_cell", _show_new_figures)"""


def tutorial_scripts(names: list[str] | None = None) -> list[Path]:
    """`tutorials/*.py`, or the named ones (with or without `.py`)."""
    if not names:
        return sorted(TUTORIALS.glob("*.py"))
    scripts = [TUTORIALS / (name if name.endswith(".py") else f"{name}.py") for name in names]
    missing = [str(script) for script in scripts if not script.is_file()]
    if missing:
        raise SystemExit(f"no such tutorial: {', '.join(missing)}")
    return scripts


def build(script: Path, timeout: int) -> Path:
    """Converts, executes and writes one notebook; returns its path."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(script)
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    setup = nbformat.v4.new_code_cell(SETUP, metadata={"tags": [SETUP_TAG]})
    notebook.cells.insert(0, setup)
    with tempfile.TemporaryDirectory(prefix="captum_simec_notebook_") as folder:
        # a relative figure folder keeps the printed paths the same from one build to the next
        os.environ["CAPTUM_SIMEC_TUTORIAL_OUT"] = "figures"
        # the kernel runs in a temporary folder: name the checkout's data folder explicitly
        if (ROOT.parent / "shared" / "data").is_dir():
            os.environ.setdefault("CAPTUM_SIMEC_DATA", str(ROOT.parent / "shared" / "data"))
        os.environ["MPLBACKEND"] = "Agg"
        # tqdm.auto warns in a kernel without ipywidgets; progress bars are off here anyway
        os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=timeout,
            record_timing=False,
            resources={"metadata": {"path": folder}},
        )
        client.execute()
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # stable ids: a rebuild changes only what really changed
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output["text"].replace(f"{ROOT}{os.sep}", "")  # the checkout's own files
                output["text"] = INSTALLED_PATH.sub(".../", text)
    target = script.with_suffix(".ipynb")
    nbformat.write(notebook, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="tutorials to build (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    for script in tutorial_scripts(args.names):
        start = time.perf_counter()
        target = build(script, args.timeout)
        size = target.stat().st_size / 1e6
        print(f"{target.relative_to(ROOT)}: {size:.2f} MB, {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
