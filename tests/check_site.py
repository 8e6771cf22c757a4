"""Check the built HTML book in a real headless Chromium, with no network.

Run by ``make test-site`` after ``make book``.  For every page of ``_build/html``:

- the page's JavaScript ran without an uncaught error (Chromium's console log);
- MathJax rendered every formula: the rendered DOM has MathJax containers on every page
  whose source has math, and no raw ``\\(``, ``\\[`` or ``$$`` delimiters are left in text;
- every image and every internal link points to a file that exists;

and the search page, asked for "Picard", lists Chapter 1 first.

Screenshots of the chapters go to ``_build/screenshots/``.  Exits non-zero with one line
per problem.  Chromium is found as ``chromium`` or ``chromium-browser`` on the PATH (Debian:
``apt-get install chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
#: Time Chromium gives a page's scripts (MathJax typesetting) before it dumps the DOM.
BUDGET_MS = "20000"
RAW_MATH = re.compile(r"\\\(|\\\[|\$\$")


class _Links(HTMLParser):
    """Collect image sources, link targets, and whether the page has math to typeset."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.images.append(values["src"])
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit(
        "make test-site needs Chromium: install it with `apt-get install chromium` (Debian, "
        "Ubuntu) or your system's package manager, and run it again."
    )


def _render(browser: str, page: Path, profile: str, query: str = "") -> tuple[str, str]:
    """The DOM after scripts ran, and Chromium's console log."""
    run = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         f"--virtual-time-budget={BUDGET_MS}", "--dump-dom", page.as_uri() + query],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return run.stdout, run.stderr


def _screenshot(browser: str, page: Path, profile: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{page.stem}.png"
    subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2400",
         f"--virtual-time-budget={BUDGET_MS}", f"--screenshot={target}", page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip


def _missing_targets(page: Path, source: str) -> list[str]:
    parser = _Links()
    parser.feed(source)
    problems = []
    for kind, refs in (("image", parser.images), ("link", parser.links)):
        for ref in refs:
            url = urlparse(ref)
            if url.scheme or ref.startswith(("#", "mailto:", "//")):
                continue
            target = (page.parent / unquote(url.path)).resolve()
            if not target.exists():
                problems.append(f"{page.relative_to(HTML)}: {kind} target {ref!r} does not exist")
    return problems


def _text_outside_code(dom: str) -> str:
    dom = re.sub(r"<(script|style|pre|code|mjx-container)\b.*?</\1>", "", dom, flags=re.S)
    return re.sub(r"<[^>]+>", " ", dom)


def check_page(browser: str, page: Path, profile: str) -> list[str]:
    """Every problem found on one page, as lines."""
    name = str(page.relative_to(HTML))
    source = page.read_text(encoding="utf-8")
    problems = _missing_targets(page, source)
    dom, log = _render(browser, page, profile)
    if not dom.strip():
        return [*problems, f"{name}: Chromium returned no DOM"]
    for line in log.splitlines():
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line):
            problems.append(f"{name}: JavaScript error: {line.strip()[:200]}")
    has_math = "\\(" in source or "\\[" in source or "$$" in source or 'class="math' in source
    if has_math and "<mjx-container" not in dom:
        problems.append(f"{name}: MathJax rendered no formula (is it loaded offline?)")
    raw = RAW_MATH.search(_text_outside_code(dom))
    if raw:
        problems.append(f"{name}: raw math delimiter {raw.group()!r} left in the rendered page")
    return problems


def check_search(browser: str, profile: str) -> list[str]:
    """The search page finds "Picard", with Chapter 1 as the first result."""
    dom, _ = _render(browser, HTML / "search.html", profile, "?q=Picard")
    results = re.search(r'<ul class="search">(.*?)</ul>', dom, flags=re.S)
    first = re.search(r'href="([^"]+)"', results.group(1)) if results else None
    if first is None or "01-initial-value-problems" not in first.group(1):
        found = first.group(1) if first else "no result"
        return [f"search.html: searching for 'Picard' gave {found}, not Chapter 1 first"]
    return []


def main() -> int:
    if not (HTML / "index.html").exists():
        sys.exit("No built book in _build/html: run `make book` first.")
    browser = _chromium()
    pages = sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as profile:
        problems += check_search(browser, profile)
        for page in pages:
            problems += check_page(browser, page, profile)
            if page.parent.name == "chapters" or page.name == "intro.html":
                _screenshot(browser, page, profile)
    for line in problems:
        print(line)
    print(f"{len(pages) - len({p.split(':')[0] for p in problems})} passed, "
          f"{len({p.split(':')[0] for p in problems})} failed")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
