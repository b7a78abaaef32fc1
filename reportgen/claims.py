"""Split a markdown report into cited claims (sentences, list-item sentences, table rows) and their values.

markdown-it-py parses the report, so list markers, emphasis, escapes, link targets and table pipes never reach
the claim text. What counts as one claim:

- Paragraphs, headings and list items are split into sentences at ``.``/``!``/``?`` followed by whitespace
  and a character that is not lower case, outside brackets, quotes and code spans, and not after
  ``e.g.``-style abbreviations. A sentence that holds nothing but citations (``Text. (a.json:3)``) belongs to
  the sentence before.
- A table row is one claim: the row label (``L 31``) and the cited value usually sit in different cells.
- HTML blocks (``<details>``, ``<div>``, ``<p>``) are read too: tags stripped, entities unescaped, then split
  into sentences like a paragraph, keeping report line numbers.
- A markdown link whose text is not a value (``[see the gate](run/probe.json#L12)``) cites its sentence: its
  destination is appended to the claim text as ``(run/probe.json#L12)``. A link whose text *is* a value
  (`reportgen.bound.is_binding`) is audited by `reportgen.bound` and left out of the claim.

What is checked in a claim: its numbers (`reportgen.numbers.extract_numbers`) and its quoted strings (``"…"``,
``“…”``, ``'…'`` and code spans that are not a bare number), after removing the citations themselves and a
leading section number such as ``2.`` or ``2.1``. Numbers inside a quoted string are checked as part of the
string, not again on their own. Labels are not claims: a threshold after ``≤ < > ≥`` (``p_top1 > 0.30``,
``(≤10/≤5/≤1)``) and a ``{…}`` set glued to a name or after ``∈`` (``τ∈{0.70,0.95}``,
``first_kl_below_{1.0,0.5}``); digits inside names and versions are never numbers (`reportgen.numbers`).

Keyed values: ``key=value``, ``key = value``, ``key: value``, ``key≈value`` and ``"key": value`` bind the value
(a number, a quoted string or a bare word such as ``true``, ``high``, ``float32``) to the key named beside it,
so the audit compares it with the value that key holds on the cited lines, not with any number nearby.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

from reportgen.citations import Citation, find_citations
from reportgen.numbers import NumberToken, extract_numbers

__all__ = [
    "Chunk",
    "Claim",
    "KeyedValue",
    "blank",
    "claim_values",
    "extract_claims",
    "html_chunks",
    "inline_chunk",
    "keyed_values",
    "label_spans",
    "sentence_spans",
]

_QUOTE = re.compile(
    r'"(?P<dq>[^"\n]+)"|\u201c(?P<cq>[^\u201d]+)\u201d|(?<![\w\'])\'(?P<sq>[^\'\n]+)\'(?![\w])'
)
_SECTION_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)*[.)]?\s")
_ORDINAL = re.compile(r"^\s*\d+[.)]\s")  # in a table row only "7." / "7)" is a label; "0.1000" is data
_ABBREVIATIONS = frozenset({"e.g", "i.e", "vs", "cf", "approx", "al", "fig", "eq", "resp", "ca"})
_OPENERS, _CLOSERS = "([{", ")]}"
_ONLY_NUMBER = re.compile(r"^\s*[-\u2212+]?\d[\d,]*(?:\.\d+)?(?:[eE][-\u2212+]?\d+)?\s*%?\s*$")
_THRESHOLD = re.compile(
    r"(?:(?<![-=])[<>]=?|[\u2264\u2265\u2a7d\u2a7e])\s*[-\u2212+]?\d[\d.,]*(?:[eE][-\u2212+]?\d+)?%?"
)
_LABEL_SET = re.compile(r"(?:\u2208\s*|(?<=\w))\{[^{}\n]*\}")
_KEYED = re.compile(
    r'(?<![\w."])(?P<q>"?)(?P<key>[^\W\d][\w.]*(?<!\.))(?P=q)\s*(?P<op>=|:|\u2248)\s*'
    r'(?P<value>(?P<quoted>"[^"\n]*"|\u201c[^\u201d\n]*\u201d)|(?P<num>[-\u2212+]?(?:L\s?)?\d)|(?P<word>[^\W\d][\w.+\-/]*(?![\w.+\-/])(?!\s*[=:\u2248])))'
)
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"</?(?:summary|details|p|div|li|ul|ol|br|h[1-6]|tr|td|th|table|blockquote|pre)\b", re.I)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(?://|[^0-9])")


@dataclass(frozen=True)
class Claim:
    """One cited statement of a report and the values it asserts.

    Attributes:
        report_line: 1-based line of the report where the claim starts.
        text: The claim's plain text, citations included.
        citations: The citations written in the claim, in order.
        numbers: Numbers asserted by the claim (citations, quotes and section numbers excluded).
        quotes: Quoted strings and code spans asserted by the claim, stripped.
        keyed: Values written beside a key (`KeyedValue`).
        raw_text: The claim text before stripping; the spans of citations, numbers and keyed values index it.

    """

    report_line: int
    text: str
    citations: tuple[Citation, ...]
    numbers: tuple[NumberToken, ...]
    quotes: tuple[str, ...]
    keyed: tuple[KeyedValue, ...] = ()
    raw_text: str = ""


@dataclass(frozen=True)
class KeyedValue:
    """A value written beside the key it belongs to: ``tier=high``, ``first_rank_le_10: 24``, ``"p": 0.5``.

    Attributes:
        key: The key as written (without quotes).
        raw: The value as written.
        number: The value when it is a number (the same token as in `Claim.numbers`); None otherwise.
        word: The value when it is a word or a quoted string (quotes removed); None for a number.
        quoted: Whether the word was written in quotes (it is then also checked as text when the key is absent).
        span: ``(start, end)`` of the value in the claim text (the offsets its citations' spans use).
        tight: Written as data (``key=value``, ``key≈value`` with no space, or ``"key": value``), not as prose
            (``n = 24``, ``layer: L 30``); only a tight key that the cited lines miss marks a drifted citation.

    """

    key: str
    raw: str
    number: NumberToken | None = None
    word: str | None = None
    quoted: bool = False
    span: tuple[int, int] = (0, 0)
    tight: bool = False


@dataclass(frozen=True)
class Chunk:
    """Plain text of one inline block with the offsets of its code spans and its first report line."""

    text: str
    code_spans: tuple[tuple[int, int], ...]
    first_line: int


def inline_chunk(inline: Token, first_line: int, links: bool = False) -> Chunk:
    """Flatten an inline token to plain text; softbreaks stay newlines so offsets map back to report lines.

    Args:
        inline: A markdown-it inline token.
        first_line: Its first report line.
        links: Read links as citations: a link whose text is a value (`reportgen.bound.is_binding`) is left
            out, any other link keeps its text and, when its destination is a file line, adds it as
            ``(destination)``. False keeps link texts only.

    Returns:
        The chunk.

    """
    parts: list[str] = []
    code: list[tuple[int, int]] = []
    length = 0
    children = inline.children or []
    skipping, pending = False, None
    for index, child in enumerate(children):
        if links and child.type == "link_open":
            skipping, pending = _link_mode(child, children[index + 1 :])
            continue
        if child.type == "link_close":
            if pending:
                piece = f" ({pending})"
                parts.append(piece)
                length += len(piece)
            skipping, pending = False, None
            continue
        if child.type in ("text", "code_inline"):
            piece = child.content
        elif child.type in ("softbreak", "hardbreak"):
            piece = "\n"
        else:  # emphasis markers, inline HTML and images carry no claim text
            continue
        if skipping:
            piece = "\n" * piece.count("\n")  # keep line numbers, drop a bound value's text
        elif child.type == "code_inline":
            code.append((length, length + len(piece)))
        parts.append(piece)
        length += len(piece)
    return Chunk("".join(parts), tuple(code), first_line)


def _link_mode(opener: Token, rest: list[Token]) -> tuple[bool, str | None]:
    """Whether to leave a link out (it binds a value), and the destination to add as a citation, if any."""
    text_parts = []
    for child in rest:
        if child.type == "link_close":
            break
        if child.type in ("text", "code_inline"):
            text_parts.append(child.content)
    href = unquote(str(opener.attrGet("href") or ""))
    title = opener.attrGet("title")
    if "#" in href and _is_binding("".join(text_parts), str(title) if title else None):
        return True, None
    if _URL_SCHEME.match(href) or not find_citations(href):
        return False, None
    return False, href


def _is_binding(text: str, title: str | None) -> bool:
    try:  # written in parallel by another module; until it exists, every link is read as a citation
        from reportgen.bound import is_binding
    except ImportError:
        return False
    return is_binding(text, title)


def html_chunks(content: str, first_line: int) -> list[Chunk]:
    """Plain text of an HTML block, one chunk per block element (``<summary>``, ``<p>``, ``<li>``, …).

    Tags are dropped (their newlines kept, for line numbers) and entities unescaped; a block-level tag ends a
    chunk, so a ``<summary>`` title does not run into the sentence after it.
    """
    chunks, start, line = [], 0, first_line
    for tag in [*_TAG.finditer(content), None]:
        end = tag.start() if tag is not None else len(content)
        piece = content[start:end]
        if tag is None or _BLOCK_TAG.match(tag.group(0)):
            text = _TAG.sub(lambda match: "\n" * match.group(0).count("\n") or " ", piece)
            text = "\n".join(html.unescape(part) for part in text.split("\n"))
            if text.strip():
                chunks.append(Chunk(text, (), line))
            line += content[start : tag.end() if tag is not None else end].count("\n")
            start = tag.end() if tag is not None else end
    return chunks


def _join_chunks(chunks: list[Chunk], separator: str = " | ") -> Chunk:
    text, code, offset = [], [], 0
    for chunk in chunks:
        text.append(chunk.text)
        code.extend((start + offset, end + offset) for start, end in chunk.code_spans)
        offset += len(chunk.text) + len(separator)
    return Chunk(separator.join(text), tuple(code), chunks[0].first_line)


_NEXT_VISIBLE = re.compile(r"\s*(\S)")


def _is_sentence_end(text: str, index: int) -> bool:
    """Whether the ``.!?`` at ``index`` ends a sentence; costs the length of the word before it, not of the text."""
    if text[index] not in ".!?" or index + 1 >= len(text) or not text[index + 1].isspace():
        return False
    following = _NEXT_VISIBLE.match(text, index + 1)
    if following is None or following.group(1).islower():
        return False
    start = index
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_."):
        start -= 1
    return text[start:index].lower() not in _ABBREVIATIONS


def _sentence_spans(chunk: Chunk) -> list[tuple[int, int]]:
    """Sentence boundaries outside brackets, double quotes and code spans (linear in the text)."""
    spans, start, depth, quoted = [], 0, 0, False
    text = chunk.text
    in_code = bytearray(len(text))
    for low, high in chunk.code_spans:
        in_code[low:high] = b"\x01" * (high - low)
    for index, char in enumerate(text):
        if in_code[index]:
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


def label_spans(text: str) -> list[tuple[int, int]]:
    """Spans of thresholds and threshold sets, which label a claim rather than assert a value.

    ``> 0.30``, ``≤10`` and ``>=1`` are thresholds; a ``{…}`` glued to a name or after ``∈``
    (``τ∈{0.70,0.95}``, ``first_kl_below_{1.0,0.5}``) lists thresholds. A set after ``≈`` or ``=`` with a space,
    ``ΔKL ≈ {−0.52, −0.08}``, is a list of values and stays.
    """
    return [match.span() for pattern in (_THRESHOLD, _LABEL_SET) for match in pattern.finditer(text)]


def claim_values(
    text: str,
    code: list[tuple[int, int]],
    cited: list[tuple[int, int]],
    section: bool = True,
    labels: bool = False,
) -> tuple[tuple[NumberToken, ...], tuple[str, ...]]:
    """Collect the numbers and quoted strings a claim asserts, minus its citations and leading number.

    Args:
        text: The claim's plain text.
        code: Offsets of its code spans in ``text``.
        cited: Offsets of its citations in ``text``; their digits and paths are not claim values.
        section: Drop a leading section number (``2.1``); False drops only an ordinal (``7.``/``7)``).
        labels: Also drop thresholds and threshold sets (`label_spans`), and code spans that are a keyed
            value (``tier=high``, checked through `keyed_values`).

    Returns:
        The numbers, and the quoted strings and code spans with whitespace runs collapsed and stripped.

    """
    if labels:  # a code span such as `tier=high` is a keyed value, read as prose
        code = [span for span in code if not _keyed_code(text[span[0] : span[1]])]
    free_code = [span for span in code if not any(_overlap(span, other) for other in cited)]
    # A code span holding just a number (`0.861`) is checked by value, any other code span as a literal.
    numeric_code = [span for span in free_code if _ONLY_NUMBER.match(text[span[0] : span[1]])]
    quotes = [text[start:end] for start, end in free_code if (start, end) not in numeric_code]
    prose = blank(text, cited + [span for span in code if span not in numeric_code])
    quote_spans = []
    for match in _QUOTE.finditer(prose):
        quotes.append(match.group("dq") or match.group("cq") or match.group("sq"))
        quote_spans.append(match.span())
    prose = blank(prose, quote_spans + (label_spans(prose) if labels else []))
    # A table row's first cell is data ("0.1000 | ..."), so only an ordinal label is dropped there.
    if (match := (_SECTION_NUMBER if section else _ORDINAL).match(prose)) is not None:
        prose = blank(prose, [match.span()])
    stripped = [" ".join(quote.split()) for quote in quotes]
    # A quote of only ellipses and spaces ("…") asserts nothing.
    return tuple(extract_numbers(prose)), tuple(quote for quote in stripped if quote.strip("\u2026. "))


def _keyed_code(content: str) -> bool:
    return _KEYED.match(content.strip()) is not None


def keyed_values(
    text: str, cited: list[tuple[int, int]], numbers: tuple[NumberToken, ...]
) -> tuple[KeyedValue, ...]:
    """Find the values a claim writes beside a key (see the module docstring), citations excluded.

    Args:
        text: The claim's plain text.
        cited: Offsets of its citations.
        numbers: The claim's numbers (`claim_values`); a keyed number must be one of them, so digits inside
            names, versions and thresholds are never keyed values.

    Returns:
        The keyed values in order.

    """
    prose = blank(text, cited)
    by_start = {number.span[0]: number for number in numbers}
    found = []
    for match in _KEYED.finditer(prose):
        key, value = match.group("key"), match.group("value")
        between = prose[match.end("key") : match.start("value")]
        tight = bool(match.group("q")) or between.strip() in ("=", "\u2248") and not between[0].isspace()
        if match.group("num"):  # a number, possibly a layer label "L 31"; the token starts at its sign or digit
            number = by_start.get(match.start("num")) or by_start.get(match.end("num") - 1)
            if number is not None:
                found.append(KeyedValue(key, number.raw, number=number, span=number.span, tight=tight))
        elif match.group("quoted"):
            words = " ".join(value[1:-1].split())
            found.append(KeyedValue(key, value, word=words, quoted=True, span=match.span("value"), tight=tight))
        elif word := value.rstrip(".+-/"):
            found.append(KeyedValue(key, word, word=word, span=match.span("value"), tight=tight))
    return tuple(found)


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _claim(chunk: Chunk, start: int, end: int, line: int, section: bool = True) -> Claim | None:
    text = chunk.text[start:end]
    citations = find_citations(text)
    if not citations:
        return None
    code = [(low - start, high - start) for low, high in chunk.code_spans if low >= start and high <= end]
    cited = [citation.span for citation in citations]
    numbers, quotes = claim_values(text, code, cited, section, labels=True)
    keyed = keyed_values(text, cited, numbers)
    return Claim(line, text.strip(), tuple(citations), numbers, quotes, keyed, text)


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
        Every sentence, list-item sentence, table row or HTML-block sentence that holds at least one citation.

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
        elif token.type == "html_block" and token.map is not None:
            for chunk in html_chunks(token.content, token.map[0] + 1):
                claims.extend(_prose_claims(chunk))
        elif token.type == "inline" and token.map is not None:
            chunk = inline_chunk(token, token.map[0] + 1, links=True)
            if row is not None:
                row.append(chunk)
            else:
                claims.extend(_prose_claims(chunk))
    return claims
