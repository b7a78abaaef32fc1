"""The auditor on a third-party report in the seed style, against frozen copies of real probe artifacts.

``tests/data/foreign/seed-style.md`` cites ``run/probe.json`` and ``run/pure-next-token.csv`` (copied from the
bundled smollm2 artifacts) in the seed's styles: ``key=value; …`` lists, ranges, ``JSON L4``, ``[L2659]``,
``rows 3–5``, ``[row 32 in CSV]``, elided ``…json:49–50``, a ``<details>`` block and a link citation. Every
citation was checked by reading the real line. The corruption test then breaks one thing at a time and needs
the auditor to notice; which corruptions are "bound" (a number or word written beside a key that the cited
artifact really has) is decided here from the artifacts, independently of the auditor.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reportgen.audit import Verdict, audit_report

FOREIGN = Path(__file__).parent / "data" / "foreign"
REPORT = FOREIGN / "seed-style.md"
RUN = FOREIGN / "run"

_KEYED_NUMBER = re.compile(
    r"(?<![\w.\"])(?P<key>[A-Za-z_][\w.]*)(?P<op>=|: |≈)(?P<value>[−-]?\d+(?:\.\d+)?(?:e-\d+)?)(?![\w.])"
)
_KEYED_WORD = re.compile(r"(?<![\w.])(?P<key>[A-Za-z_]\w*)=(?P<value>true|false|True|False|high)\b")
_CITED_LINE = re.compile(
    r"(?P<prefix>run/probe\.json:|run/pure-next-token\.csv:|…json:|…pure-next-token\.csv:|JSON L|\[L|\(:"
    r"|row |rows |probe\.json#L)(?P<line>\d+)"
)
_FLIP = {"true": "false", "false": "true", "True": "False", "False": "True", "high": "low"}


def _artifact_keys() -> set[str]:
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                keys.add(key)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads((RUN / "probe.json").read_text(encoding="utf-8")))
    with (RUN / "pure-next-token.csv").open(encoding="utf-8", newline="") as handle:
        keys.update(next(csv.reader(handle)))
    return keys


KEYS = _artifact_keys()


def _failing(markdown: str, tmp_path: Path) -> bool:
    report = tmp_path / "corrupted.md"
    report.write_text(markdown, encoding="utf-8")
    return audit_report(report, FOREIGN).failed


def _last_digit_changed(value: str) -> str:
    mantissa, _, exponent = value.partition("e")
    digits = [i for i, char in enumerate(mantissa) if char.isdigit()]
    at = digits[-1]
    bumped = str((int(mantissa[at]) + 1) % 10)
    return mantissa[:at] + bumped + mantissa[at + 1 :] + (f"e{exponent}" if exponent else "")


def _corruptions(text: str) -> Iterator[tuple[str, bool, str, str]]:
    """Yield (kind, bound, description, corrupted text) for single corruptions of the report."""
    for match in _KEYED_NUMBER.finditer(text):
        start, end = match.span("value")
        new = _last_digit_changed(match.group("value"))
        bound = match.group("key") in KEYS
        yield "digit", bound, f"{match.group(0)} -> {new}", text[:start] + new + text[end:]
    for line_start, line in _lines(text):
        keyed = [m for m in _KEYED_NUMBER.finditer(line) if m.group("key") in KEYS]
        for first, second in zip(keyed, keyed[1:], strict=False):
            if _number(first.group("value")) == _number(second.group("value")):
                continue  # 1.0 and 1 swapped: the claim is as true as before
            a, b = first.span("value"), second.span("value")
            swapped = line[: a[0]] + second.group("value") + line[a[1] : b[0]] + first.group("value") + line[b[1] :]
            description = f"swap {first.group(0)} / {second.group(0)}"
            yield "swap", True, description, text[:line_start] + swapped + text[line_start + len(line) :]
    for match in _KEYED_WORD.finditer(text):
        start, end = match.span("value")
        new = _FLIP[match.group("value")]
        bound = match.group("key") in KEYS
        yield "word", bound, f"{match.group(0)} -> {new}", text[:start] + new + text[end:]
    for match in _CITED_LINE.finditer(text):
        start, end = match.span("line")
        shifted = str(int(match.group("line")) + 1)
        yield "shift", False, f"{match.group(0)} -> +1", text[:start] + shifted + text[end:]
    for match in re.finditer(r"run/probe\.json(?=:\d)", text):
        yield "report", False, f"{match.group(0)} -> seed-style.md", text[: match.start()] + "seed-style.md" + text[
            match.end() :
        ]


def _number(written: str) -> float:
    return float(written.replace("\u2212", "-"))


def _lines(text: str) -> Iterator[tuple[int, str]]:
    offset = 0
    for line in text.split("\n"):
        yield offset, line
        offset += len(line) + 1


def test_fixture_is_a_frozen_copy_of_real_artifacts():
    for name in ("probe.json", "pure-next-token.csv"):
        path = RUN / name
        assert path.is_file() and not path.is_symlink()
    lines = (RUN / "probe.json").read_text(encoding="utf-8").split("\n")
    assert lines[12 - 1] == '    "n_layers": 30,'
    assert (RUN / "pure-next-token.csv").read_text(encoding="utf-8").split("\n")[32 - 1].startswith(
        "germany,orig,positive,30,"
    )


def test_seed_style_report_audits_clean():
    result = audit_report(REPORT)
    not_ok = [(v.report_line, v.citation_text, v.verdict.value, v.reason) for v in result.verdicts
              if v.verdict is not Verdict.OK]
    assert not_ok == []
    assert len(result.verdicts) >= 40
    assert not result.failed


def test_seed_style_report_uses_the_seed_citation_styles():
    texts = [v.citation_text for v in audit_report(REPORT).verdicts]
    for style in (r"^JSON L4$", r"^\[L\d+\]$", r"^rows \d+–\d+$", r"^\[row 32 in CSV\]$", r"^…json:",
                  r"^run/probe\.json:\d+–\d+$", r"#L12$", r"rows \d+–\d+$"):
        assert any(re.search(style, text) for text in texts), style


def test_every_single_corruption_is_detected(tmp_path, capsys):
    text = REPORT.read_text(encoding="utf-8")
    tally: dict[tuple[str, bool], list[int]] = {}
    missed = []
    for kind, bound, description, corrupted in _corruptions(text):
        if corrupted == text:
            continue  # e.g. swapping two equal values
        detected = _failing(corrupted, tmp_path)
        counts = tally.setdefault((kind, bound), [0, 0])
        counts[0] += detected
        counts[1] += 1
        if not detected:
            missed.append(f"{kind}{' (bound)' if bound else ''}: {description}")
    with capsys.disabled():
        for (kind, bound), (hit, total) in sorted(tally.items()):
            print(f"\ncorruption {kind:<6} bound={bound!s:<5} detected {hit}/{total} = {hit / total:.0%}", end="")
        print()
    assert {kind for kind, _ in tally} == {"digit", "swap", "word", "shift", "report"}
    # A number or word beside a key the artifact has, and a citation of a report: every one must be caught.
    assert [m for m in missed if "(bound)" in m or m.startswith("report")] == []
    # A shifted citation is caught when a stated value leaves the cited lines; the few misses are shifts after
    # which the cited lines still hold every value the sentence states (30/30/30 on lines 339-340 too).
    hit, total = (sum(tally[key][i] for key in tally if key[0] == "shift") for i in (0, 1))
    assert hit / total >= 0.85, missed


def test_corruption_verdicts_name_the_key(tmp_path):
    text = REPORT.read_text(encoding="utf-8").replace("passed=true", "passed=false")
    report = tmp_path / "r.md"
    report.write_text(text, encoding="utf-8")
    (verdict,) = [v for v in audit_report(report, FOREIGN).verdicts if v.verdict is Verdict.MISMATCH]
    assert verdict.citation_text == "run/probe.json:378–380"
    assert "run/probe.json:379 holds passed=true" in verdict.reason


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("(run/probe.json:2040)", "(run/seed-style.md:2)", Verdict.FORBIDDEN),
        ("(run/probe.json:2040)", "(seed-style.md:2)", Verdict.FORBIDDEN),
        ("(run/probe.json:2040)", "(smollm2.build.json:2)", Verdict.FORBIDDEN),
        ("(run/probe.json:2040)", "(.llm-cache/ab.json:1)", Verdict.FORBIDDEN),
        ("(run/probe.json:2040)", "(run/probe.json:9999)", Verdict.UNRESOLVABLE),
    ],
)
def test_forbidden_citations(tmp_path, old, new, expected):
    text = REPORT.read_text(encoding="utf-8").replace(old, new)
    report = tmp_path / "r.md"
    report.write_text(text, encoding="utf-8")
    result = audit_report(report, FOREIGN)
    assert [v.verdict for v in result.verdicts if v.verdict is not Verdict.OK] == [expected]
    assert result.failed
