"""A sweep's outputs for CI: JUnit XML as a CI server reads it, a self-contained HTML page
sorted in a real headless browser, an empty shard that writes its JSON and exits 0, and exit 3
that still names the sites it saw."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import browser_dom, clean_env, write

APP = {
    "app.py": '''\
        from dynfault import dynamic_fault

        def never():
            return dynamic_fault("app:never")

        if dynamic_fault("app:handled"):
            pass
        if dynamic_fault("app:boom"):
            raise SystemExit(3)
        ''',
}


def sweep(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", *args, "--", sys.executable, "app.py"],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write(tmp_path_factory.mktemp("outputs"), APP)
    done = sweep(root, "--paths", "app.py", "--junitxml", "junit.xml", "--html", "page.html",
                 "--log-dir", "logs", "--json", "out.json")
    assert done.returncode == 1, done.stdout + done.stderr
    return root


def test_junitxml_has_one_test_case_per_run_as_a_ci_server_reads_it(swept: Path) -> None:
    root = ET.parse(swept / "junit.xml").getroot()
    assert root.tag == "testsuites"
    [suite] = root
    assert suite.tag == "testsuite"
    assert {k: suite.get(k) for k in ("name", "tests", "failures", "errors", "skipped")} == {
        "name": "dynfault sweep", "tests": "3", "failures": "1", "errors": "0", "skipped": "1"}
    assert float(suite.get("time", "x")) >= 0
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("app", "app.py:4 app:never"), ("app", "app.py:6 app:handled"),
        ("app", "app.py:8 app:boom")]
    assert [[child.tag for child in c] for c in cases] == [["skipped"], [], ["failure"]]
    failure = cases[2].find("failure")
    assert failure is not None
    assert (failure.get("type"), failure.get("message")) == ("failed", "failed")
    text = failure.text or ""
    assert "app.py:8 class:app:boom func:<module>" in text
    assert "log: logs/003-app.py-8-site2.log" in text
    assert text.rstrip().endswith(
        f"reproducer:\nDYNFAULT_ENABLE='file app.py line 8 site 2 oneshot' "
        f"{sys.executable} app.py")
    skipped = cases[0].find("skipped")
    assert skipped is not None and skipped.get("message") == "passed, site did not fire"


def test_the_html_page_is_self_contained_and_links_the_logs(swept: Path) -> None:
    page = (swept / "page.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "default-src 'none'" in page
    assert '<a href="logs/003-app.py-8-site2.log">log</a>' in page
    assert "DYNFAULT_ENABLE=&#x27;file app.py line 8 site 2 oneshot&#x27;" in page


@pytest.mark.slow
def test_the_html_table_sorts_by_outcome_in_a_headless_browser(swept: Path,
                                                                tmp_path: Path) -> None:
    # A click on the outcome column's head, then the rows' order written where --dump-dom
    # shows it.
    probe = ('<script>document.querySelector(\'th[data-column="outcome"]\').click();'
             'document.body.setAttribute("data-order", Array.prototype.map.call('
             'document.querySelectorAll("#runs tbody tr"), function (r) {'
             'return r.classList.contains("run") ? r.cells[0].textContent + "@"'
             ' + r.cells[4].textContent : "more"; }).join("|"));</script>')
    dom = browser_dom((swept / "page.html").read_text(), probe, tmp_path)
    found = re.search(r'data-order="([^"]*)"', dom)
    assert found is not None, dom[-4000:]
    assert found.group(1).split("|") == [
        "failed@app.py:8 class:app:boom log", "more",
        "passed@app.py:4 class:app:never log", "passed@app.py:6 class:app:handled log"]
    assert 'aria-sort="ascending"' in dom


@pytest.mark.slow
def test_an_empty_shard_writes_its_json_and_merge_takes_it(tmp_path: Path) -> None:
    from dynfault.record import SiteRecord
    from dynfault.sweep.plan import Run, in_shard

    write(tmp_path, APP)
    site = SiteRecord("app", "<module>", "app.py", 8, "app:boom", 2)
    owner = next(i for i in range(1, 5) if in_shard(Run(site, 1, None, ""), (i, 4)))
    codes = {}
    for i in range(1, 5):
        done = sweep(tmp_path, "--paths", "app.py", "--select", "class app:boom", "--shard",
                     f"{i}/4", "--json", f"shard{i}.json")
        codes[i] = done.returncode
        if i != owner:
            assert done.stdout == f"sweep: shard {i}/4 has no run; its JSON is written for " \
                                  "--merge\n"
            assert json.loads((tmp_path / f"shard{i}.json").read_text())["runs"] == []
    assert codes == {i: 1 if i == owner else 0 for i in range(1, 5)}
    merged = subprocess.run(
        [sys.executable, "-m", "dynfault", "sweep", "--merge", "--json", "all.json",
         *(f"shard{i}.json" for i in range(1, 5))],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert merged.returncode == 1, merged.stderr
    assert [r["fault_class"] for r in json.loads((tmp_path / "all.json").read_text())["runs"]] \
        == ["app:boom"]


def test_exit_3_still_writes_a_json_naming_the_sites_it_saw(tmp_path: Path) -> None:
    write(tmp_path, APP)
    done = sweep(tmp_path, "--select", "class nothing", "--json", "out.json")
    assert done.returncode == 3, done.stdout + done.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["runs"] == [] and data["interrupted"] is False
    assert [(s["filename"], s["fault_class"]) for s in data["sites"]] == [
        ("app.py", "app:never"), ("app.py", "app:handled"), ("app.py", "app:boom")]
