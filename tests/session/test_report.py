"""Tests for sid4ds.session.report: the HTML page, its plots, and a real browser reading it."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sid4ds.session import LabelingSession
from sid4ds.session import report as report_module
from sid4ds.session._report_data import score_ties

from ..conftest import TINY_SCORER, TINY_SEGMENTER, write_masks, write_pool

# the report's sessions train S for 2 epochs (TINY_SEGMENTER): enough to draw, not to be good
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict:
    """One session after two answered rounds and a third asked for ("three_rounds"), and a
    copy of it taken after its first (cold-start) round was asked for ("cold_start")."""
    root = tmp_path_factory.mktemp("report")
    truth = write_pool(root / "images")
    # E_sdr alone (the fused default has no fallback band for the report to show)
    session = LabelingSession.create(root / "session", root / "images", seed=0,
                                     scorer_params=TINY_SCORER,
                                     segmenter_params=TINY_SEGMENTER, fusion=None)
    record = session.query(n_label=4)
    shutil.copytree(session.path, root / "cold_start")
    for round_index in range(2):
        session.import_masks(write_masks(root / f"a{round_index}", record["selected"], truth))
        record = session.query(n_label=4)
    return {"three_rounds": session.path, "cold_start": root / "cold_start", "truth": truth}


@pytest.fixture
def figures(monkeypatch) -> dict[str, object]:
    """The matplotlib figures the report saves, by file name relative to the report."""
    saved: dict[str, object] = {}
    original = report_module._save_figure

    def record(figure, file: Path) -> None:
        saved[f"{file.parent.name}/{file.name}" if file.parent.name == "top"
              else file.name] = figure
        original(figure, file)

    monkeypatch.setattr(report_module, "_save_figure", record)
    return saved


def image_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def alt_texts(page: str) -> list[str]:
    return [html.unescape(alt) for alt in re.findall(r'<img [^>]*alt="([^"]*)"', page)]


def check_figure(name: str, figure) -> None:
    """Every panel titled, every plot's axes labelled, a legend where there are series."""
    axes = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert axes, name
    for ax in axes:
        if ax.images:  # an image panel
            assert ax.get_title(), f"{name}: an image panel without a title"
    plots = [ax for ax in axes if not ax.images]
    if plots:
        panels: dict[tuple, list] = {}  # a twin axes (e.g. twinx) is part of its panel
        for ax in plots:
            panels.setdefault(tuple(np.round(ax.get_position().bounds, 4)), []).append(ax)
        assert all(any(ax.get_title() for ax in panel) for panel in panels.values()), (
            f"{name}: a plot without a title")
        assert all(any(ax.get_xlabel() for ax in panel) for panel in panels.values()), (
            f"{name}: an unlabelled x axis")
        assert all(ax.get_ylabel() for ax in plots), f"{name}: an unlabelled y axis"
        series = [artist for ax in plots for artist in [*ax.lines, *ax.containers]
                  if not str(artist.get_label()).startswith("_")]
        if len(series) > 1:
            assert figure.legends or any(ax.get_legend() is not None for ax in plots), (
                f"{name}: no legend")
    for ax in figure.axes:
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel(), f"{name}: a colour bar without a label"


# ---------------------------------------------------------------------- the page
def test_report_page_plots_titles_and_commands(tmp_path, sessions, figures):
    session = LabelingSession.open(sessions["three_rounds"])
    index = session.report(tmp_path / "report")
    assert index == tmp_path / "report/index.html"
    page = index.read_text(encoding="utf-8")
    sources = image_sources(page)
    record = session.manifest["rounds"][-1]
    assert record["stage"] == "iterative"
    assert {"score_histogram.png", "defects_per_round.png", "training_curve.png",
            "fake_normal_sample.png"} <= set(sources)
    assert [source for source in sources if source.startswith("top/")] == [
        f"top/{rank:03d}.png" for rank in range(1, len(record["selected"]) + 1)]
    for source in sources:
        assert not source.startswith(("/", "http:", "https:", "file:")), source
        with Image.open(index.parent / source) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
    assert sorted(sources) == sorted(str(path.relative_to(index.parent)) for path in
                                     index.parent.rglob("*.png"))
    # no external resource: no stylesheet, script or URL other than the PNGs beside it
    assert not re.search(r"<(script|link)\b|https?://|@import|url\(", page)

    # every figure: titled panels, labelled axes, legends; every image: an alt text
    assert set(figures) == set(sources)
    for name, figure in figures.items():
        check_figure(name, figure)
    assert all(alt.strip() for alt in alt_texts(page))
    assert len(alt_texts(page)) == len(sources)
    assert page.count("<figcaption>") == 4
    histogram = figures["score_histogram.png"].axes[0]
    legend = [text.get_text() for text in histogram.get_legend().get_texts()]
    assert any(text.startswith("K cut") for text in legend)
    assert any(text.startswith("V cut") for text in legend)
    assert f"{min(record['scores']):.4g}" in " ".join(legend)
    assert f"{max(record['fake_normal_scores']):.4g}" in " ".join(legend)
    # an iterative round: S's probability map with its colour bar, its region outlined
    top = figures["top/001.png"]
    titles = [ax.get_title() for ax in top.axes]
    assert record["selected"][0] in titles[0]
    assert any("S: defect probability" in title for title in titles)
    assert any(ax.get_label() == "<colorbar>" for ax in top.axes)
    assert "expected defect ratio of the session's settings" in page
    defects = figures["defects_per_round.png"].axes[0]
    assert defects.lines[0].get_xdata().tolist() == [0, 4, 8]

    # the round table and the estimate
    for header in ("round", "stage", "reason", "asked", "labelled", "defective",
                   "defect rate", "fake normals"):
        assert f"<th>{header}</th>" in page
    # no audit yet: the page says so and how to draw one (the old ratio estimate is gone)
    recall = session.status()["recall"]
    assert "<h2>Share of defective images found (recall)</h2>" in page
    assert "<b>no audit yet</b>" in page and "ratio given at init" not in page
    assert (f"<code>sid4ds query {session.path} --audit {recall['audit_needed']}</code>"
            in page)
    for name in record["selected"]:
        assert name in page

    # commands are code, never backticks
    assert "`" not in page
    assert f"<code>sid4ds import {session.path} --masks DIR</code>" in page
    assert f"<code>sid4ds import {session.path} --masks DIR --any</code>" in page
    codes = re.findall(r"<code>(.*?)</code>", page, flags=re.S)
    assert all("<" not in code for code in codes)


def test_report_outlines_the_human_mask_once_labelled(tmp_path, sessions, figures):
    folder = shutil.copytree(sessions["three_rounds"], tmp_path / "session")
    session = LabelingSession.open(folder)
    record = session.manifest["rounds"][-1]
    truth = sessions["truth"]
    defective = [name for name in record["selected"] if truth[name].any()]
    normal = [name for name in record["selected"] if not truth[name].any()]
    answered = [defective[0], normal[0]]  # one of each, two left unanswered
    session.import_masks(write_masks(tmp_path / "answers", answered, truth))
    page = session.report(tmp_path / "report").read_text(encoding="utf-8")
    rows = dict(re.findall(r"<tr><td>\d+</td><td>([^<]+)</td><td>[^<]+</td><td>([^<]+)</td>",
                           page))
    for rank, name in enumerate(record["selected"], start=1):
        legend = figures[f"top/{rank:03d}.png"].axes[2].get_legend()
        texts = [text.get_text() for text in legend.get_texts()]
        assert any(text.startswith("S: p") for text in texts)
        assert any(text.startswith("human mask") for text in texts) == (name in answered)
        # the row's label is the human's answer for this image, or says there is none yet
        expected = ("not labelled yet" if name not in answered else
                    "labelled defective" if truth[name].any() else
                    "labelled normal")
        assert rows[html.escape(name)] == expected, name


def test_cold_start_report_shows_m_error_maps_and_says_there_is_no_s(tmp_path, sessions,
                                                                     figures):
    session = LabelingSession.open(sessions["cold_start"])
    page = session.report(tmp_path / "report").read_text(encoding="utf-8")
    assert session.manifest["rounds"][-1]["stage"] == "cold_start"
    assert "no segmentation learner S yet" in page.replace("\n", " ")
    assert "training_curve.png" not in figures
    titles = [ax.get_title() for ax in figures["top/001.png"].axes]
    assert any("M: reconstruction error" in title for title in titles)
    assert "<b>no audit yet</b>" in page  # nothing answered yet
    for name, figure in figures.items():
        check_figure(name, figure)
    assert "`" not in page


def test_report_with_no_fake_normal_sample(tmp_path, sessions, figures):
    session = LabelingSession.open(sessions["three_rounds"])
    page = session.report(tmp_path / "report", n_fake_normal_samples=0).read_text(
        encoding="utf-8")
    assert "fake_normal_sample.png" not in image_sources(page)
    assert "No fake normal to show" in page


# ---------------------------------------------------------------------- ties
def test_ties_finds_the_fallback_band_and_equal_scores():
    record = {"score": "E_sdr"}
    scores = np.array([0.2, -1 / (1 + 1e-4), -1 / (1 + 2e-4), -0.5, 0.0, 0.0])
    ties = score_ties(scores, record, "adaptive")
    assert ties["fallback"].tolist() == [False, True, True, True, False, False]
    np.testing.assert_allclose(ties["errors"][1:4], [1e-4, 2e-4, 1.0])
    assert ties["tied"].tolist() == [False, False, False, False, True, True]
    assert not ties["dominant"]  # 3 of 6 in the band: not more than half
    assert score_ties(scores, record, "threshold")["n_fallback"] == 0
    assert score_ties(np.zeros(5), {"score": "E_sdr"}, "threshold")["dominant"]
    # a fused round's scores are rank shares: no band, whatever their values
    assert score_ties(scores, {"score": "E_sdr+S"}, "adaptive")["n_fallback"] == 0


def report_with_scores(session, tmp_path, monkeypatch, make_scores):
    """The report of ``session`` with the last round's scores replaced by ``make_scores``."""
    record = session.manifest["rounds"][-1]
    original = report_module.round_scores

    def replaced(store, record_):
        _, names, _ = original(store, record_)
        return make_scores(names, record), names, True

    monkeypatch.setattr(report_module, "round_scores", replaced)
    return session.report(tmp_path / "report").read_text(encoding="utf-8"), record


def test_a_ranking_in_the_fallback_band_is_shown_by_what_ordered_it(tmp_path, sessions,
                                                                    figures, monkeypatch):
    session = LabelingSession.open(sessions["three_rounds"])

    def band(names, record):  # S marks nothing: every image in the band, near -1
        rng = np.random.default_rng(0)
        return -1 / (1 + rng.uniform(1e-6, 1e-4, len(names)))

    page, record = report_with_scores(session, tmp_path, monkeypatch, band)
    text = html.unescape(re.sub(r"<[^>]+>", "", page)).replace("\n", " ")
    n = len(record["selected"]) + len(record["fake_normals"])
    assert f"S marks no pixel in {n}" not in text  # scores.csv ranks the whole pool
    assert "S marks no pixel in" in text and "fallback band" in text
    assert "The score alone tells most images apart poorly" in text
    histogram = figures["score_histogram.png"]
    assert len(histogram.axes) == 2 and "fallback region" in histogram.axes[1].get_xlabel()
    check_figure("score_histogram.png", histogram)
    sample = figures["fake_normal_sample.png"]
    assert all("G " in ax.get_title() for ax in sample.axes)
    assert "what the ranking fell back on" in text


def test_equal_scores_are_shown_by_their_tie_break(tmp_path, sessions, figures,
                                                  monkeypatch):
    session = LabelingSession.open(sessions["three_rounds"])
    page, _ = report_with_scores(session, tmp_path, monkeypatch,
                                 lambda names, record: np.zeros(len(names)))
    text = html.unescape(re.sub(r"<[^>]+>", "", page)).replace("\n", " ")
    assert "share their score with another: the ranking orders them by their cold-start " \
           "E_msmr" in text
    histogram = figures["score_histogram.png"]
    assert len(histogram.axes) == 2 and "E_msmr" in histogram.axes[1].get_xlabel()
    assert histogram.axes[1].patches  # the E_msmr of the tied images, not an empty panel
    assert all("M " in ax.get_title() for ax in figures["fake_normal_sample.png"].axes)


# ---------------------------------------------------------------------- the final model
def test_report_shows_the_final_model_estimate_and_its_curves(tmp_path, sessions, figures):
    folder = shutil.copytree(sessions["three_rounds"], tmp_path / "session")
    session = LabelingSession.open(folder)
    page = session.report(tmp_path / "before").read_text(encoding="utf-8")
    assert "No final model yet" in page and "final_model.png" not in figures
    record = session.manifest["rounds"][-1]
    session.import_masks(write_masks(tmp_path / "answers", record["selected"],
                                     sessions["truth"]))
    session.configure(final={"max_steps": 6, "n_folds": 2, "n_checkpoints": 3})
    session.train(device="cpu")
    page = session.report(tmp_path / "report").read_text(encoding="utf-8")
    assert "final_model.png" in image_sources(page)
    check_figure("final_model.png", figures["final_model.png"])
    cv = session.cross_validation()
    estimate = cv.estimate()
    assert (f"<td>defect IoU</td><td>{estimate['iou']['mean']:.3f} ± "
            f"{estimate['iou']['std']:.3f}</td>") in page
    assert f"<td>threshold</td><td>{cv.threshold:g}</td>" in page
    assert "as if 0.05 of new images were defective" in page
    # no audit: one column, and the page says the estimate is of the ranked images
    assert "on the pool, weighted by the audit" not in page
    assert (f"<code>sid4ds query {folder} --audit N</code>, once labelled, gives the "
            f"estimate weighted to the pool") in page
    left, right = figures["final_model.png"].axes[:2]
    assert left.get_xlabel() == "threshold" and "training steps" in right.get_xlabel()
    assert right.lines[0].get_xdata().tolist() == cv.steps.tolist()


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path, sessions):
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright (python) is not installed")
    if CHROMIUM is None:
        pytest.skip("Chromium is not on PATH (Debian: apt-get install chromium; .ci/run "
                    "installs it)")
    index = LabelingSession.open(sessions["three_rounds"]).report(tmp_path / "report")
    n_sources = len(image_sources(index.read_text(encoding="utf-8")))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(index.as_uri(), wait_until="load")
            assert page.title().startswith("sid4ds session")
            assert page.evaluate("document.images.length") == n_sources
            assert page.evaluate(
                "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            assert all(url.startswith("file://") for url in requests), requests
            assert page.locator("h2").count() >= 5
            assert page.locator("code").count() >= 3
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
