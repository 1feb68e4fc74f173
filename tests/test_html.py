"""The HTML leaderboard and the JSON export of all runs; the page is checked in a real headless
browser (Debian's ``chromium`` and ``chromium-driver``, driven by selenium).

The page under test is built from the committed results plus one external entry scored here,
so that it holds every kind of row. Outside CI the browser tests skip, naming what to install,
when no browser is there; in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from uqbench.bench import costbench, external, html, report

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """(markdown, page path, jobs) of the committed results plus one external entry."""
    tmp = tmp_path_factory.mktemp("board")
    task = external.load_task("digits")[1]
    rng = np.random.default_rng(0)
    np.savez(tmp / "preds.npz", **{k: rng.normal(size=(len(v), 6)) for k, v in task.eval_sets().items()})
    external.score_predictions(tmp / "preds.npz", "digits", name="noise", results_root=tmp / "res")
    jobs, skipped = report.load_all(REPO / "results")
    jobs += report.load_all(tmp / "res")[0]
    md = report.render(jobs, skipped, {}, costbench.load(REPO / "results"))
    html.write(md, jobs, skipped, tmp / "leaderboard.html", tmp / "runs.json")
    return md, tmp / "leaderboard.html", jobs


def md_tables(md: str) -> list[list[str]]:
    """The body rows of every Markdown table, in order."""
    tables, current = [], None
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current = [] if current is None else current
            current.append(line)
        elif current is not None:
            tables.append(current[2:])
            current = None
    return tables


def test_page_is_self_contained_and_holds_every_table(board):
    md, page, _ = board
    text = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched
    assert "http://" not in text.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert text.count("<table") == len(md_tables(md)) > 5
    assert '<tr data-suite="standard" data-task="digits" data-method="noise" data-external="1">' in text
    assert "{{" not in text
    assert text.count("<section") == text.count("</section>") and 'section class="task" data-suite="gpu"' in text


def test_runs_export_has_every_record_with_provenance(board):
    _, page, jobs = board
    doc = json.loads((page.parent / "runs.json").read_text())
    assert len(doc["runs"]) == len(jobs) and doc["skipped"]
    assert all(r["provenance"] and r["file"].startswith("runs/") for r in doc["runs"])
    ext = [r for r in doc["runs"] if r["method"] == "noise"]
    assert len(ext) == 1 and len(ext[0]["external"]["sha256"]) == 64


def test_plot_points_are_means_over_seeds(board):
    _, _, jobs = board
    points = {(p["suite"], p["task"], p["method"]): p for p in html.plot_points(jobs)}
    p = points[("standard", "digits", "hydra")]
    mine = [j for j in jobs if (j["suite"], j["task"], j["method"]) == ("standard", "digits", "hydra")]
    assert p["seeds"] == sorted(j["seed"] for j in mine)
    assert p["metrics"]["test/acc"] == pytest.approx(np.mean([j["metrics"]["test/acc"] for j in mine]))
    assert points[("standard", "digits", "noise")]["cost"] == {} and points[("standard", "digits", "noise")]["external"]


# --- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (the test extra)")
    if missing:
        reason = f"no headless browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)  # explicit driver: nothing downloaded
    yield driver
    driver.quit()


@pytest.fixture
def loaded(browser, board):
    browser.get(board[1].as_uri())
    return browser


def js(driver, code: str, *args):
    return driver.execute_script(code, *args)


def visible_rows(driver, table) -> list[str]:
    return js(driver, "return [...arguments[0].tBodies[0].rows].filter(r => r.offsetParent !== null)"
                      ".map(r => r.cells[0].textContent)", table)


def test_browser_renders_every_table_with_its_rows(loaded, board):
    assert [e for e in loaded.get_log("browser") if e["level"] == "SEVERE"] == []
    counts = js(loaded, "return [...document.querySelectorAll('table')].map(t => t.tBodies[0].rows.length)")
    assert counts == [len(rows) for rows in md_tables(board[0])]
    assert js(loaded, "return document.getElementById('shown').textContent") == f"{sum(counts)} of {sum(counts)} table rows shown"


def test_browser_click_sorts_a_column(loaded):
    from selenium.webdriver.common.by import By

    table = loaded.find_element(By.CSS_SELECTOR, 'section.task[data-suite="standard"][data-task="digits"] table')
    header = table.find_elements(By.TAG_NAME, "th")
    col = [h.text for h in header].index("Acc ↑")

    def column():
        return [float(c.split()[0]) for c in js(loaded, "return [...arguments[0].tBodies[0].rows].map(r => "
                                                         "r.cells[arguments[1]].textContent)", table, col)]

    before = column()
    header[col].click()
    assert column() == sorted(before) and header[col].get_attribute("aria-sort") == "ascending"
    header[col].click()
    assert column() == sorted(before, reverse=True) and header[col].get_attribute("aria-sort") == "descending"


def test_browser_filter_hides_rows_and_sections(loaded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    table = loaded.find_element(By.CSS_SELECTOR, 'section.task[data-suite="standard"][data-task="digits"] table')
    assert len(visible_rows(loaded, table)) > 2
    Select(loaded.find_element(By.ID, "f-method")).select_by_value("hydra")
    assert visible_rows(loaded, table) == ["hydra"]
    Select(loaded.find_element(By.ID, "f-task")).select_by_value("sst2-minilm")
    assert not table.is_displayed()
    shown = js(loaded, "return [...document.querySelectorAll('section.task')].filter(s => !s.hidden).map(s => s.dataset.task)")
    assert set(shown) == {"sst2-minilm"}
    claims = js(loaded, "return [...document.querySelectorAll('tr[data-task]')].filter(r => r.offsetParent !== null)"
                        ".map(r => r.dataset.task)")
    assert claims and set(claims) == {"sst2-minilm"}
    assert loaded.find_element(By.ID, "p-panel").get_attribute("value").endswith("sst2-minilm")
    Select(loaded.find_element(By.ID, "f-task")).select_by_value("")
    Select(loaded.find_element(By.ID, "f-method")).select_by_value("")
    assert len(visible_rows(loaded, table)) > 2


def test_browser_plot_draws_points_with_tooltips(loaded, board, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(loaded.find_element(By.ID, "p-panel")).select_by_value("standard\u0001digits")
    Select(loaded.find_element(By.ID, "p-y")).select_by_value("ood_mean/auroc_msp")
    points = [p for p in html.plot_points(board[2]) if (p["suite"], p["task"]) == ("standard", "digits")]
    drawn = [p for p in points if "latency_ms" in p["cost"] and "ood_mean/auroc_msp" in p["metrics"]]
    circles = loaded.find_elements(By.CSS_SELECTOR, "#scatter circle")
    assert len(circles) == len(drawn) > 3
    assert "noise" in loaded.find_element(By.ID, "plot-note").text  # external entry without cost: named, not drawn
    hydra = next(c for c in circles if c.get_attribute("data-method") == "hydra")
    ActionChains(loaded).move_to_element(hydra).perform()
    tip = loaded.find_element(By.ID, "tooltip")
    assert tip.is_displayed() and tip.text.startswith("hydra\ndigits (standard)") and "OOD AUROC" in tip.text
    Select(loaded.find_element(By.ID, "p-x")).select_by_value("flops")
    assert len(loaded.find_elements(By.CSS_SELECTOR, "#scatter circle")) == len(drawn)
    shot = Path(os.environ.get("UQBENCH_SCREENSHOT", tmp_path / "leaderboard.png"))
    assert loaded.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
