"""The HTML leaderboard and the JSON export of all runs; the page is checked in a real headless
browser (Debian's ``chromium`` and ``chromium-driver``, driven by selenium).

The page under test is built from the committed results plus one external entry scored here,
so that it holds every kind of row. Its cells must equal the cells of the tables both renderers
draw from. Outside CI the browser tests skip, naming what to install, when no browser is there;
in CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from uqbench.bench import claims, external, frontier, intervals, results
from uqbench.bench.report import all_pages, html, inputs
from uqbench.bench.report.tables import Table

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """(pages, page path, jobs) of the committed results plus one external entry (intervals from
    the seed spread: the page, not the statistics, is under test here)."""
    tmp = tmp_path_factory.mktemp("board")
    task = external.load_task("digits")[1]
    rng = np.random.default_rng(0)
    np.savez(tmp / "preds.npz", **{k: rng.normal(size=(len(v), 6)) for k, v in task.eval_sets().items()})
    external.score_predictions(tmp / "preds.npz", "digits", name="noise", results_root=tmp / "res")
    found = inputs.load(REPO / "results", intervals.Evidence(None))
    found.jobs += inputs.load(tmp / "res", intervals.Evidence(None)).jobs
    made = all_pages(found)
    page = tmp / "leaderboard.html"
    page.write_text(html.render(made, found.jobs, found.costs, page, REPO / "results",
                                (claims.RECORD_SUITE, "cifar10-vit")))
    (tmp / "runs.json").write_text(results.runs_json(found.jobs, found.skipped))
    return made, page, found.jobs, found.costs


def tables(made) -> list[Table]:
    return [b for p in made for b in p.blocks if isinstance(b, Table)]


def shown(c) -> str:
    """A cell's text as a page shows it: the text, then its verdict."""
    return " ".join(filter(None, [c.text, c.verdict]))


def test_page_is_self_contained_and_holds_every_table(board):
    made, page, _, _ = board
    text = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched
    assert "http://" not in text.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert text.count("<table") == len(tables(made)) > 20 and "{{" not in text
    assert '<tr data-suite="standard" data-task="digits" data-method="noise" data-external="1"' in text
    assert text.count('<section class="page"') == len(made) and text.count(" hidden>") >= len(made) - 1


def test_runs_export_has_every_record_with_provenance(board):
    _, page, jobs, _ = board
    doc = json.loads((page.parent / "runs.json").read_text())
    assert len(doc["runs"]) == len([j for j in jobs if "post_hoc" not in j]) and doc["skipped"]  # +TS: derived
    assert all(r["provenance"] and r["file"].startswith("runs/") for r in doc["runs"])
    ext = [r for r in doc["runs"] if r["method"] == "noise"]
    assert len(ext) == 1 and len(ext[0]["external"]["sha256"]) == 64


def test_plot_points_are_means_over_seeds(board):
    _, _, jobs, files = board
    points = {(p["suite"], p["task"], p["method"]): p for p in frontier.plot_points(jobs, files, html.PLOT_METRICS)}
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


def visible(driver, selector: str) -> list:
    return js(driver, "return [...document.querySelectorAll(arguments[0])].filter(e => e.offsetParent !== null)"
                      ".map(e => e.id)", selector)


def shown_page(driver, expected: str) -> list:
    """The visible pages once ``expected`` shows or 5 s pass: a link changes the page on the
    asynchronous ``hashchange`` event, so the page may switch a moment after the click returns."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 5).until(lambda d: visible(d, "section.page") == [expected])
    except TimeoutException:
        pass
    return visible(driver, "section.page")


def test_browser_cells_equal_the_table_cells(loaded, board):
    assert [e for e in loaded.get_log("browser") if e["level"] == "SEVERE"] == []
    page = js(loaded, "return Object.fromEntries([...document.querySelectorAll('table')].map(t => [t.id, "
                      "[...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent))]))")
    expected = {t.anchor: [[shown(r.cells[c.key]) for c in t.columns] for r in t.rows] for t in tables(board[0])}
    assert page == expected
    ids = js(loaded, "return [...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids))  # every link target is one element


def test_browser_opens_on_the_headline_and_details_are_one_click_away(loaded, board):
    from selenium.webdriver.common.by import By

    assert visible(loaded, "section.page") == ["page-headline"]
    first = visible(loaded, "table")[0]
    assert first == "headline-cifar10-vit" and loaded.find_element(By.ID, first).location["y"] < 1000  # on screen
    assert loaded.find_element(By.ID, "p-panel").get_attribute("value") == f"{claims.RECORD_SUITE}\u0001cifar10-vit"
    loaded.find_element(By.CSS_SELECTOR, 'header nav a[href="#page-standard"]').click()
    assert shown_page(loaded, "page-standard") == ["page-standard"]
    assert not loaded.find_element(By.ID, "plot").is_displayed()
    loaded.find_element(By.CSS_SELECTOR, 'header nav a[href="#page-headline"]').click()
    assert shown_page(loaded, "page-headline") == ["page-headline"]
    mark = loaded.find_element(By.CSS_SELECTOR, "#verdicts-standard-digits tbody tr td:nth-child(2) a")
    target = mark.get_attribute("href").split("#")[1]
    mark.click()  # a verdict mark opens its interval on the suite's page
    assert shown_page(loaded, "page-standard") == ["page-standard"]
    assert loaded.find_element(By.ID, target).is_displayed() and target.startswith("claim-standard-digits-")


def test_browser_click_sorts_a_column_by_value(loaded):
    from selenium.webdriver.common.by import By

    table = loaded.find_element(By.ID, "headline-digits")
    header = table.find_elements(By.TAG_NAME, "th")
    col = [h.text for h in header].index("Acc ↑")

    def column():
        return [float(v) for v in js(loaded, "return [...arguments[0].tBodies[0].rows].map(r => "
                                             "r.cells[arguments[1]].dataset.value)", table, col)]

    before = column()
    header[col].click()
    assert column() == sorted(before) and header[col].get_attribute("aria-sort") == "ascending"
    header[col].click()
    assert column() == sorted(before, reverse=True) and header[col].get_attribute("aria-sort") == "descending"


def test_browser_filter_hides_rows(loaded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    rows = "#headline-digits tbody tr"
    assert len(visible(loaded, rows)) > 2
    Select(loaded.find_element(By.ID, "f-method")).select_by_value("hydra")
    assert js(loaded, f"return [...document.querySelectorAll('{rows}')].filter(r => !r.hidden)"
                      ".map(r => r.dataset.method)") == ["hydra"]
    Select(loaded.find_element(By.ID, "f-task")).select_by_value("sst2-minilm")
    assert loaded.find_element(By.ID, "p-panel").get_attribute("value").endswith("sst2-minilm")
    Select(loaded.find_element(By.ID, "f-task")).select_by_value("")
    Select(loaded.find_element(By.ID, "f-method")).select_by_value("")
    assert len(visible(loaded, rows)) > 2


def test_browser_cell_lists_the_result_files_behind_it(loaded, board):
    from selenium.webdriver.common.by import By

    row = next(r for t in tables(board[0]) if t.anchor == "headline-digits" for r in t.rows if r.entry == "hydra")
    loaded.find_element(By.CSS_SELECTOR, '#headline-digits tr[data-method="hydra"] td:nth-child(3)').click()
    box = loaded.find_element(By.ID, "files")
    links = [a.get_attribute("href") for a in box.find_elements(By.TAG_NAME, "a")]
    assert box.is_displayed() and len(links) == len(row.files) == 3
    assert all(link.endswith(f) for link, f in zip(links, row.files))


def test_browser_plot_draws_points_with_tooltips(loaded, board, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(loaded.find_element(By.ID, "p-panel")).select_by_value("standard\u0001digits")
    Select(loaded.find_element(By.ID, "p-y")).select_by_value("ood_mean/auroc_msp")
    points = [p for p in frontier.plot_points(board[2], board[3], html.PLOT_METRICS) if (p["suite"], p["task"]) == ("standard", "digits")]
    drawn = [p for p in points if "params" in p["cost"] and "ood_mean/auroc_msp" in p["metrics"]]
    circles = loaded.find_elements(By.CSS_SELECTOR, "#scatter circle")
    assert len(circles) == len(drawn) > 3
    assert "noise" in loaded.find_element(By.ID, "plot-note").text  # external entry without cost: named, not drawn
    hydra = next(c for c in circles if c.get_attribute("data-method") == "hydra")
    ActionChains(loaded).move_to_element(hydra).perform()
    tip = loaded.find_element(By.ID, "tooltip")
    assert tip.is_displayed() and tip.text.startswith("hydra\ndigits (standard)") and "AUROC" in tip.text
    Select(loaded.find_element(By.ID, "p-x")).select_by_value("flops")
    assert len(loaded.find_elements(By.CSS_SELECTOR, "#scatter circle")) == len(drawn)
    js(loaded, "window.scrollTo(0, 0)")
    shot = Path(os.environ.get("UQBENCH_SCREENSHOT", tmp_path / "leaderboard.png"))
    assert loaded.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
