"""Split a markdown report into cited claims (sentences, list-item sentences, table rows) and their values.

markdown-it-py parses the report, so list markers, emphasis, escapes, link targets and table pipes never reach
the claim text. What counts as one claim:

- Paragraphs, headings and list items are split into sentences at ``.``/``!``/``?`` followed by whitespace
  and a character that is not lower case, outside brackets, quotes and code spans, and not after
  ``e.g.``-style abbreviations. A sentence that holds nothing but citations (``Text. (a.json:3)``) belongs to
  the sentence before.
- A table row is one claim: the row label (``L 31``) and the cited value usually sit in different cells.

What is checked in a claim: its numbers (`reportgen.numbers.extract_numbers`) and its quoted strings (``"…"``,
``“…”``, ``'…'`` and code spans that are not a bare number), after removing the citations themselves and a
leading section number such as ``2.`` or ``2.1``. Numbers inside a quoted string are checked as part of the
string, not again on their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.token import Token

from reportgen.citations import Citation, find_citations
from reportgen.numbers import NumberToken, extract_numbers

__all__ = ["Chunk", "Claim", "blank", "claim_values", "extract_claims", "inline_chunk", "sentence_spans"]

_QUOTE = re.compile(
    r'"(?P<dq>[^"\n]+)"|\u201c(?P<cq>[^\u201d]+)\u201d|(?<![\w\'])\'(?P<sq>[^\'\n]+)\'(?![\w])'
)
_SECTION_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*[.)]?\s")
_ORDINAL = re.compile(r"^\s*\d+[.)]\s")  # in a table row only "7." / "7)" is a label; "0.1000" is data
_ABBREVIATIONS = frozenset({"e.g", "i.e", "vs", "cf", "approx", "al", "fig", "eq", "resp", "ca"})
_OPENERS, _CLOSERS = "([{", ")]}"
_ONLY_NUMBER = re.compile(r"^\s*[-\u2212+]?\d[\d,]*(?:\.\d+)?(?:[eE][-\u2212+]?\d+)?\s*%?\s*$")


@dataclass(frozen=True)
class Claim:
    """One cited statement of a report and the values it asserts.

    Attributes:
        report_line: 1-based line of the report where the claim starts.
        text: The claim's plain text, citations included.
        citations: The citations written in the claim, in order.
        numbers: Numbers asserted by the claim (citations, quotes and section numbers excluded).
        quotes: Quoted strings and code spans asserted by the claim, stripped.

    """

    report_line: int
    text: str
    citations: tuple[Citation, ...]
    numbers: tuple[NumberToken, ...]
    quotes: tuple[str, ...]


@dataclass(frozen=True)
class Chunk:
    """Plain text of one inline block with the offsets of its code spans and its first report line."""

    text: str
    code_spans: tuple[tuple[int, int], ...]
    first_line: int


def inline_chunk(inline: Token, first_line: int) -> Chunk:
    """Flatten an inline token to plain text; softbreaks stay newlines so offsets map back to report lines."""
    parts: list[str] = []
    code: list[tuple[int, int]] = []
    length = 0
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            piece = child.content
        elif child.type in ("softbreak", "hardbreak"):
            piece = "\n"
        else:  # link/emphasis markers, inline HTML and images carry no claim text
            continue
        if child.type == "code_inline":
            code.append((length, length + len(piece)))
        parts.append(piece)
        length += len(piece)
    return Chunk("".join(parts), tuple(code), first_line)


def _join_chunks(chunks: list[Chunk], separator: str = " | ") -> Chunk:
    text, code, offset = [], [], 0
    for chunk in chunks:
        text.append(chunk.text)
        code.extend((start + offset, end + offset) for start, end in chunk.code_spans)
        offset += len(chunk.text) + len(separator)
    return Chunk(separator.join(text), tuple(code), chunks[0].first_line)


def _is_sentence_end(text: str, index: int) -> bool:
    if text[index] not in ".!?" or index + 1 >= len(text) or not text[index + 1].isspace():
        return False
    rest = text[index + 1 :].lstrip()
    if not rest or rest[0].islower():
        return False
    word = re.search(r"[\w.]*$", text[:index])  # always matches, possibly empty
    return word is None or word.group(0).lower() not in _ABBREVIATIONS


def _sentence_spans(chunk: Chunk) -> list[tuple[int, int]]:
    """Sentence boundaries outside brackets, double quotes and code spans."""
    spans, start, depth, quoted = [], 0, 0, False
    text = chunk.text
    for index, char in enumerate(text):
        if any(low <= index < high for low, high in chunk.code_spans):
            continue
        if char == '"':
            quoted = not quoted
        elif char in "\u201c\u201d":
            quoted = char == "\u201c"
        elif char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth = max(depth - 1, 0)
        elif depth == 0 and not quoted and _is_sentence_end(text, index):
            spans.append((start, index + 1))
            start = index + 1
    spans.append((start, len(text)))
    return [span for span in spans if text[span[0] : span[1]].strip()]


def _citation_spans(text: str) -> list[tuple[int, int]]:
    return [citation.span for citation in find_citations(text)]


def _only_citations(text: str, cited: list[tuple[int, int]]) -> bool:
    """Whether a sentence is nothing but citations and punctuation, as in ``Text. (a.json:3)``."""
    rest = blank(text, cited)
    return bool(cited) and not re.sub(r"[\s()\[\];,.:]", "", rest)


def sentence_spans(
    chunk: Chunk, cited: Callable[[str], list[tuple[int, int]]] = _citation_spans
) -> list[tuple[int, int]]:
    """Split a chunk into sentence spans; a sentence holding only citations joins the sentence before.

    Args:
        chunk: Plain text of one inline block.
        cited: Returns the citation spans of a piece of text (by default our ``file:line`` citations);
            a caller with other citation markers (e.g. fact handles) passes its own.

    Returns:
        ``(start, end)`` offsets into ``chunk.text``, in order, none of them blank.

    """
    merged: list[tuple[int, int]] = []
    for start, end in _sentence_spans(chunk):
        piece = chunk.text[start:end]
        if merged and _only_citations(piece, cited(piece)):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    """Replace spans by spaces, keeping every other offset in place."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def claim_values(
    text: str, code: list[tuple[int, int]], cited: list[tuple[int, int]], section: bool = True
) -> tuple[tuple[NumberToken, ...], tuple[str, ...]]:
    """Collect the numbers and quoted strings a claim asserts, minus its citations and leading number.

    Args:
        text: The claim's plain text.
        code: Offsets of its code spans in ``text``.
        cited: Offsets of its citations in ``text``; their digits and paths are not claim values.
        section: Drop a leading section number (``2.1``); False drops only an ordinal (``7.``/``7)``).

    Returns:
        The numbers, and the quoted strings and code spans with whitespace runs collapsed and stripped.

    """
    free_code = [span for span in code if not any(_overlap(span, other) for other in cited)]
    # A code span holding just a number (`0.861`) is checked by value, any other code span as a literal.
    numeric_code = [span for span in free_code if _ONLY_NUMBER.match(text[span[0] : span[1]])]
    quotes = [text[start:end] for start, end in free_code if (start, end) not in numeric_code]
    prose = blank(text, cited + [span for span in code if span not in numeric_code])
    quote_spans = []
    for match in _QUOTE.finditer(prose):
        quotes.append(match.group("dq") or match.group("cq") or match.group("sq"))
        quote_spans.append(match.span())
    prose = blank(prose, quote_spans)
    # A table row's first cell is data ("0.1000 | ..."), so only an ordinal label is dropped there.
    if (match := (_SECTION_NUMBER if section else _ORDINAL).match(prose)) is not None:
        prose = blank(prose, [match.span()])
    stripped = [" ".join(quote.split()) for quote in quotes]
    # A quote of only ellipses and spaces ("…") asserts nothing.
    return tuple(extract_numbers(prose)), tuple(quote for quote in stripped if quote.strip("\u2026. "))


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _claim(chunk: Chunk, start: int, end: int, line: int, section: bool = True) -> Claim | None:
    text = chunk.text[start:end]
    citations = find_citations(text)
    if not citations:
        return None
    code = [(low - start, high - start) for low, high in chunk.code_spans if low >= start and high <= end]
    numbers, quotes = claim_values(text, code, [citation.span for citation in citations], section)
    return Claim(line, text.strip(), tuple(citations), numbers, quotes)


def _prose_claims(chunk: Chunk) -> list[Claim]:
    claims = []
    for start, end in sentence_spans(chunk):
        leading = len(chunk.text[start:end]) - len(chunk.text[start:end].lstrip())
        line = chunk.first_line + chunk.text[: start + leading].count("\n")
        if (claim := _claim(chunk, start, end, line)) is not None:
            claims.append(claim)
    return claims


def _table_row_claim(cells: list[Chunk]) -> list[Claim]:
    row = _join_chunks(cells)
    claim = _claim(row, 0, len(row.text), row.first_line, section=False)
    return [claim] if claim else []


def extract_claims(markdown: str) -> list[Claim]:
    """Parse a markdown report and return its cited claims in document order.

    Args:
        markdown: The report's text.

    Returns:
        Every sentence, list-item sentence or table row that holds at least one citation.

    """
    parser = MarkdownIt("commonmark").enable("table")
    claims: list[Claim] = []
    row: list[Chunk] | None = None
    for token in parser.parse(markdown):
        if token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row:
            claims.extend(_table_row_claim(row))
            row = None
        elif token.type == "inline" and token.map is not None:
            chunk = inline_chunk(token, token.map[0] + 1)
            if row is not None:
                row.append(chunk)
            else:
                claims.extend(_prose_claims(chunk))
    return claims
