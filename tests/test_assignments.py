"""The student edition: no solution text, named stubs, checks that fail with hints, not crashes.

The instructor edition is ``chapters/*.ipynb`` itself; nbval re-runs it, so
here it is enough that every stored check output shows the success verdict.
The student edition is generated into a temporary folder and executed; each
notebook is a separate test so that ``pytest -n 2`` runs them in parallel.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from odecourse.assignments import main, strip_written_solutions, student_edition

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _is_solution(cell) -> bool:
    return bool(_nbgrader(cell).get("solution"))


def _is_check(cell) -> bool:
    return bool(_nbgrader(cell).get("grade")) and cell.cell_type == "code"


def _solution_lines(source: str) -> list[str]:
    """Non-blank lines between BEGIN and END SOLUTION."""
    lines, inside = [], False
    for line in source.split("\n"):
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        elif inside and line.strip():
            lines.append(line.strip())
    return lines


_SOLUTION_BLOCK = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{solution\}[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.M | re.S
)


def _written_solution_lines(markdown: str) -> list[str]:
    """Non-blank lines of every ``{solution}`` body, options excluded."""
    lines = []
    for match in _SOLUTION_BLOCK.finditer(markdown):
        body = match["body"].split("\n")
        lines += [line.strip() for line in body if line.strip() and not line.startswith(":")]
    return lines


def _public_lines(source: str) -> set[str]:
    """Stripped lines of a cell outside its solution regions and ``{solution}`` blocks."""
    outside = re.sub(rf"{BEGIN}.*?{END}", "", source, flags=re.S)
    outside = _SOLUTION_BLOCK.sub("", outside)
    return {line.strip() for line in outside.split("\n")}


@pytest.fixture(scope="module")
def editions() -> dict[str, tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    pairs = {}
    for path in NOTEBOOKS:
        instructor = nbformat.read(path, as_version=4)
        pairs[path.name] = (instructor, student_edition(instructor))
    return pairs


def test_every_existing_chapter_has_two_coding_exercises(editions):
    for name in ("01-initial-value-problems.ipynb", "05-residual-networks.ipynb"):
        instructor, _ = editions[name]
        assert sum(map(_is_solution, instructor.cells)) >= 2, name
        assert sum(map(_is_check, instructor.cells)) >= 2, name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_contains_no_solution_text(editions, path):
    instructor, student = editions[path.name]
    text = "\n".join(cell.source for cell in student.cells)
    assert BEGIN not in text and END not in text
    assert "{solution}" not in text
    secret, public = set(), set()
    for cell in instructor.cells:
        hidden = _solution_lines(cell.source) + _written_solution_lines(cell.source)
        secret.update(hidden)
        public.update(_public_lines(cell.source))
    # A line such as "$$" also occurs outside solutions; every other solution line must be gone.
    student_lines = {line.strip() for line in text.split("\n")}
    leaked = (secret & student_lines) - public
    assert not leaked, f"{path.name}: solution lines leaked: {sorted(leaked)[:3]}"
    assert secret - public, f"{path.name}: no distinctive solution lines to look for"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_keeps_everything_else(editions, path):
    instructor, student = editions[path.name]
    assert len(student.cells) == len(instructor.cells)
    assert student.metadata == instructor.metadata
    for before, after in zip(instructor.cells, student.cells, strict=True):
        assert after.cell_type == before.cell_type
        assert after.get("outputs", []) == [] and after.get("execution_count") is None
        assert _nbgrader(after) == _nbgrader(before)
        assert after.metadata.get("tags") == before.metadata.get("tags")
        if _is_solution(before):
            grade_id = _nbgrader(before)["grade_id"]
            assert f'raise NotImplementedError("Exercise {grade_id}:' in after.source
        elif before.cell_type == "markdown" and "{solution" in before.source:
            assert after.source == strip_written_solutions(before.source)
            assert after.source.count("{exercise}") == before.source.count("{exercise}")
        else:
            assert after.source == before.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_instructor_edition_checks_all_pass(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in filter(_is_check, notebook.cells):
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert printed.startswith("✓ "), f"{path.name}: {_nbgrader(cell)['grade_id']}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_runs_and_every_check_fails_with_a_hint(tmp_path, path):
    """Execute the student edition: check cells fail with CheckFailed, no other cell errors."""
    from nbclient import NotebookClient

    main(["--out", str(tmp_path), str(path)])
    student = nbformat.read(tmp_path / path.name, as_version=4)
    NotebookClient(
        student, timeout=600, allow_errors=True, resources={"metadata": {"path": str(CHAPTERS)}}
    ).execute()
    for index, cell in enumerate(student.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if _is_check(cell):
            assert [e.ename for e in errors] == ["CheckFailed"], f"{path.name} cell {index}"
            assert "not implemented yet" in errors[0].evalue and "Hint:" in errors[0].evalue
            printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert printed.startswith("✗ Not yet:")
        else:
            assert not errors, f"{path.name} cell {index}: {errors[0].ename if errors else ''}"


WRITTEN = """Intro.

```{exercise} One
:label: ex-one

Question one.
```

````{solution} ex-one
:class: dropdown

Answer one, with code:

```python
print("secret")
```
````

:::{exercise} Two
:label: ex-two
Question two.
:::

::::{solution} ex-two
:::{note}
Nested secret.
:::
::::

```{solution-start} ex-two
```
Gated secret.
```{solution-end}
```
Outro."""


def test_strip_written_solutions_handles_fences_nesting_and_gated_blocks():
    stripped = strip_written_solutions(WRITTEN)
    assert "secret" not in stripped and "{solution" not in stripped
    for kept in ("Intro.", "Question one.", "Question two.", "Outro.", ":label: ex-two"):
        assert kept in stripped
    assert stripped.count("```") == 2 and "\n\n\n" not in stripped
    assert strip_written_solutions("No exercises here.") == "No exercises here."


def test_strip_written_solutions_rejects_an_unclosed_block():
    with pytest.raises(ValueError, match="unclosed"):
        strip_written_solutions("```{solution} ex-x\nAnswer.\n")
    with pytest.raises(ValueError, match="no \\{solution-end\\}"):
        strip_written_solutions("```{solution-start} ex-x\n```\nAnswer.\n")


def test_student_edition_refuses_a_solution_region_outside_a_solution_cell():
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    notebook.cells.append(nbformat.v4.new_code_cell(f"{BEGIN}\nx = 1\n{END}"))
    with pytest.raises(RuntimeError, match="non-solution cell"):
        student_edition(notebook)
    with pytest.raises(TypeError, match=r"`notebook` must be an nbformat\.NotebookNode"):
        student_edition({"cells": []})


def test_command_line_writes_every_notebook(tmp_path, capsys):
    main(["--out", str(tmp_path / "out"), *map(str, NOTEBOOKS)])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in NOTEBOOKS]
    assert capsys.readouterr().out.count("wrote ") == len(NOTEBOOKS)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), str(tmp_path / "missing.txt")])


def test_zip_of_the_student_edition_is_reproducible_and_holds_every_edition(tmp_path, capsys):
    import zipfile

    chapters = [str(path) for path in NOTEBOOKS[:2]]
    archive = tmp_path / "downloads" / "odecourse-student-edition.zip"
    main(["--out", str(tmp_path / "a"), "--zip", str(archive), *chapters])
    first = archive.read_bytes()
    main(["--out", str(tmp_path / "b"), "--zip", str(archive), *chapters])
    assert archive.read_bytes() == first
    assert capsys.readouterr().out.count(f"wrote {archive}") == 2
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        assert names == [f"odecourse-student-edition/{path.name}" for path in NOTEBOOKS[:2]]
        for path in NOTEBOOKS[:2]:
            packed = opened.read(f"odecourse-student-edition/{path.name}")
            assert packed == (tmp_path / "a" / path.name).read_bytes()


def test_write_zip_rejects_bad_arguments(tmp_path):
    from odecourse.assignments import write_zip

    note = tmp_path / "note.txt"
    note.write_text("x")
    other = tmp_path / "sub" / "note.txt"
    other.parent.mkdir()
    other.write_text("y")
    with pytest.raises(ValueError, match="`files` must be existing files"):
        write_zip([tmp_path / "missing.txt"], tmp_path / "a.zip", "folder")
    with pytest.raises(ValueError, match="`files` must have distinct names"):
        write_zip([note, other], tmp_path / "a.zip", "folder")
    for folder in ("", "a/b"):
        with pytest.raises(ValueError, match="`folder` must be a non-empty name"):
            write_zip([note], tmp_path / "a.zip", folder)
    with pytest.raises(TypeError, match="`folder` must be a str; got int 3"):
        write_zip([note], tmp_path / "a.zip", 3)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbgrader_source_keeps_markers_and_drops_written_solutions(path):
    """The nbgrader source: written solutions gone, reference code between the markers kept."""
    from odecourse.assignments import nbgrader_source

    instructor = nbformat.read(path, as_version=4)
    source = nbgrader_source(instructor)
    assert len(source.cells) == len(instructor.cells) and source.metadata == instructor.metadata
    for before, after in zip(instructor.cells, source.cells, strict=True):
        assert after.get("outputs", []) == [] and after.get("execution_count") is None
        assert after.metadata == before.metadata
        if before.cell_type == "markdown":
            assert after.source == strip_written_solutions(before.source)
            assert "{solution" not in after.source
        else:
            assert after.source == before.source
    text = "\n".join(cell.source for cell in source.cells)
    assert text.count(BEGIN) == text.count(END) == sum(map(_is_solution, source.cells)) >= 2
    assert any("{solution" in cell.source for cell in instructor.cells)
    with pytest.raises(TypeError, match=r"`notebook` must be an nbformat\.NotebookNode"):
        nbgrader_source({"cells": []})
