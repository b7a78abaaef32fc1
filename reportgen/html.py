"""Static HTML views of the markdown reports, readable offline: the report page and line views of cited artifacts.

Layout under a reports directory ``OUT`` (everything relative, no server, no network)::

    OUT/<name>.html                                   the report, rendered from OUT/<name>.md
    OUT/view/artifacts/<alias>-<id>/<file>.html       line view of a cited artifact of a snapshot
    OUT/view/derived/<alias>-<hash>.json.html         line view of a cited derived-facts file

A bound value ``[0.625](artifacts/s-1/probe.json#L257 "headline.final.p_top1")`` becomes
``<a class="v" href="view/artifacts/s-1/probe.json.html#L257" title="headline.final.p_top1">``; every line of a
line view is a row with ``id="L<n>"``, and the ``:target`` style highlights the cited one. Line views live outside
the content-addressed snapshot directories, whose files are verified by sha256. A file of more than
`CHUNK_LINES` lines is split into pages of that many lines (``<file>.<k>.html``, k from 1), and only the pages a
report cites are written, so a 100 MB CSV with three citations costs three pages, not a 200 MB page.

Markdown is rendered by markdown-it-py with raw HTML disabled: token strings come from models and are untrusted, so
``<script>`` in a token is text, never markup. The one exception is the templates' own ``<details>``/``<summary>``
paragraphs, which `_fold_details` turns into those elements only when a paragraph holds nothing else (escaped
model text can never form one). The pages carry a Content-Security-Policy that allows no script at
all, only the page's own inline style (by hash) and ``data:`` images (plots are embedded, so a report page stands
alone). Each page records the sha256 of its source and of this renderer in a meta tag: `sync_html` rewrites a page
only when either changed, so an unchanged refresh writes nothing.

HTML is opt-in (``reportgen build --html``) and recorded per report in its build record (``"html": true``);
`sync_html` keeps the pages of such reports in sync after every build and refresh, removes the pages of reports
built without it, and deletes line views no page links to any more. Not always on, because the markdown is the
contract (audited, committed, read on GitHub) and the pages add about 60% to a reports directory (bundled run:
0.7 MB of report pages with their plots, 1.1 MB of line views, beside 2.9 MB of markdown, snapshots and plots).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

from reportgen.errors import ReportError

VIEW = "view"
CHUNK_LINES = 5000  # lines per line-view page: records.csv of a bundled model (4,806 lines) fits in one
GENERATOR = "lensreport"
_BOUND_HREF = re.compile(r"^(?P<path>(?:artifacts|derived)/[^#?]+)#L(?P<line>[1-9][0-9]*)$")
_MD_HREF = re.compile(r"^(?P<name>[^/:#?]+)\.md(?P<frag>#.*)?$")
_SOURCE_META = re.compile(r'<meta name="lensreport-source" content="([0-9a-f]{64}):([0-9a-f]{64})">')
_VIEW_REF = re.compile(r'href="(view/[^"#]+\.html)#')
_SNAPSHOT_DIR = re.compile(r"^.+-[0-9a-f]{12}$")
_DERIVED_PAGE = re.compile(r"^.+-[0-9a-f]{12}\.json(?:\.\d+)?\.html$")
_TEMP = re.compile(r"^\..+\.html\.\w+$")  # leftovers of interrupted atomic writes

_REPORT_CSS = """
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--link:#0b57a4}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--fg);font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:50rem;margin:0 auto;padding:2rem 1.25rem 4rem}
h1{font-size:1.75rem;line-height:1.25;margin:0 0 .75rem}
h2{font-size:1.3rem;margin:2.2rem 0 .6rem;padding-bottom:.3rem;border-bottom:1px solid var(--line)}
h3{font-size:1.08rem;margin:1.6rem 0 .4rem}
p,ul,ol{margin:.6rem 0}
li{margin:.2rem 0}
em{color:var(--muted)}
a{color:var(--link)}
a.v{color:var(--link);text-decoration:none;border-bottom:1px dotted #9dbbdc;font-variant-numeric:tabular-nums}
a.v:hover,a.v:focus{background:#e8f1fb;border-bottom:1px solid var(--link);outline:none}
code{font:.88em/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--soft);
padding:.1em .3em;border-radius:4px}
pre{background:var(--soft);padding:.8rem;border-radius:6px;overflow-x:auto}
pre code{background:none;padding:0}
details{margin:1rem 0;border:1px solid var(--line);border-radius:6px;padding:.2rem .8rem}
summary{cursor:pointer;font-weight:600;padding:.3rem 0;color:var(--muted)}
details[open] summary{margin-bottom:.2rem}
table{display:block;overflow-x:auto;border-collapse:collapse;margin:1rem 0;font-size:.88rem;line-height:1.4;
max-width:100%}
th,td{border:1px solid var(--line);padding:.3rem .55rem;vertical-align:top}
th{background:var(--soft);font-weight:600;text-align:left}
tbody tr:hover{background:#fafbfc}
.r{text-align:right;font-variant-numeric:tabular-nums}
.c{text-align:center}
img{display:block;height:auto;margin:1rem 0;max-width:min(94vw,72rem);position:relative;left:50%;
transform:translateX(-50%)}
blockquote{margin:1rem 0;padding:0 1rem;color:var(--muted);border-left:.25em solid var(--line)}
hr{border:0;border-top:1px solid var(--line);margin:2rem 0}
footer{max-width:50rem;margin:0 auto;padding:0 1.25rem 2rem;color:var(--muted);font-size:.82rem}
""".strip()

_VIEW_CSS = """
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--hit:#fff1a8}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:.55rem 1rem}
header .path{font:600 14px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
header .meta{color:var(--muted);font-size:12.5px}
a{color:#0b57a4}
table{border-collapse:collapse;font:12.5px/1.55 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
td,thead th{white-space:pre;padding:0 .9em 0 .6em;text-align:left;vertical-align:top}
tbody th,thead th:first-child{position:sticky;left:0;background:#fff;min-width:4.5em;padding:0 .8em 0 1rem;
text-align:right;font-weight:400;border-right:1px solid var(--line)}
th a{color:#8c959f;text-decoration:none}
th a:hover{color:#0b57a4}
thead th{position:sticky;top:3.6rem;z-index:1;background:var(--soft);border-bottom:1px solid var(--line);
font-weight:600}
thead th:first-child{z-index:2;background:var(--soft)}
table.csv td+td{border-left:1px solid #eef1f4}
span.k{color:#0550ae}
tr{scroll-margin-top:35vh}
tr:target{background:var(--hit)}
tr:target th{background:var(--hit);border-right:3px solid #d4a72c}
tr:target th a{color:var(--fg);font-weight:700}
""".strip()


@dataclass(frozen=True)
class Citation:
    """One bound value's target: a reports-relative artifact path (decoded) and its 1-based line."""

    path: str
    line: int


@dataclass(frozen=True)
class Page:
    """One line-view page: the artifact it shows and the 1-based chunk number (0: the file fits in one page)."""

    path: str
    chunk: int

    def rel(self) -> str:
        """Path of the page under the reports directory."""
        return f"{VIEW}/{self.path}{f'.{self.chunk}' if self.chunk else ''}.html"


@lru_cache(maxsize=1)
def renderer_hash() -> str:
    """sha256 of this module and the markdown-it version: a new renderer makes every page out of date."""
    import markdown_it

    return hashlib.sha256(Path(__file__).read_bytes() + markdown_it.__version__.encode()).hexdigest()


def _csp(css: str, images: bool) -> str:
    """A policy that forbids every script: only the page's own inline style (by hash) and data: images load."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    img = "data:" if images else "'none'"
    return f"default-src 'none'; style-src 'sha256-{digest}'; img-src {img}; base-uri 'none'; form-action 'none'"


def _document(title: str, css: str, body: str, source_sha: str, images: bool) -> str:
    """A complete page: CSP first (it must precede what it governs), then the source meta the sync compares."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_csp(css, images)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="{GENERATOR}">\n'
            f'<meta name="lensreport-source" content="{source_sha}:{renderer_hash()}">\n'
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def _markdown() -> MarkdownIt:
    # html=False: raw HTML in the markdown (a model's token "<script>") is escaped text, never markup.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"])


def _lines(text: str) -> list[str]:
    """Physical lines as the audit and GitHub count them: split on newline only (not on U+2028 as splitlines does)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _n_lines(path: Path) -> int:
    with path.open("rb") as f:
        data = f.read()
    return len(_lines(data.decode("utf-8", errors="replace")))


def _safe_artifact(out: Path, rel: str, md: Path) -> Path:
    """The file a citation names, checked to stay inside the reports directory.

    Raises:
        ReportError: The path leaves the reports directory or is not a file.
    """
    parts = Path(rel).parts
    path = out / rel
    if ".." in parts or Path(rel).is_absolute() or not path.resolve().is_relative_to(out.resolve()):
        raise ReportError(f"{md}: cites {rel!r}, a path outside the reports directory")
    if not path.is_file():
        raise ReportError(f"{md}: cites {rel!r}, which is not a file under {out}; rebuild the report")
    return path


def _page_for(cite: Citation, n_lines: int) -> Page:
    return Page(cite.path, 0 if n_lines <= CHUNK_LINES else (cite.line - 1) // CHUNK_LINES + 1)


_DETAILS_TAG = re.compile(r"<details>|</details>|<summary>(?P<summary>[^<>]*)</summary>")
_DETAILS_ONLY = re.compile(r"(?:\s*(?:<details>|</details>|<summary>[^<>]*</summary>))+\s*")


def _details_html(source: str, depth: int, parser: MarkdownIt) -> tuple[str, int] | None:
    """Our own markup for a paragraph made only of details/summary tags, and the new nesting depth (None: text)."""
    if not _DETAILS_ONLY.fullmatch(source):
        return None
    parts = []
    for m in _DETAILS_TAG.finditer(source):
        if m[0] == "</details>":
            if depth == 0:
                return None  # a close without an open stays text
            depth -= 1
            parts.append("</details>")
        elif m[0] == "<details>":
            depth += 1
            parts.append("<details>")
        else:
            parts.append(f"<summary>{parser.renderInline(m['summary'].strip())}</summary>")
    return "".join(parts) + "\n", depth


def _fold_details(tokens: list[Token], parser: MarkdownIt) -> list[Token]:
    """Turn the templates' own ``<details>``/``<summary>``/``</details>`` paragraphs into those elements.

    Raw HTML stays disabled: only a paragraph made of nothing but these tags (a model token is always
    backslash-escaped and quoted, so it can never be one) becomes markup we write ourselves, with the summary's
    text rendered as inline markdown (escaped).
    """
    folded: list[Token] = []
    depth = 0
    i = 0
    while i < len(tokens):
        done = None
        if tokens[i].type == "paragraph_open" and i + 2 < len(tokens) and tokens[i + 1].type == "inline":
            done = _details_html(tokens[i + 1].content, depth, parser)
        if done is None:
            folded.append(tokens[i])
            i += 1
            continue
        block = Token("html_block", "", 0)
        block.content, depth = done
        folded.append(block)
        i += 3  # paragraph_open, inline, paragraph_close
    return folded


def _rewrite(tokens: list[Token], out: Path, md: Path) -> set[Page]:
    """Point bound links at their line-view pages, embed plots, and turn table alignment into classes.

    Returns:
        The line-view pages the report links to.
    """
    pages: set[Page] = set()
    sizes: dict[str, int] = {}
    for tok in tokens:
        if tok.type in ("th_open", "td_open"):
            # markdown-it writes alignment as a style attribute, which the CSP (no 'unsafe-inline') would drop.
            style = str(tok.attrs.pop("style", ""))
            if "right" in style or "center" in style:
                tok.attrSet("class", "r" if "right" in style else "c")
        for child in tok.children or []:
            if child.type == "link_open":
                pages |= _rewrite_link(child, out, md, sizes)
            elif child.type == "image":
                _embed_image(child, out, md)
    return pages


def _rewrite_link(tok: Token, out: Path, md: Path, sizes: dict[str, int]) -> set[Page]:
    href = str(tok.attrGet("href") or "")
    bound = _BOUND_HREF.match(href)
    if bound:
        cite = Citation(unquote(bound["path"]), int(bound["line"]))
        if cite.path not in sizes:
            sizes[cite.path] = _n_lines(_safe_artifact(out, cite.path, md))
        page = _page_for(cite, sizes[cite.path])
        tok.attrSet("href", f"{VIEW}/{bound['path']}{f'.{page.chunk}' if page.chunk else ''}.html#L{cite.line}")
        tok.attrSet("class", "v")
        return {page}
    other = _MD_HREF.match(href)
    if other and (out / f"{unquote(other['name'])}.md").is_file():
        tok.attrSet("href", f"{other['name']}.html{other['frag'] or ''}")  # report to report stays in HTML
    return set()


def _embed_image(tok: Token, out: Path, md: Path) -> None:
    """Replace a plot's relative path with a data: URI, so the report page needs no other file to show it."""
    src = unquote(str(tok.attrGet("src") or ""))
    if not src.startswith("plots/") or not src.endswith(".png"):
        return
    path = _safe_artifact(out, src, md)
    tok.attrSet("src", "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode())


def render_report(md_text: str, out: Path, md: Path) -> tuple[str, set[Page]]:
    """Render one markdown report to a complete HTML page.

    Args:
        md_text: the report's markdown (untrusted model tokens inside are escaped, never markup).
        out: the reports directory the report's links are relative to.
        md: the report's path, for error messages.

    Returns:
        The page and the line-view pages it links to.

    Raises:
        ReportError: A citation names a file that is missing or outside `out`.
    """
    parser = _markdown()
    tokens = _fold_details(parser.parse(md_text), parser)
    pages = _rewrite(tokens, out, md)
    title = next(("".join(c.content for c in tokens[i + 1].children or [] if c.type in ("text", "code_inline"))
                  for i, t in enumerate(tokens) if t.type == "heading_open"), md.stem)
    body = f"<main>\n{parser.renderer.render(tokens, parser.options, {})}</main>\n" \
           f"<footer>Rendered from {html.escape(md.name)} by {GENERATOR}. Every value links to the artifact line " \
           "it comes from; hover a value for its fact key.</footer>\n"
    return _document(title, _REPORT_CSS, body, hashlib.sha256(md_text.encode()).hexdigest(), images=True), pages


def _json_cell(line: str) -> str:
    """One JSON line, escaped, its key (if any) coloured."""
    m = re.match(r'^(\s*)("(?:[^"\\]|\\.)*")(:.*)$', line)
    if not m:
        return html.escape(line)
    return f'{m[1]}<span class="k">{html.escape(m[2])}</span>{html.escape(m[3])}'


def _row(n: int, cells: str) -> str:
    # Unquoted attributes and no closing </td></tr> (both valid HTML): a third less markup per line of a big CSV.
    return f"<tr id=L{n}><th><a href=#L{n}>{n}</a><td>{cells}\n"


def _csv_cells(line: str, width: int) -> str | None:
    """A CSV line as table cells, or None when it is not one record of `width` fields (shown raw instead)."""
    try:
        fields = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None
    return "<td>".join(html.escape(f) for f in fields) if len(fields) == width else None


def render_line_view(rel: str, text: str, chunk: int) -> str:
    """One line-view page: the lines of chunk `chunk` (0: all) of artifact `rel`, each a row with id L<n>.

    A CSV shows its header row (line 1) as a sticky table head on every page; a JSON file shows its raw lines.
    """
    return _render_lines(rel, _lines(text), chunk, hashlib.sha256(text.encode()).hexdigest())


def _render_lines(rel: str, lines: list[str], chunk: int, source_sha: str) -> str:
    """`render_line_view` of lines already split (a big file is split once for all its cited pages)."""
    first = 1 if chunk == 0 else (chunk - 1) * CHUNK_LINES + 1
    last = len(lines) if chunk == 0 else min(len(lines), chunk * CHUNK_LINES)
    depth = rel.count("/") + 1  # view/<rel> lives this many directories below the reports directory
    raw = "../" * depth + html.escape(rel)
    span = f"lines {first:,}\u2013{last:,} of {len(lines):,}" if chunk else f"{len(lines):,} lines"
    parts = [f'<header><div class="path">{html.escape(rel)}</div><div class="meta">{span} \u00b7 '
             f'<a href="{raw}">raw file</a> \u00b7 the cited line is highlighted</div></header>\n']
    if rel.endswith(".csv") and lines:
        header = next(csv.reader([lines[0]]), [])
        head_cells = "".join(f"<th>{html.escape(h)}" for h in header)
        parts.append(f'<table class="csv"><thead><tr id=L1><th><a href=#L1>1</a>{head_cells}\n'
                     "</thead><tbody>\n")
        for n in range(max(first, 2), last + 1):
            cells = _csv_cells(lines[n - 1], len(header))
            parts.append(_row(n, cells if cells is not None else html.escape(lines[n - 1])))
    else:
        parts.append('<table class="json"><tbody>\n')
        parts.extend(_row(n, _json_cell(lines[n - 1])) for n in range(first, last + 1))
    parts.append("</tbody></table>\n")
    title = f"{Path(rel).name}{f' ({span})' if chunk else ''} \u2014 {rel}"
    return _document(title, _VIEW_CSS, "".join(parts), source_sha, images=False)


def _in_sync(page: Path, source_sha: str) -> bool:
    """Whether a page was rendered from this source by this renderer (read from its head only)."""
    try:
        with page.open("r", encoding="utf-8", errors="replace") as f:
            head = f.read(2048)
    except OSError:
        return False
    m = _SOURCE_META.search(head)
    return bool(m) and m[1] == source_sha and m[2] == renderer_hash()


def _write_line_views(out: Path, pages: set[Page]) -> None:
    from reportgen.build import atomic_write

    by_file: dict[str, list[Page]] = {}
    for p in pages:
        by_file.setdefault(p.path, []).append(p)
    for rel, file_pages in sorted(by_file.items()):
        text = (out / rel).read_bytes().decode("utf-8", errors="replace")
        sha = hashlib.sha256(text.encode()).hexdigest()
        stale = [p for p in sorted(file_pages, key=lambda q: q.chunk) if not _in_sync(out / p.rel(), sha)]
        lines = _lines(text) if stale else []
        for p in stale:
            atomic_write(out / p.rel(), _render_lines(rel, lines, p.chunk, sha))


def write_report_html(out: Path, name: str) -> bool:
    """Render OUT/<name>.md to OUT/<name>.html and write the line views it links to; skip what is in sync.

    Returns:
        True when the report page was (re)written.

    Raises:
        ReportError: The markdown is unreadable or cites a missing file.
    """
    from reportgen.build import atomic_write

    md = out / f"{name}.md"
    try:
        md_text = md.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"{md}: unreadable report ({e}); rebuild it with reportgen build") from e
    page_path = out / f"{name}.html"
    fresh = _in_sync(page_path, hashlib.sha256(md_text.encode()).hexdigest())
    text, pages = render_report(md_text, out, md)
    _write_line_views(out, pages)  # first: the report page is the commit point, its views already complete
    if not fresh:
        atomic_write(page_path, text)
    return not fresh


def is_ours(page: Path) -> bool:
    """Whether an HTML file was written by this module (a user's own page is never removed)."""
    try:
        with page.open("r", encoding="utf-8", errors="replace") as f:
            return f'<meta name="generator" content="{GENERATOR}">' in f.read(2048)
    except OSError:
        return False


def wanted_html(out: Path) -> dict[str, bool]:
    """Report name -> whether its build record asks for HTML; the cross-model report follows its models."""
    from reportgen.cross import CROSS

    wanted: dict[str, bool] = {}
    for record in sorted(out.glob("*.build.json")):
        name = record.name[: -len(".build.json")]
        if name == CROSS:
            continue
        try:
            rec = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            rec = {}
        wanted[name] = isinstance(rec, dict) and rec.get("html") is True
    if (out / f"{CROSS}.md").is_file():
        wanted[CROSS] = any(wanted.values())
    return wanted


def sync_html(out: Path, dry_run: bool = False) -> list[str]:
    """Bring every report's HTML in line with its build record and markdown, then delete unlinked line views.

    Run under the reports lock, after the markdown reports are written (build and refresh both call it).

    Returns:
        One line per page written or removed (``rebuilt  smollm2.html: …``), for refresh to print.
    """
    lines = []
    for name, wanted in wanted_html(out).items():
        page = out / f"{name}.html"
        if wanted and (out / f"{name}.md").is_file():
            md_sha = hashlib.sha256((out / f"{name}.md").read_bytes()).hexdigest()
            if not _in_sync(page, md_sha):
                why = "no HTML page yet" if not page.is_file() else "report or renderer changed"
                if not dry_run:
                    write_report_html(out, name)
                lines.append(f"{'stale   ' if dry_run else 'rebuilt '} {name}.html: {why}")
            elif not dry_run and not all((out / unquote(rel)).is_file() for rel in _VIEW_REF.findall(
                    page.read_text(encoding="utf-8", errors="replace"))):
                write_report_html(out, name)  # a line view was deleted: write the missing ones
                lines.append(f"rebuilt  {name}.html: line views missing")
        elif page.is_file() and is_ours(page):
            if not dry_run:
                page.unlink()
            lines.append(f"{'stale   ' if dry_run else 'removed '} {name}.html: built without --html")
    if not dry_run:
        collect_view_garbage(out)
    return lines


def collect_view_garbage(out: Path) -> list[str]:
    """Delete line views no HTML page in `out` links to, and temp leftovers of interrupted writes.

    Only pages under ``view/`` with the names this module writes are candidates.
    """
    linked: set[str] = set()
    for page in out.glob("*.html"):
        linked.update(unquote(m) for m in _VIEW_REF.findall(page.read_text(encoding="utf-8", errors="replace")))
    removed = []
    view = out / VIEW
    for sub in ("artifacts", "derived"):
        base = view / sub
        for p in sorted(base.iterdir()) if base.is_dir() and not base.is_symlink() else []:
            if p.is_symlink():
                continue
            if p.is_dir() and _SNAPSHOT_DIR.match(p.name):
                for f in sorted(p.iterdir()):
                    rel = f"{VIEW}/{sub}/{p.name}/{f.name}"
                    if f.is_file() and not f.is_symlink() and rel not in linked and \
                            (f.name.endswith(".html") or _TEMP.match(f.name)):
                        f.unlink()
                        removed.append(rel)
                if not any(p.iterdir()):
                    p.rmdir()
            elif p.is_file() and (_DERIVED_PAGE.match(p.name) or _TEMP.match(p.name)) \
                    and f"{VIEW}/{sub}/{p.name}" not in linked:
                p.unlink()
                removed.append(f"{VIEW}/{sub}/{p.name}")
    for d in (view / "artifacts", view / "derived", view):
        if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
            d.rmdir()
    for p in out.glob(".*.html.*"):
        if _TEMP.match(p.name):
            p.unlink(missing_ok=True)
    return removed
