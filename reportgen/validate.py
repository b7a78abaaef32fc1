"""Verify an LLM-drafted narrative section sentence by sentence, so that nothing unverified is published.

The LLM writes prose with ``{name}`` placeholders (`reportgen.placeholders`) and never types a number, a quote or
a token; rendering replaces each placeholder with a value bound to its artifact line. A section is parsed with
markdown-it-py and split into sentences as `reportgen.claims` splits a report (so the later audit sees the same
sentences). Each sentence is checked with its placeholders masked, and is published only when every claim-bearing
element in it is accounted for:

- the placeholders themselves: unknown or malformed (`unknown_placeholder`, `malformed_placeholder`);
- each placeholder's role in its phrase (`reportgen.bindcheck`: `wrong_milestone`, `unit_mismatch`, `row_claim`,
  `row_mismatch`, `null_value`, `direction`; `reportgen.conceptcheck`: the nouns around it, rows joined to other
  rows, token classes; `reportgen.rolecheck`: which of several near-synonym facts the words name, count nouns,
  micro-suite keys, the change a direction and size speak of);
- relations, comparisons, trends, extremes, quantifiers, depth and qualifying words, evaluated on the values
  (`reportgen.comparecheck`, `reportgen.formcheck`, `reportgen.wordcheck`: each an
  `reportgen.residualcheck.Evaluated`, true or false, with the spans of the words it read; a false one is a
  `comparison` or `row_claim`);
- quantifiers ("at most layers", "only a few layers"), relative depth ("past the midpoint"), trend shapes ("flat",
  "zigzags") and sameness ("the same at A and B"), evaluated on the rows where the clause names what they count or
  compare (`reportgen.extentcheck`), and the kind of each placeholder in its role (a threshold is no measured value,
  a share no distance, a row's value goes with its own temperature; `reportgen.rolecheck`);
- milestones said to be reached or never without a placeholder, the final head, and what a lens cannot show
  (`reportgen.scopecheck`: `milestone_claim`, `overclaim`, `model_claim`);
- what the words say on their own (`reportgen.claimcheck`: `typed_number`, `typed_token`, `raw_citation`,
  `model_claim`, `invented_lens`, `unit_mismatch`, `off_topic`), and `contradiction` with a ✓/✗ checklist
  verdict or an n.a. item asserted as applying (`reportgen.contradictions`: the item's patterns, else the
  polarity of a sentence naming its subject);
- the words left over (`reportgen.residualcheck`): a monotonicity, stability, certainty, magnitude,
  generalisation, causal, advice, fidelity, KL-direction, lens-agreement, comparison, quantifier, depth,
  trend-shape or sameness word that no evaluation above consumed,
  and that is not a negated or bounded limitation, makes the sentence `unverified`;
- `markup` (anything but prose and lists) and `empty`.

`FINDING_KINDS` says how to fix each; the re-ask prompt quotes it. Known limits: the phrase checks are regexes
over one sentence (a clause split at ";", dashes and contrastive commas); a claim in a form none of them reads
and whose words are not in the residual lexicon passes. Emphasis that spans two sentences is cut with them when
one is dropped.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from markdown_it import MarkdownIt

from reportgen.bindcheck import Placed, placeholder_findings
from reportgen.claimcheck import (
    citation_findings,
    model_findings,
    number_findings,
    scope_findings,
    token_findings,
)
from reportgen.claims import Chunk, blank, inline_chunk, sentence_spans
from reportgen.comparecheck import comparison_claims
from reportgen.conceptcheck import concept_findings
from reportgen.contradictions import CONTRADICTION_PATTERNS, contradictions
from reportgen.extentcheck import extent_claims
from reportgen.formcheck import form_claims
from reportgen.placeholders import PLACEHOLDER, Sheet, render_placeholders
from reportgen.residualcheck import FIX_HINT, residual_findings
from reportgen.rolecheck import role_findings
from reportgen.rules import CheckResult, Verdict
from reportgen.scopecheck import scope_claim_findings
from reportgen.wordcheck import word_claims

__all__ = ["CONTRADICTION_PATTERNS", "FINDING_KINDS", "Finding", "SectionResult", "SentenceCheck",
           "drop_unsupported", "findings_for_reask", "round_record", "to_record", "validate_section"]

# kind -> how to fix it; the re-ask prompt quotes these.
FINDING_KINDS: dict[str, str] = {
    "unknown_placeholder": "use only placeholder names from the fact sheet, spelled exactly, as {name}",
    "malformed_placeholder": "write a placeholder as {name} with single braces and nothing else inside",
    "typed_number": "never type digits or number words; write the {placeholder} of the fact",
    "typed_token": "never quote or write token strings; write the {placeholder} of the token",
    "wrong_milestone": "put each layer placeholder only in a phrase about its own milestone",
    "unit_mismatch": "describe each placeholder as what it is (probability, bits, rank, layer); no other unit",
    "row_claim": "say about a layer row only what that row's own facts show",
    "row_mismatch": "pair a row's value with that row's own {layer[N].layer}",
    "null_value": "say in words that a milestone was never reached; do not use its placeholder as a value",
    "direction": "use the direction word of the fact, and the _size placeholder for a magnitude",
    "comparison": "compare, order or quantify only as the values show (before/after, above/below, every layer, "
                  "early/late, few/most); leave out what they do not show",
    "milestone_claim": "say a milestone is reached only when it has a value, and never reached only when it is null",
    "overclaim": "state only what the lens measured in this run: no mechanism, no other models, no analysis "
                 "that was not made",
    "contradiction": "agree with the checklist verdict",
    "model_claim": "state model, dtype and device only through their placeholders, as the sheet has them",
    "invented_lens": "describe only the norm lens and the raw lens this run used",
    # Values are bound by placeholders; a file, line or record name is neither data nor checkable here.
    "raw_citation": "never write file names, line numbers or record names",
    "off_topic": "write only about this probe's measurements, with at least one fact or domain term",
    # Rendered markup is an injection and exfiltration channel (auto-fetched images), so sections are prose.
    "markup": "write plain sentences and bullet lists only: no headings, tables, links, images, HTML or URLs",
    "empty": "write this section",
    "unverified": FIX_HINT,
}

_PARSER = MarkdownIt("commonmark").enable("table")
_URL = re.compile(r"\b(?:https?|ftp)://|\bwww\.", re.IGNORECASE)  # GitHub autolinks these
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_CODE = re.compile(r"(`+).*?\1", re.DOTALL)
_SPACE = re.compile(r"\s")
_BLOCK_MARKUP = {"heading_open": "heading", "blockquote_open": "block quote", "table_open": "table",
                 "html_block": "raw HTML", "fence": "code block", "code_block": "code block", "hr": "rule"}
_INLINE_MARKUP = {"image": "image", "link_open": "link", "html_inline": "raw HTML"}


@dataclass(frozen=True)
class Finding:
    """One problem: its kind (a `FINDING_KINDS` key), section, the sentence as drafted, and what is wrong."""

    kind: str
    section: str
    sentence: str
    detail: str


@dataclass(frozen=True)
class SentenceCheck:
    """One sentence as drafted (markdown), as rendered (placeholders replaced by bound values), and its findings."""

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


def _cited_spans(text: str) -> list[tuple[int, int]]:  # placeholders: a sentence of placeholders only joins the last
    return [m.span() for m in PLACEHOLDER.finditer(text)]


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


def _markup(piece: str, chunk: Chunk, env: dict[str, Any]) -> list[str]:
    """Inline markup in one sentence: images, links, raw HTML, entities, and URLs GitHub would autolink."""
    children = _PARSER.parseInline(piece, env)[0].children or []
    reasons = [_INLINE_MARKUP[child.type] for child in children if child.type in _INLINE_MARKUP]
    if _URL.search(blank(chunk.text, list(chunk.code_spans))):
        reasons.append("bare URL")
    if _ENTITY.search(_CODE.sub("", piece)):
        reasons.append("HTML entity")
    return list(dict.fromkeys(reasons))


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with every span filled with ``#`` (same length, so offsets hold; no word or digit survives)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = "#" * (end - start)
    return "".join(chars)


def _placeholder_findings(piece: str, plain: str, placed: list[Placed], masked: str, sheet: Sheet
                          ) -> list[tuple[str, str]]:
    out = []
    for p in (p for p in placed if p.slot is None):
        close = difflib.get_close_matches(p.name, list(sheet.slots), n=1)
        out.append(("unknown_placeholder", f"{{{p.name}}} is not on the fact sheet"
                    + (f"; did you mean {{{close[0]}}}?" if close else "")))
    # An escaped or emphasised placeholder reads differently in the source and would be published unreplaced.
    if [m.group(1) for m in PLACEHOLDER.finditer(piece)] != [p.name for p in placed] or re.search(r"[{}]", masked):
        out.append(("malformed_placeholder", "a brace that is no {name} placeholder, or a placeholder written "
                    "with markup inside"))
    return out


def _check_sentence(section: str, piece: str, chunk: Chunk, reason: str, sheet: Sheet,
                    checks: list[CheckResult], env: dict[str, Any]) -> SentenceCheck:
    text, plain = piece.strip(), chunk.text
    findings: list[Finding] = []

    def add(kind: str, detail: str) -> None:
        findings.append(Finding(kind, section, text, detail))

    if reason:  # a rejected block: its contents are not worth checking further
        add("markup", f"{reason} in a narrative section")
        return SentenceCheck(text, render_placeholders(text, sheet), tuple(findings))
    for what in _markup(piece, chunk, env):
        add("markup", f"{what} in a narrative section")
    placed = [Placed(m.group(1), sheet.slots.get(m.group(1)), *m.span()) for m in PLACEHOLDER.finditer(plain)]
    masked = _mask(plain, [(p.start, p.end) for p in placed])
    prose = _mask(masked, chunk.code_spans)
    values = {name: sheet.value(name) for name in ("architecture", "model_id", "model_dtype", "device")}
    lens_fp32 = next((c.verdict is Verdict.PASS for c in checks if c.rule.id == "fp32_unembed"
                      and c.verdict is not Verdict.NA), None)
    evaluated = (comparison_claims(prose, placed, sheet) + form_claims(prose, placed, sheet)
                 + word_claims(prose, placed, sheet) + extent_claims(prose, placed, sheet))
    found = (_placeholder_findings(piece, plain, placed, masked, sheet)
             + placeholder_findings(prose, placed, sheet)
             + number_findings(prose) + token_findings(prose, list(chunk.code_spans), sheet.words)
             + citation_findings(plain, prose) + model_findings(prose, values, lens_fp32)
             + scope_findings(prose, bool(placed))
             + concept_findings(prose, placed, sheet) + role_findings(prose, placed, sheet)
             + [(e.kind, e.detail) for e in evaluated if not e.holds]
             + scope_claim_findings(prose, placed, sheet)
             + [("contradiction", d) for d in contradictions(prose, checks)]
             + residual_findings(prose, placed, evaluated))
    for kind, detail in dict.fromkeys(found):
        add(kind, detail)
    return SentenceCheck(text, render_placeholders(text, sheet), tuple(findings))


def validate_section(section: str, draft: str | None, sheet: Sheet, checks: list[CheckResult]) -> SectionResult:
    """Check every sentence of one drafted section against the fact sheet and the checklist.

    Args:
        section: Section name, e.g. ``overview``.
        draft: The LLM's markdown for the section; None or blank when it is missing.
        sheet: The placeholders the prompt offered, with what rendering them needs.
        checks: Checklist verdicts; a sentence may not contradict a ✓ or ✗.

    Returns:
        The draft with placeholders rendered as bound values, its findings, and one check per sentence.

    """
    draft = draft or ""
    blocks, env = _blocks(draft)
    sentences = tuple(_check_sentence(section, piece, chunk, block.reason, sheet, checks, env)
                      for block in blocks for piece, chunk in block.pieces)
    findings = [finding for sentence in sentences for finding in sentence.findings]
    for label, ref in env.get("references", {}).items():
        # Invisible in the output, but it turns "[label]" anywhere in the report into a link.
        findings.append(Finding("markup", section, f"[{label}]: {ref['href']}", "link reference definition"))
    if not sentences:
        findings.append(Finding("empty", section, "", "the section is missing or has no sentence"))
    return SectionResult(section, render_placeholders(draft, sheet), tuple(findings), sentences, draft)


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
        Lines such as ``1. [overview] "The answer is in the top five at {L_semantic}." wrong_milestone: …
        Fix: …``; empty when nothing is wrong.

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


def round_record(draft: str, results: Sequence[SectionResult]) -> dict[str, Any]:
    """One drafting round for the validation record: the full reply as drafted and every finding it got."""
    return {"draft": draft, "findings": [{**asdict(f)} for r in results for f in r.findings]}


def to_record(results: Sequence[SectionResult], removed: Sequence[str], fallback_sections: Sequence[str],
              rounds: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Build the validation record written beside a report.

    Args:
        results: Validated sections (of the last round).
        removed: Sentences `drop_unsupported` removed.
        fallback_sections: Sections replaced by their deterministic text.
        rounds: Every round's `round_record` (full draft and findings), in order.

    Returns:
        JSON-ready data: counts per finding kind, per-section findings (last round), removals, fallbacks, rounds.

    """
    findings = [finding for result in results for finding in result.findings]
    sections = {result.section: {
        "sentences": len(result.sentences),
        "failed_sentences": sum(not sentence.ok for sentence in result.sentences),
        "findings": [{k: v for k, v in asdict(f).items() if k != "section"} for f in result.findings],
    } for result in results}
    return {"ok": not findings, "counts": dict(Counter(finding.kind for finding in findings)),
            "sections": sections, "removed_sentences": list(removed), "fallback_sections": list(fallback_sections),
            "rounds": list(rounds)}
