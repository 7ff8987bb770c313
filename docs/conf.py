"""Sphinx configuration: the API reference from the docstrings, and the Markdown notes.

Sphinx (autodoc + napoleon) because it is what Captum's and PyTorch's references are built
with: the same Google-style docstrings, the same look of signatures and fields. MyST reads
the Markdown pages and includes the README's score table. Build with `make docs`.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # this checkout's captum_simec

from captum_simec import __version__  # noqa: E402

project = "captum_simec"
author = "the captum_simec developers"
copyright = "2026, the captum_simec developers"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
    "backticks",  # single backticks: maths rendered as maths, names as links
    "public_api",  # docs/api/ from every __all__; fails on an undocumented public name
    "docstrings",  # `(batch, *shape)` and wrapped parameter groups made valid reST
    "offline",  # no page loads anything from the network
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "build_notebooks.py"]
default_role = "maths-or-code"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # dataclass fields listed once, not as duplicate attributes

myst_heading_anchors = 3

html_theme = "furo"
html_title = f"captum_simec {version}"
html_static_path = ["_static"]
html_css_files = ["maths.css"]
html_show_sourcelink = False
