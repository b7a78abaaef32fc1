"""Audit the bound values of a report: each value link against the one artifact line and key it names.

The link format and the text rule are `reportgen.bound`'s. For every link with a line anchor whose text is a value
(`reportgen.bound.is_binding`), the cited file is opened under the audit root (`reportgen.resolve.Resolver`: never
outside it), and:

- a JSON line must hold the key named in the title (the file is parsed once with `reportgen.jsonmap`, so the key
  path is exact: a citation shifted onto a neighbour that holds the same number still fails);
- a CSV line must be the row the title's key cells name, and the value is read from the titled column;
- the text is checked against that one value with `reportgen.bound.check_text`.

Verdicts: ``ok``, ``mismatch`` (with a hint naming the line where the key is), ``unresolvable`` (missing file, line
out of range, a path that leaves the root), ``forbidden`` (a report or a record, or a file beside a run manifest
that the manifest does not list) and ``unbound`` (in a report that binds values, a number outside every link).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

from reportgen.bound import check_text, forbidden_reason, is_binding, show
from reportgen.csvtable import cell_key
from reportgen.facts import infer_unit
from reportgen.jsonmap import format_path, parse_json_map, quote_name
from reportgen.numbers import extract_numbers

__all__ = ["LinkVerdict", "audit_links", "iter_bindings"]

_ANCHOR = re.compile(r"^(?P<path>[^#]*)#L(?P<first>\d+)(?:-L?(?P<last>\d+))?$")
_PARSER = MarkdownIt("commonmark").enable("table")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


# --- reading the links of a report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    report_line: int
    text: str
    href: str
    title: str | None


@dataclass(frozen=True)
class _FreeNumber:
    report_line: int
    raw: str


def _walk(markdown: str) -> tuple[list[_Link], list[_FreeNumber]]:
    """Every link (text, href, title) and every number written outside links and code, with report lines."""
    links: list[_Link] = []
    free: list[_FreeNumber] = []
    for token in _PARSER.parse(markdown):
        if token.type != "inline" or token.map is None:
            continue
        line = token.map[0] + 1
        stack: list[tuple[Token, list[str], int]] = []
        for child in token.children or []:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "link_open":
                stack.append((child, [], line))
            elif child.type == "link_close" and stack:
                opener, parts, at = stack.pop()
                title = opener.attrGet("title")
                links.append(_Link(at, "".join(parts), str(opener.attrGet("href") or ""),
                                   str(title) if title else None))
            elif child.type in ("text", "code_inline"):
                if stack:
                    stack[-1][1].append(child.content)
                elif child.type == "text":
                    free += [_FreeNumber(line, number.raw) for number in extract_numbers(child.content)]
    return links, free


# --- resolving a bound line ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkVerdict:
    """The audit of one bound value (or of one number bound to nothing).

    Attributes:
        report_line: 1-based report line of the link.
        text: The link text as shown.
        href: The link destination as written.
        file: The bound file relative to the audit root; None when unknown.
        line: The bound line; None when unknown.
        key: The fact key named in the title; None when the link has none.
        verdict: ``ok``, ``mismatch``, ``unresolvable``, ``forbidden`` or ``unbound``.
        expected: The value the bound line holds for that key, as JSON.
        reason: Why the verdict is not ok.
        hint: Where the key actually is, when the link points elsewhere.

    """

    report_line: int
    text: str
    href: str
    file: str | None
    line: int | None
    key: str | None
    verdict: str
    expected: str | None = None
    reason: str = ""
    hint: str | None = None


_JSON_INDEX: dict[str, tuple[dict[int, list[tuple[str, Any]]], dict[str, int], str | None]] = {}


def _index_json(text: str, name: str) -> tuple[dict[int, list[tuple[str, Any]]], dict[str, int], str | None]:
    """(line -> [(key path, scalar)], key path -> line, parse error or None) of one JSON text."""
    try:
        jm = parse_json_map(text, name)
    except Exception as e:  # noqa: BLE001 - any parse failure makes the binding unresolvable
        return {}, {}, str(e)
    by_line: dict[int, list[tuple[str, Any]]] = {}
    by_key: dict[str, int] = {}
    for node in jm.nodes:
        if not isinstance(node.value, (dict, list)):
            key = format_path(node.path)
            by_line.setdefault(node.line, []).append((key, node.value))
            by_key[key] = node.line
    return by_line, by_key, None


class _Files:
    """Per-audit cache of parsed cited files: one read and one parse per file, however many links cite it."""

    def __init__(self, resolver: Any) -> None:
        self.resolver = resolver
        self._json: dict[str, str | None] = {}
        self._by_line: dict[str, dict[int, list[tuple[str, Any]]]] = {}
        self._by_key: dict[str, dict[str, int]] = {}
        self._csv_rows: dict[str, dict[str, int]] = {}
        self._listed: dict[str, set[str] | None] = {}
        self._key_columns: dict[str, list[str]] = {}  # path -> the manifest's key columns of that CSV

    def unlisted(self, path: str) -> str | None:
        """Why a file beside a run manifest is no artifact of that run (the manifest does not list it), or None."""
        folder, _, name = path.rpartition("/")
        if folder not in self._listed:
            try:
                manifest = json.loads((self.resolver.root / folder / "manifest.json").read_text(encoding="utf-8"))
                self._listed[folder] = {a["path"] for a in manifest["artifacts"]} | {"manifest.json"}
                self._key_columns.update({f"{folder}/{a['path']}": list(a["key_columns"])
                                          for a in manifest["artifacts"] if isinstance(a.get("key_columns"), list)})
            except (OSError, ValueError, KeyError, TypeError):
                self._listed[folder] = None  # no manifest here: not a run snapshot, nothing to check
        listed = self._listed[folder]
        if listed is None or name in listed:
            return None
        return f"{path} is not listed in {folder}/manifest.json, so it is no artifact of the run"

    def key_columns(self, path: str) -> list[str] | None:
        """The key columns the run manifest gives a CSV artifact (after `unlisted` read it), or None."""
        return self._key_columns.get(path)

    def source(self, path: str, first: int, last: int) -> Any:
        from reportgen.citations import Citation, CitationKind

        return self.resolver.resolve(Citation(f"{path}:{first}", CitationKind.PATH, path, ((first, last),), (0, 0)))

    def json_lines(self, source: Any) -> dict[int, list[tuple[str, Any]]] | str:
        """Line -> [(key path, scalar value)] of a JSON file, or why it does not parse."""
        if source.name not in self._by_line:
            text = "\n".join(source.lines) + "\n"
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            if digest not in _JSON_INDEX:
                _JSON_INDEX[digest] = _index_json(text, source.name)
                while len(_JSON_INDEX) > 16:  # a few snapshots' files; audits of a whole reports dir stay cheap
                    _JSON_INDEX.pop(next(iter(_JSON_INDEX)))
            self._by_line[source.name], self._by_key[source.name], self._json[source.name] = _JSON_INDEX[digest]
        parsed = self._json[source.name]
        return parsed if isinstance(parsed, str) else self._by_line[source.name]

    def json_key_line(self, source: Any, key: str) -> int | None:
        self.json_lines(source)
        return self._by_key.get(source.name, {}).get(key)

    def csv_row_line(self, source: Any, row_key: str) -> int | None:
        """The line of the row whose key cells spell ``row_key`` (built once per file)."""
        if source.name not in self._csv_rows:
            header = _csv_cells(source.line(1))
            index: dict[str, int] = {}
            names = _row_key_names(row_key)
            if names and all(name in header for name in names):
                positions = [header.index(name) for name in names]
                for number in range(2, source.line_count + 1):
                    cells = _csv_cells(source.line(number))
                    if len(cells) == len(header):
                        index[_row_key(names, [cells[i] for i in positions])] = number
            self._csv_rows[source.name] = index
        return self._csv_rows[source.name].get(row_key)


def _csv_cells(line: str) -> list[str]:
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return []


def _row_key(names: list[str], cells: list[str]) -> str:
    return "[" + ",".join(f"{quote_name(n)}={cell_key(c)}" for n, c in zip(names, cells)) + "]"


_DECODER = json.JSONDecoder()


def _parse_csv_key(key: str) -> tuple[list[tuple[str, str]], str] | None:
    """Split ``[k=v,…].column`` (or ``…]["col"]``) into [(name, cell)] and the column; None when malformed."""
    if not key.startswith("["):
        return None
    pairs, pos = [], 1
    try:
        while True:
            if key[pos] == '"':
                name, pos = _DECODER.raw_decode(key, pos)
            else:
                m = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*").match(key, pos)
                if m is None:
                    return None
                name, pos = m.group(0), m.end()
            if key[pos] != "=":
                return None
            pos += 1
            if key[pos] == '"':
                cell, pos = _DECODER.raw_decode(key, pos)
            else:
                m = re.compile(r'[^\s,=\[\]"\\]*').match(key, pos)
                cell, pos = m.group(0), m.end()  # type: ignore[union-attr]
            pairs.append((str(name), str(cell)))
            if key[pos] == "]":
                break
            if key[pos] != ",":
                return None
            pos += 1
        rest = key[pos + 1:]
        if rest.startswith("."):
            return pairs, rest[1:]
        if rest.startswith("[") and rest.endswith("]"):
            return pairs, str(json.loads(rest[1:-1]))
    except (IndexError, ValueError):
        return None
    return None


def _row_key_names(row_key: str) -> list[str]:
    parsed = _parse_csv_key(row_key + ".x")
    return [name for name, _ in parsed[0]] if parsed else []


def _typed_cell(cell: str) -> Any:
    if cell == "":
        return None
    if cell in ("True", "False"):
        return cell == "True"
    if _INT.match(cell):
        return int(cell)
    if _FLOAT.match(cell):
        return float(cell)
    return cell


# --- auditing ---------------------------------------------------------------------------------------------------


def audit_links(markdown: str, resolver: Any) -> list[LinkVerdict]:
    """Audit every bound value of a report: one verdict per value link, plus one per unbound number.

    Args:
        markdown: The report's text.
        resolver: A `reportgen.resolve.Resolver` for the audit root (paths may not leave it).

    Returns:
        Verdicts in report order. Links that are plain citations (text that is no value, no title) are left to
        the claim audit; numbers outside links are ``unbound`` only when the report binds values with titles.

    """
    links, free = _walk(markdown)
    files = _Files(resolver)
    verdicts = [_judge(item, files) for item in links if is_binding(item.text, item.title) and "#" in item.href]
    if any(item.title for item in links):
        verdicts += [LinkVerdict(n.report_line, n.raw, "", None, None, None, "unbound",
                                 reason="a number outside every link is bound to no artifact line")
                     for n in free]
    return sorted(verdicts, key=lambda v: v.report_line)


def _judge(item: _Link, files: _Files) -> LinkVerdict:
    anchor = _ANCHOR.match(item.href)
    base = LinkVerdict(item.report_line, item.text, item.href, None, None, item.title, "unresolvable")
    if anchor is None:
        return _with(base, reason=f"{item.href}: expected PATH#L<line>")
    path, first = unquote(anchor.group("path")), int(anchor.group("first"))
    last = int(anchor.group("last") or first)
    base = _with(base, file=path, line=first)
    if (why := forbidden_reason(path)) is not None:
        return _with(base, verdict="forbidden", reason=why)
    if (why := files.unlisted(path)) is not None:
        return _with(base, verdict="forbidden", reason=why)
    source = files.source(path, first, last)
    if not hasattr(source, "lines"):
        return _with(base, reason=source.reason)
    if path.lower().endswith(".json"):
        return _judge_json(item, base, source, files, first, last)
    if path.lower().endswith(".csv"):
        return _judge_csv(item, base, source, files, first)
    return _with(base, verdict="mismatch", reason=f"{path}: only JSON and CSV lines hold bindable values")


def _with(v: LinkVerdict, **changes: Any) -> LinkVerdict:
    return replace(v, **changes)


def _judge_json(item: _Link, base: LinkVerdict, source: Any, files: _Files, first: int, last: int) -> LinkVerdict:
    lines = files.json_lines(source)
    if isinstance(lines, str):
        return _with(base, reason=f"{source.name} is not valid JSON: {lines}")
    held = [pair for number in range(first, last + 1) for pair in lines.get(number, [])]
    if item.title is not None:
        held = [(key, value) for key, value in held if key == item.title]
        if not held:
            at = files.json_key_line(source, item.title)
            hint = f"{item.title} is on line {at}" if at else f"{item.title} is no key of {source.name}"
            return _with(base, verdict="mismatch", reason=f"line {first} does not hold {item.title}", hint=hint)
    if not held:
        return _with(base, verdict="mismatch", reason=f"line {first} holds no scalar value")
    reasons = []
    for key, value in held:
        label = key.rsplit(".", 1)[-1].strip("[]\"")
        why = check_text(item.text, value, infer_unit(label) if type(value) in (int, float) else None)
        if why is None:
            return _with(base, verdict="ok", expected=show(value))
        reasons.append(why)
    return _with(base, verdict="mismatch", expected=show(held[0][1]), reason=reasons[0])


def _judge_csv(item: _Link, base: LinkVerdict, source: Any, files: _Files, line: int) -> LinkVerdict:
    header, cells = _csv_cells(source.line(1)), _csv_cells(source.line(line))
    if len(cells) != len(header) or line == 1:
        return _with(base, verdict="mismatch", reason=f"line {line} is not a data row of {source.name}")
    if item.title is None:
        candidates = list(zip(header, cells))
    else:
        parsed = _parse_csv_key(item.title)
        if parsed is None:
            return _with(base, reason=f"title {item.title!r}: expected [column=cell,…].column")
        pairs, column = parsed
        if column not in header or any(name not in header for name, _ in pairs):
            return _with(base, verdict="mismatch", reason=f"{source.name} has no column {column!r}")
        keys = files.key_columns(base.file or "")
        if keys is not None and [name for name, _ in pairs] != keys:
            # A partial key names several rows (records.csv adds pos): the binding would hold on any of them.
            return _with(base, verdict="mismatch", reason=f"the title names the key columns "
                         f"{[name for name, _ in pairs]}, but {source.name} rows are keyed by {keys}")
        if any(cells[header.index(name)] != cell for name, cell in pairs):
            at = files.csv_row_line(source, _row_key([n for n, _ in pairs], [c for _, c in pairs]))
            return _with(base, verdict="mismatch", reason=f"line {line} is not the row {item.title.split(']')[0]}]",
                         hint=f"that row is line {at}" if at else "no line holds that row")
        candidates = [(column, cells[header.index(column)])]
    reasons = []
    for column, cell in candidates:
        value = _typed_cell(cell)
        if item.text.strip().startswith("'"):
            value = cell  # a quoted text is a token: compare with the cell as written, whatever it looks like
        why = check_text(item.text, value, infer_unit(column) if type(value) in (int, float) else None)
        if why is None:
            return _with(base, verdict="ok", expected=show(value))
        reasons.append(why)
    return _with(base, verdict="mismatch", expected=show(_typed_cell(candidates[0][1])) if candidates else None,
                 reason=reasons[0] if reasons else "no cell to compare")


def iter_bindings(markdown: str) -> Iterator[tuple[int, str, str, str | None]]:
    """(report line, text, href, title) of every link with a line anchor, in order; for tests and tools."""
    links, _ = _walk(markdown)
    for item in links:
        if "#L" in item.href:
            yield item.report_line, item.text, item.href, item.title
