r"""Bound values: every number, word and token of a report is a link to the one artifact line it comes from.

The format (written by `reportgen.render`, checked by `audit_links`) is a CommonMark link whose text is the value
as printed, whose destination is the artifact file with a GitHub line anchor, and whose title is the fact key::

    [0.625](artifacts/smollm2-2b1fa5b595fd/probe.json#L255 "headline.final.p_top1")
    [2.764](artifacts/smollm2-2b1fa5b595fd/pure-next-token.csv#L32 "[prompt_id=pos,variant=orig,layer=30].entropy_bits")

The key is a JSON path (`reportgen.jsonmap.format_path`) for JSON files and ``[k=v,…].column`` (the fact key of
`reportgen.facts` without its file name) for CSV files, so the binding survives as data: the auditor checks that
the cited line holds *that* key (a citation shifted by one line fails even when the neighbour holds the same
number) and compares the text with that one value, never with whatever else sits on the line or the sentence.

Text rules (`check_text`): a number must equal the value rounded half-up or half-even to the printed decimals
(scientific notation: to its printed significant digits); no truncation; a printed integer matches a non-integer
only when the value's magnitude is at least 100 (``781`` for 780.9, never ``3`` for 2.76). ``75.7%`` matches the
fraction 0.7568. ``L 30`` is layer 30. Words are compared with the value: yes/no/true/false/✓/✗ with booleans,
none/n.a./never with null, rises/falls (and synonyms) with the sign of a number, any other text with a string
value (case-insensitive, whitespace collapsed); a quoted ``'…'`` text must equal the token exactly as the report
shows tokens (`visible`). A text that fits no rule is a mismatch, never "uncheckable".

Only artifact data may be bound: a link into a report or a record (``.md``, ``.html``, ``*.build.json``,
``*.validation.json``, ``.llm-cache/``) is ``forbidden``. In a report that binds values (one titled link is enough),
a number outside every link is ``unbound``: nothing unverified is published.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

from reportgen.facts import infer_unit
from reportgen.jsonmap import format_path, parse_json_map
from reportgen.numbers import NumberToken, extract_numbers

__all__ = ["Binding", "LinkVerdict", "audit_links", "check_text", "forbidden_reason", "is_binding", "link",
           "visible"]

TRUE_WORDS = frozenset({"yes", "true", "\u2713", "passed", "pass"})
FALSE_WORDS = frozenset({"no", "false", "\u2717", "failed", "fail"})
NONE_WORDS = frozenset({"none", "n/a", "n.a.", "null", "never", "\u2014"})
UP_WORDS = frozenset({"rises", "rise", "rose", "increases", "increase", "increased", "grows", "up", "higher",
                      "positive", "gains", "climbs"})
DOWN_WORDS = frozenset({"falls", "fall", "fell", "drops", "drop", "dropped", "decreases", "decrease", "decreased",
                        "shrinks", "down", "lower", "negative", "loses", "declines"})
FLAT_WORDS = frozenset({"unchanged", "flat", "stays", "zero"})
_WORDS = TRUE_WORDS | FALSE_WORDS | NONE_WORDS | UP_WORDS | DOWN_WORDS | FLAT_WORDS
_UNIT_WORDS = {"bits": "bits", "bit": "bits", "nats": "nats", "nat": "nats"}
_FORBIDDEN_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".build.json", ".validation.json")
_ANCHOR = re.compile(r"^(?P<path>[^#]*)#L(?P<first>\d+)(?:-L?(?P<last>\d+))?$")
_LAYER = re.compile(r"^(?:L|layer)\s*(?P<n>[-\u2212]?\d+)$", re.IGNORECASE)
_NUMBER_TEXT = re.compile(r"^(?P<num>\S+?)(?:\s*(?P<unit>bits?|nats?))?$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_PARSER = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Binding:
    """Where one printed value comes from: a file under the reports dir, its 1-based line, and the fact key."""

    path: str
    line: int
    key: str

    def href(self) -> str:
        """The link destination: the path, percent-encoded where needed, with a GitHub line anchor."""
        return f"{quote(self.path, safe='/._-~')}#L{self.line}"


def link(text: str, binding: Binding) -> str:
    """A markdown link binding already-escaped ``text`` to ``binding`` (the key goes in the link title)."""
    title = binding.key.replace("\\", "\\\\").replace('"', '\\"')
    return f'[{text}]({binding.href()} "{title}")'


def visible(text: str) -> str:
    """A token or string as reports show it: line breaks as ␤, invisible and control characters as U+XXXX.

    The markdown escaping of `reportgen.formatting.escape_md` is applied on top of this when rendering, and undone
    by the markdown parser when auditing, so the auditor compares a link's text with ``visible(value)``.
    """
    out = []
    for ch in text:
        if ch in "\r\n":
            out.append("\u2424")
        elif unicodedata.category(ch) in {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"} or 0xE0000 <= ord(ch) <= 0xE007F:
            out.append(f"U+{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def forbidden_reason(path: str) -> str | None:
    """Why a cited path may not be cited (a report or a record, not artifact data), or None when it may."""
    lowered = path.lower()
    if lowered.endswith(_FORBIDDEN_SUFFIXES):
        return f"{path} is a report or a record, not artifact data; cite the artifact line the value comes from"
    if ".llm-cache" in lowered.split("/"):
        return f"{path} is the LLM response cache, not artifact data"
    return None


# --- checking a printed text against one value ---------------------------------------------------------------


def _agrees(written: Decimal, actual: Decimal, places: int) -> bool:
    quantum = Decimal(1).scaleb(-places)
    try:
        return any(actual.quantize(quantum, rounding=mode) == written for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN))
    except InvalidOperation:
        return False


def _number_matches(token: NumberToken, value: float, unit: str | None) -> bool:
    # The shortest decimal that round-trips (what the artifact line shows) and the float's exact binary value
    # (what Python's own formatting rounds): 2.675 is printed 2.67 by f"{x:.2f}" and 2.68 by decimal rounding.
    readings = {Decimal(value)} if isinstance(value, int) else {Decimal(repr(float(value))), Decimal(float(value))}
    if token.is_percent and unit != "percent":
        readings = {reading * 100 for reading in readings}
    integral = "." not in token.raw and "e" not in token.raw.lower()
    for actual in readings:
        if integral and actual != actual.to_integral_value() and abs(actual) < 100:
            continue  # "3" is never 2.76: an integer is printed for integers or for magnitudes of 100 and more
        if _agrees(token.exact, actual, token.decimals):
            return True
    return False


def _word(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


def check_text(text: str, value: Any, unit: str | None = None) -> str | None:
    """Check a printed text against the value it is bound to.

    Args:
        text: The link text after markdown parsing (escapes undone).
        value: The value on the bound line (JSON scalar, or a typed CSV cell).
        unit: The fact's unit (`reportgen.facts.infer_unit`), for percentages and unit words.

    Returns:
        None when the text states the value; otherwise why not.

    """
    shown = text.strip()
    word = _word(shown)
    if len(shown) >= 2 and shown[0] == shown[-1] == "'":
        inner = shown[1:-1]
        return None if isinstance(value, str) and inner == visible(value) else \
            f"quotes {inner!r}, the line holds {_show(value)}"
    if value is None:
        return None if word in NONE_WORDS else f"states {shown!r}, the line holds null"
    if isinstance(value, bool):
        if word in (TRUE_WORDS if value else FALSE_WORDS):
            return None
        return f"states {shown!r}, the line holds {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return _check_number(shown, word, value, unit)
    if word == _word(visible(str(value))):
        return None
    return f"states {shown!r}, the line holds {_show(value)}"


def _check_number(shown: str, word: str, value: float, unit: str | None) -> str | None:
    if word in UP_WORDS | DOWN_WORDS | FLAT_WORDS:
        sign = "up" if value > 0 else "down" if value < 0 else "flat"
        said = "up" if word in UP_WORDS else "down" if word in DOWN_WORDS else "flat"
        return None if sign == said else f"says {shown!r}, but the bound change is {value:g}"
    if (layer := _LAYER.match(shown)) is not None:
        n = int(layer.group("n").replace("\u2212", "-"))
        return None if float(value) == n else f"states layer {n}, the line holds {value!r}"
    match = _NUMBER_TEXT.match(shown)
    tokens = extract_numbers(match.group("num")) if match else []
    if not match or len(tokens) != 1 or tokens[0].raw != match.group("num"):
        return f"states {shown!r}, which is not the number {value!r} the line holds"
    said_unit = _UNIT_WORDS.get((match.group("unit") or "").lower())
    if said_unit is not None and unit is not None and said_unit != unit:
        return f"states {said_unit}, the value is in {unit}"
    if tokens[0].is_percent and unit not in (None, "fraction", "probability", "percent"):
        return f"states a percentage, the value is in {unit}"
    if _number_matches(tokens[0], value, unit):
        return None
    return f"states {shown}, the line holds {value!r}"


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def is_binding(text: str, title: str | None) -> bool:
    """Whether a link binds its text to one value: it has a key title, or its text reads as a value."""
    if title:
        return True
    shown = text.strip()
    if not shown:
        return False
    if _word(shown) in _WORDS or _LAYER.match(shown) or (len(shown) >= 2 and shown[0] == shown[-1] == "'"):
        return True
    match = _NUMBER_TEXT.match(shown)
    tokens = extract_numbers(match.group("num")) if match else []
    return len(tokens) == 1 and tokens[0].raw == match.group("num")


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

    def unlisted(self, path: str) -> str | None:
        """Why a file beside a run manifest is no artifact of that run (the manifest does not list it), or None."""
        folder, _, name = path.rpartition("/")
        if folder not in self._listed:
            try:
                manifest = json.loads((self.resolver.root / folder / "manifest.json").read_text(encoding="utf-8"))
                self._listed[folder] = {a["path"] for a in manifest["artifacts"]} | {"manifest.json"}
            except (OSError, ValueError, KeyError, TypeError):
                self._listed[folder] = None  # no manifest here: not a run snapshot, nothing to check
        listed = self._listed[folder]
        if listed is None or name in listed:
            return None
        return f"{path} is not listed in {folder}/manifest.json, so it is no artifact of the run"

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


def _cell_text(cell: str) -> str:
    """A CSV key cell as the fact key writes it: bare, or JSON-quoted when it could be mistaken for syntax."""
    return cell if re.fullmatch(r'[^\s,=\[\]"\\]+', cell) else json.dumps(cell, ensure_ascii=False)


def _name_text(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name) else json.dumps(name, ensure_ascii=False)


def _row_key(names: list[str], cells: list[str]) -> str:
    return "[" + ",".join(f"{_name_text(n)}={_cell_text(c)}" for n, c in zip(names, cells)) + "]"


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
    from dataclasses import replace

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
            return _with(base, verdict="ok", expected=_show(value))
        reasons.append(why)
    return _with(base, verdict="mismatch", expected=_show(held[0][1]), reason=reasons[0])


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
            return _with(base, verdict="ok", expected=_show(value))
        reasons.append(why)
    return _with(base, verdict="mismatch", expected=_show(_typed_cell(candidates[0][1])) if candidates else None,
                 reason=reasons[0] if reasons else "no cell to compare")


def iter_bindings(markdown: str) -> Iterator[tuple[int, str, str, str | None]]:
    """(report line, text, href, title) of every link with a line anchor, in order; for tests and tools."""
    links, _ = _walk(markdown)
    for item in links:
        if "#L" in item.href:
            yield item.report_line, item.text, item.href, item.title
