"""`powercut --html` in a real headless browser (Debian's chromium, which CI installs): the page
lays out one timeline per vulnerability, each box drawn with a size and the colour of its
status, and the legend names every status."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import browser_dom
from test_powercut_explore import check_settings, settings_journal

from dynfault.powercut.explorer import explore_callable
from dynfault.powercut.html import COLORS, page

# Written into the page after it loads: what the browser laid out, where --dump-dom shows it.
PROBE = """<script>
var boxes = [];
document.querySelectorAll("svg").forEach(function (svg, n) {
  var r = svg.getBoundingClientRect();
  boxes.push("svg" + n + ":" + (r.width > 100 && r.height > 20 ? "shown" : "hidden"));
  svg.querySelectorAll("rect").forEach(function (rect) {
    var b = rect.getBoundingClientRect();
    if (b.width > 0 && b.height > 0) { boxes.push(rect.getAttribute("fill")); }
  });
});
document.body.setAttribute("data-layout", boxes.join("|"));
</script>"""


@pytest.mark.slow
def test_the_timelines_are_drawn_in_a_headless_browser(tmp_path: Path) -> None:
    result = explore_callable(settings_journal(tmp_path), check_settings)
    dom = browser_dom(page(result), PROBE, tmp_path)
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found is not None, dom[-4000:]
    layout = found.group(1).split("|")
    # two vulnerabilities (ordering, durability): two timelines, both laid out
    assert [item for item in layout if item.startswith("svg")] == ["svg0:shown", "svg1:shown"]
    drawn = {item for item in layout if item.startswith("#")}
    # the ordering one's lost write and persisted rename, and the crash's aftermath, are drawn
    assert {COLORS["lost"], COLORS["persisted"], COLORS["after the crash"]} <= drawn
    for status in COLORS:
        assert f"</i>{status}" in dom or f"</i> {status}" in dom, status
