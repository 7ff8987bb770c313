"""The docs extensions (docs/_ext): backtick maths, the public-name check, docstring fixes.

`make docs` builds the reference (and `make test` runs it); these tests pin the pieces that
decide what a reader sees. They need Sphinx (the `docs` extra) and skip without it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e .[docs])")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "_ext"))

import backticks  # noqa: E402
import docstrings  # noqa: E402
import public_api  # noqa: E402
from docutils import nodes  # noqa: E402
from sphinx.errors import ExtensionError  # noqa: E402


def _html_like(text: str) -> str:
    """The maths nodes written out with <i>, <sub> and <sup>, for short assertions."""

    def walk(node: nodes.Node) -> str:
        if isinstance(node, nodes.Text):
            return str(node)
        inner = "".join(walk(child) for child in node.children)
        tags = {nodes.emphasis: "i", nodes.subscript: "sub", nodes.superscript: "sup"}
        tag = tags.get(type(node))
        return f"<{tag}>{inner}</{tag}>" if tag else inner

    return "".join(walk(node) for node in backticks.render_maths(text))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("g = J^T G J", "maths"),
        ("sqrt(g_ii)", "maths"),
        ("kappa_i = 1 - sum_{k<=r} v_ki^2", "maths"),
        ("x_0", "maths"),
        ("delta", "maths"),
        ("SiMECAttribution", "reference"),
        ("Walk.drift", "reference"),
        ("~captum_simec.explore.Box", "reference"),
        ("step_size", "reference"),
        ("parity=True", "code"),
        ("forward_func(*inputs, *additional_args)", "code"),
        ("fig.savefig(path)", "code"),
        ("x <- x + step_size * u", "code"),
        ('"target"', "code"),
        ("make test", "code"),
        ("(index, item)", "code"),
    ],
)
def test_backtick_spans_are_told_apart(text, kind):
    assert backticks.classify(text) == kind


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("g = J^T G J", "<i>g</i> = <i>J</i><sup><i>T</i></sup> <i>G</i> <i>J</i>"),
        ("sqrt(g_ii)", "√(<i>g</i><sub><i>ii</i></sub>)"),
        ("||A e_i||^2", "‖<i>A</i> <i>e</i><sub><i>i</i></sub>‖<sup>2</sup>"),
        ("sum_{k<=r} v_ki", "Σ<sub><i>k</i>≤<i>r</i></sub> <i>v</i><sub><i>ki</i></sub>"),
        ("max_{j != t} f_j", "max<sub><i>j</i> ≠ <i>t</i></sub> <i>f</i><sub><i>j</i></sub>"),
        (
            "A^+ = V_r S_r^{-2}",
            "<i>A</i><sup>+</sup> = <i>V</i><sub><i>r</i></sub> "
            "<i>S</i><sub><i>r</i></sub><sup>−2</sup>",
        ),
        (
            "|x_flip,i - x_0,i|",
            "|<i>x</i><sub>flip,<i>i</i></sub> − <i>x</i><sub>0,<i>i</i></sub>|",
        ),
        ("x_0, ..., x_T", "<i>x</i><sub>0</sub>, …, <i>x</i><sub><i>T</i></sub>"),
        ("J = df/dx", "<i>J</i> = d<i>f</i>/d<i>x</i>"),
        ("kappa", "<i>κ</i>"),
    ],
)
def test_maths_is_rendered_with_italics_scripts_and_symbols(text, rendered):
    assert _html_like(text) == rendered


def test_every_public_name_gets_a_page_entry_under_its_defining_module():
    modules = public_api.public_modules()
    names = public_api.public_names(modules)
    listed = {(module.__name__, name) for module in modules for name in module.__all__}
    assert {(entry.module, entry.name) for entry in names} == listed
    assert "captum_simec.explore" in {module.__name__ for module in modules}
    homes = {(entry.module, entry.name): entry.home for entry in names}
    assert homes[("captum_simec", "Box")] == "captum_simec.explore"
    assert homes[("captum_simec", "__version__")] == "captum_simec"
    pages = {module.__name__: public_api.module_page(module, names) for module in modules}
    assert ".. autoclass:: captum_simec.explore.Box" in pages["captum_simec.explore"]
    assert "<captum_simec.explore.Box>" in pages["captum_simec"]  # a link, not a second copy
    for entry in names:
        if entry.home == entry.module:
            assert f":: {entry.target}\n" in pages[entry.module], entry.target


def _environment(documented: set[str]) -> SimpleNamespace:
    domain = SimpleNamespace(objects=dict.fromkeys(documented))
    return SimpleNamespace(get_domain=lambda name: domain)


def test_the_build_fails_when_a_public_name_is_not_documented():
    names = public_api.public_names(public_api.public_modules())
    every = {entry.target for entry in names}
    public_api.check_coverage(SimpleNamespace(), _environment(every))  # complete: passes
    with pytest.raises(
        ExtensionError, match=r"missing from the API reference: \['captum_simec.explore.simec'\]"
    ):
        public_api.check_coverage(
            SimpleNamespace(), _environment(every - {"captum_simec.explore.simec"})
        )


def test_generated_dataclass_docstrings_do_not_count_as_documentation():
    from dataclasses import dataclass

    @dataclass
    class Bare:
        size: int

    @dataclass
    class Described:
        """A described class."""

        size: int

    assert not public_api._has_own_docstring(Bare)
    assert public_api._has_own_docstring(Described)


def test_docstring_habits_become_valid_rest():
    lines = [
        "Points (batch, *input_shape), see `forward_func(*inputs)`.",
        "Args:",
        "    step_size: the step.",
        "    seed, generator,",
        "        progress: as in `simec`.",
        "Attributes:",
        "    low, high (float): the interval,",
        "        closed.",
        "    size: the size.",
    ]
    docstrings.fix_docstring(None, "function", "f", None, None, lines)
    assert lines == [
        "Points (batch, \\*input_shape), see `forward_func(*inputs)`.",
        "Args:",
        "    step_size: the step.",
        "    seed, generator, progress: as in `simec`.",
        "Attributes:",
        "    low (float): the interval,",
        "        closed.",
        "    high (float): the interval,",
        "        closed.",
        "    size: the size.",
    ]


def test_constants_do_not_borrow_the_docstring_of_their_type():
    lines = (str.__doc__ or "").splitlines()
    docstrings.fix_docstring(None, "data", "__version__", "0.1.0", None, lines)
    assert lines == []
    own = ["The version."]
    docstrings.fix_docstring(None, "data", "__version__", "0.1.0", None, own)
    assert own == ["The version."]
