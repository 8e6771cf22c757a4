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

Everything else is left as it is, nbgrader metadata included.  The student
edition is *not* an nbgrader source: its solution cells no longer carry the
solution markers, so ``nbgrader generate_assignment`` would replace each of
them whole by nbgrader's stub, taking the function signatures and helpers
with it.  Nor is the instructor edition as it stands: nbgrader cannot see the
``{solution}`` blocks of the pen-and-paper exercises and would ship them to
students.  :func:`nbgrader_source` makes the source nbgrader needs (written
solutions removed, solution markers kept, outputs cleared) and
:func:`write_nbgrader_course` writes a complete nbgrader course directory
with one assignment per chapter.

Command line (``make assignments``, ``make nbgrader-course``)::

    python -m odecourse.assignments [--out DIR] [--zip FILE] [notebooks ...]
    python -m odecourse.assignments nbgrader-course DIR [notebooks ...]

nbgrader is imported only when an edition is made.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import nbformat

__all__ = [
    "COURSE_ID",
    "NBGRADER_CONFIG",
    "STUB_TEMPLATE",
    "main",
    "name_stubs",
    "nbgrader_source",
    "strip_written_solutions",
    "student_edition",
    "write_nbgrader_course",
    "write_student_editions",
    "write_zip",
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
    paths = _existing_notebooks(notebooks)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        target = out / path.name
        nbformat.write(student_edition(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def nbgrader_source(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the nbgrader source of an instructor notebook (the input is not modified).

    The ``{solution}`` blocks of the pen-and-paper exercises are removed and
    the outputs cleared; the coding exercises keep their reference code
    between the solution markers, which ``nbgrader generate_assignment``
    replaces by a stub.

    Parameters
    ----------
    notebook : nbformat.NotebookNode
        A chapter notebook (version 4).

    Returns
    -------
    nbformat.NotebookNode
        The source notebook for nbgrader.

    Raises
    ------
    TypeError
        If ``notebook`` is not an ``nbformat.NotebookNode``.
    ValueError
        If a written solution block is not closed.
    """
    from nbgrader.preprocessors import ClearOutput

    if not isinstance(notebook, nbformat.NotebookNode):
        raise TypeError(f"`notebook` must be an nbformat.NotebookNode; got {type(notebook)}.")
    source = nbformat.from_dict(notebook)  # a deep copy
    for cell in source.cells:
        if cell.cell_type == "markdown":
            cell.source = strip_written_solutions(cell.source)
    source, _ = ClearOutput().preprocess(source, {})
    return source


#: The course id that :func:`write_nbgrader_course` writes into ``nbgrader_config.py``.
COURSE_ID = "odecourse"

#: The ``nbgrader_config.py`` of the course directory (``{course_id}`` is filled in).
NBGRADER_CONFIG = """\
# nbgrader configuration of this course, written by
# python -m odecourse.assignments nbgrader-course.
# Each chapter is an assignment: source/<chapter>/<chapter>.ipynb.
c = get_config()  # noqa: F821

c.CourseDirectory.course_id = "{course_id}"

# What nbgrader puts in place of the code between the solution markers.
c.ClearSolutions.code_stub = {{
    "python": '# YOUR CODE HERE\\nraise NotImplementedError("Replace this line with your code.")'
}}

# Seconds a cell may run during autograde (nbgrader's default is 30); the
# training cells of Chapters 5-8 take longer than that on a slow laptop.
c.Execute.timeout = 300
"""


def write_nbgrader_course(
    notebooks: Sequence[str | Path], course_dir: str | Path, course_id: str = COURSE_ID
) -> list[Path]:
    """Write an nbgrader course directory with one assignment per chapter.

    Each notebook ``chapters/<chapter>.ipynb`` becomes
    ``source/<chapter>/<chapter>.ipynb`` (see :func:`nbgrader_source`).
    ``nbgrader_config.py`` is written only if the folder has none, so that an
    instructor's own settings survive when the sources are refreshed; the
    gradebook and every other folder are left alone.

    Parameters
    ----------
    notebooks : sequence of str or pathlib.Path
        Chapter notebooks (instructor edition).
    course_dir : str or pathlib.Path
        The course directory, created if missing.
    course_id : str, optional
        The nbgrader course id; letters, digits, ``-`` and ``_``.

    Returns
    -------
    list of pathlib.Path
        The written files, ``nbgrader_config.py`` first if it was written.

    Raises
    ------
    TypeError
        If ``course_id`` is not a string.
    ValueError
        If a notebook is not an existing ``.ipynb`` file, or ``course_id`` is
        not a valid id.
    """
    paths = _existing_notebooks(notebooks)
    if not isinstance(course_id, str):
        raise TypeError(f"`course_id` must be a str; got {type(course_id).__name__} {course_id!r}.")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", course_id):
        raise ValueError(f"`course_id` must be letters, digits, '-' and '_'; got {course_id!r}.")
    course = Path(course_dir)
    course.mkdir(parents=True, exist_ok=True)
    written = []
    config = course / "nbgrader_config.py"
    if not config.exists():
        config.write_text(NBGRADER_CONFIG.format(course_id=course_id), encoding="utf-8")
        written.append(config)
    for path in paths:
        target = course / "source" / path.stem / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbgrader_source(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


def write_zip(files: Sequence[str | Path], target: str | Path, folder: str) -> Path:
    """Write ``files`` into the zip archive ``target``, inside one top folder.

    The archive is reproducible: fixed time stamps and permissions, files in
    the order given.

    Parameters
    ----------
    files : sequence of str or pathlib.Path
        Existing files; their names (not their folders) are kept.
    target : str or pathlib.Path
        The archive to write; its folder is created if missing.
    folder : str
        The folder the files appear in when the archive is unpacked.

    Returns
    -------
    pathlib.Path
        ``target``.

    Raises
    ------
    TypeError
        If ``folder`` is not a string.
    ValueError
        If a file does not exist, two files share a name, or ``folder`` is
        empty or contains a slash.
    """
    paths = [Path(file) for file in files]
    for path in paths:
        if not path.is_file():
            raise ValueError(f"`files` must be existing files; got {str(path)!r}.")
    names = [path.name for path in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"`files` must have distinct names; got {names}.")
    if not isinstance(folder, str):
        raise TypeError(f"`folder` must be a str; got {type(folder).__name__} {folder!r}.")
    if not folder or "/" in folder or "\\" in folder:
        raise ValueError(f"`folder` must be a non-empty name without slashes; got {folder!r}.")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            info = zipfile.ZipInfo(f"{folder}/{path.name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return target


def _existing_notebooks(notebooks: Sequence[str | Path]) -> list[Path]:
    paths = [Path(path) for path in notebooks]
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"`notebooks` must be existing .ipynb files; got {str(path)!r}.")
    return paths


def _course_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m odecourse.assignments nbgrader-course",
        description="Write an nbgrader course directory, one assignment per chapter.",
    )
    parser.add_argument("course_dir", help="the course directory (created if missing)")
    parser.add_argument("notebooks", nargs="*", help="default: chapters/*.ipynb")
    parser.add_argument("--course-id", default=COURSE_ID, help="nbgrader course id")
    args = parser.parse_intermixed_args(argv)
    notebooks = args.notebooks or sorted(Path("chapters").glob("*.ipynb"))
    if not notebooks:
        parser.error("no notebooks given and none found in chapters/")
    try:
        written = write_nbgrader_course(notebooks, args.course_dir, args.course_id)
    except ValueError as exc:
        parser.error(str(exc))
    for path in written:
        print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: the student edition, or with ``nbgrader-course`` an nbgrader course.

    ``python -m odecourse.assignments [--out DIR] [--zip FILE] [notebooks ...]``
    writes the student edition (and, with ``--zip``, an archive of it);
    ``python -m odecourse.assignments nbgrader-course DIR [notebooks ...]``
    writes an nbgrader course directory (:func:`write_nbgrader_course`).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["nbgrader-course"]:
        _course_main(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m odecourse.assignments",
        description="Write the student edition of chapter notebooks.",
        epilog="python -m odecourse.assignments nbgrader-course DIR [notebooks ...] writes "
        "an nbgrader course directory instead.",
    )
    parser.add_argument("notebooks", nargs="*", help="default: chapters/*.ipynb")
    parser.add_argument("--out", default="_build/assignments", help="output folder")
    parser.add_argument(
        "--zip", metavar="FILE", help="also write the edition into this zip archive"
    )
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(Path("chapters").glob("*.ipynb"))
    if not notebooks:
        parser.error("no notebooks given and none found in chapters/")
    try:
        written = write_student_editions(notebooks, args.out)
    except ValueError as exc:
        parser.error(str(exc))
    if args.zip:
        written.append(write_zip(written, args.zip, folder=Path(args.zip).stem))
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
