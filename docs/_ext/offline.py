"""Fails the build if a page would load a script, stylesheet or font from the network.

The reference must work offline (a user without internet, a headless browser in CI): the
theme's assets are local, and the maths is plain HTML (see `backticks`), so no MathJax.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

REMOTE_ASSET = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"")


def check_offline(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    remote = {
        str(page.relative_to(app.outdir)): match.group()
        for page in Path(app.outdir).rglob("*.html")
        if (match := REMOTE_ASSET.search(page.read_text(encoding="utf-8")))
    }
    if remote:
        raise ExtensionError(f"pages load assets from the network: {remote}")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("build-finished", check_offline)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
