"""Sphinx extension for the PDF edition: the code of coding solutions is left out.

``make pdf`` loads it (see ``_ext/pdf_config.py``).  In every literal block of a LaTeX
build, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` are replaced by one
line at the same indentation, as in the student edition (``make assignments``); the
written solutions are left out by sphinx-exercise's ``hide_solutions``.  Other builders
are not touched.

It also patches the class file that sphinx-jupyterbook-latex copies into the build:
``jupyterBook.cls`` loads ``bbm`` for ``\\mathbbm`` (its ``\\RR``, ``\\NN``, ... shortcuts,
which the book does not use), and Debian ships ``bbm.sty`` only in the 500 MB
``texlive-fonts-extra``.  The patched class maps ``\\mathbbm`` to ``\\mathbb`` instead.

And it mends two things in the ``.tex`` files.  sphinx-proof opens a proof's box with no
title argument (``\\begin{sphinxadmonition}{note}`` then the text), so LaTeX takes the
first paragraph command for the title and draws an empty title bar: the box gets the title
"Proof" instead of the inline word.  And a ``{ref}`` to an exercise
of another chapter comes out of sphinx-exercise as ``\\ref`` to a label that it never
defines (it labels exercises ``exercise:<label>``); such a reference becomes a link to
``exercise:<label>`` with the exercise's number as printed in its title.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from docutils import nodes

SOLUTION = re.compile(
    r"^([ \t]*)### BEGIN SOLUTION[ \t]*\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M
)
OMITTED = "...  # solution left out of the PDF edition"
BBM = "\\RequirePackage{bbm}"
NO_BBM = "\\providecommand{\\mathbbm}{\\mathbb}"
#: An exercise's label and the number its title prints, and a reference to an exercise by
#: a label in the form ``docname:label``, which no ``\\label`` defines.
EXERCISE_TITLE = re.compile(
    r"\\label\{exercise:([^}]+)\}\s*\\begin\{sphinxadmonition\}\{note\}\{(Exercise [0-9.]+)"
)
UNTITLED_PROOF = re.compile(r"\\begin\{sphinxadmonition\}\{note\}\n\\sphinxAtStartPar\nProof\. ")
EXERCISE_REF = re.compile(
    r"\\hyperref\[\\detokenize\{[^}:]+:([^}]+)\}\]\{Exercise \\ref\{\\detokenize\{[^}]+\}\}\}"
)


def strip_solutions(code: str) -> str:
    """``code`` with every solution region replaced by one indented placeholder line."""
    return SOLUTION.sub(lambda match: match.group(1) + OMITTED, code)


def _strip_doctree(app: Any, doctree: nodes.document, docname: str) -> None:
    if app.builder.format != "latex":
        return
    for block in doctree.findall(nodes.literal_block):
        code = block.astext()
        if "### BEGIN SOLUTION" in code:
            block.children = [nodes.Text(strip_solutions(code))]
            block.rawsource = block.children[0].astext()


def mend_exercise_refs(tex: str) -> str:
    """``tex`` with references to other chapters' exercises pointed at their labels."""
    numbers = dict(EXERCISE_TITLE.findall(tex))

    def mend(match: re.Match) -> str:
        label = match.group(1)
        if label not in numbers:
            return match.group(0)
        return f"\\hyperref[exercise:{label}]{{{numbers[label]}}}"

    return EXERCISE_REF.sub(mend, tex)


def title_proofs(tex: str) -> str:
    """``tex`` with every untitled proof box titled "Proof"."""
    return UNTITLED_PROOF.sub(r"\\begin{sphinxadmonition}{note}{Proof}\n\\sphinxAtStartPar\n", tex)


def _patch_build(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "latex":
        return
    outdir = Path(app.outdir)
    cls = outdir / "jupyterBook.cls"
    if cls.exists():
        cls.write_text(cls.read_text(encoding="utf-8").replace(BBM, NO_BBM), encoding="utf-8")
    for tex in outdir.glob("*.tex"):
        source = tex.read_text(encoding="utf-8")
        mended = title_proofs(mend_exercise_refs(source))
        if mended != source:
            tex.write_text(mended, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    app.connect("doctree-resolved", _strip_doctree)
    app.connect("build-finished", _patch_build)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
