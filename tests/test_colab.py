"""The Colab cell: every chapter and its student edition install the package on Colab only.

A chapter opened on Google Colab has no ``odecourse``; its first code cell installs
the package at the book's version there and does nothing anywhere else.  Colab is
simulated here by a stand-in ``google.colab`` module and a recording ``subprocess.run``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import types
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from odecourse.assignments import nbgrader_source, student_edition

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
REPOSITORY = "https://github.com/odecourse/odecourse"


def _first_code_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def _run_cell(source: str, monkeypatch: pytest.MonkeyPatch, *, colab: bool) -> list[list[str]]:
    """Execute the cell's source; return the commands it passed to ``subprocess.run``."""
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        assert kwargs.get("check") is True, "the install must fail loudly"
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    if colab:
        google, colab_module = types.ModuleType("google"), types.ModuleType("google.colab")
        google.colab = colab_module
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", colab_module)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<colab cell>", "exec"), {"__name__": "__main__"})
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_the_book_version_on_colab_only(path, monkeypatch):
    cell = _first_code_cell(nbformat.read(path, as_version=4))
    assert "remove-cell" in cell.metadata.get("tags", []), "the book must not show the cell"
    assert cell.outputs == [], "outside Colab the cell prints nothing"
    assert _run_cell(cell.source, monkeypatch, colab=False) == []
    (command,) = _run_cell(cell.source, monkeypatch, colab=True)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    requirement = Requirement(command[-1])
    assert requirement.name == "odecourse"
    assert requirement.url == f"git+{REPOSITORY}@v{VERSION}", "pin the book's version"
    assert not requirement.extras, "Colab has Jupyter and PyTorch: no extras"


@pytest.mark.parametrize("path", NOTEBOOKS[:1] + NOTEBOOKS[-1:], ids=lambda p: p.name)
def test_student_edition_and_nbgrader_source_keep_the_cell(path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    expected = _first_code_cell(notebook).source
    for edition in (student_edition(notebook), nbgrader_source(notebook)):
        cell = _first_code_cell(edition)
        assert cell.source == expected
        assert len(_run_cell(cell.source, monkeypatch, colab=True)) == 1


def test_the_cell_works_when_the_package_is_missing(monkeypatch):
    """On Colab the cell runs before anything of odecourse exists: it may import only the stdlib."""
    source = _first_code_cell(nbformat.read(NOTEBOOKS[0], as_version=4)).source
    monkeypatch.setitem(sys.modules, "odecourse", None)  # any import of it now fails
    assert len(_run_cell(source, monkeypatch, colab=True)) == 1
