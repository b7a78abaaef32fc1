"""Audit every `file:line` citation of a markdown report against the artifact lines it cites.

Pipeline: `reportgen.claims` splits the report into claims (sentence, list-item sentence, table row or sentence
of an HTML block) with their citations, asserted values and keyed values; `reportgen.resolve.Resolver` turns
each citation into lines of a file under ``root`` (elided paths, ``JSON L4``, ``[L817]``, ``rows 2–5`` and
``[row N in CSV]`` resolved from the report's citations; row N is physical line N); `reportgen.keybind` judges
each value: a value written beside a key (``tier=high``, ``first_rank_le_10: 24``) against the value that key
holds on the cited lines, any other number by the rounding rule of `reportgen.numbers` and any other quoted
string as text, pooled over all the claim's cited lines.

Verdicts (one per citation):

- ``forbidden``: the citation names a report or a record (``.md``, ``.html``, ``.build.json``,
  ``.validation.json``, ``.llm-cache/``): a report may cite artifact data only.
- ``unresolvable``: the file is missing, the path leaves ``root`` (``..``, an absolute path or a symlink
  pointing outside), a line is out of range, or an elided path has no earlier citation to stand for.
- ``mismatch``: a key on this citation's lines holds another value than the claim writes beside it
  (``passed=false`` vs ``"passed": true``), or this citation's lines hold none of the claim's values (even if
  the claim's other citations cover them, since then this citation supports nothing).
- ``partial``: this citation's lines hold some values; others are on no cited line or contradicted elsewhere.
- ``ok``: this citation's lines hold some values and the claim's cited lines hold all of them; or the claim
  states a word or flag the cited line holds (``clean``, ``no NaN`` for ``"any_nan_or_inf": false``).
- ``uncheckable``: the claim asserts no number, quoted string or recognisable word for the cited lines.

Links whose text is a value (``[0.625](probe.json#L255 "key")``) are audited by `reportgen.linkaudit`, whose
verdicts (including ``unbound``: a number outside every link in a report that binds values) are merged in
report-line order.

``missing`` lists the claim's values found on no cited line (or contradicted by their key). For those,
``hint`` names the nearest line of the same file that holds each one, the usual symptom of line numbers that
drifted when the artifact was regenerated; hints are computed after all claims, from per-file indexes built
once, so diagnosing many failures costs about one read of each file. ``evidence`` shows the cited lines that
held values (or contradicted them, or the first cited lines), truncated. Exit status of `audit_cli`: 1 when
any citation is ``partial``, ``mismatch``, ``unresolvable``, ``forbidden`` or ``unbound``; ``uncheckable``
does not fail, because citing a non-numeric statement is legitimate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

from reportgen.citations import Citation, CitationKind
from reportgen.claims import Claim, extract_claims
from reportgen.errors import ReportError
from reportgen.keybind import CitedLine, Item, Outcome, claim_items, judge_items
from reportgen.resolve import Resolver, SourceFile, Unresolved

__all__ = ["AuditResult", "CitationVerdict", "Verdict", "audit_cli", "audit_report", "format_text", "to_json"]

_EVIDENCE_CHARS = 160
_EVIDENCE_LINES = 6


class Verdict(str, Enum):
    """Outcome for one citation; see the module docstring for the rules."""

    OK = "ok"  # every value of the claim is on a cited line, and this citation's lines hold some
    PARTIAL = "partial"  # this citation's lines hold some values; others are on no cited line
    MISMATCH = "mismatch"  # a key here holds another value, or this citation's lines hold none of the values
    UNRESOLVABLE = "unresolvable"  # missing file, out-of-range line, path outside root
    FORBIDDEN = "forbidden"  # cites a report or a record instead of artifact data
    UNBOUND = "unbound"  # a number bound to no artifact line in a report that binds values (reportgen.linkaudit)
    UNCHECKABLE = "uncheckable"  # the claim has no number, quoted string or word to compare


_FAILING = frozenset(
    {Verdict.PARTIAL, Verdict.MISMATCH, Verdict.UNRESOLVABLE, Verdict.FORBIDDEN, Verdict.UNBOUND}
)


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
        missing: Claim values found on none of the claim's cited lines, or contradicted by their key.
        evidence: ``"LINE: text"`` of the cited lines that held or contradicted values (or the first ones).
        hint: For missing values, the nearest line of the file holding each one; None when nothing to say.
        reason: Why the citation is unresolvable, forbidden, uncheckable, or a mismatch.

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
        """Whether any citation is partial, mismatch, unresolvable, forbidden or unbound."""
        return any(verdict.verdict in _FAILING for verdict in self.verdicts)


@dataclass(frozen=True)
class _HintRequest:
    """Values of a failing citation to look for elsewhere in its file, once all claims are judged."""

    position: int  # index of the verdict in the report's list
    source: SourceFile
    items: tuple[Item, ...]
    ranges: tuple[tuple[int, int], ...]


def _cited_lines(ranges: Iterable[tuple[int, int]]) -> list[int]:
    return [line for first, last in ranges for line in range(first, last + 1)]


def _evidence(source: SourceFile, lines: list[int], holding: set[int]) -> tuple[str, ...]:
    shown = [line for line in lines if line in holding] or lines[:3]
    texts = []
    for line in shown[:_EVIDENCE_LINES]:
        text = source.line(line).strip()
        if len(text) > _EVIDENCE_CHARS:
            text = text[: _EVIDENCE_CHARS - 1] + "\u2026"
        texts.append(f"{line}: {text}")
    return tuple(texts)


_JSON_PAIR = re.compile(r'^\s*"(?:[^"\\]|\\.)*"\s*:\s*(.+?),?\s*$')
_WORDS = {True: ("yes", "true"), False: ("no", "false"), None: ("none", "null", "n/a", "never")}
_NOTHING = object()


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


def _stated(claim: Claim, source: SourceFile, ranges: tuple[tuple[int, int], ...]) -> str | None:
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


def _unresolved_verdict(claim: Claim, citation: Citation, source: Unresolved) -> CitationVerdict:
    verdict = Verdict.FORBIDDEN if source.forbidden else Verdict.UNRESOLVABLE
    return CitationVerdict(claim.report_line, citation.text, source.path, citation.ranges, verdict,
                           reason=source.reason)


def _judge_citation(
    claim: Claim, index: int, citation: Citation, source: SourceFile, outcomes: list[Outcome]
) -> tuple[CitationVerdict, tuple[Item, ...]]:
    """Judge one resolvable citation from the claim's item outcomes; also return the items to hint at."""
    base = CitationVerdict(claim.report_line, citation.text, source.name, citation.ranges, Verdict.OK)
    checked = [outcome for outcome in outcomes if outcome.status != "skipped"]
    missing = [outcome for outcome in checked if outcome.status in ("missing", "contradicted")]
    found = [outcome.item.label for outcome in checked if index in outcome.support]
    conflicts = [o for o in checked if o.status == "contradicted" and any(c == index for c, _ in o.lines)]
    shown = {line for o in checked for c, line in o.lines if c == index}
    evidence = _evidence(source, _cited_lines(citation.ranges), shown)
    stated = _stated(claim, source, citation.ranges)
    if conflicts:
        reason = "; ".join(f"{o.item.label}, but {conflict}" for o in conflicts for conflict in o.conflicts)
        verdict = replace(base, verdict=Verdict.MISMATCH, found=tuple(found), evidence=evidence, reason=reason,
                          missing=tuple(o.item.label for o in missing))
        return verdict, tuple(o.item for o in missing)
    if not checked:
        if stated is not None:
            return replace(base, found=(stated,), reason="the claim states the cited value"), ()
        reason = "the claim has no number, quoted string or word to check"
        return replace(base, verdict=Verdict.UNCHECKABLE, reason=reason), ()
    if not found and not missing and stated is not None:
        # The claim's values are held by its other citations; this one supports a stated word or flag.
        return replace(base, found=(stated,), reason="the claim states the cited value"), ()
    verdict = Verdict.MISMATCH if not found else Verdict.PARTIAL if missing else Verdict.OK
    reason = "the claim's other citations hold all its values" if not found and not missing else ""
    contradicted = [f"{o.item.label}, but {c}" for o in missing if o.status == "contradicted" for c in o.conflicts]
    if contradicted:
        reason = "; ".join(contradicted)
    result = replace(base, verdict=verdict, found=tuple(found), missing=tuple(o.item.label for o in missing),
                     evidence=evidence, reason=reason)
    return result, tuple(o.item for o in missing) if verdict is not Verdict.OK else ()


def _judge_claim(claim: Claim, resolver: Resolver) -> list[tuple[CitationVerdict, _HintRequest | None]]:
    # Resolve in order: an elided citation stands for the file cited just before it, inside this claim too.
    resolved = [(citation, resolver.resolve(citation)) for citation in claim.citations]
    cited = [
        CitedLine(index, source, line)
        for index, (citation, source) in enumerate(resolved)
        if isinstance(source, SourceFile)
        for line in _cited_lines(citation.ranges)
    ]
    outcomes = judge_items(claim_items(claim), cited)
    judged: list[tuple[CitationVerdict, _HintRequest | None]] = []
    for index, (citation, source) in enumerate(resolved):
        if not isinstance(source, SourceFile):
            judged.append((_unresolved_verdict(claim, citation, source), None))
            continue
        verdict, to_hint = _judge_citation(claim, index, citation, source, outcomes)
        hintable = tuple(item for item in to_hint if item.number is not None or item.quote is not None)
        judged.append((verdict, _HintRequest(-1, source, hintable, citation.ranges) if hintable else None))
    return judged


def _nearest(holders: list[int], ranges: tuple[tuple[int, int], ...]) -> int | None:
    """The line of ``holders`` closest to the cited ranges, to diagnose drifted line numbers."""

    def distance(line: int) -> int:
        return min(max(first - line, line - last, 0) for first, last in ranges)

    return min(holders, key=distance) if holders else None


def _holders(source: SourceFile, item: Item) -> list[int]:
    if item.number is not None:
        return source.lines_with_number(item.number)
    return source.lines_with_text(item.quote or "")


def _hint(request: _HintRequest) -> str | None:
    by_line: dict[int | None, list[str]] = {}
    for item in request.items:
        by_line.setdefault(_nearest(_holders(request.source, item), request.ranges), []).append(item.label)
    parts = [f"{', '.join(labels)} found on line {line}" for line, labels in by_line.items() if line is not None]
    if None in by_line:
        parts.append(f"{', '.join(by_line[None])} not in {request.source.name}")
    return "; ".join(parts) or None


def _link_verdicts(text: str, root: Path) -> list[tuple[int, CitationVerdict]]:
    """Verdicts of `reportgen.linkaudit` for value links, as citation verdicts."""
    from reportgen.linkaudit import audit_links

    # A resolver of its own: the links must not become the "file cited just before" of an elided citation.
    merged = []
    for link in audit_links(text, Resolver(root)):
        lines = ((link.line, link.line),) if link.line is not None else ()
        ok = link.verdict == "ok"
        merged.append((link.report_line, CitationVerdict(
            link.report_line, link.href or link.text, link.file, lines, Verdict(link.verdict),
            found=(link.text,) if ok else (), missing=() if ok else (link.text,),
            evidence=(link.expected,) if link.expected is not None else (), hint=link.hint, reason=link.reason,
        )))
    return merged


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
    claims = extract_claims(text)
    written = [c.path for claim in claims for c in claim.citations if c.kind is CitationKind.PATH]
    resolver = Resolver(root, written)
    judged = [pair for claim in claims for pair in _judge_claim(claim, resolver)]
    verdicts = [verdict for verdict, _ in judged]
    # Hints last, file by file: each file's indexes are then built once for all its failing citations.
    requests = [replace(request, position=at) for at, (_, request) in enumerate(judged) if request is not None]
    for request in sorted(requests, key=lambda r: r.source.name):
        verdicts[request.position] = replace(verdicts[request.position], hint=_hint(request))
    ordered = [(v.report_line, v) for v in verdicts] + _link_verdicts(text, root)
    ordered.sort(key=lambda pair: pair[0])  # stable: claims keep their order within a line
    final = tuple(verdict for _, verdict in ordered)
    counts = {kind.value: sum(v.verdict is kind for v in final) for kind in Verdict}
    return AuditResult(report, root, final, counts)


def _details(verdict: CitationVerdict) -> str:
    if verdict.verdict in (Verdict.UNRESOLVABLE, Verdict.UNCHECKABLE, Verdict.FORBIDDEN, Verdict.UNBOUND):
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


def _clip(text: str, limit: int = 120) -> str:
    """A citation or detail as printed: a 100 KB path written in a report is shown by its start."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def format_text(result: AuditResult) -> str:
    """Render an audit as one line per citation and a closing summary line.

    Args:
        result: The audit to render.

    Returns:
        ``REPORT:LINE  verdict  citation  — details`` lines, then ``N citations: a ok, b partial, …``.

    """
    lines = [
        f"{result.report}:{v.report_line}  {v.verdict.value}  {_clip(v.citation_text)}  "
        f"\u2014 {_clip(_details(v), 400)}"
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
        1 when any citation is partial, mismatch, unresolvable, forbidden or unbound, else 0 (uncheckable does
        not fail).

    Raises:
        ReportError: From `audit_report`; the CLI entry point turns it into one line and exit status 2.

    """
    result = audit_report(report, root)
    print(json.dumps(to_json(result), indent=2, ensure_ascii=False) if as_json else format_text(result))
    return 1 if result.failed else 0
