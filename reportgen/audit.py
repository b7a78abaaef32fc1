"""Audit every `file:line` citation of a markdown report against the artifact lines it cites.

Pipeline: `reportgen.claims` splits the report into claims (sentence, list-item sentence or table row) with
their citations and asserted values; `reportgen.resolve.Resolver` turns each citation into lines of a file
under ``root`` (elided paths and ``[row N in CSV]`` resolved from the report's earlier citations; row N is
physical line N + 1 because the header is line 1); each asserted number is matched against the numbers on
those lines by the rounding rule of `reportgen.numbers`, and each quoted string as a substring after
normalising JSON escapes, CSV quote doubling and whitespace.

Verdicts (one per citation):

- ``unresolvable``: the file is missing, the path leaves ``root`` (``..``, an absolute path or a symlink
  pointing outside), a line is out of range, or an elided path has no earlier citation to stand for.
- ``uncheckable``: the claim asserts no number and no quoted string, so there is nothing to compare.
- Otherwise the claim's values are pooled over *all* its resolvable citations: a value needs to appear on
  the lines of only one of them. Then a citation is ``ok`` when its own lines hold at least one value and the
  pool holds all of them; ``partial`` when its lines hold some values and some values are on no cited line;
  ``mismatch`` when its own lines hold none of the values (even if the claim's other citations cover them,
  since then this citation supports nothing).

``missing`` lists the claim's values found on none of its cited lines. For those, ``hint`` names the nearest
line of the same file that holds each one, the usual symptom of line numbers that drifted when the artifact
was regenerated. ``evidence`` shows the cited lines that held values (or the first cited lines when none did),
truncated. Exit status of `audit_cli`: 1 when any citation is ``partial``, ``mismatch`` or
``unresolvable``; ``uncheckable`` does not fail, because citing a non-numeric statement (``numeric_health
clean``) is legitimate.

Known limit: the rounding rule lets a small written integer match any value that rounds to it (``L 1``
matches ``0.8611``), so a citation whose lines hold only such values can still be credited with one. The
claim's other values must still be found, so a drifted citation is rarely passed as ``ok``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from reportgen.citations import Citation
from reportgen.claims import Claim, extract_claims
from reportgen.errors import ReportError
from reportgen.numbers import NumberToken
from reportgen.resolve import Resolver, SourceFile

__all__ = ["AuditResult", "CitationVerdict", "Verdict", "audit_cli", "audit_report", "format_text", "to_json"]

_EVIDENCE_CHARS = 160
_EVIDENCE_LINES = 6


class Verdict(str, Enum):
    """Outcome for one citation; see the module docstring for the rules."""

    OK = "ok"  # every value of the claim is on a cited line, and this citation's lines hold some
    PARTIAL = "partial"  # this citation's lines hold some values; others are on no cited line
    MISMATCH = "mismatch"  # this citation's lines hold none of the claim's values
    UNRESOLVABLE = "unresolvable"  # missing file, out-of-range line, path outside root
    UNCHECKABLE = "uncheckable"  # the claim has no number or quoted string to compare


_FAILING = frozenset({Verdict.PARTIAL, Verdict.MISMATCH, Verdict.UNRESOLVABLE})


@dataclass(frozen=True)
class CitationVerdict:
    """The audit of one citation.

    Attributes:
        report_line: 1-based report line where the citing claim starts.
        citation_text: The citation as written.
        file: The cited path relative to root (for elided citations, the file it stands for); None if unknown.
        lines: Cited 1-based inclusive line ranges ``(first, last)``.
        verdict: See `Verdict`.
        found: Claim values found on this citation's lines, as written in the report.
        missing: Claim values found on none of the claim's cited lines.
        evidence: ``"LINE: text"`` of the cited lines that held values (or the first ones), truncated.
        hint: For missing values, the nearest line of the file holding each one; None when nothing to say.
        reason: Why the citation is unresolvable, uncheckable, or a mismatch despite full coverage.

    """

    report_line: int
    citation_text: str
    file: str | None
    lines: tuple[tuple[int, int], ...]
    verdict: Verdict
    found: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    hint: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class AuditResult:
    """All citation verdicts of one report, in report order, with counts per verdict."""

    report: Path
    root: Path
    verdicts: tuple[CitationVerdict, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Whether any citation is partial, mismatch or unresolvable."""
        return any(verdict.verdict in _FAILING for verdict in self.verdicts)


@dataclass(frozen=True)
class _Item:
    """One value a claim asserts: a number (matched by rounding) or a quoted string (matched as text)."""

    label: str
    number: NumberToken | None = None
    quote: str | None = None

    def found_on(self, source: SourceFile, line: int) -> bool:
        if self.quote is not None:
            return source.has_text(line, self.quote)
        return source.has_number(line, self.number)


def _claim_items(claim: Claim) -> list[_Item]:
    items = [_Item(number.raw, number=number) for number in claim.numbers]
    return items + [_Item(repr(quote), quote=quote) for quote in claim.quotes]


def _cited_lines(ranges: Iterable[tuple[int, int]]) -> list[int]:
    return [line for first, last in ranges for line in range(first, last + 1)]


def _nearest(source: SourceFile, item: _Item, ranges: tuple[tuple[int, int], ...]) -> int | None:
    """Find the line holding ``item`` closest to the cited ranges, to diagnose drifted line numbers."""
    holders = [line for line in range(1, source.line_count + 1) if item.found_on(source, line)]

    def distance(line: int) -> int:
        return min(max(first - line, line - last, 0) for first, last in ranges)

    return min(holders, key=distance) if holders else None


def _hint(source: SourceFile, missing: list[_Item], ranges: tuple[tuple[int, int], ...]) -> str | None:
    by_line: dict[int | None, list[str]] = {}
    for item in missing:
        by_line.setdefault(_nearest(source, item, ranges), []).append(item.label)
    parts = [
        f"{', '.join(labels)} found on line {line}" for line, labels in by_line.items() if line is not None
    ]
    if None in by_line:
        parts.append(f"{', '.join(by_line[None])} not in {source.name}")
    return "; ".join(parts) or None


def _evidence(source: SourceFile, lines: list[int], holding: set[int]) -> tuple[str, ...]:
    shown = [line for line in lines if line in holding] or lines[:3]
    texts = []
    for line in shown[:_EVIDENCE_LINES]:
        text = source.line(line).strip()
        if len(text) > _EVIDENCE_CHARS:
            text = text[: _EVIDENCE_CHARS - 1] + "\u2026"
        texts.append(f"{line}: {text}")
    return tuple(texts)


def _scan(
    source: SourceFile, ranges: tuple[tuple[int, int], ...], items: list[_Item]
) -> tuple[set[int], set[int]]:
    """Return the indexes of ``items`` found on the cited lines, and the cited lines that held any."""
    found, holding = set(), set()
    for line in _cited_lines(ranges):
        for index, item in enumerate(items):
            if item.found_on(source, line):
                found.add(index)
                holding.add(line)
    return found, holding


_JSON_PAIR = re.compile(r'^\s*"(?:[^"\\]|\\.)*"\s*:\s*(.+?),?\s*$')
_WORDS = {True: ("yes", "true"), False: ("no", "false"), None: ("none", "null", "n/a", "never")}


def _line_scalar(text: str) -> object:
    """The non-numeric scalar a pretty-printed JSON line holds ("key": value), or a sentinel when there is none."""
    m = _JSON_PAIR.match(text)
    if not m:
        return _NOTHING
    try:
        value = json.loads(m.group(1))
    except json.JSONDecodeError:
        return _NOTHING
    return value if isinstance(value, (str, bool)) or value is None else _NOTHING


_NOTHING = object()


def _reverse_match(claim: Claim, source: SourceFile, ranges: tuple[tuple[int, int], ...]) -> str | None:
    """Whether the claim states a cited line's string or boolean value (strings as text, booleans as yes/no).

    Numbers and quotes are checked claim -> line; this is the other direction, for cited facts that are words
    (a tier, a strategy, a flag), which a claim can state without quoting.
    """
    text = " ".join(claim.text.lower().split())
    for line in _cited_lines(ranges):
        value = _line_scalar(source.line(line))
        if value is _NOTHING:
            continue
        if isinstance(value, bool) or value is None:
            if any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text) for w in _WORDS[value]):  # type: ignore[index]
                return json.dumps(value)
        elif value.strip() and " ".join(value.lower().split()) in text:
            return json.dumps(value)
    return None


def _judge_citation(
    claim: Claim, citation: Citation, source: SourceFile, items: list[_Item], missing: list[_Item]
) -> CitationVerdict:
    """Judge one resolvable citation, given the claim's values that none of its citations hold."""
    stated = _reverse_match(claim, source, citation.ranges)
    if not items:
        if stated is not None:
            return CitationVerdict(claim.report_line, citation.text, source.name, citation.ranges, Verdict.OK,
                                   found=(stated,), reason="the claim states the cited value")
        return CitationVerdict(
            claim.report_line,
            citation.text,
            source.name,
            citation.ranges,
            Verdict.UNCHECKABLE,
            reason="the claim has no number or quoted string to check",
        )
    found, holding = _scan(source, citation.ranges, items)
    if not found and not missing and stated is not None:
        # The claim's numbers are held by its other citations; this one supports a stated word or flag.
        return CitationVerdict(claim.report_line, citation.text, source.name, citation.ranges, Verdict.OK,
                               found=(stated,), reason="the claim states the cited value")
    verdict = Verdict.MISMATCH if not found else Verdict.PARTIAL if missing else Verdict.OK
    return CitationVerdict(
        claim.report_line,
        citation.text,
        source.name,
        citation.ranges,
        verdict,
        found=tuple(items[index].label for index in sorted(found)),
        missing=tuple(item.label for item in missing),
        evidence=_evidence(source, _cited_lines(citation.ranges), holding),
        hint=_hint(source, missing, citation.ranges) if missing else None,
        reason="the claim's other citations hold all its values" if not found and not missing else "",
    )


def _judge_claim(claim: Claim, resolver: Resolver) -> list[CitationVerdict]:
    # Resolve in order: an elided citation stands for the file cited just before it, inside this claim too.
    resolved = [(citation, resolver.resolve(citation)) for citation in claim.citations]
    items = _claim_items(claim)
    covered: set[int] = set()
    for citation, source in resolved:
        if isinstance(source, SourceFile):
            covered |= _scan(source, citation.ranges, items)[0]
    missing = [item for index, item in enumerate(items) if index not in covered]
    return [
        _judge_citation(claim, citation, source, items, missing)
        if isinstance(source, SourceFile)
        else CitationVerdict(
            claim.report_line,
            citation.text,
            source.path,
            citation.ranges,
            Verdict.UNRESOLVABLE,
            reason=source.reason,
        )
        for citation, source in resolved
    ]


def _read_report(report: Path) -> str:
    try:
        return report.read_bytes().decode("utf-8")
    except FileNotFoundError as error:
        raise ReportError(f"{report}: report not found; expected a markdown file. Check the path.") from error
    except IsADirectoryError as error:
        raise ReportError(f"{report}: is a directory; expected a markdown report file.") from error
    except UnicodeDecodeError as error:
        raise ReportError(
            f"{report}: not UTF-8 (byte {error.start}: {error.object[error.start : error.start + 1]!r}); "
            "re-save the report as UTF-8."
        ) from error


def audit_report(report: Path, root: Path | None = None) -> AuditResult:
    """Audit every citation in a markdown report.

    Args:
        report: The markdown report.
        root: Directory that cited paths are relative to; citations may not leave it. Defaults to the
            report's directory.

    Returns:
        One verdict per citation in report order, and counts per verdict.

    Raises:
        ReportError: The report is missing or not UTF-8, or root is not a directory.

    """
    text = _read_report(report)
    root = report.parent if root is None else root
    if not root.is_dir():
        raise ReportError(
            f"{root}: audit root is not a directory; pass --root with the artifacts' directory."
        )
    resolver = Resolver(root)
    verdicts = tuple(verdict for claim in extract_claims(text) for verdict in _judge_claim(claim, resolver))
    counts = {kind.value: sum(v.verdict is kind for v in verdicts) for kind in Verdict}
    return AuditResult(report, root, verdicts, counts)


def _details(verdict: CitationVerdict) -> str:
    if verdict.verdict in (Verdict.UNRESOLVABLE, Verdict.UNCHECKABLE):
        return verdict.reason
    parts = []
    if verdict.found:
        parts.append("found " + ", ".join(verdict.found))
    if verdict.missing:
        parts.append("missing " + ", ".join(verdict.missing))
    if verdict.reason:
        parts.append(verdict.reason)
    if verdict.verdict is Verdict.MISMATCH and verdict.evidence:
        parts.append("cited " + verdict.evidence[0])
    if verdict.hint:
        parts.append("hint: " + verdict.hint)
    return "; ".join(parts)


def format_text(result: AuditResult) -> str:
    """Render an audit as one line per citation and a closing summary line.

    Args:
        result: The audit to render.

    Returns:
        ``REPORT:LINE  verdict  citation  — details`` lines, then ``N citations: a ok, b partial, …``.

    """
    lines = [
        f"{result.report}:{v.report_line}  {v.verdict.value}  {v.citation_text}  \u2014 {_details(v)}"
        for v in result.verdicts
    ]
    summary = ", ".join(f"{count} {kind}" for kind, count in result.counts.items())
    lines.append(f"{len(result.verdicts)} citations: {summary}")
    return "\n".join(lines)


def to_json(result: AuditResult) -> dict:
    """Convert an audit to a JSON-serialisable dict (paths as strings, verdicts as their values)."""
    verdicts = []
    for verdict in result.verdicts:
        record = asdict(verdict)
        record["verdict"] = verdict.verdict.value
        record["lines"] = [list(span) for span in verdict.lines]
        for key in ("found", "missing", "evidence"):
            record[key] = list(record[key])
        verdicts.append(record)
    return {
        "report": str(result.report),
        "root": str(result.root),
        "counts": dict(result.counts),
        "verdicts": verdicts,
    }


def audit_cli(report: Path, root: Path | None, as_json: bool) -> int:
    """Audit a report, print the result as text or JSON, and return the exit status.

    Args:
        report: The markdown report.
        root: Directory cited paths are relative to (default: the report's directory).
        as_json: Print `to_json` output instead of `format_text`.

    Returns:
        1 when any citation is partial, mismatch or unresolvable, else 0 (uncheckable does not fail).

    Raises:
        ReportError: From `audit_report`; the CLI entry point turns it into one line and exit status 2.

    """
    result = audit_report(report, root)
    print(json.dumps(to_json(result), indent=2, ensure_ascii=False) if as_json else format_text(result))
    return 1 if result.failed else 0
