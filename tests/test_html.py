"""HTML view of the reports (issue 11, part 5): rendering, sync and garbage collection, and the pages' DOM and
behaviour in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

Every check of a cited line reads the artifact with plain Python (split on newlines, the csv module), never with the
code under test. The Chromium tests skip with the reason when Chromium, chromedriver or selenium is missing, and fail
instead when CI_REQUIRE_CHROMIUM=1 (set by .ci/run).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from reportgen.cli import main

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
WINDOW = (1200, 900)
HOSTILE = '<script>document.title="pwned"</script>"><img src=x onerror=document.title=1>'
# A bound value: [text](artifacts/…#L12 "key") with the markdown escapes of the link text and title kept.
BOUND = re.compile(r'\[((?:\\.|[^\]\\])*)\]\(((?:artifacts|derived)/[^\s)#]+)#L(\d+) "((?:\\.|[^"\\])*)"\)')


# ---------------------------------------------------------------- independent helpers (no reportgen code)

def artifact_line(path: Path, n: int) -> str:
    """Physical line n (1-based) of a file, read with plain Python."""
    return path.read_text(encoding="utf-8").split("\n")[n - 1].rstrip("\r")


def md_bindings(md: Path) -> list[tuple[str, str, int, str]]:
    """(link text, decoded path, line, fact key) of every bound value of a markdown report, in order."""
    return [(t, unquote(p), int(n), k.replace('\\"', '"').replace("\\\\", "\\"))
            for t, p, n, k in BOUND.findall(md.read_text(encoding="utf-8"))]


class Ids(HTMLParser):
    """Collects element ids, tags and attributes of a page (stdlib parser, not the renderer)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        self.tags.append((tag, d))
        if d.get("id"):
            self.ids.add(str(d["id"]))


def parse_page(path: Path) -> Ids:
    p = Ids()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def assert_line_holds(key: str, path: Path, line: str) -> None:
    """The cited line holds the key: a JSON line its last key, a CSV line the row the [k=v,…] key names."""
    if path.suffix == ".csv":
        header = next(csv.reader([artifact_line(path, 1)]))
        row = next(csv.reader([line]))
        m = re.fullmatch(r"\[(.*)\]\.(\w+)", key)
        assert m, key
        assert m[2] in header, (key, header)
        for pair in m[1].split(","):
            k, v = pair.split("=", 1)
            assert row[header.index(k)] == v, (key, line)
        return
    last = re.search(r'(?:^|\.)([A-Za-z_]\w*)$|\[("(?:\\.|[^"\\])*")\]$|\[(\d+)\]$', key)
    assert last, key
    if last[1]:
        assert f'"{last[1]}":' in line, (key, line)
    elif last[2]:
        assert f"{last[2]}:" in line, (key, line)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def html_reports(probe_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both bundled models built with --html (deterministic narrative)."""
    out = tmp_path_factory.mktemp("html") / "reports"
    assert main(["build", str(probe_run), "--out", str(out), "--html", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def hostile_reports(probe_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """smollm2 with a model token that is markup (script and onerror) in the primary table, built with --html.

    The token goes into pure-next-token.csv (row of layer 0 of the primary prompt) and the manifest's sha256 is
    updated, as a model whose tokenizer has such a token would produce it.
    """
    run = tmp_path_factory.mktemp("hostile-run")
    model = run / "smollm2"
    shutil.copytree(probe_run / "smollm2", model)
    csv_path = model / "pure-next-token.csv"
    lines = csv_path.read_text(encoding="utf-8").split("\n")
    header = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[1]]))
    assert row[header.index("layer")] == "0"
    row[header.index("top1_token")] = HOSTILE
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    lines[1] = buf.getvalue()
    csv_path.write_text("\n".join(lines), encoding="utf-8")
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    for a in manifest["artifacts"]:
        if a["path"] == "pure-next-token.csv":
            a["sha256"] = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    (model / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    out = tmp_path_factory.mktemp("hostile") / "reports"
    assert main(["build", str(run), "--out", str(out), "--html", "--quiet"]) == 0
    return out


def _chromium_unavailable() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        return (f"Chromium tests need {', '.join(missing)}: apt-get install -y chromium chromium-driver and "
                "pip install -e '.[dev]'")
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"CI_REQUIRE_CHROMIUM=1: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (fresh profile, no background networking) driven by chromedriver."""
    reason = _chromium_unavailable()
    if reason:
        _skip_or_fail(reason)
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not look for drivers online
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as e:
        shutil.rmtree(profile, ignore_errors=True)
        _skip_or_fail(f"Chromium did not start: {e.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _open(driver, path: Path, fragment: str = "") -> None:
    driver.get(path.resolve().as_uri() + fragment)
    driver.execute_script("return document.readyState")


def _wait(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


# ---------------------------------------------------------------- rendering without a browser

def test_hostile_markdown_renders_as_text(tmp_path: Path) -> None:
    """Raw HTML is disabled: markup in tokens, link text, titles and URLs never becomes an element."""
    from reportgen.html import render_report

    md = tmp_path / "r.md"
    text = ("# <script>alert(1)</script>\n\n<script>document.title='x'</script>\n\n"
            '<img src=x onerror="alert(1)">\n\n'
            f'Token [\'{HOSTILE}\'](derived/a-000000000000.json#L1 "k\\"><img src=x onerror=alert(1)>") '
            "and [click](javascript:alert(1)).\n\n"
            "<details>\n<summary>Top &amp; <b>five</b></summary>\n\n</details>\n\n"
            "<details>\n<summary>Per layer</summary>\n\n| a |\n|---|\n| 1 |\n\n</details>\n")
    (tmp_path / "derived").mkdir()
    (tmp_path / "derived" / "a-000000000000.json").write_text('{\n  "k": 1\n}\n')
    page, _ = render_report(text, tmp_path, md)
    p = Ids()
    p.feed(page)
    tags = [t for t, _ in p.tags]
    assert "script" not in tags and "img" not in tags and "b" not in tags
    # The templates' own details/summary paragraphs become elements; one with markup inside stays text.
    assert tags.count("details") == 1 and tags.count("summary") == 1 and "<summary>Per layer</summary>" in page
    assert "&lt;summary&gt;Top &amp; &lt;b&gt;five&lt;/b&gt;&lt;/summary&gt;" in page
    assert not any(k.startswith("on") for _, attrs in p.tags for k in attrs)
    assert not any(str(a.get("href", "")).lower().startswith("javascript") for _, a in p.tags)
    assert "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    csp = next(a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp


def test_every_bound_value_links_to_a_line_view(html_reports: Path) -> None:
    """Each bound value of the markdown is, in order, an <a> whose href is an existing line-view page holding
    the anchor, with the fact key as its title; snapshots stay as the manifest lists them."""
    for md in sorted(html_reports.glob("*.md")):
        expected = md_bindings(md)
        assert expected, md
        page = parse_page(md.with_suffix(".html"))
        links = [a for t, a in page.tags if t == "a" and a.get("class") == "v"]
        assert len(links) == len(expected), md
        ids: dict[str, set[str]] = {}
        for (_, path, line, key), a in zip(expected, links):
            href = str(a["href"])
            target, _, frag = href.partition("#")
            assert frag == f"L{line}" and a["title"] == key, (href, key)
            assert unquote(target).startswith(f"view/{path}") and target.endswith(".html"), href
            if target not in ids:
                ids[target] = parse_page(html_reports / unquote(target)).ids
            assert f"L{line}" in ids[target], href
    for snap in (html_reports / "artifacts").iterdir():
        listed = {a["path"] for a in json.loads((snap / "manifest.json").read_text())["artifacts"]}
        assert {p.name for p in snap.iterdir()} == listed | {"manifest.json"}, snap


def test_markdown_audit_unchanged_by_html(html_reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The HTML is a view: the markdown still audits clean, and it links no page or line view."""
    for md in sorted(html_reports.glob("*.md")):
        assert main(["audit", str(md)]) == 0, capsys.readouterr().out[-2000:]
        assert "view/" not in md.read_text() and ".html" not in md.read_text()


def test_refresh_keeps_html_in_sync(html_reports: Path, probe_run: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    shutil.copytree(html_reports, out)
    pages = sorted(out.glob("*.html")) + sorted((out / "view").rglob("*.html"))
    stamps = {p: p.stat().st_mtime_ns for p in pages}
    assert main(["refresh", str(out)]) == 0
    assert "html" not in capsys.readouterr().out  # unchanged: nothing written
    assert {p: p.stat().st_mtime_ns for p in pages} == stamps

    view = next((out / "view" / "artifacts").glob("smollm2-*/probe.json.html"))
    (out / "smollm2.html").unlink()
    view.unlink()
    orphan = out / "view" / "artifacts" / "smollm2-000000000000" / "probe.json.html"
    orphan.parent.mkdir()
    orphan.write_text("stale")
    leftovers = [view.parent / ".probe.json.html.k3x9_q", out / ".smollm2.html.a1b2c3"]  # interrupted writes
    for p in leftovers:
        p.write_text("half")
    assert main(["refresh", str(out)]) == 0
    said = capsys.readouterr().out
    assert "rebuilt  smollm2.html: no HTML page yet" in said
    assert (out / "smollm2.html").is_file() and view.is_file() and not orphan.parent.exists()
    assert not any(p.exists() for p in leftovers)

    # A build without --html drops the pages it owns, never a user's own page.
    (out / "notes.html").write_text("<p>mine</p>")
    assert main(["build", str(probe_run), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.html")) == ["notes.html"]
    assert not (out / "view").exists()
    assert all(json.loads(r.read_text()).get("html") is False for r in out.glob("*.build.json")
               if not r.name.startswith("cross-models"))


def test_large_csv_is_split_into_cited_pages_only(tmp_path: Path) -> None:
    """A CSV past CHUNK_LINES lines gets pages of CHUNK_LINES lines, written only where a value is cited."""
    from reportgen.html import CHUNK_LINES, write_report_html

    snap = tmp_path / "artifacts" / "big-0123456789ab"
    snap.mkdir(parents=True)
    n = 3 * CHUNK_LINES + 10
    rows = ["layer,token,value"] + [f"{i},tok{i},{i / 7:.6f}" for i in range(n - 1)]
    (snap / "big.csv").write_text("\n".join(rows) + "\n")
    cited = CHUNK_LINES + 7
    (tmp_path / "big.md").write_text(f'# big\n\nValue [x](artifacts/big-0123456789ab/big.csv#L{cited} "[layer={cited - 2}].value")\n')
    t0 = time.perf_counter()
    assert write_report_html(tmp_path, "big")
    elapsed = time.perf_counter() - t0
    written = sorted(p.name for p in (tmp_path / "view" / "artifacts" / "big-0123456789ab").iterdir())
    assert written == ["big.csv.2.html"]
    page = tmp_path / "view" / "artifacts" / "big-0123456789ab" / "big.csv.2.html"
    ids = parse_page(page).ids
    assert {f"L{cited}", "L1", f"L{CHUNK_LINES + 1}", f"L{2 * CHUNK_LINES}"} <= ids
    assert f"L{CHUNK_LINES}" not in ids and f"L{2 * CHUNK_LINES + 1}" not in ids
    size = page.stat().st_size
    raw = sum(len(r) + 1 for r in rows[CHUNK_LINES:2 * CHUNK_LINES])
    assert size < 3 * raw + 20_000, (size, raw)
    assert elapsed < 5, elapsed
    assert 'href="view/artifacts/big-0123456789ab/big.csv.2.html#L' in (tmp_path / "big.html").read_text()


# ---------------------------------------------------------------- real Chromium

@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("1", pytest.fail.Exception)])
def test_missing_chromium_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type) -> None:
    """Without Chromium the browser tests skip naming the fix; with CI_REQUIRE_CHROMIUM=1 they fail instead."""
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI_REQUIRE_CHROMIUM", ci)
    reason = _chromium_unavailable()
    assert reason and "/nonexistent/chromium" in reason
    with pytest.raises(outcome, match="apt-get install -y chromium chromium-driver"):
        _skip_or_fail(reason)


def test_chromium_values_are_links_to_existing_anchors(browser, html_reports: Path) -> None:
    """In the DOM, every bound value is an <a> (title = key) whose resolved href is a page with that anchor."""
    for md in sorted(html_reports.glob("*.md")):
        _open(browser, md.with_suffix(".html"))
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a.v')).map(a => [a.href, a.title, a.textContent])")
        expected = md_bindings(md)
        assert [t for _, t, _ in links] == [k for *_, k in expected], md
        ids: dict[Path, set[str]] = {}
        for href, _, _ in links:
            url = urlsplit(href)
            assert url.scheme == "file", href
            page = Path(unquote(url.path))
            assert page.is_file() and page.resolve().is_relative_to((html_reports / "view").resolve()), href
            if page not in ids:
                ids[page] = parse_page(page).ids
            assert url.fragment in ids[page], href


@pytest.mark.parametrize("kind", ["probe.json", ".csv", "derived/"])
def test_chromium_click_opens_the_highlighted_line(browser, html_reports: Path, kind: str) -> None:
    """A real click on a value opens its line view scrolled to the cited line, which alone is highlighted and
    holds the cited key (and, for numbers, the value) as plain Python reads it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    md = html_reports / "smollm2.md"
    bindings = md_bindings(md)
    index, (text, path, line, key) = next((i, b) for i, b in enumerate(bindings) if kind in b[1] and b[2] > 2)
    report = md.with_suffix(".html")
    _open(browser, report)
    link = browser.find_elements(By.CSS_SELECTOR, "a.v")[index]
    assert link.get_attribute("title") == key  # the browser's tooltip on hover
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    bg = "return getComputedStyle(arguments[0]).backgroundColor"
    idle = browser.execute_script(bg, link)
    ActionChains(browser).move_to_element(link).perform()
    assert browser.execute_script(bg, link) != idle  # a real hover marks the value
    link.click()
    _wait(lambda: browser.current_url.endswith(f".html#L{line}"))
    state = browser.execute_script("""
        const t = document.querySelector(':target');
        const bg = e => getComputedStyle(e).backgroundColor;
        const r = t.getBoundingClientRect();
        return {id: t.id, tag: t.tagName, bg: bg(t), prev: bg(t.previousElementSibling), next: bg(t.nextElementSibling),
                top: r.top, bottom: r.bottom, h: innerHeight,
                cells: Array.from(t.querySelectorAll('td')).map(c => c.textContent)};""")
    assert state["id"] == f"L{line}" and state["tag"] == "TR"
    assert state["bg"] != state["prev"] and state["bg"] != state["next"], state
    assert 0 <= state["top"] and state["bottom"] <= state["h"], state  # scrolled into view
    raw = artifact_line(html_reports / path, line)
    cells = [c.rstrip("\n") for c in state["cells"]]
    if path.endswith(".csv"):
        assert cells == next(csv.reader([raw])), (cells, raw)
    else:
        assert cells == [raw], (cells, raw)
    assert_line_holds(key, html_reports / path, raw)
    if re.fullmatch(r"-?\d+\.\d+", text):  # a plain decimal: the line's value rounds to it
        value = raw.split(":", 1)[1].strip().rstrip(",") if not path.endswith(".csv") else \
            next(csv.reader([raw]))[next(csv.reader([artifact_line(html_reports / path, 1)])).index(key.rsplit(".", 1)[1])]
        assert abs(float(value) - float(text)) <= 0.5 * 10 ** -len(text.split(".")[1]) + 1e-12, (text, raw)
    # Without the fragment the same row looks like its neighbours: the highlight is the :target style.
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    plain = browser.execute_script(
        f"const t = document.getElementById('L{line}'); const bg = e => getComputedStyle(e).backgroundColor;"
        "return [bg(t), bg(t.previousElementSibling)];")
    assert plain[0] == plain[1], plain


def test_chromium_hostile_tokens_are_text(browser, hostile_reports: Path) -> None:
    """A token that is markup shows as text in the report and the line view; nothing runs."""
    report = hostile_reports / "smollm2.html"
    _open(browser, report)
    state = browser.execute_script("""
        return {title: document.title, scripts: document.scripts.length,
                bad: document.querySelectorAll('img[src="x"], [onerror]').length,
                text: document.body.innerText};""")
    assert state["title"] == "smollm2: layer-by-layer lens evaluation"
    assert state["scripts"] == 0 and state["bad"] == 0
    assert HOSTILE in state["text"]
    link = next(b for b in md_bindings(hostile_reports / "smollm2.md") if b[3].endswith("top1_token") and b[2] == 2)
    view = next((hostile_reports / "view" / "artifacts").glob("smollm2-*/pure-next-token.csv.html"))
    _open(browser, view, "#L2")
    row = browser.execute_script("""
        return {title: document.title, scripts: document.scripts.length,
                cells: Array.from(document.getElementById('L2').querySelectorAll('td')).map(c => c.textContent)};""")
    assert row["scripts"] == 0 and "pwned" not in row["title"]
    assert HOSTILE in [c.rstrip("\n") for c in row["cells"]], link


def test_chromium_csp_blocks_scripts(browser, html_reports: Path, tmp_path: Path) -> None:
    """The page's Content-Security-Policy alone stops a script, should one ever get into the markup."""
    page = (html_reports / "smollm2.html").read_text()
    injected = tmp_path / "injected.html"
    injected.write_text(page.replace("</body>", "<script>document.title='ran'</script></body>"))
    _open(browser, injected)
    assert browser.execute_script("return document.scripts.length") == 1
    assert browser.title != "ran"


def test_chromium_images_load_and_nothing_leaves_file(browser, html_reports: Path) -> None:
    for name in ("smollm2", "gemma3-270m", "cross-models"):
        _open(browser, html_reports / f"{name}.html")
        state = browser.execute_script("""
            return {imgs: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)]),
                    urls: performance.getEntries().filter(e => ['navigation', 'resource'].includes(e.entryType))
                              .map(e => e.name),
                    attrs: Array.from(document.querySelectorAll('[src],[href]'))
                             .map(e => e.getAttribute('src') || e.getAttribute('href'))};""")
        if name != "cross-models":
            assert state["imgs"] and all(c and w > 0 and s == "data:image/png;base64," for c, w, s in state["imgs"])
        assert all(u.startswith(("file:", "data:")) for u in state["urls"]), state["urls"]
        assert not [a for a in state["attrs"] if re.match(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", a, re.I)
                    and not a.startswith("data:")], name


def test_chromium_screenshots(browser, html_reports: Path, tmp_path: Path) -> None:
    """Screenshots of a report and of a line view at a cited line: non-blank PNGs of the viewport's size."""
    from PIL import Image

    view = next((html_reports / "view" / "artifacts").glob("smollm2-*/pure-next-token.csv.html"))
    for name, path, frag in (("report", html_reports / "smollm2.html", ""), ("line-view", view, "#L32")):
        _open(browser, path, frag)
        w, h, dpr = browser.execute_script("return [innerWidth, innerHeight, devicePixelRatio]")
        shot = tmp_path / f"{name}.png"
        assert browser.save_screenshot(str(shot))
        assert png_size(shot) == (round(w * dpr), round(h * dpr))
        img = Image.open(shot).convert("RGB")
        colors = img.getcolors(maxcolors=1 << 20)
        assert colors is not None and len(colors) > 50, name  # text and rules, not a blank page
        top = max(colors)[1]
        assert max(colors)[0] < 0.97 * w * h * dpr * dpr, (name, top)
        if name == "line-view":
            assert any(c == (0xFF, 0xF1, 0xA8) for _, c in colors), "the cited line's highlight is on screen"
