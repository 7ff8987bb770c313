"""Renders the docstrings' single-backtick spans: maths as maths, code as (linked) code.

The docstrings write maths in plain text between backticks (`g = J^T G J`, `sqrt(g_ii)`,
`kappa_i = 1 - sum_{k<=r} v_ki^2`) and name code the same way (`SiMECAttribution`,
`step_size`, `parity=True`). This extension makes that span Sphinx's default role and decides
per span:

- a Python name (`Walk`, `Walk.drift`, `~captum_simec.explore.Box`) becomes a `py:obj`
  cross-reference; a reference Sphinx cannot resolve links to the one documented module-level
  object (or dotted member) whose name ends with it, else stays plain code;
- an expression with code in it (keyword arguments, `*args`, attribute access, snake_case
  names, calls of named functions, string literals) stays code;
- an expression with maths in it becomes maths: italic variables, sub- and superscripts,
  Greek letters, `√`, `Σ`, `‖`, `≤`, built from standard docutils nodes (emphasis, subscript,
  superscript), so it renders offline with no JavaScript and in every builder.

Markdown pages (MyST) get the same treatment for their inline code spans that hold maths or
a Python name.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.domains.python import PyXRefRole
from sphinx.environment import BuildEnvironment
from sphinx.util.nodes import make_refnode

ROLE = "maths-or-code"

GREEK = {
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "epsilon": "ε",
    "eps": "ε",
    "theta": "θ",
    "kappa": "κ",
    "lambda": "λ",
    "mu": "μ",
    "rho": "ρ",
    "sigma": "σ",
    "tau": "τ",
    "phi": "φ",
    "Sigma": "Σ",
}
OPERATOR_WORDS = {"sqrt": "√", "sum": "Σ", "int": "∫"}
FUNCTIONS = {"max", "min", "argmax", "argmin", "diag", "span", "corr", "rank", "sign", "std"}
FUNCTIONS |= {"exp", "log", "tanh", "det", "dim", "mod"}
MATHS_WORDS = set(GREEK) | set(OPERATOR_WORDS) | FUNCTIONS
SYMBOLS = {
    "||": "‖",
    "<=": "≤",
    ">=": "≥",
    "!=": "≠",
    "<-": "←",
    "->": "→",
    "...": "…",
    "..": "…",
    "*": "·",
    "-": "−",
    "'": "′",
}

_NAME = r"~?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\(\))?"
_MATHS_NAME = r"[A-Za-z](?:_(?:\{[^}]*\}|[A-Za-z0-9]+))?"
_FUNCTION_WORDS = "|".join(sorted(MATHS_WORDS))
_SCRIPTED_WORDS = "|".join(sorted(MATHS_WORDS | {"d[A-Za-z]"}))  # rho_i, sum_k, dx_k: maths
CODE_SIGNALS = re.compile(
    "|".join(
        (
            r"\w=(?:\S|$)",  # keyword argument: parity=True, seed=s + i
            r"(?:^|[(,\s])\*{1,2}[A-Za-z_]",  # *inputs, **kwargs
            r"[A-Za-z_]\w*\.[A-Za-z_]",  # attribute access: fig.savefig, torch.func
            rf"\b(?!(?:{_SCRIPTED_WORDS})_)[A-Za-z][A-Za-z0-9]+_[A-Za-z0-9]",  # snake_case
            rf"\b(?!(?:{_FUNCTION_WORDS})\()[A-Za-z]{{2,}}\w*\(",  # a call of a named function
            r"\"|'\w+'",  # a string literal
            r"\(\.\.\.",  # grad(..., ...)
        )
    )
)
MATHS_SIGNALS = re.compile(
    rf"\b[A-Za-z]\b|[=<>^_|+*/−‖≤≥⊥ΣλσκρΣ∂]|\s-\s|\.\.|\b(?:{_FUNCTION_WORDS})\b"
)
TOKEN = re.compile(
    r"(?P<word>[A-Za-z]+[0-9]*)"
    r"|(?P<number>[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)"
    r"|(?P<symbol>\|\||<=|>=|!=|<-|->|\.\.\.|\.\.|[*'-])"
    r"|(?P<dot>(?<=\s)\.(?=\s))"
    r"|(?P<other>.)",
    re.S,
)


def classify(text: str) -> str:
    """``"reference"`` (a Python name), ``"code"`` or ``"maths"`` for one backtick span."""
    if re.fullmatch(_NAME, text) and not re.fullmatch(_MATHS_NAME, text):
        return "maths" if text in GREEK else "reference"
    if re.fullmatch(_MATHS_NAME, text):
        return "maths"
    if CODE_SIGNALS.search(text) or not MATHS_SIGNALS.search(text):
        return "code"
    return "maths"


def _script_argument(text: str, start: int, subscript: bool) -> tuple[str, int]:
    """The argument of `_` or `^` at `text[start:]` (braces, or a run) and where it ends."""
    if text.startswith("{", start):
        end = text.find("}", start)
        if end > start:
            return text[start + 1 : end], end + 1
    pattern = r"[A-Za-z0-9]+(?:,[A-Za-z0-9]+)*" if subscript else r"[A-Za-z0-9]+|[+⊥-]"
    match = re.compile(pattern).match(text, start)
    return (match.group(), match.end()) if match else ("", start)


def _word(word: str) -> list[nodes.Node]:
    if word in GREEK:
        return [nodes.emphasis("", GREEK[word])]
    if word in OPERATOR_WORDS:
        return [nodes.Text(OPERATOR_WORDS[word])]
    epsilon = re.fullmatch(r"eps(\d+)", word)
    if epsilon:  # eps64: the float64 epsilon
        return [nodes.emphasis("", "ε"), nodes.subscript("", epsilon.group(1))]
    if re.fullmatch(r"d[A-Za-z]", word):  # differentials: dx, df
        return [nodes.Text("d"), nodes.emphasis("", word[1])]
    if len(word) <= 2 and word not in FUNCTIONS:  # variables and index pairs: x, ki
        return [nodes.emphasis("", word)]
    return [nodes.Text(word)]  # function names and words stay upright


def render_maths(text: str) -> list[nodes.Node]:
    """Docutils nodes for one maths span: italic variables, scripts, symbols."""
    out: list[nodes.Node] = []
    position = 0
    while position < len(text):
        if text[position] in "_^" and out:
            subscript = text[position] == "_"
            argument, position = _script_argument(text, position + 1, subscript)
            script = nodes.subscript() if subscript else nodes.superscript()
            script += render_maths(argument)
            out.append(script)
            continue
        token = TOKEN.match(text, position)
        position = token.end()
        if token["word"]:
            out.extend(_word(token["word"]))
        elif token["symbol"]:
            out.append(nodes.Text(SYMBOLS[token["symbol"]]))
        elif token["dot"]:
            out.append(nodes.Text("·"))
        else:
            out.append(nodes.Text(token.group()))
    return out


def maths_node(rawtext: str, text: str) -> nodes.inline:
    node = nodes.inline(rawtext, "", classes=["maths"])
    node += render_maths(text)
    return node


_xref_role = PyXRefRole()


def maths_or_code_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: dict | None = None,
    content: tuple = (),
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """The default role: maths, a cross-reference, or code, as `classify` says."""
    kind = classify(text)
    if kind == "maths":
        return [maths_node(rawtext, text)], []
    if kind == "reference":
        return _xref_role("py:obj", rawtext, text, lineno, inliner, options or {}, content)
    return [nodes.literal(rawtext, text)], []


def convert_markdown_literals(app: Sphinx, doctree: nodes.document) -> None:
    """Inline code spans of Markdown pages: maths spans become maths, names links."""
    source = doctree.get("source") or ""
    if not source.endswith(".md"):
        return
    for literal in list(doctree.findall(nodes.literal)):
        if isinstance(literal.parent, (nodes.literal_block, pending_xref)):
            continue
        text = literal.astext()
        kind = classify(text)
        if kind == "maths":
            literal.replace_self(maths_node(text, text))
        elif kind == "reference":
            xref = pending_xref(
                "",
                refdomain="py",
                reftype="obj",
                reftarget=text.lstrip("~").removesuffix("()"),
                refexplicit=True,
                refdoc=app.env.docname,
            )
            xref += literal.deepcopy()
            literal.replace_self(xref)


def resolve_by_suffix(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.Node
) -> nodes.Node | None:
    """Links an unresolved Python name to the one module-level object (or dotted member)
    documented under a name that ends with it; leaves it alone when none or several do."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.").removesuffix("()")
    domain = env.get_domain("py")
    top_level = {"class", "function", "data", "exception", "module"}
    matches = [
        (full_name, entry)
        for full_name, entry in domain.objects.items()
        if (full_name == target or full_name.endswith("." + target))
        and ("." in target or entry.objtype in top_level)
        and not entry.aliased
    ]
    if len(matches) != 1:
        return None
    full_name, entry = matches[0]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_role(ROLE, maths_or_code_role)
    app.connect("doctree-read", convert_markdown_literals)
    app.connect("missing-reference", resolve_by_suffix)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
