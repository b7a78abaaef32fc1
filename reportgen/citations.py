"""Recognise `file:line` citations inside one chunk of report text, in our style and in foreign styles.

Recognised forms (the chunk is plain text that markdown-it already took out of a paragraph, cell or link):

- ``dir/probe.json:12``, ``probe.json:7206–7209`` (en dash, hyphen, em dash or U+2011), ``probe.json:L12-L14``
  and the GitHub anchor ``probe.json#L12-L14``.
- Several ranges after one path: ``file.csv:2, 33`` and ``probe.json:7227–7233, 7538–7546``. A further
  range is taken only when a separator (``,;)]``) or the end of the sentence follows it, so the ``38`` of
  ``json:7170–7174, 38 in CSV shows …`` stays prose.
- Elided paths: ``…pure-next-token.csv:2–5`` and ``…json:7227`` (the ellipsis stands for a prefix of a file
  cited earlier), ``…:7`` and a bare ``:7`` (the file cited just before). The audit resolves them.
- Rows of a CSV: ``[row 32 in CSV]``, ``(row 32)``, ``rows 2–5`` and ``CSV rows 2–5`` name the CSV cited most
  recently; ``pure-next-token.csv rows 2–5`` names that file. In the seed style row N is physical line N (the
  header is row 1), so ``rows 2–5`` are lines 2–5.
- ``JSON L4`` (or ``JSON L4–L7``): line 4 of the JSON file cited most recently, or of the only JSON file the
  report cites. ``[L817]``: line 817 of the file cited most recently.
- Several files in one bracket, ``(a.json:3; b.csv:4)``, are simply several citations.

A path needs a ``/`` or a known data/text extension, so prose such as ``e.g.:3`` or ``ratio 3.5:1`` is not
read as a citation. A path named without line numbers (``probe.json: see the tuned block``) is not a citation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["Citation", "CitationKind", "find_citations"]

_DASH = "-\u2013\u2014\u2011\u2212"
_KNOWN_EXTENSIONS = frozenset(
    {"json", "jsonl", "csv", "tsv", "txt", "md", "py", "log", "yaml", "yml", "toml", "ipynb", "html", "out"}
)
_RANGE = rf"L?\d+(?:\s*[{_DASH}]\s*L?\d+)?"
_CITATION = re.compile(
    r"(?P<path>"
    r"(?:\u2026|\.\.\.)[\w.~/\-]*"  # elided prefix: …json, …/x-pure-next-token.csv, or nothing at all
    r"|/?(?:[\w.~\-]+/)*[\w~\-][\w.~\-]*\.(?P<ext>[A-Za-z][A-Za-z0-9]{0,5})"
    r")?"
    rf"(?P<sep>:\s?|#(?=L\d))(?P<first>{_RANGE})"
)
_MORE_RANGE = re.compile(rf"\s*,\s*(?P<range>{_RANGE})(?=\s*(?:[,;)\]]|$|\.(?:\s|$)))")
_ROW = re.compile(r"[\[(]\s*row\s+(?P<row>\d+)\s+(?:in|of)\s+(?:the\s+)?CSV\s*[\])]", re.IGNORECASE)
# "rows 2–5" anywhere; a singular "row 32" only inside a bracket or after "CSV", where it cannot be prose.
_ROWS = re.compile(
    rf"(?:(?<=[\[(])\s*rows?|(?<=CSV\s)rows?|\brows(?=\s+\d))\s+(?P<first>\d+)(?:\s*[{_DASH}]\s*(?P<last>\d+))?"
    r"(?:\s+(?:in|of)\s+(?:the\s+)?CSV)?",
    re.IGNORECASE,
)
_CSV_BEFORE = re.compile(r"(?P<path>/?(?:[\w.~\-]+/)*[\w~\-][\w.~\-]*\.csv)\s*$", re.IGNORECASE)
_JSON_REF = re.compile(rf"\bJSON\s+L(?P<first>\d+)(?:\s*[{_DASH}]\s*L?(?P<last>\d+))?")
_LINE_REF = re.compile(rf"\[L(?P<first>\d+)(?:\s*[{_DASH}]\s*L?(?P<last>\d+))?\]")
_NUMBER_IN_RANGE = re.compile(r"\d+")
# Characters that may precede a bare ":12" citation; "18:04" or "started: 2025" are not citations.
_BARE_BEFORE = " \t\n([;,"


class CitationKind(str, Enum):
    """How a citation names its file."""

    PATH = "path"  # the path is written out
    ELIDED = "elided"  # "…suffix:N" or ":N": an earlier citation's file
    ROW = "row"  # "[row N in CSV]", "rows 2–5": the most recently cited CSV
    JSON = "json"  # "JSON L4": the most recently cited JSON file, or the report's only one
    LINE = "line"  # "[L817]": the file cited most recently


@dataclass(frozen=True)
class Citation:
    """One citation as written in a chunk of report text.

    Attributes:
        text: The citation exactly as written, e.g. ``probe.json:7206–7209``.
        kind: Whether the path is written, elided or implied by a CSV row reference.
        path: The path as written (for ELIDED, the part after the ellipsis, possibly empty; for ROW, empty).
        ranges: 1-based inclusive physical line ranges ``(first, last)``, in the order written.
        span: ``(start, end)`` offsets of ``text`` in the chunk.

    """

    text: str
    kind: CitationKind
    path: str
    ranges: tuple[tuple[int, int], ...]
    span: tuple[int, int]


def _parse_range(text: str) -> tuple[int, int]:
    numbers = [int(number) for number in _NUMBER_IN_RANGE.findall(text)]
    return (numbers[0], numbers[-1])


def _plausible_path(match: re.Match[str]) -> bool:
    path = match.group("path")
    if path is None or path.startswith(("\u2026", "...")):
        return True
    return "/" in path or match.group("ext").lower() in _KNOWN_EXTENSIONS


def _bare_allowed(chunk: str, match: re.Match[str]) -> bool:
    """Allow a bare ``:N`` only after a bracket, separator or space before it and no space after the colon."""
    start = match.start()
    return (start == 0 or chunk[start - 1] in _BARE_BEFORE) and match.group("sep") == ":"


def _file_citation(chunk: str, match: re.Match[str]) -> Citation | None:
    path = match.group("path")
    if not _plausible_path(match) or (path is None and not _bare_allowed(chunk, match)):
        return None
    if path is not None and match.start() > 0 and chunk[match.start() - 1].isalnum():
        return None  # the tail of a longer token, e.g. a URL host or "x.y.json" glued to a word
    ranges = [_parse_range(match.group("first"))]
    end = match.end()
    while (more := _MORE_RANGE.match(chunk, end)) is not None:
        ranges.append(_parse_range(more.group("range")))
        end = more.end()
    elided = path is None or path.startswith(("\u2026", "..."))
    if elided:
        written = "" if path is None else path.lstrip("\u2026.")
        kind = CitationKind.ELIDED
    else:
        written, kind = path, CitationKind.PATH
    return Citation(chunk[match.start() : end], kind, written, tuple(ranges), (match.start(), end))


def _row_citation(chunk: str, match: re.Match[str]) -> Citation:
    """A seed-style row reference; row N is physical line N (the seed counts the header as row 1)."""
    if "first" in match.re.groupindex:
        first = int(match.group("first"))
        last = int(match.group("last") or first)
    else:
        first = last = int(match.group("row"))
    before = _CSV_BEFORE.search(chunk, 0, match.start())
    if before is not None and (before.start() == 0 or not chunk[before.start() - 1].isalnum()):
        span = (before.start(), match.end())
        return Citation(chunk[span[0] : span[1]], CitationKind.PATH, before.group("path"), ((first, last),), span)
    return Citation(match.group(0), CitationKind.ROW, "", ((first, last),), match.span())


def _line_citation(match: re.Match[str], kind: CitationKind) -> Citation:
    first = int(match.group("first"))
    last = int(match.group("last") or first)
    return Citation(match.group(0), kind, "", ((first, last),), match.span())


def _add(found: list[Citation], citation: Citation) -> None:
    if not any(_overlaps(citation.span, other.span) for other in found):
        found.append(citation)


def find_citations(chunk: str) -> list[Citation]:
    """Find every citation in a chunk of plain text, in order of appearance.

    Args:
        chunk: Text of one claim (sentence, list item or table row) with markdown already removed.

    Returns:
        The citations; overlapping matches are resolved in favour of the one that starts first.

    """
    found: list[Citation] = []
    for pattern in (_ROW, _ROWS):
        for match in pattern.finditer(chunk):
            _add(found, _row_citation(chunk, match))
    for match in _JSON_REF.finditer(chunk):
        _add(found, _line_citation(match, CitationKind.JSON))
    for match in _LINE_REF.finditer(chunk):
        _add(found, _line_citation(match, CitationKind.LINE))
    pos = 0
    while (match := _CITATION.search(chunk, pos)) is not None:
        citation = _file_citation(chunk, match)
        pos = citation.span[1] if citation else match.start() + 1
        if citation:
            _add(found, citation)
    return sorted(found, key=lambda citation: citation.span)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
