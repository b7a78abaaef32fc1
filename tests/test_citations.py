"""Citation styles, labels, keyed values, HTML blocks, link citations and the per-file hint indexes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.audit import Verdict, audit_report
from reportgen.citations import find_citations
from reportgen.claims import extract_claims
from reportgen.numbers import extract_numbers
from reportgen.resolve import Resolver, SourceFile

RUN = Path(__file__).parent / "data" / "foreign" / "run"


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ("[row 32 in CSV]", [("row", "", ((32, 32),))]),
        ("rows 2–5 show it", [("row", "", ((2, 5),))]),
        ("(row 7)", [("row", "", ((7, 7),))]),
        ("(run/pure-next-token.csv rows 2–5)", [("path", "run/pure-next-token.csv", ((2, 5),))]),
        ("JSON L4", [("json", "", ((4, 4),))]),
        ("[L817]", [("line", "", ((817, 817),))]),
        ("[L817–L820]", [("line", "", ((817, 820),))]),
        ("(…json:7227)", [("elided", "json", ((7227, 7227),))]),
        ("(run/probe.json:12–15)", [("path", "run/probe.json", ((12, 15),))]),
        ("the row 3 of the table; L0–L3; [L 31]", []),
    ],
)
def test_citation_styles(chunk, expected):
    assert [(c.kind.value, c.path, c.ranges) for c in find_citations(chunk)] == expected


def _audit(tmp_path: Path, markdown: str):
    for name in ("probe.json", "pure-next-token.csv"):
        target = tmp_path / "run" / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes((RUN / name).read_bytes())
    report = tmp_path / "r.md"
    report.write_text(markdown, encoding="utf-8")
    return audit_report(report)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        # row N is physical line N: line 32 is layer 30, line 33 does not exist
        ("At L 0 p_top1=1.0 (run/pure-next-token.csv:2). At L 30 p_top1=0.6252 [row 32 in CSV].", ["ok", "ok"]),
        ("At L 0 p_top1=1.0 (run/pure-next-token.csv:2). At L 30 p_top1=0.6252 [row 31 in CSV].", ["ok", "mismatch"]),
        ("Layer 1 entropy_bits=1.369 (run/pure-next-token.csv rows 3–3).", ["ok"]),
        ("Seed 316 (run/probe.json:2). Alias 'smollm2' (JSON L4).", ["mismatch", "ok"]),
        ("Alias 'smollm2' (JSON L4) and 30 layers (run/probe.json:12).", ["ok", "ok"]),  # the only JSON
        ("Layers n_layers=30 (run/probe.json:12). Width 576 [L13].", ["ok", "ok"]),
        # keyed values: compared with the key's own value, never with another number on the cited lines
        ("d_model=30 and n_layers=576 (run/probe.json:12–13).", ["mismatch"]),
        ("d_model=576 and n_layers=30 (run/probe.json:12–13).", ["ok"]),
        ("first_rank_le_10: 30 (run/probe.json:338).", ["ok"]),
        ("passed=false (run/probe.json:379).", ["mismatch"]),
        ("passed=true (run/probe.json:379).", ["ok"]),
        ("tier=low (run/probe.json:1253).", ["mismatch"]),
        ('"tier": "high" (run/probe.json:1253).', ["ok"]),
        ("Numeric health is clean (no NaN/Inf) (run/probe.json:2030).", ["ok"]),
        ("Numeric health is fine (run/probe.json:2030).", ["uncheckable"]),
        ("deterministic_algorithms=false (run/probe.json:2657).", ["mismatch"]),
        ("dtype_model=float32 on device=cpu (run/probe.json:2654–2655).", ["ok"]),
        ("architecture=LlamaForCausalLM (run/probe.json:10).", ["ok"]),
        ("architecture=MistralForCausalLM (run/probe.json:10).", ["mismatch"]),
        ("norm_strategy=final_norm (run/probe.json:30).", ["mismatch"]),  # drifted: the key is on line 29
        # labels are not claims: thresholds, threshold sets, versions
        ("p_top1 > 0.30 from L 0 (run/probe.json:352).", ["ok"]),
        ("τ∈{0.70,0.95} with copy_tau_headline=0.95 (run/probe.json:38).", ["ok"]),
        ("torch 2.13.0+cpu (run/probe.json:2650).", ["ok"]),
        # a difference of two cited values
        ("L_semantic=30 and L_semantic=30, ΔL_sem=0 (run/probe.json:534; run/probe.json:596).", ["ok", "ok"]),
        ("L_semantic=30 and L_semantic=30, ΔL_sem=2 (run/probe.json:534; run/probe.json:596).", ["partial", "partial"]),
        # integers never stand for small decimals
        ("Entropy L 3 (run/probe.json:254).", ["mismatch"]),
        # forbidden: reports and records
        ("30 layers (r.md:1).", ["forbidden"]),
        ("30 layers (run/x.validation.json:1).", ["forbidden"]),
    ],
)
def test_audit_rules(tmp_path, markdown, expected):
    result = _audit(tmp_path, markdown + "\n")
    assert [v.verdict.value for v in result.verdicts] == expected


def test_html_block_claims_keep_report_lines(tmp_path):
    markdown = (
        "# T\n\n<details>\n<summary>More</summary>\nThe model has n_layers=30 &amp; d_model=576\n"
        "(run/probe.json:12&ndash;13). Vocabulary 49152 (run/probe.json:14).\n</details>\n"
    )
    result = _audit(tmp_path, markdown)
    assert [(v.report_line, v.verdict) for v in result.verdicts] == [(5, Verdict.OK), (6, Verdict.OK)]


def test_link_citation_is_read_and_value_links_are_left_out():
    claims = extract_claims("It has 30 layers ([see the count](run/probe.json#L12)).\n")
    assert [(c.text, [x.text for x in c.citations]) for c in claims] == [
        ("It has 30 layers (see the count (run/probe.json#L12)).", ["run/probe.json#L12"])
    ]
    assert [n.raw for n in claims[0].numbers] == ["30"]


def test_link_citation_with_wrong_line_fails(tmp_path):
    result = _audit(tmp_path, "It has 30 layers ([see](run/probe.json#L13)).\n")
    assert [v.verdict for v in result.verdicts] == [Verdict.MISMATCH]


def test_keyed_values_and_labels():
    (claim,) = extract_claims(
        "x: first_rank_le_10: 24; tier=high; p_top1 > 0.30; (≤10/≤5/≤1) = 29/29/31; k∈{1,2,3}; "
        'torch 2.8.0; "passed": true; L_sem=L 31 (a.json:1).\n'
    )
    assert [n.raw for n in claim.numbers] == ["24", "29", "29", "31", "31"]
    assert [(k.key, k.raw, k.tight) for k in claim.keyed] == [
        ("first_rank_le_10", "24", False), ("tier", "high", True), ("passed", "true", True), ("L_sem", "31", True)
    ]


def _brute(source: SourceFile, token) -> list[int]:
    return [line for line in range(1, source.line_count + 1) if source.has_number(line, token)]


@pytest.mark.parametrize("written", ["0.6252", "30", "1.0", "2.764", "781", "5.80e-38", "62.5%", "0.0", "-0.938"])
def test_number_index_agrees_with_a_full_scan(written):
    resolver = Resolver(RUN)
    (token,) = extract_numbers(f"v {written}")
    for name in ("probe.json", "pure-next-token.csv"):
        fresh = resolver._open(name)
        assert isinstance(fresh, SourceFile)
        assert fresh.lines_with_number(token) == _brute(SourceFile(fresh.name, fresh.lines), token), name


@pytest.mark.parametrize("quote", [" Berlin", "final_norm", "Give the city name only", "no such text"])
def test_text_index_agrees_with_a_full_scan(quote):
    source = SourceFile("probe.json", (RUN / "probe.json").read_text(encoding="utf-8").split("\n")[:-1])
    brute = [line for line in range(1, source.line_count + 1) if source.has_text(line, quote)]
    assert source.lines_with_text(quote) == brute
