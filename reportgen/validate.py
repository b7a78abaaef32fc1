"""Verify an LLM-drafted narrative section sentence by sentence, so that nothing unverified is published.

The LLM writes over a fact sheet whose facts have handles (``F12``) and cites them in brackets (``[F12]``,
``[F12, F7]``). A section is parsed with markdown-it-py and split into sentences as `reportgen.claims` splits a
report (so the later audit sees the same sentences). Findings (`FINDING_KINDS` says how to fix each):
``unknown_handle`` (not on the sheet, or a malformed group), ``number_unsupported`` (no cited fact has it),
``uncited_number`` (no handle at all), ``token_mismatch`` (a quote or code span no cited string equals),
``contradiction`` (with a ✓/✗ checklist verdict), ``raw_citation`` (a ``file:line`` not under the root),
``markup`` (anything but prose and lists) and ``empty``.

Numbers match by `reportgen.numbers.matches` (rounding, truncation, percent ↔ fraction) against the values of
the facts the *same sentence* cites, derived facts included; layer labels (``L 30``) and small counts are
numbers like any other, and only ordinal list markers are exempt. Quoted token strings are data: a quoted
"Ignore previous instructions" that equals a cited fact passes, since it is compared, never obeyed.

Known limits: `CONTRADICTION_PATTERNS` are regexes over one sentence; they err towards flagging (the sentence
is then dropped, never published wrong) and miss paraphrases they do not list. The rounding rule lets a small
integer match any cited value that rounds to it (``L 3`` matches 2.76), as in the audit. Emphasis that spans
two sentences is cut with them when one is dropped.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from reportgen.citations import find_citations
from reportgen.claims import Chunk, blank, claim_values, inline_chunk, sentence_spans
from reportgen.contradictions import CONTRADICTION_PATTERNS, contradictions
from reportgen.facts import Fact
from reportgen.numbers import NumberToken, extract_numbers, matches
from reportgen.resolve import Resolver, SourceFile, Unresolved
from reportgen.rules import CheckResult

__all__ = ["CONTRADICTION_PATTERNS", "FINDING_KINDS", "Finding", "Handle", "SectionResult", "SentenceCheck",
           "drop_unsupported", "findings_for_reask", "to_record", "validate_section"]

# kind -> how to fix it; the re-ask prompt quotes these.
FINDING_KINDS: dict[str, str] = {
    "unknown_handle": "cite only handles from the fact sheet, as [F1] or [F1, F2]",
    "number_unsupported": "write the value of a fact the sentence cites, or cite the handle holding the number",
    "uncited_number": "cite the handle of the fact right after the number, or remove the number",
    "token_mismatch": "quote the token exactly as the cited fact spells it, or remove the quote",
    "contradiction": "agree with the checklist verdict",
    # A `file:line` that resolves under the reports root is allowed; its lines then support numbers and quotes.
    "raw_citation": "cite handles, never file names or line numbers",
    # Rendered markup is an injection and exfiltration channel (auto-fetched images), so sections are prose.
    "markup": "write plain sentences and bullet lists only: no headings, tables, links, images, HTML or URLs",
    "empty": "write this section",
}

_PARSER = MarkdownIt("commonmark").enable("table")
_HANDLE_GROUP = re.compile(r"\[\s*F\d+(?:\s*[,;]\s*F\d+)*\s*\]")
_HANDLE = re.compile(r"F\d+")
_STRAY_HANDLE = re.compile(r"\[[^\[\]\n]*\bF\d+\b[^\[\]\n]*\]", re.IGNORECASE)  # "[F3-F5]", "[f3]"
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_URL = re.compile(r"\b(?:https?|ftp)://|\bwww\.", re.IGNORECASE)  # GitHub autolinks these
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_CODE = re.compile(r"(`+).*?\1", re.DOTALL)
_SPACE = re.compile(r"\s")
_BLOCK_MARKUP = {"heading_open": "heading", "blockquote_open": "block quote", "table_open": "table",
                 "html_block": "raw HTML", "fence": "code block", "code_block": "code block", "hr": "rule"}
_INLINE_MARKUP = {"image": "image", "link_open": "link", "html_inline": "raw HTML"}


@dataclass(frozen=True)
class Handle:
    """A fact-sheet handle: ``name`` (``F12``), its fact, and the citation it renders as, ``(a/b.json:3)``."""

    name: str
    fact: Fact
    citation: str


@dataclass(frozen=True)
class Finding:
    """One problem: its kind (a `FINDING_KINDS` key), section, the sentence as drafted, and what is wrong."""

    kind: str
    section: str
    sentence: str
    detail: str


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence as drafted (markdown), as rendered (handles replaced by citations), and its findings."""

    text: str
    rendered: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """Whether the sentence may be published."""
        return not self.findings


@dataclass(frozen=True)
class SectionResult:
    """A validated section: rendered ``text``, all ``findings``, per-sentence checks, the ``draft`` as written."""

    section: str
    text: str
    findings: tuple[Finding, ...]
    sentences: tuple[SentenceCheck, ...]
    draft: str = ""


@dataclass(frozen=True)
class _Block:
    """A paragraph, list item or rejected ("markup") block; its sentences as (markdown, plain text) pairs."""

    kind: str
    pieces: tuple[tuple[str, Chunk], ...]
    marker: str = ""  # "-", "*", "1." of an item
    item: int = -1  # id of the list item an "item" block opens
    ancestors: tuple[tuple[int, int], ...] = ()  # (item id, content indent) of the enclosing items
    reason: str = ""  # why a "markup" block is rejected


def _cited_spans(text: str) -> list[tuple[int, int]]:  # handle groups and file:line citations
    return [m.span() for m in _HANDLE_GROUP.finditer(text)] + [c.span for c in find_citations(text)]


def _align(source: str, plain: str) -> list[int] | None:
    """Map each plain-text offset to the markdown source offset it came from (plain is a subsequence)."""
    offsets, pos = [], 0
    for char in plain:
        # Code spans turn line breaks into spaces, so any whitespace stands for any whitespace.
        found = _SPACE.search(source, pos) if char.isspace() else None
        index = found.start() if found else (-1 if char.isspace() else source.find(char, pos))
        if index < 0:
            return None  # an entity decoded to a character absent from the source
        offsets.append(index)
        pos = index + 1
    return offsets


def _split(source: str, chunk: Chunk) -> tuple[tuple[str, Chunk], ...]:
    """Sentences of one inline block, split as claims.py splits them, each with its slice of the source."""
    spans = sentence_spans(chunk, _cited_spans)
    offsets = _align(source, chunk.text)
    if offsets is None or len(spans) <= 1:
        return ((source, chunk),) if source.strip() else ()  # an image alone has no plain text
    # A sentence ends before whitespace in the plain text; cutting the source there keeps closers (`**`) on it.
    cuts = [0, *(offsets[end] for _, end in spans[:-1]), len(source)]
    pieces = []
    for (start, end), low, high in zip(spans, cuts[:-1], cuts[1:], strict=True):
        code = tuple((a - start, b - start) for a, b in chunk.code_spans if a >= start and b <= end)
        line = chunk.first_line + chunk.text[:start].count("\n")
        pieces.append((source[low:high], Chunk(chunk.text[start:end], code, line)))
    return tuple(pieces)


def _blocks(draft: str) -> tuple[list[_Block], dict[str, Any]]:
    """Parse a section into blocks; anything but paragraphs and list items becomes a "markup" block."""
    env: dict[str, Any] = {}
    tokens, lines = _PARSER.parse(draft, env), draft.split("\n")
    blocks: list[_Block] = []
    items: list[tuple[int, int, str]] = []  # open list items: (id, content indent, marker)
    fresh, skip, item_ids = False, None, itertools.count()
    for token in tokens:
        kind = token.type
        if skip is not None:  # inside a rejected heading, block quote or table
            skip = None if (kind, token.level) == skip else skip
        elif kind in _BLOCK_MARKUP:  # rejected as one "sentence" holding its source lines
            first, last = token.map or (0, 0)
            source = "\n".join(lines[first:last]).strip() or token.markup
            blocks.append(_Block("markup", ((source, Chunk(source, (), first + 1)),), reason=_BLOCK_MARKUP[kind]))
            skip = (kind.replace("_open", "_close"), token.level) if token.nesting == 1 else None
        elif kind == "list_item_open":
            marker = f"{token.info}{token.markup}"
            items.append((next(item_ids), len(marker) + 1, marker))
            fresh = True
        elif kind == "list_item_close":
            items.pop()
        elif kind in ("bullet_list_open", "ordered_list_open"):
            fresh = False  # an item that opens with a nested list has no text of its own
        elif kind == "inline" and token.map is not None:
            pieces = _split(token.content, inline_chunk(token, token.map[0] + 1))
            ancestors = tuple((item, width) for item, width, _ in items)
            if fresh:
                blocks.append(_Block("item", pieces, items[-1][2], items[-1][0], ancestors[:-1]))
            else:
                blocks.append(_Block("paragraph", pieces, ancestors=ancestors))
            fresh = False
    return blocks, env


def _render_handles(text: str, handles: dict[str, Handle]) -> str:
    """Replace each handle group by one parenthesis holding its handles' citations, ``(a; b)``."""

    def citation(match: re.Match[str]) -> str:
        known = [handles[name].citation for name in _HANDLE.findall(match.group(0)) if name in handles]
        parts = [part.strip() for c in known for part in c.strip().removeprefix("(").removesuffix(")").split(";")]
        return f"({'; '.join(dict.fromkeys(parts))})" if parts else match.group(0)

    return _HANDLE_GROUP.sub(citation, text)


_KEY_LAYER = re.compile(r"[\[,]layer=(\d+)[,\]]")


def _fact_numbers(fact: Fact) -> list[float]:
    """Numbers a sentence citing `fact` may state: its value, and the layer of the CSV row it sits on (that row's
    line holds the layer too, so the audit accepts it as well)."""
    row_layer = [float(m.group(1)) for m in _KEY_LAYER.finditer(fact.key)]
    if isinstance(fact.value, str):
        return [token.value for token in extract_numbers(fact.value)] + row_layer
    return row_layer + ([] if isinstance(fact.value, bool) or fact.value is None else [float(fact.value)])


def _same_token(quote: str, fact: Fact) -> bool:
    """Whether a quote spells the fact's string value (or names its field, as in a code span `L_semantic`).

    The quote is compared as written, with markdown escapes undone, and with the fact sheet's JSON escapes
    (backslash-u) undone; whitespace runs are collapsed and ends trimmed on both sides, case is kept.
    """
    readings = {quote, _MD_ESCAPE.sub(r"\1", quote)}
    if len(quote) > 2 and quote[0] == quote[-1] and quote[0] in "'\"":  # a code span holding 'token'
        readings.add(quote[1:-1])
    if "\\u" in quote:
        try:
            readings.add(json.loads(f'"{quote}"'))
        except json.JSONDecodeError:
            pass
    field = re.search(r"[A-Za-z_][\w-]*$", fact.key)
    allowed = {" ".join(fact.value.split()) if isinstance(fact.value, str) else None, field and field.group(0)}
    return any(" ".join(reading.split()) in allowed for reading in readings)


def _show(cited: list[tuple[str, Fact]]) -> str:  # the values, so a re-ask can say what to write
    values = [f"{name} = {json.dumps(fact.value, ensure_ascii=True)}{' ' + fact.unit if fact.unit else ''}"
              for name, fact in cited]
    return "cited: " + "; ".join(values) if values else "it cites no known handle"


def _markup(piece: str, chunk: Chunk, env: dict[str, Any]) -> list[str]:
    """Inline markup in one sentence: images, links, raw HTML, entities, and URLs GitHub would autolink."""
    children = _PARSER.parseInline(piece, env)[0].children or []
    reasons = [_INLINE_MARKUP[child.type] for child in children if child.type in _INLINE_MARKUP]
    if _URL.search(blank(chunk.text, list(chunk.code_spans))):
        reasons.append("bare URL")
    if _ENTITY.search(_CODE.sub("", piece)):
        reasons.append("HTML entity")
    return list(dict.fromkeys(reasons))


def _check_sentence(section: str, piece: str, chunk: Chunk, reason: str, handles: dict[str, Handle],
                    checks: list[CheckResult], resolver: Resolver, env: dict[str, Any]) -> SentenceCheck:
    text, plain = piece.strip(), chunk.text
    findings: list[Finding] = []

    def add(kind: str, detail: str) -> None:
        findings.append(Finding(kind, section, text, detail))

    if reason:  # a rejected block: its contents are not worth checking further
        add("markup", f"{reason} in a narrative section")
        return SentenceCheck(text, _render_handles(text, handles), tuple(findings))
    for what in _markup(piece, chunk, env):
        add("markup", f"{what} in a narrative section")
    groups = list(_HANDLE_GROUP.finditer(plain))
    names = list(dict.fromkeys(name for group in groups for name in _HANDLE.findall(group.group(0))))
    for name in (name for name in names if name not in handles):
        add("unknown_handle", f"{name} is not a handle on the fact sheet")
    cited = [(name, handles[name].fact) for name in names if name in handles]
    # An escaped group (\[F1\]) reads as a group in plain text, but the source would be published unreplaced.
    if len(_HANDLE_GROUP.findall(piece)) != len(groups) or _STRAY_HANDLE.search(blank(plain, _cited_spans(plain))):
        add("unknown_handle", "a handle group is malformed, so it cannot be replaced by its citation")
    citations = find_citations(plain)
    lines: list[tuple[SourceFile, int]] = []  # the lines of literal citations that resolve
    for citation in citations:
        resolved = resolver.resolve(citation)
        if isinstance(resolved, Unresolved):
            add("raw_citation", f"{citation.text} does not resolve: {resolved.reason}")
        else:
            lines += [(resolved, line) for low, high in citation.ranges for line in range(low, high + 1)]
    spans = [group.span() for group in groups] + [citation.span for citation in citations]
    numbers, quotes = claim_values(plain, list(chunk.code_spans), spans, section=False)

    def supported(number: NumberToken) -> bool:
        return any(matches(number, value) for _, fact in cited for value in _fact_numbers(fact)) or any(
            source.has_number(line, number) for source, line in lines)

    if numbers and not spans:
        add("uncited_number", f"{', '.join(number.raw for number in numbers)} stated without a handle")
    for number in (number for number in numbers if spans and not supported(number)):
        add("number_unsupported", f"{number.raw} matches no cited fact; {_show(cited)}")
    for quote in quotes:
        if not any(_same_token(quote, fact) for _, fact in cited) and not any(
                source.has_text(line, quote) for source, line in lines):
            add("token_mismatch", f"{json.dumps(quote, ensure_ascii=True)} is no cited token; {_show(cited)}")
    for detail in contradictions(blank(plain, [*spans, *chunk.code_spans]), checks):
        add("contradiction", detail)
    return SentenceCheck(text, _render_handles(text, handles), tuple(findings))


def validate_section(section: str, draft: str | None, handles: dict[str, Handle], checks: list[CheckResult],
                     root: Path) -> SectionResult:
    """Check every sentence of one drafted section against the facts its handles cite and the checklist.

    Args:
        section: Section name, e.g. ``overview``.
        draft: The LLM's markdown for the section; None or blank when it is missing.
        handles: Fact-sheet handles by name (``F12``).
        checks: Checklist verdicts; a sentence may not contradict a ✓ or ✗.
        root: Reports root; literal ``file:line`` citations must resolve under it.

    Returns:
        The draft with handle groups rendered as citations, its findings, and one check per sentence.

    """
    draft = draft or ""
    blocks, env = _blocks(draft)
    resolver = Resolver(root)  # one per section, in order: an elided citation refers to an earlier one
    sentences = tuple(_check_sentence(section, piece, chunk, block.reason, handles, checks, resolver, env)
                      for block in blocks for piece, chunk in block.pieces)
    findings = [finding for sentence in sentences for finding in sentence.findings]
    for label, ref in env.get("references", {}).items():
        # Invisible in the output, but it turns "[label]" anywhere in the report into a link.
        findings.append(Finding("markup", section, f"[{label}]: {ref['href']}", "link reference definition"))
    if not sentences:
        findings.append(Finding("empty", section, "", "the section is missing or has no sentence"))
    return SectionResult(section, _render_handles(draft, handles), tuple(findings), sentences, draft)


def drop_unsupported(result: SectionResult) -> tuple[str, tuple[str, ...]]:
    """Remove every sentence with a finding, and every block that is not a paragraph or a list item.

    Args:
        result: A validated section.

    Returns:
        The rendered section without them (the text unchanged when nothing is wrong; otherwise rebuilt, with
        emptied list items dropped and their nested items moved up a level), and the removed sentences as drafted.

    """
    if not result.findings:
        return result.text, ()
    out: list[str] = []
    removed: list[str] = []
    emitted: set[int] = set()
    checks, previous = iter(result.sentences), ""
    for block in _blocks(result.draft)[0]:  # the same parse as validation, so sentences pair up one to one
        kept = []
        for check in itertools.islice(checks, len(block.pieces)):
            (kept if check.ok and block.kind != "markup" else removed).append(check)
        if not kept:
            continue
        # Softbreaks become spaces, so no continuation line can start a new block once re-indented.
        body = " ".join(re.sub(r"[ \t]*\n[ \t]*", " ", check.rendered) for check in kept)
        indent = " " * sum(width for item, width in block.ancestors if item in emitted)
        if block.kind == "item":
            emitted.add(block.item)
            out.append(("\n" if previous == "item" else "\n\n") + f"{indent}{block.marker} {body}")
        else:
            out.append(f"\n\n{indent}{body}")
        previous = block.kind
    text = "".join(out).lstrip("\n")
    return (text + "\n" if text and result.text.endswith("\n") else text), tuple(c.text for c in removed)


def findings_for_reask(results: Iterable[SectionResult]) -> str:
    """Number the faulty sentences, with what is wrong and how to fix it, for the re-ask prompt.

    Args:
        results: Validated sections.

    Returns:
        Lines such as ``1. [overview] "… 0.71 [F2]." number_unsupported: 0.71 matches no cited fact; cited:
        F2 = 0.6252 probability. Fix: …``; empty when nothing is wrong.

    """
    grouped: dict[tuple[str, str], list[Finding]] = {}
    for finding in (finding for result in results for finding in result.findings):
        grouped.setdefault((finding.section, finding.sentence), []).append(finding)
    entries = []
    for number, ((section, sentence), findings) in enumerate(grouped.items(), 1):
        shown = json.dumps(sentence if len(sentence) <= 240 else sentence[:239] + "\u2026", ensure_ascii=False)
        fixes = dict.fromkeys(FINDING_KINDS[finding.kind] for finding in findings)
        problems = "; ".join(f"{f.kind}: {f.detail}" for f in findings) + ". Fix: " + "; ".join(fixes) + "."
        entries.append(f"{number}. [{section}] {shown if sentence else '(whole section)'} {problems}")
    return "\n".join(entries)


def to_record(results: Sequence[SectionResult], removed: Sequence[str], fallback_sections: Sequence[str]
              ) -> dict[str, Any]:
    """Build the validation record written beside a report.

    Args:
        results: Validated sections (of the last round).
        removed: Sentences `drop_unsupported` removed.
        fallback_sections: Sections replaced by their deterministic text.

    Returns:
        JSON-ready data: counts per finding kind, per-section findings, removals and fallbacks.

    """
    findings = [finding for result in results for finding in result.findings]
    sections = {result.section: {
        "sentences": len(result.sentences),
        "failed_sentences": sum(not sentence.ok for sentence in result.sentences),
        "findings": [{k: v for k, v in asdict(f).items() if k != "section"} for f in result.findings],
    } for result in results}
    return {"ok": not findings, "counts": dict(Counter(finding.kind for finding in findings)),
            "sections": sections, "removed_sentences": list(removed), "fallback_sections": list(fallback_sections)}
