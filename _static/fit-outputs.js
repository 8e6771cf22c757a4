/*
 * Printed outputs that are wider than the text column.
 *
 * A printed table (two or more lines with columns separated by runs of spaces) is shown
 * whole: its font shrinks until its longest line fits, down to MIN_FONT_PX; a table still
 * too wide at that size wraps its lines there, which keeps its columns aligned band by
 * band.  Any other printed output wraps its long lines at its own size, as prose does.
 * Runs whenever an output's width changes, so a phone and a desktop both get the largest
 * font that fits.  `make test-site` measures what is left over.
 */
(() => {
  const MIN_FONT_PX = 10;
  const COLUMNS = /\S {2,}\S/;

  const isTable = (pre) =>
    pre.textContent.split("\n").filter((line) => COLUMNS.test(line)).length >= 2;

  const wrap = (pre) => {
    pre.style.whiteSpace = "pre-wrap";
    pre.style.overflowWrap = "anywhere";
  };

  const fit = (pre) => {
    pre.style.fontSize = "";
    pre.style.whiteSpace = "";
    pre.style.overflowWrap = "";
    if (pre.scrollWidth <= pre.clientWidth) return;
    if (!isTable(pre)) {
      wrap(pre);
      return;
    }
    const style = getComputedStyle(pre);
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    let size = parseFloat(style.fontSize);
    // The width of monospaced text is proportional to its font size; a second pass and a
    // 2% margin absorb the rounding of glyph widths at small sizes.
    for (let pass = 0; pass < 2 && pre.scrollWidth > pre.clientWidth; pass++) {
      const ratio = (0.98 * (pre.clientWidth - padding)) / (pre.scrollWidth - padding);
      size = Math.max(MIN_FONT_PX, Math.floor(size * ratio * 10) / 10);
      pre.style.fontSize = `${size}px`;
    }
    if (pre.scrollWidth > pre.clientWidth) wrap(pre);
  };

  // Fit each output when its width changes: on load, on resize, and when a collapsed
  // cell is opened (its width goes from 0 to the column's).
  const observer = new ResizeObserver((entries) => {
    for (const { target } of entries) {
      const width = target.clientWidth;
      if (width > 0 && String(width) !== target.dataset.fitWidth) {
        target.dataset.fitWidth = width;
        fit(target);
      }
    }
  });
  const watch = () =>
    document.querySelectorAll("div.cell_output pre").forEach((pre) => observer.observe(pre));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", watch);
  } else {
    watch();
  }
})();
