"""The nbgrader course round trip, with the real nbgrader, as an instructor runs it.

``python -m odecourse.assignments nbgrader-course`` writes the course
directory; from there every step is an ``nbgrader`` command with the same
arguments as in appendix/using-in-a-course.md ("Grading with nbgrader").  The
commands run in this process, as nbgrader's own test suite runs them, because
a fresh ``nbgrader`` process spends seconds importing before it starts.

- Chapter 1, the whole path: add students, generate and release the
  assignment, three students fetch it, one validates, all submit (the stubs
  untouched, the instructor's solutions, one wrong answer), collect,
  autograde, read the gradebook and the export, generate and release
  feedback, fetch it.
- Chapter 2: generate; the same three kinds of submission go straight into
  ``submitted/``, as files from a learning-management system do; autograde
  and read the gradebook.
- Every chapter: generate, and no solution text in the release.

Autograde runs every cell of a chapter, so the round trips use the two
lightest chapters: on Chapter 5, validating one submission and autograding two
took two minutes of CPU time.

Each test is one chapter so that ``pytest -n 2`` runs them side by side.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from test_assignments import _public_lines, _solution_lines, _written_solution_lines

from odecourse.assignments import main, write_nbgrader_course

# nbgrader 0.9.6's own autograde code makes SQLAlchemy warn about its session's autoflush.
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
COURSE_ID = "odecourse"
#: What the course's nbgrader_config.py makes of the code between the solution markers.
STUB = re.compile(
    r"^(?P<indent>[ \t]*)# YOUR CODE HERE\n"
    r'(?P=indent)raise NotImplementedError\("Replace this line with your code\."\)$',
    re.M,
)


def nbgrader(cwd: Path, *args: str) -> None:
    """Run ``nbgrader *args`` in the folder ``cwd``, in this process."""
    from jupyter_core.application import NoStart
    from nbgrader.apps import NbGraderApp

    here, path = os.getcwd(), list(sys.path)
    app = NbGraderApp.instance()
    try:
        os.chdir(cwd)
        app.initialize(list(args))
        app.start()
        code = 0
    except NoStart:  # how jupyter's command groups (nbgrader db student) end
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        app.reset()
        os.chdir(here)
        sys.path[:] = path
    assert code in (0, None), f"nbgrader {' '.join(args)} exited with {code}"


@pytest.fixture
def jupyter_config(tmp_path, monkeypatch):
    """No jupyter or nbgrader configuration of this machine's user applies.

    nbgrader upgrades its gradebook with the ``alembic`` command, so the
    environment's scripts must be on the path, as in an activated venv.
    """
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    scripts = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join([scripts, os.environ.get("PATH", "")]))


def as_student(monkeypatch, home: Path) -> None:
    """Student commands from now on: their own folder for nbgrader's cache of submissions.

    On separate accounts each student has it anyway; here, on one account,
    ``--student`` names the student and this keeps the caches apart.
    """
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / ".jupyter-data"))


def make_course(tmp_path: Path, chapter: str) -> Path:
    """The course directory written by the module command, for one chapter."""
    course = tmp_path / "course"
    main(["nbgrader-course", str(course), str(CHAPTERS / f"{chapter}.ipynb")])
    assert (course / "nbgrader_config.py").is_file()
    assert (course / "source" / chapter / f"{chapter}.ipynb").is_file()
    return course


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def is_solution(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def reference_answers(instructor: nbformat.NotebookNode) -> dict[str, str]:
    """The code between the solution markers of each solution cell, dedented, by grade_id."""
    answers = {}
    for cell in filter(is_solution, instructor.cells):
        region = re.search(r"### BEGIN SOLUTION\n(.*?)\n[ \t]*### END SOLUTION", cell.source, re.S)
        answers[cell.metadata.nbgrader.grade_id] = textwrap.dedent(region[1])
    return answers


def answer(released: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A student's copy: the stub of each solution cell named in ``answers`` replaced."""
    notebook = nbformat.from_dict(released)
    for cell in filter(is_solution, notebook.cells):
        grade_id = cell.metadata.nbgrader.grade_id
        if grade_id in answers:
            [stub] = list(STUB.finditer(cell.source))
            body = textwrap.indent(answers[grade_id], stub["indent"])
            cell.source = cell.source[: stub.start()] + body + cell.source[stub.end() :]
    return notebook


def assert_release_has_no_solution_text(chapter: str, released: nbformat.NotebookNode) -> None:
    """No line of a reference answer or written solution reaches the students."""
    instructor = read(CHAPTERS / f"{chapter}.ipynb")
    secret, public = set(), set()
    for cell in instructor.cells:
        secret.update(_solution_lines(cell.source) + _written_solution_lines(cell.source))
        public.update(_public_lines(cell.source))
    assert secret - public, f"{chapter}: no distinctive solution lines to look for"
    text = "\n".join(cell.source for cell in released.cells)
    assert "{solution" not in text and "BEGIN SOLUTION" not in text
    leaked = (secret - public) & {line.strip() for line in text.split("\n")}
    assert not leaked, f"{chapter}: solution lines released: {sorted(leaked)[:3]}"
    assert all(not cell.get("outputs") for cell in released.cells)
    # Each solution cell keeps what surrounds its solution region (signatures, helpers).
    solutions = [cell for cell in instructor.cells if is_solution(cell)]
    stubs = [cell for cell in released.cells if is_solution(cell)]
    assert len(stubs) == len(solutions) >= 2
    for before, after in zip(solutions, stubs, strict=True):
        kept = re.sub(
            r"[ \t]*### BEGIN SOLUTION.*?### END SOLUTION\n?", "", before.source, flags=re.S
        )
        assert STUB.sub("", after.source) == kept


def scores(course: Path, assignment: str, students) -> dict[str, dict[str, float]]:
    """Every grade of every student's submission, from the SQLite gradebook."""
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            submission = gradebook.find_submission(assignment, student)
            [notebook] = submission.notebooks
            found[student] = {grade.name: grade.score for grade in notebook.grades}
            found[student]["total"] = submission.score
            assert submission.max_score == len(notebook.grades)
    return found


def test_chapter_1_round_trip_from_release_to_feedback(tmp_path, jupyter_config, monkeypatch):
    chapter = "01-initial-value-problems"
    course = make_course(tmp_path, chapter)
    exchange = f"--Exchange.root={tmp_path / 'exchange'}"
    students = {"ada": "stub", "ben": "solution", "cy": "wrong"}

    for student in students:
        nbgrader(course, "db", "student", "add", student, f"--first-name={student.title()}")
    nbgrader(course, "generate_assignment", chapter)
    released = read(course / "release" / chapter / f"{chapter}.ipynb")
    assert_release_has_no_solution_text(chapter, released)
    nbgrader(course, "release_assignment", chapter, exchange)

    # Each student fetches the assignment into a folder of their own and works on it.
    reference = reference_answers(read(course / "source" / chapter / f"{chapter}.ipynb"))
    left_rectangle = (
        "integrand = f(t, phi)\n"
        "return y0 + np.concatenate([[0.0], np.cumsum(integrand[:-1] * np.diff(t))])\n"
    )
    answers = {
        "stub": {},
        "solution": reference,
        "wrong": {**reference, "ch1-picard-step": left_rectangle},
    }
    for student, kind in students.items():
        home = tmp_path / "students" / student
        home.mkdir(parents=True)
        as_student(monkeypatch, home)
        nbgrader(home, "fetch_assignment", chapter, f"--course={COURSE_ID}", exchange)
        path = home / chapter / f"{chapter}.ipynb"
        fetched = read(path)
        assert [cell.source for cell in fetched.cells] == [cell.source for cell in released.cells]
        nbformat.write(answer(fetched, answers[kind]), path)

    # Before handing in, the student with the wrong answer validates and reads the whole hint.
    from nbgrader.validator import Validator

    report = io.StringIO()
    monkeypatch.setattr(Validator, "stream", report)
    home = tmp_path / "students" / "cy"
    as_student(monkeypatch, home)
    nbgrader(home, "validate", f"{chapter}/{chapter}.ipynb", "--Validator.width=1000")
    [verdict] = [line for line in report.getvalue().split("\n") if "CheckFailed:" in line]
    assert len(verdict) > 90 and "Hint:" in verdict and not verdict.endswith("...")

    for student in students:
        home = tmp_path / "students" / student
        as_student(monkeypatch, home)
        nbgrader(home, "submit", chapter, f"--course={COURSE_ID}", f"--student={student}", exchange)
    nbgrader(course, "collect", chapter, exchange)
    start = time.perf_counter()
    nbgrader(course, "autograde", chapter)
    seconds = time.perf_counter() - start
    print(f"autograde of {len(students)} Chapter 1 submissions: {seconds:.0f} s")

    graded = scores(course, chapter, students)
    checks = ("ch1-forced-oscillator-check", "ch1-picard-step-check")
    assert graded["ada"] == {checks[0]: 0, checks[1]: 0, "total": 0}
    assert graded["ben"] == {checks[0]: 1, checks[1]: 1, "total": 2}
    assert graded["cy"] == {checks[0]: 1, checks[1]: 0, "total": 1}

    nbgrader(course, "export")
    with open(course / "grades.csv", newline="", encoding="utf-8") as table:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(table)}
    assert exported == {student: graded[student]["total"] for student in students}

    nbgrader(course, "generate_feedback", chapter)
    nbgrader(course, "release_feedback", chapter, exchange)
    for student, kind in students.items():
        home = tmp_path / "students" / student
        as_student(monkeypatch, home)
        nbgrader(
            home,
            "fetch_feedback",
            chapter,
            f"--course={COURSE_ID}",
            f"--student={student}",
            exchange,
        )
        [html] = (home / chapter / "feedback").glob(f"*/{chapter}.html")
        feedback = html.read_text(encoding="utf-8")
        # A failed check prints its verdict, and its exception repeats it in the traceback.
        verdicts = re.findall(r"✗ Not yet: (?!\.\.\.)[^<\n]*Hint: [^<\n]+", feedback)
        assert len(verdicts) == {"stub": 2, "solution": 0, "wrong": 1}[kind], student
        assert ("not implemented yet" in feedback) == (kind == "stub")


def test_chapter_2_autograde_of_dropped_submissions(tmp_path, jupyter_config):
    chapter = "02-one-step-methods"
    course = make_course(tmp_path, chapter)
    nbgrader(course, "generate_assignment", chapter)
    released = read(course / "release" / chapter / f"{chapter}.ipynb")
    assert_release_has_no_solution_text(chapter, released)

    reference = reference_answers(read(course / "source" / chapter / f"{chapter}.ipynb"))
    # Heun's method with its second stage at the start of the step instead of its end.
    stage_at_t = "k1 = f(t, y)\nk2 = f(t, y + h * k1)\nreturn y + h / 2 * (k1 + k2)\n"
    answers = {"ada": {}, "ben": reference, "cy": {**reference, "ch2-heun-step": stage_at_t}}

    # Submissions from elsewhere (a learning management system) go straight to submitted/.
    for student, given in answers.items():
        folder = course / "submitted" / student / chapter
        folder.mkdir(parents=True)
        nbformat.write(answer(released, given), folder / f"{chapter}.ipynb")
    start = time.perf_counter()
    nbgrader(course, "autograde", chapter)
    seconds = time.perf_counter() - start
    print(f"autograde of {len(answers)} Chapter 2 submissions: {seconds:.0f} s")

    graded = scores(course, chapter, answers)
    checks = ("ch2-heun-step-check", "ch2-ralston-tableau-check")
    assert graded["ada"] == {checks[0]: 0, checks[1]: 0, "total": 0}
    assert graded["ben"] == {checks[0]: 1, checks[1]: 1, "total": 2}
    assert graded["cy"] == {checks[0]: 0, checks[1]: 1, "total": 1}


def test_no_chapter_releases_solution_text(tmp_path, jupyter_config):
    """generate_assignment on every chapter of the course: stubs only, signatures kept."""
    course = tmp_path / "course"
    main(["nbgrader-course", str(course), *map(str, sorted(CHAPTERS.glob("*.ipynb")))])
    chapters = sorted(path.name for path in (course / "source").iterdir())
    assert chapters == sorted(path.stem for path in CHAPTERS.glob("*.ipynb"))
    nbgrader(course, "generate_assignment", "*")
    for chapter in chapters:
        released = read(course / "release" / chapter / f"{chapter}.ipynb")
        assert_release_has_no_solution_text(chapter, released)


def test_course_directory_keeps_an_existing_config_and_refuses_bad_input(tmp_path, capsys):
    course = tmp_path / "course"
    chapter = CHAPTERS / "02-one-step-methods.ipynb"
    main(["nbgrader-course", str(course), str(chapter)])
    config = (course / "nbgrader_config.py").read_text(encoding="utf-8")
    assert 'c.CourseDirectory.course_id = "odecourse"' in config
    (course / "nbgrader_config.py").write_text(config + "c.Execute.timeout = 60\n")
    main(["nbgrader-course", str(course), "--course-id", "ode-101", str(chapter)])
    assert (course / "nbgrader_config.py").read_text().endswith("c.Execute.timeout = 60\n")
    assert capsys.readouterr().out.count("nbgrader_config.py") == 1
    with pytest.raises(SystemExit):
        main(["nbgrader-course", str(course), "--course-id", "a b", str(chapter)])
    with pytest.raises(SystemExit):
        main(["nbgrader-course", str(course), str(tmp_path / "missing.ipynb")])
    with pytest.raises(TypeError, match="`course_id` must be a str; got int 7"):
        write_nbgrader_course([chapter], course, course_id=7)
