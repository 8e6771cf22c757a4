"""Sphinx extension: drop repeated inline scripts from the built pages.

With this Jupyter Book stack, sphinx-thebe's and sphinx-togglebutton's configuration
scripts are written into every page twice, so each page declares ``const THEBE_JS_URL``
twice, a JavaScript error in every browser ("Identifier has already been declared").
After the build, this keeps the first copy of each identical inline ``<script>`` of a
page.  ``make test-site`` checks that pages load without JavaScript errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

INLINE_SCRIPT = re.compile(r"[ \t]*<script>(.*?)</script>\n?", re.S)


def dedupe_page(html: str) -> str:
    """``html`` with every inline script after the first identical one removed."""
    seen: set[str] = set()

    def keep_first(match: re.Match) -> str:
        body = match.group(1)
        if body in seen:
            return ""
        seen.add(body)
        return match.group(0)

    return INLINE_SCRIPT.sub(keep_first, html)


def _dedupe_build(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        cleaned = dedupe_page(html)
        if cleaned != html:
            page.write_text(cleaned, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    app.connect("build-finished", _dedupe_build)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
