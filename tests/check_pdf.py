"""Check the PDF edition that ``make pdf`` wrote to ``_build/latex/odecourse.pdf``.

Run by ``make pdf`` (and again by ``make test-pdf``).  It checks that

- the PDF has at least ``MIN_PAGES`` pages (``pdfinfo``);
- ``pdftotext`` finds the title of every chapter in ``_toc.yml``, in the order of the book,
  the headings "Theorem" and "Proof" of sphinx-proof's blocks, the exercises, and the
  bibliography with an entry for every key that the chapters cite;
- the PDF holds at least as many images as the chapters have stored figures, plus the
  front page's (``pdfimages``);
- XeLaTeX's log has no error, no undefined reference or citation, and no character that
  the fonts could not print (XeLaTeX drops those silently).

Exits non-zero with one line per problem.  Needs poppler's command-line tools (Debian:
``apt-get install poppler-utils``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LATEX = ROOT / "_build" / "latex"
PDF = LATEX / "odecourse.pdf"
MIN_PAGES = 100
LOG_PROBLEMS = (
    (re.compile(r"^! .*", re.M), "LaTeX error"),
    (re.compile(r"^LaTeX Warning: (?:Reference|Citation) .* undefined.*$", re.M), "undefined"),
    (re.compile(r"^Missing character: .*$", re.M), "missing glyph"),
)


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _normalise(text: str) -> str:
    """Text with ligatures, dashes, quotes and line breaks made comparable."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text).replace("\u2019", "'")
    text = re.sub(r"-\s*\n\s*", "-", text)
    return re.sub(r"\s+", " ", text).lower()


def chapter_files() -> list[Path]:
    """The chapter notebooks, in the order of ``_toc.yml``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    return [ROOT / f"{name}.ipynb" for name in files if name.startswith("chapters/")]


def _title(notebook: dict) -> str:
    for cell in notebook["cells"]:
        match = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
        if cell["cell_type"] == "markdown" and match:
            return re.sub(r"[*_`]", "", match.group(1)).strip()
    raise ValueError("no title")


def _figures(notebook: dict) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )


def _cited_keys(notebook: dict) -> set[str]:
    keys = set()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", "".join(cell["source"])):
                keys.update(key.strip() for key in group.split(","))
    return keys


def _bibliography_names(keys: set[str]) -> dict[str, str]:
    """The first author's surname of every cited key, from ``references.bib``."""
    bib = (ROOT / "references.bib").read_text(encoding="utf-8")
    names = {}
    for key in keys:
        entry = re.search(rf"@\w+\{{{re.escape(key)},(.*?)\n\}}", bib, re.S)
        author = entry and re.search(r"author\s*=\s*[{\"](.+?)[,}\"]", entry.group(1), re.S)
        if author:
            surname = author.group(1).split(" and ")[0].strip()
            surname = re.sub(r"[{}\\'\"`^~]", "", surname.split(",")[0].split()[-1])
            names[key] = surname
    return names


def check(pdf: Path = PDF) -> list[str]:
    """Every problem with the PDF edition, as lines."""
    if not pdf.exists():
        return [f"{pdf.relative_to(ROOT)} does not exist: run `make pdf`"]
    problems = []
    pages = int(re.search(r"^Pages:\s+(\d+)", _run("pdfinfo", str(pdf)), re.M).group(1))
    if pages < MIN_PAGES:
        problems.append(f"the PDF has {pages} pages, fewer than {MIN_PAGES}")
    text = _normalise(_run("pdftotext", "-enc", "UTF-8", str(pdf), "-"))
    position, figures, cited = 0, 1, set()
    for path in chapter_files():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        title = _normalise(_title(notebook))
        found = text.find(title, position)
        if found < 0:
            problems.append(f"chapter title {title!r} ({path.name}) not found in order")
        else:
            position = found
        figures += _figures(notebook)
        cited |= _cited_keys(notebook)
    for word in ("theorem", "proof", "exercise", "bibliography"):
        if not re.search(rf"\b{word} ", text):
            problems.append(f"no {word!r} in the PDF's text")
    bibliography = text[text.find("bibliography", position) :]
    for key, surname in sorted(_bibliography_names(cited).items()):
        if _normalise(surname) not in bibliography:
            problems.append(f"the bibliography has no entry by {surname} (key {key})")
    images = [
        line
        for line in _run("pdfimages", "-list", str(pdf)).splitlines()[2:]
        if line.split()[2] == "image"
    ]
    if len(images) < figures:
        problems.append(f"the PDF has {len(images)} images, the book {figures} figures")
    log = LATEX / f"{pdf.stem}.log"
    source = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    # TeX breaks its log lines after 79 characters: join them again.
    source = re.sub(r"(?m)^(.{79})\n", r"\1", source)
    if not source:
        problems.append(f"no LaTeX log {log.relative_to(ROOT)}")
    for pattern, kind in LOG_PROBLEMS:
        for match in pattern.finditer(source):
            problems.append(f"LaTeX log: {kind}: {match.group().strip()[:200]}")
    print(f"{pdf.relative_to(ROOT)}: {pages} pages, {len(images)} images, "
          f"{len(chapter_files())} chapters, {len(cited)} cited keys")  # fmt: skip
    return problems


def main() -> int:
    for tool in ("pdfinfo", "pdftotext", "pdfimages"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: install poppler (Debian: apt-get install poppler-utils)")
    problems = check()
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
