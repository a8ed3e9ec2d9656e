"""The report and leaderboard pages in a real browser (headless Chromium): the
tables sort on a header click and every figure loads; a screenshot of each is kept
beside the page. Skipped, with the reason, where Chromium is absent (CI installs
Debian's ``chromium``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.leaderboard import collect, write_leaderboard
from bench.reports.figures import save_figures
from bench.reports.report import write_pages
from tests.bench.test_leaderboard import issue_case

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium here (Debian: apt-get install chromium)")

#: Appended to a copy of the page: sorts the first sortable table by ``COLUMN`` up
#: and down, checks every image decoded, and writes the findings into the DOM.
PROBE = """<script>
window.addEventListener('load', () => {
  const table = document.querySelector('table.sortable');
  const col = Array.from(table.tHead.rows[0].cells).findIndex(th => th.innerText.trim() === 'COLUMN');
  const values = () => Array.from(table.tBodies[0].rows).map(r => r.cells[col].innerText.trim());
  const found = {before: values()};
  table.tHead.rows[0].cells[col].click(); found.first_click = values();
  table.tHead.rows[0].cells[col].click(); found.second_click = values();
  found.images = Array.from(document.images).map(img => img.complete && img.naturalWidth > 0);
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
});
</script>"""


def in_browser(page: Path, column: str) -> dict:
    """What the probe found in ``page``, and a screenshot ``<page>.png`` beside it."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", PROBE.replace("COLUMN", column) + "</body>"))
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    subprocess.run([*flags, f"--screenshot={page.with_suffix('.png')}", "--window-size=1280,1600", page.as_uri()],
                   capture_output=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run in {page.name}:\n{dom[-1500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def numbers(cells: list[str]) -> list[float]:
    return [float(c) for c in cells if c]


def test_the_leaderboard_sorts_and_keeps_a_screenshot(tmp_path):
    run = issue_case(tmp_path)
    write_leaderboard(collect([run]), run / "board")
    found = in_browser(run / "board" / "leaderboard.html", "median_speedup")
    assert numbers(found["first_click"]) == sorted(numbers(found["before"]))
    assert numbers(found["second_click"]) == sorted(numbers(found["before"]), reverse=True)
    assert (run / "board" / "leaderboard.png").stat().st_size > 10_000


def test_the_report_sorts_and_its_figures_load(tmp_path):
    run = issue_case(tmp_path)
    tables = {name: pd.read_parquet(run / f"{name}.parquet") for name in ("energy", "relax")}
    figures = save_figures(tables, run / "figures")
    assert figures, "no figure drawn from the tables"
    headline = pd.DataFrame({"method": ["mmff", "perfect", "flaky"], "energy_ratio": [1.0, float("inf"), 2.5],
                             "median_speedup": [0.0, 1.0, 0.3]})
    write_pages(run, "edm-bench run: test", "intro", [("Headline", headline)], figures, "footer")
    found = in_browser(run / "report.html", "median_speedup")
    assert numbers(found["first_click"]) == [0.0, 0.3, 1.0] and numbers(found["second_click"]) == [1.0, 0.3, 0.0]
    assert found["images"] == [True] * len(figures)
    assert (run / "report.png").stat().st_size > 10_000
