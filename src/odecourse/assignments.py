"""The student edition: chapter notebooks with their solutions taken out.

The chapter notebooks are the instructor edition.  A coding exercise there is
a solution cell with nbgrader metadata whose reference code sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION``, followed by an autograded
test cell that calls :mod:`odecourse.checks`; a pen-and-paper exercise is a
sphinx-exercise ``{exercise}`` block, usually followed by a ``{solution}``
block in the same markdown cell.  :func:`student_edition` turns one into the
other:

1. nbgrader's own ``ClearSolutions`` preprocessor replaces every solution
   region by a stub; the stub's ``NotImplementedError`` then names the
   exercise (the cell's nbgrader ``grade_id``);
2. every ``{solution}`` directive (fenced with backticks or colons, nested
   fences included, and ``{solution-start}``/``{solution-end}`` pairs) is
   removed from the markdown cells, leaving the ``{exercise}`` blocks;
3. nbgrader's ``ClearOutput`` preprocessor clears every output.

Everything else is left as it is, nbgrader metadata included, so an
instructor who runs nbgrader can use either edition as its source.

Run ``python -m odecourse.assignments [--out DIR] [notebooks ...]``
(``make assignments``).  nbgrader is imported only when an edition is made.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat

__all__ = [
    "STUB_TEMPLATE",
    "main",
    "name_stubs",
    "strip_written_solutions",
    "student_edition",
    "write_student_editions",
]

#: Placeholder in the code stub, replaced by the exercise's nbgrader ``grade_id``.
_EXERCISE = "__EXERCISE__"

#: What a solution region becomes in the student edition (``{exercise}`` is filled in).
STUB_TEMPLATE = (
    "# YOUR CODE HERE\n"
    'raise NotImplementedError("Exercise {exercise}: replace this line with your code.")'
)

_OPENING = re.compile(r"^\s*(?P<fence>`{3,}|~{3,}|:{3,})\s*\{(?P<name>[\w:-]+)\}")


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened with ``fence`` (same character, as long or longer)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _skip_block(lines: list[str], start: int, fence: str) -> int:
    """Index just past the fence that closes the block opened at ``lines[start]``."""
    for index in range(start + 1, len(lines)):
        if _closes(lines[index], fence):
            return index + 1
    raise ValueError(f"unclosed {{solution}} block starting with {lines[start]!r}.")


def _skip_gated(lines: list[str], start: int) -> int:
    """Index just past the block that closes a ``{solution-end}`` directive."""
    for index in range(start + 1, len(lines)):
        match = _OPENING.match(lines[index])
        if match and match["name"] == "solution-end":
            return _skip_block(lines, index, match["fence"])
    raise ValueError(f"{{solution-start}} at {lines[start]!r} has no {{solution-end}}.")


def strip_written_solutions(markdown: str) -> str:
    """Remove every sphinx-exercise solution from a MyST markdown text.

    A ``{solution}`` directive runs from its opening fence to the first line
    that consists only of the same fence character, at least as many times
    (so inner blocks with shorter fences stay inside it).  A
    ``{solution-start}`` directive is removed together with everything up to
    and including its ``{solution-end}``.  Blank lines left behind are merged.

    Parameters
    ----------
    markdown : str
        The source of a markdown cell.

    Returns
    -------
    str
        The source without solutions; unchanged if it has none.

    Raises
    ------
    ValueError
        If a solution block is not closed.
    """
    if "{solution" not in markdown:
        return markdown
    lines, kept, index = markdown.split("\n"), [], 0
    while index < len(lines):
        match = _OPENING.match(lines[index])
        if match and match["name"] == "solution":
            index = _skip_block(lines, index, match["fence"])
        elif match and match["name"] == "solution-start":
            index = _skip_gated(lines, index)
        else:
            kept.append(lines[index])
            index += 1
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept))
    return text.strip("\n") if markdown == markdown.strip("\n") else text


def name_stubs(notebook: nbformat.NotebookNode) -> None:
    """Put each solution cell's nbgrader ``grade_id`` into its stub, in place."""
    for cell in notebook.cells:
        if _EXERCISE in cell.source:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "this exercise")
            cell.source = cell.source.replace(_EXERCISE, grade_id)


def student_edition(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the student edition of an instructor notebook (the input is not modified).

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        A chapter notebook (version 4).

    Returns
    -------
    nbformat.NotebookNode
        The notebook with solution regions stubbed, written solutions removed and
        outputs cleared.

    Raises
    ------
    RuntimeError
        From nbgrader, if a solution region is outside a solution cell or not closed.
    """
    from nbgrader.preprocessors import ClearOutput, ClearSolutions

    if not isinstance(notebook, nbformat.NotebookNode):
        raise TypeError(f"`notebook` must be an nbformat.NotebookNode; got {type(notebook)}.")
    student = nbformat.from_dict(notebook)  # a deep copy
    stub = STUB_TEMPLATE.format(exercise=_EXERCISE)
    clear_solutions = ClearSolutions(code_stub={"python": stub}, enforce_metadata=True)
    student, _ = clear_solutions.preprocess(student, {})
    name_stubs(student)
    for cell in student.cells:
        if cell.cell_type == "markdown":
            cell.source = strip_written_solutions(cell.source)
    student, _ = ClearOutput().preprocess(student, {})
    return student


def write_student_editions(notebooks: Sequence[str | Path], out: str | Path) -> list[Path]:
    """Write the student edition of each notebook to ``out`` under the same file name.

    Returns
    -------
    list of pathlib.Path
        The written files.
    """
    paths = [Path(path) for path in notebooks]
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"`notebooks` must be existing .ipynb files; got {str(path)!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        target = out / path.name
        nbformat.write(student_edition(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m odecourse.assignments [--out DIR] [notebooks ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m odecourse.assignments",
        description="Write the student edition of chapter notebooks.",
    )
    parser.add_argument("notebooks", nargs="*", help="default: chapters/*.ipynb")
    parser.add_argument("--out", default="_build/assignments", help="output folder")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(Path("chapters").glob("*.ipynb"))
    if not notebooks:
        parser.error("no notebooks given and none found in chapters/")
    try:
        written = write_student_editions(notebooks, args.out)
    except ValueError as exc:
        parser.error(str(exc))
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
