"""Write the configuration of the PDF edition: ``_config.yml`` with three changes.

``make pdf`` runs ``python _ext/pdf_config.py OUT`` and builds with
``jupyter-book build . --builder latex --config OUT``.  The PDF edition

- typesets the outputs stored in the chapter notebooks instead of executing them a second
  time (``make test`` checks those outputs against fresh runs with nbval, and ``make book``
  executes every notebook); pages without stored outputs, such as the front page with its
  figure, are still executed;
- omits the written solutions of the exercises (sphinx-exercise's ``hide_solutions``;
  ``_ext/pdf_edition.py`` removes the code between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``), so that it can be handed out as a problem book;
- loads ``_ext/pdf_edition.py``;
- prints code in DejaVu Sans Mono, which has every symbol the outputs print (FreeMono,
  Sphinx's default, lacks the ballot x of a failed check);
- defines the book's MathJax macros (``\\R``, ``\\norm``, ...) for LaTeX as well.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


#: Sphinx's fonts for XeLaTeX (Debian's fonts-freefont-otf), but code in DejaVu Sans Mono
#: (fonts-dejavu-core).
FONTS = r"""
\setmainfont{FreeSerif}[Extension=.otf, UprightFont=*, ItalicFont=*Italic,
  BoldFont=*Bold, BoldItalicFont=*BoldItalic]
\setsansfont{FreeSans}[Extension=.otf, UprightFont=*, ItalicFont=*Oblique,
  BoldFont=*Bold, BoldItalicFont=*BoldOblique]
\setmonofont{DejaVu Sans Mono}[Scale=0.9]
"""


def latex_macros(macros: dict) -> str:
    """LaTeX definitions of MathJax ``macros`` (a body, or a list of body and arity)."""
    lines = []
    for name, value in macros.items():
        body, arity = (value, 0) if isinstance(value, str) else value
        args = f"[{arity}]" if arity else ""
        # \providecommand then \renewcommand: the definition wins whether or not a
        # package defined the name before.
        lines.append(f"\\providecommand{{\\{name}}}{{}}\\renewcommand{{\\{name}}}{args}{{{body}}}")
    return "\n".join(lines)


def pdf_config(config: dict) -> dict:
    """The PDF edition's configuration, given the book's ``config``."""
    execute = config.setdefault("execute", {})
    execute["exclude_patterns"] = [*execute.get("exclude_patterns", []), "chapters/*"]
    sphinx = config.setdefault("sphinx", {})
    extensions = sphinx.setdefault("local_extensions", {})
    extensions["pdf_edition"] = "_ext"
    # Jupyter Book finds local extensions relative to the configuration file: this one is
    # written elsewhere, so their folders become absolute.
    sphinx["local_extensions"] = {name: str(ROOT / path) for name, path in extensions.items()}
    options = sphinx.setdefault("config", {})
    options["hide_solutions"] = True
    macros = options.get("mathjax3_config", {}).get("tex", {}).get("macros", {})
    elements = options.setdefault("latex_elements", {})
    elements["preamble"] = elements.get("preamble", "") + latex_macros(macros) + "\n"
    elements["fontpkg"] = FONTS
    return config


def main(out: str) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(yaml.safe_dump(pdf_config(config), sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
