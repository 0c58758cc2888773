"""`dvc plots show` and `dvc plots diff` pages draw every chart and picture with the network off.

A scratch copy of the repo (the committed metrics are in git: no pipeline run) renders its plots
with the committed `.dvc/config`, whose `plots.html_template` is plots/offline.html (vega,
vega-lite and vega-embed inlined: plots/README.md). Debian's headless Chromium, driven by
Playwright, opens each page with every non-local request blocked and host names unresolvable, and
the test checks that each chart DVC wrote has drawn a canvas or svg, each picture has loaded, and
the page asked for nothing but local URLs. The same page built from DVC's default template (CDN
scripts) must draw nothing: the checks can fail. Full-page screenshots go to the test's tmp dir
and, when MMLOOP_TEST_OUTPUT is set, to $MMLOOP_TEST_OUTPUT/plots-offline/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, copy_repo, run_in, sh

# None of these can leave the machine; DVC may embed pictures as data: URLs.
LOCAL_SCHEMES = ("file:", "data:", "blob:")
# Belt and braces beside the request blocking: no host name resolves, no proxy is asked.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND", "--no-proxy-server", "--disable-background-networking"]
RENDER_TIMEOUT_MS = 30_000
VENDORED = ("vega", "vega-lite", "vega-embed")

# Done once vegaEmbed is missing (nothing will ever draw) or every chart has its marks element.
RENDERED_JS = """(ids) => typeof vegaEmbed === 'undefined'
    || ids.every(id => document.getElementById(id)?.querySelector('canvas.marks, svg.marks'))"""
# Per chart: how much vega drew (non-blank canvas pixels, or svg shapes); 0 means nothing.
INK_JS = """(ids) => Object.fromEntries(ids.map(id => {
  const chart = document.getElementById(id);
  let ink = 0;
  for (const marks of chart ? chart.querySelectorAll('canvas.marks, svg.marks') : []) {
    if (marks.tagName === 'CANVAS') {
      if (!marks.width || !marks.height) continue;
      const px = marks.getContext('2d').getImageData(0, 0, marks.width, marks.height).data;
      for (let i = 0; i < px.length; i += 4)
        if (px[i + 3] > 0 && Math.min(px[i], px[i + 1], px[i + 2]) < 230) ink++;
    } else {
      ink += marks.querySelectorAll('path, rect, line, text').length;
    }
  }
  return [id, ink];
}))"""
IMAGES_JS = "() => [...document.images].map(img => [img.getAttribute('src'), img.complete ? img.naturalWidth : 0])"


@dataclass
class PageReport:
    """What one page did in the browser."""

    charts: dict[str, int]  # chart div id -> ink (0: not drawn)
    images: list[tuple[str, int]]  # src -> naturalWidth (0: not loaded)
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def outside(self) -> list[str]:
        return sorted({url for url in self.requests if not url.startswith(LOCAL_SCHEMES)})


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("plots-offline") / "mmloop"
    copy_repo(clone)
    return clone


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def dvc(clone: Path, *args: str) -> str:
    return sh([sys.executable, "-m", "dvc", *args], clone, timeout=300)


def plots_json(clone: Path, command: list[str]) -> dict[str, list[dict]]:
    """DVC's own list of what the page holds: plot name -> one entry per revision, with its type.

    `--json` copies pictures into its -o folder, so it gets a folder of its own.
    """
    result = run_in(clone, [sys.executable, "-m", "dvc", "plots", *command, "--json", "-o", "dvc_plots_json"])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)["data"]


def definition_pattern(text: str, params: dict) -> re.Pattern[str]:
    """The plot names one dvc.yaml plot definition makes: ${a.b} filled from params.yaml (an
    ${item.*} of a matrix stage matches any one path part), the path itself or files under it."""
    pieces = re.split(r"\$\{([\w.]+)\}", text)  # literal, key, literal, key, ..., literal
    pattern = re.escape(pieces[0])
    for key, literal in zip(pieces[1::2], pieces[2::2]):
        value: Any = params
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        pattern += (re.escape(str(value)) if isinstance(value, str | int | float) else "[^/]+") + re.escape(literal)
    return re.compile(pattern.rstrip("/") + "(/.+)?")


def plot_definitions(clone: Path) -> list[re.Pattern[str]]:
    """Every plot dvc.yaml defines, top level and per stage (a path, file or folder, or a title)."""
    pipeline = yaml.safe_load((clone / "dvc.yaml").read_text())
    params = yaml.safe_load((clone / "params.yaml").read_text())
    entries = list(pipeline.get("plots", []))
    for stage in pipeline["stages"].values():
        entries += stage.get("plots", [])
    names = [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries]
    return [definition_pattern(name, params) for name in names]


def shown_by(definition: re.Pattern[str], plots: dict[str, list[dict]]) -> list[str]:
    return [name for name in plots if definition.fullmatch(name)]


def chart_ids(page: Path) -> list[str]:
    """The charts DVC wrote into the page: one `vegaEmbed('#<div id>', spec)` call each."""
    return re.findall(r"vegaEmbed\('#([^']+)'", page.read_text(encoding="utf8"))


def open_offline(browser: Any, page_file: Path, shot_name: str, tmp_path: Path) -> PageReport:
    """Open `page_file` with every non-local request blocked (and recorded); screenshot it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1400, "height": 900}, service_workers="block")
    requests: list[str] = []
    errors: list[str] = []
    context.on("request", lambda request: requests.append(request.url))

    def local_only(route: Any) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            route.abort("internetdisconnected")

    context.route("**/*", local_only)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    try:
        ids = chart_ids(page_file)
        page.goto(page_file.as_uri(), wait_until="load")
        try:
            page.wait_for_function(RENDERED_JS, arg=ids, timeout=RENDER_TIMEOUT_MS)
        except PlaywrightTimeout:
            # Fall through: the checks then name the charts that did not draw.
            errors.append(f"timeout: not every chart drew within {RENDER_TIMEOUT_MS} ms")
        report = PageReport(charts=page.evaluate(INK_JS, ids), images=[tuple(i) for i in page.evaluate(IMAGES_JS)])
        report.screenshot = save_screenshot(page, shot_name, tmp_path)
    finally:
        context.close()
    report.requests, report.errors = requests, errors
    return report


def save_screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    if os.environ.get("MMLOOP_TEST_OUTPUT"):
        copy = Path(os.environ["MMLOOP_TEST_OUTPUT"]) / "plots-offline" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
        print(f"screenshot: {copy}")
    return path


def check_page(report: PageReport, plots: dict[str, list[dict]], definitions: list[re.Pattern[str]]) -> None:
    """Every chart drawn, every picture loaded, nothing but local URLs, no script errors."""
    assert not report.outside, "the page asked for non-local URLs:\n" + "\n".join(report.outside)
    charts = [name for name, entries in plots.items() if entries[0]["type"] == "vega"]
    pictures = [entry for entries in plots.values() for entry in entries if entry["type"] == "image"]
    assert len(report.charts) == len(charts), f"{len(report.charts)} chart divs in the page for {len(charts)} charts"
    blank = [chart for chart, ink in report.charts.items() if ink == 0]
    assert not blank, f"charts not drawn: {blank} (screenshot {report.screenshot}); page errors: {report.errors}"
    assert not report.errors, "errors in the page:\n" + "\n".join(report.errors)
    assert len(report.images) == len(pictures), f"{len(report.images)} <img> for {len(pictures)} pictures"
    assert all(width > 0 for _, width in report.images), f"pictures not loaded: {report.images}"
    # What dvc.yaml defines today: the training curves and the AP bars (charts), the BEV views
    # (pictures). Each definition, today's and any added later, must show up in the page.
    empty = [definition.pattern for definition in definitions if not shown_by(definition, plots)]
    assert not empty, f"plots defined in dvc.yaml but not in the page: {empty}"
    chart_definitions = [d for d in definitions if any(plots[n][0]["type"] == "vega" for n in shown_by(d, plots))]
    assert len(chart_definitions) >= 2 and len(charts) >= len(chart_definitions), [d.pattern for d in chart_definitions]
    assert pictures, "no image plots (the BEV pictures) in the page"


def test_vendored_scripts_and_template_are_up_to_date() -> None:
    """plots/ is what scripts/vendor_vega.py makes of its pins (read-only check, no network), in the
    majors of the scripts DVC's own page would load from the CDN."""
    from dvc_render.vega import VegaRenderer

    result = subprocess.run(
        [sys.executable, "scripts/vendor_vega.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((REPO / "plots" / "vendor" / "manifest.json").read_text())
    vendored = {package["name"]: package["version"] for package in manifest["packages"]}
    dvc_cdn = dict(re.findall(r"npm/([a-z-]+)@([\d.]+)", VegaRenderer.SCRIPTS))
    assert set(vendored) == set(dvc_cdn) == set(VENDORED), (vendored, dvc_cdn)
    for name, version in vendored.items():
        assert version.split(".")[0] == dvc_cdn[name].split(".")[0], f"{name} {version} vs DVC's {dvc_cdn[name]}"


@pytest.mark.slow
def test_plots_show_draws_everything_offline(repo_copy: Path, browser: Any, tmp_path: Path) -> None:
    dvc(repo_copy, "plots", "show")
    page = repo_copy / "dvc_plots" / "index.html"
    assert "cdn.jsdelivr" not in page.read_text(encoding="utf8")
    report = open_offline(browser, page, "plots-show", tmp_path)
    check_page(report, plots_json(repo_copy, ["show"]), plot_definitions(repo_copy))
    assert any(src.startswith("static/") for src, _ in report.images), report.images


@pytest.mark.slow
def test_plots_diff_draws_both_revisions_offline(repo_copy: Path, browser: Any, tmp_path: Path) -> None:
    dvc(repo_copy, "plots", "diff", "HEAD", "-o", "dvc_plots_diff")
    report = open_offline(browser, repo_copy / "dvc_plots_diff" / "index.html", "plots-diff", tmp_path)
    plots = plots_json(repo_copy, ["diff", "HEAD"])
    check_page(report, plots, plot_definitions(repo_copy))
    # workspace and HEAD: each picture twice
    assert {rev for entries in plots.values() for e in entries for rev in e["revisions"]} == {"workspace", "HEAD"}


@pytest.mark.slow
def test_dvc_default_template_draws_nothing_offline(repo_copy: Path, browser: Any, tmp_path: Path) -> None:
    """Without plots.html_template DVC's page fetches its scripts from a CDN: offline, no chart."""
    clone = repo_copy.parent / "default-template"
    shutil.copytree(repo_copy, clone)
    dvc(clone, "config", "--unset", "plots.html_template")
    dvc(clone, "plots", "show", "-o", "dvc_plots_cdn")
    report = open_offline(browser, clone / "dvc_plots_cdn" / "index.html", "plots-show-cdn-template", tmp_path)
    assert report.charts and all(ink == 0 for ink in report.charts.values()), report.charts
    for package in VENDORED:
        assert any(f"/npm/{package}@" in url for url in report.outside), (package, report.outside)
    assert any("vegaEmbed is not defined" in error for error in report.errors), report.errors


def test_dvc_reads_the_template_from_the_committed_config(repo_copy: Path) -> None:
    """`.dvc/config` names the template relative to .dvc/ (how DVC resolves it), and it exists."""
    result = run_in(repo_copy, [sys.executable, "-m", "dvc", "config", "plots.html_template"])
    assert result.returncode == 0, result.stderr
    template = (repo_copy / ".dvc" / result.stdout.strip()).resolve()
    assert template == (repo_copy / "plots" / "offline.html").resolve(), template
    text = template.read_text(encoding="utf8")
    assert "{plot_divs}" in text and "{scripts}" not in text and "<script src" not in text
