"""Every committed notebook is fully executed, in order, without errors.

Strict nbval compares each cell's fresh outputs with the stored ones; a
notebook committed without outputs would make it compare nothing.  These
checks make that impossible, and enforce the house rules for notebooks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parent.parent / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))


def _code_cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {CHAPTERS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_was_executed_in_order(path):
    cells = _code_cells(path)
    assert cells, f"{path.name} has no code cells"
    counts = [cell["execution_count"] for cell in cells]
    assert None not in counts, f"{path.name}: unexecuted cells at {counts.index(None)}"
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..n; run it top to bottom "
        "with `make notebooks`"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_error_outputs(path):
    for index, cell in enumerate(_code_cells(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", (
                f"{path.name}: code cell {index} stored an error"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_house_rules(path):
    for index, cell in enumerate(_code_cells(path)):
        source = "".join(cell["source"])
        assert not re.search(r"sys\.path\.(append|insert)", source), (
            f"{path.name}: cell {index} edits sys.path; import the installed package"
        )
        assert not re.search(r"^\s*from\s+\S+\s+import\s+\*", source, re.M), (
            f"{path.name}: cell {index} uses a star import"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ignored_outputs_are_rare(path):
    """``nbval-ignore-output`` is for truly varying output (timings), not a way to hide drift."""
    cells = _code_cells(path)
    ignored = [c for c in cells if "nbval-ignore-output" in c.get("metadata", {}).get("tags", [])]
    assert len(ignored) <= max(2, len(cells) // 10), (
        f"{path.name}: {len(ignored)} of {len(cells)} cells ignore their output"
    )


def test_table_of_contents_matches_the_chapters_folder():
    """A notebook missing from ``_toc.yml`` would silently never be built."""
    import yaml

    toc = yaml.safe_load((CHAPTERS.parent / "_toc.yml").read_text(encoding="utf-8"))
    files = {
        entry["file"]
        for part in toc["parts"]
        for entry in part["chapters"]
        if entry["file"].startswith("chapters/")
    }
    on_disk = {f"chapters/{path.stem}" for path in NOTEBOOKS}
    assert files == on_disk
