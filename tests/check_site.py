"""Check the built HTML book in a real headless Chromium, with no network.

Run by ``make test-site`` after ``make book``.  For every page of ``_build/html``:

- the page's JavaScript ran without an uncaught error (Chromium's console log);
- MathJax rendered every formula: the rendered DOM has MathJax containers on every page
  whose source has math, and no raw ``\\(``, ``\\[`` or ``$$`` delimiters are left in text;
- every image and every internal link points to a file that exists;

and the search page, asked for "Picard", lists Chapter 1 first.  The Binder, Colab and
repository buttons of every chapter point to this repository (as ``_config.yml`` names
it) and to a notebook that exists in it, and its download button to a copy of that
notebook in the built site.  Then, driven through Selenium and ``chromedriver``: on
Chapter 1 a collapsed solution is hidden and clicking its button reveals it; on every
page, with every collapsed block opened, no display equation and no printed output is
wider than the text column of a 1280-pixel window (printed tables are fitted by
``_static/fit-outputs.js``); on a 390-pixel phone window Chapter 2 never scrolls
sideways as a whole (a wide equation scrolls inside its own box).

Screenshots go to ``_build/screenshots/``: the top of every chapter, the opened solution,
each overflowing element (``overflow/``), and Chapter 2 on the phone (``phone/``).  Exits
non-zero with one line per problem.  Chromium is found as ``chromium`` or
``chromium-browser`` on the PATH, its driver as ``chromedriver`` (Debian:
``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

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
CHAPTER_1 = Path("chapters") / "01-initial-value-problems.html"
PHONE_CHAPTER = Path("chapters") / "02-one-step-methods.html"
INSTALL_HINT = (
    "make test-site needs Chromium and its driver: install them with "
    "`apt-get install chromium chromium-driver` (Debian) or your system's package "
    "manager, so that `chromium` and `chromedriver` are on the PATH, and run it again."
)


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


def _chromium() -> tuple[str, str]:
    """Paths of the Chromium browser and of its ``chromedriver``."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        sys.exit(INSTALL_HINT)
    return browser, driver


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
                hint = " (make pdf builds it and copies it here)" if ref.endswith(".pdf") else ""
                problems.append(
                    f"{page.relative_to(HTML)}: {kind} target {ref!r} does not exist{hint}"
                )
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


# --- Selenium: what a reader does and sees on a page -------------------------------------

EQUATIONS = 'mjx-container[display="true"]'
OUTPUTS = "div.cell_output pre, div.cell_output table"
#: Opens every collapsed solution and dropdown, then measures every display equation and
#: printed output that is wider than the room it has:
#: [kind, TeX or first line, needed px, available px, element index].
OVERFLOW_JS = """
const done = arguments[arguments.length - 1];
document.querySelectorAll('.toggle-hidden').forEach((e) => e.classList.remove('toggle-hidden'));
document.querySelectorAll('details').forEach((e) => { e.open = true; });
const measure = () => {
  const found = [];
  const items = window.MathJax ? MathJax.startup.document.getMathItemsWithin(document.body) : [];
  document.querySelectorAll('mjx-container[display="true"]').forEach((box, i) => {
    const need = box.querySelector('mjx-math').getBoundingClientRect().width;
    const have = box.getBoundingClientRect().width;
    if (need > have + 1) {
      const item = items.find((it) => it.typesetRoot === box);
      found.push(['equation', item ? item.math.trim() : '?', need, have, i]);
    }
  });
  document.querySelectorAll('div.cell_output pre, div.cell_output table').forEach((box, i) => {
    if (box.scrollWidth > box.clientWidth + 1) {
      const line = box.textContent.trim().split('\\n')[0];
      found.push([box.tagName.toLowerCase(), line, box.scrollWidth, box.clientWidth, i]);
    }
  });
  return found;
};
// Two frames: the opened blocks are laid out and _static/fit-outputs.js has fitted them.
requestAnimationFrame(() => requestAnimationFrame(() => done(measure())));
"""


def _session(browser: str, driver: str, profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument("--headless=new" if flag == "--headless" else flag)
    options.add_argument(f"--user-data-dir={profile}/selenium")
    options.add_argument("--window-size=1280,1000")
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    session.set_script_timeout(int(BUDGET_MS) // 1000)
    return session


def _open(session, page: Path) -> None:
    """Load ``page`` and wait until MathJax has typeset it."""
    session.get(page.as_uri())
    session.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        "  { MathJax.startup.promise.then(() => done(true)); } else { done(false); }"
    )


def check_solution(session) -> list[str]:
    """On Chapter 1 the first solution starts collapsed and its button reveals it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    name = str(CHAPTER_1)
    _open(session, HTML / CHAPTER_1)
    solutions = session.find_elements(By.CSS_SELECTOR, "div.solution.dropdown")
    if not solutions:
        return [f"{name}: no collapsed solution found"]
    solution = solutions[0]
    body = solution.find_element(By.XPATH, "./*[not(contains(@class, 'admonition-title'))]")
    try:
        button = WebDriverWait(session, 10).until(
            lambda s: solution.find_element(By.CSS_SELECTOR, "button.toggle-button")
        )
    except TimeoutException:
        return [f"{name}: the solution has no toggle button (sphinx-togglebutton did not run)"]
    if body.is_displayed():
        return [f"{name}: the first solution is shown before it is clicked"]
    session.execute_script("arguments[0].scrollIntoView({block: 'center'});", solution)
    button.click()
    try:
        WebDriverWait(session, 5).until(lambda s: body.is_displayed())
    except TimeoutException:
        return [f"{name}: clicking the first solution's button does not reveal it"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    solution.screenshot(str(SCREENSHOTS / "01-solution-opened.png"))
    if len(body.text.strip()) < 20 or not body.find_elements(By.TAG_NAME, "mjx-container"):
        return [f"{name}: the opened solution shows no text with rendered math"]
    return []


def check_buttons(pages: list[Path]) -> list[str]:
    """Launch, repository and download buttons point to this repository's notebooks."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repository = config["repository"]
    url = repository["url"].rstrip("/")
    owner_name = urlparse(url).path.strip("/")
    branch = repository.get("branch", "main")
    book = repository.get("path_to_book", "").strip("/")
    binder = config["launch_buttons"]["binderhub_url"].rstrip("/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    interface = config["launch_buttons"].get("notebook_interface", "classic")
    binder_path = "tree" if interface == "classic" else "lab/tree"
    problems = []
    if urlparse(url).netloc != "github.com" or owner_name.count("/") != 1:
        problems.append(
            f"_config.yml: repository.url {url!r} is not a GitHub repository "
            "(https://github.com/OWNER/NAME), which Binder and Colab launch from"
        )
    for page in pages:
        name = str(page.relative_to(HTML))
        notebook = page.relative_to(HTML).with_suffix(".ipynb").as_posix()
        in_repo = f"{book}/{notebook}" if book else notebook
        if not (ROOT / in_repo).exists():
            continue  # a markdown page: no notebook, no launch buttons
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        links = set(parser.links)
        expected = {
            "Binder": f"{binder}/v2/gh/{owner_name}/{branch}?urlpath={binder_path}/{in_repo}",
            "Colab": f"{colab}/github/{owner_name}/blob/{branch}/{in_repo}",
            "repository": url,
        }
        for button, target in expected.items():
            if target not in links:
                problems.append(f"{name}: no {button} button pointing to {target}")
        downloads = [link for link in links if link.endswith(".ipynb") and "://" not in link]
        if not downloads:
            problems.append(f"{name}: no download button for the notebook")
        for link in downloads:
            copy = (page.parent / unquote(link)).resolve()
            try:
                cells = json.loads(copy.read_text(encoding="utf-8"))["cells"]
            except (OSError, ValueError, KeyError):
                problems.append(f"{name}: the download button's {link} is not a notebook")
                continue
            source = json.loads((ROOT / in_repo).read_text(encoding="utf-8"))["cells"]
            if len(cells) != len(source):
                problems.append(f"{name}: the downloadable notebook is not {in_repo}")
    return problems


def check_overflow(session, pages: list[Path]) -> list[str]:
    """Display equations and printed outputs wider than the column at 1280 pixels."""
    from selenium.webdriver.common.by import By

    problems = []
    shots = SCREENSHOTS / "overflow"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    for page in pages:
        name = str(page.relative_to(HTML))
        _open(session, page)
        for kind, text, need, have, index in session.execute_async_script(OVERFLOW_JS):
            text = " ".join(str(text).split())
            problems.append(
                f"{name}: overflow: {kind} {index} needs {need:.0f} px of {have:.0f}: {text[:300]}"
            )
            selector = EQUATIONS if kind == "equation" else OUTPUTS
            element = session.find_elements(By.CSS_SELECTOR, selector)[index]
            session.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
            element.screenshot(str(shots / f"{page.stem}-{kind}-{index}.png"))
    return problems


def check_phone(session) -> list[str]:
    """One chapter at a 390-pixel phone width: the page itself never scrolls sideways.

    Saves the top of the page and a screenshot centred on every display equation.
    """
    from selenium.webdriver.common.by import By

    target = SCREENSHOTS / "phone"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    session.set_window_size(390, 844)
    try:
        _open(session, HTML / PHONE_CHAPTER)
        session.save_screenshot(str(target / f"{PHONE_CHAPTER.stem}-top.png"))
        for index, box in enumerate(session.find_elements(By.CSS_SELECTOR, "div.math")):
            session.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
            session.save_screenshot(str(target / f"{PHONE_CHAPTER.stem}-equation-{index:02d}.png"))
        page, window = session.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];"
        )
    finally:
        session.set_window_size(1280, 1000)
    if page > window:
        return [f"{PHONE_CHAPTER}: at 390 pixels the page is {page} px wide, wider than the window"]
    return []


def main() -> int:
    if not (HTML / "index.html").exists():
        sys.exit("No built book in _build/html: run `make book` first.")
    browser, driver = _chromium()
    pages = sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts)
    chapters = [p for p in pages if p.parent.name == "chapters"]
    problems: list[str] = check_buttons(pages)
    with tempfile.TemporaryDirectory() as profile:
        problems += check_search(browser, profile)
        for page in pages:
            problems += check_page(browser, page, profile)
            if page in chapters or page.name == "intro.html":
                _screenshot(browser, page, profile)
        session = _session(browser, driver, profile)
        try:
            problems += check_solution(session)
            problems += check_overflow(session, pages)
            problems += check_phone(session)
        finally:
            session.quit()
    for line in problems:
        print(line)
    print(f"{len(pages) - len({p.split(':')[0] for p in problems})} passed, "
          f"{len({p.split(':')[0] for p in problems})} failed")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
