"""The report in a real headless Chromium: loads from disk, no console errors, no
network, the filters work; screenshots go to artifacts/ for a person to look at."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.reportdata import report_dir  # noqa: F401  (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, index: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    # Images load lazily as they scroll into view: load them all before checking them.
    page.evaluate("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
    # Polled from here, not with wait_for_function: Playwright 1.65 evaluates a string
    # predicate with eval() in the page, which the report's CSP (no 'unsafe-eval') blocks.
    deadline = time.monotonic() + 30
    while not page.evaluate("Array.from(document.images).every(i => i.complete)"):
        assert time.monotonic() < deadline, "the report's images did not load in 30 s"
        page.wait_for_timeout(50)
    return page, errors, requests


def visible_labels(page, selector: str = "article.card") -> list[str]:
    """The labels of the elements a reviewer sees (rendered, not merely without a class)."""
    items = page.locator(selector)
    return [
        str(items.nth(k).get_attribute("data-label"))
        for k in range(items.count())
        if items.nth(k).is_visible()
    ]


def test_report_loads_offline_and_filters(browser, report_dir):  # noqa: F811
    page, errors, requests = open_page(browser, report_dir / "index.html")
    assert errors == []
    folder = report_dir.as_uri()
    assert all(url.startswith(folder) for url in requests), requests
    assert page.eval_on_selector_all("img", "els => els.every(e => e.naturalWidth > 0)")
    assert len(visible_labels(page)) == 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-all.png"), full_page=True)

    everything = ["circle", "square", "<img src=x onerror=alert(1)>"]
    assert sorted(visible_labels(page, "a.thumb")) == sorted(everything)
    page.click("button[data-filter=failed]")
    assert visible_labels(page) == ["square"]
    assert visible_labels(page, "a.thumb") == ["square"]  # the grid's tiles too
    page.screenshot(path=str(ARTIFACTS / "report-failed.png"))
    page.click("button[data-filter=all]")
    page.locator("#search").press_sequentially("circ")  # typed, as a reviewer does
    assert visible_labels(page) == ["circle"]
    assert visible_labels(page, "a.thumb") == ["circle"]
    page.click("button[data-filter=failed]")  # both at once: the circle passed
    assert visible_labels(page) == visible_labels(page, "a.thumb") == []
    page.click("button[data-filter=all]")
    # the hostile label is shown as text, and no script ran from it
    page.fill("#search", "")
    texts = page.eval_on_selector_all("article h2", "hs => hs.map(h => h.textContent)")
    assert any("<img src=x onerror=alert(1)>" in t for t in texts)
    # a named suspect: its sentence (the hostile description as text) and two pictures
    suspect = page.locator("article.card[data-label=circle] .suspects")
    assert "Named suspect: <img src=x onerror=alert(1)> stamp." in suspect.inner_text()
    assert "read 100% of them as circle (0% without it" in suspect.inner_text()
    assert suspect.locator("img").count() == 2
    # the trigger search: its sentence, the mask × pattern, the mask and three examples,
    # every picture visible and loaded
    trigger = page.locator("article.card[data-label=square] .trigger")
    text = trigger.inner_text()
    assert "turns 95% of held-out ones" in text and "1 of 4" in text and "(2.0%" in text
    pictures = trigger.locator("img")
    assert pictures.count() == 5
    assert all(pictures.nth(k).is_visible() for k in range(5))
    assert trigger.locator("figcaption").first.inner_text() == "mask × pattern"
    trigger.screenshot(path=str(ARTIFACTS / "report-trigger.png"))
    page.close()


def test_a_reviewer_sees_where_each_seed_stopped(browser, report_dir):  # noqa: F811
    """The stop rule in the page a person opens: the circle's card says its seeds stopped
    at 8/10/12 of 12, its curve shows two dots (seeds 0 and 1) with their step on hover,
    the header states the rule; a card whose seeds ran every step shows neither."""
    page, errors, _ = open_page(browser, report_dir / "index.html")
    assert errors == []
    circle = page.locator('article.card[data-label="circle"]')
    caption = circle.locator(".curvebox figcaption")
    assert caption.is_visible() and "stopped at 8/10/12 of 12" in caption.inner_text()
    dots = circle.locator("svg.curve circle.stop")
    assert dots.count() == 2 and all(dots.nth(k).is_visible() for k in range(2))
    assert dots.nth(0).locator("title").text_content() == "seed 0 stopped at step 8"
    box = circle.locator("svg.curve").bounding_box()
    first = dots.nth(0).bounding_box()
    assert box and first and first["x"] < box["x"] + box["width"] * 0.8  # at 8 of 12 steps
    square = page.locator('article.card[data-label="square"]')
    assert square.locator("svg.curve circle.stop").count() == 0
    assert "stopped" not in square.locator(".curvebox figcaption").inner_text()
    assert page.locator("header .stoprule").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    circle.screenshot(path=str(ARTIFACTS / "report-stopped-card.png"))


def test_self_contained_page_works_alone(browser, report_dir, tmp_path):  # noqa: F811
    from pytest_actaudit.cli import main as cli_main

    cli_main(["report", str(report_dir), "--self-contained"])
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    shutil.copyfile(report_dir / "index.html", alone)
    page, errors, requests = open_page(browser, alone)
    assert errors == [] and requests == [alone.as_uri()]
    # 23 images, and the trigger's five (mask × pattern, mask, three examples)
    assert page.eval_on_selector_all(
        "img", "els => els.length === 28 && els.every(e => e.naturalWidth > 0)"
    )
    page.close()


def test_a_thousand_classes_page_and_open_fast(browser, tmp_path):
    """ImageNet scale: 1000 classes × 3 seeds. index.html holds the grid of every class
    (searchable) and the first 100 cards; the rest are on cards-N.html."""
    import numpy as np

    from pytest_actaudit import ClassAudit
    from pytest_actaudit.report.writer import ImageSink, audit_record, write_report
    from tests.reportdata import RUN

    rng = np.random.default_rng(0)
    sink = ImageSink(tmp_path)
    records = []
    for index in range(1000):
        audit = ClassAudit(
            label=f"class {index:04d}",
            index=index,
            images=rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8),
            logits=np.full(3, 5.0),
            probabilities=np.full(3, 0.99),
            seeds=[0, 1, 2],
            steps=8,
            curves=np.cumsum(rng.uniform(0, 1, (3, 8)), axis=1),
            model_name="models/imagenet.keras",
            nodeid=f"test_x.py::test_audit[{index}]",
        )
        records.append(audit_record(audit, sink))
    index_html = write_report(tmp_path, run=dict(RUN), records=records, outcomes={})
    assert index_html.stat().st_size <= 3_000_000
    assert len(list(tmp_path.glob("cards-*.html"))) == 9

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(index_html.as_uri())
    page.wait_for_load_state("load")
    paint = page.evaluate(
        "performance.getEntriesByType('paint')"
        ".filter(e => e.name === 'first-contentful-paint').map(e => e.startTime)[0]"
    )
    assert paint is not None and paint <= 2000, paint
    assert page.locator("a.thumb").count() == 1000
    page.fill("#search", "class 0987")
    assert visible_labels(page, "a.thumb") == ["class 0987"]
    page.locator("a.thumb:visible").click()
    page.wait_for_load_state("load")
    assert page.url.split("/")[-1].startswith("cards-10.html#audit-")
    assert page.locator("article.card[data-label='class 0987']").is_visible()
    page.close()
