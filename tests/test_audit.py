"""Tests for the citation auditor: citation recognition, claim splitting, resolution and verdicts.

Every report is hand-written in a foreign style (the seed report's path and range formats) against small real
artifacts written here: a pretty-printed JSON with one scalar per line at the seed's line numbers, and a CSV
with a header whose data row for layer L sits on physical line L + 2.
"""

import json
import os
from pathlib import Path

import pytest

from reportgen.audit import Verdict, audit_cli, audit_report, format_text, to_json
from reportgen.citations import CitationKind, find_citations
from reportgen.claims import extract_claims
from reportgen.errors import ReportError

JSON = "001_layers_baseline/run-latest/output-Qwen3-8B.json"
CSV = "001_layers_baseline/run-latest/output-Qwen3-8B-pure-next-token.csv"
JSON_LINES = 8900
# Physical line -> (key, value) of the fixture JSON; every other line is a padding key with a null value.
JSON_PLACED = {
    12: ("prompt", "Berlin is the capital of"),
    13: ("token", " Germany"),
    14: ("prob", 0.7286),
    34: ("L_semantic_norm", 31),
    46: ("token_9", " Berlin"),
    47: ("prob_9", 0.00045912),
    48: ("rank_9", 9),
    60: ("city", "München"),  # written as "M\u00fcnchen" by json.dumps
    807: ("use_norm_lens", True),
    817: ("context_prompt", "Give the city name only, plain text. The capital of Germany is called simply"),
    7177: ("L_semantic_frac", 0.8611),
    7178: ("first_rank_le_5_frac", 0.8056),
    7206: ("radius", 4),
    7207: ("center_layers", [29, 31, 36]),
    7208: ("max_kl_norm_vs_raw_bits_window", 38.09606),
    7209: ("mode", "window"),
    7211: ("pct_layers_kl_ge_1.0", 0.7568),
    7212: ("pct_layers_kl_ge_0.5", 0.8108),
    7213: ("n_norm_only_semantics_layers", 0),
    7214: ("max_kl_norm_vs_raw_bits", 38.09606),
    7215: ("tier", "high"),
    7227: ("layer0_source", "blocks[0].ln1"),
    7538: ("layer30_source", "blocks[30].ln1"),
    7742: ("final_source", "ln_final"),
    7748: ("numeric_health", "clean"),
    8850: ("preferred_lens_for_reporting", "tuned"),
}
CSV_SPECIAL = {
    29: {"entropy_bits": "1.7777", "top1_token": "-minded", "p_top1": "0.3021", "answer_rank": "4"},
    30: {"entropy_bits": "2.2030", "top1_token": " Germany", "p_top1": "0.5012", "answer_rank": "2"},
    31: {"entropy_bits": "0.4539", "top1_token": " Berlin", "p_top1": "0.93612", "answer_rank": "1"},
    36: {"entropy_bits": "3.1226", "top1_token": " Berlin", "p_top1": "0.4334", "answer_rank": "1"},
}
CSV_HEADER = ["layer", "entropy_bits", "top1_token", "p_top1", "answer_rank", "rest_mass", "topk"]


def _write_json(path: Path) -> None:
    keys = [("pad_%05d" % line, None) for line in range(JSON_LINES + 1)]
    for line, entry in JSON_PLACED.items():
        keys[line] = entry
    body = [f"  {json.dumps(keys[line][0])}: {json.dumps(keys[line][1])}," for line in range(2, JSON_LINES)]
    body[-1] = body[-1].rstrip(",")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["{", *body, "}"]) + "\n", encoding="utf-8")


def _write_csv(path: Path) -> None:
    rows = [",".join(CSV_HEADER)]
    for layer in range(37):
        row = {
            "entropy_bits": f"{17 - layer * 0.01:.4f}",
            "top1_token": "____",
            "p_top1": "0.0100",
            "answer_rank": "50",
        }
        row |= CSV_SPECIAL.get(layer, {})
        rest = "0.17504" if layer == 36 else "0.6500"
        topk = '"Berlin,0.02649; Germany,0.61"' if layer == 29 else '"x,0.5"'
        cells = [
            str(layer),
            row["entropy_bits"],
            row["top1_token"],
            row["p_top1"],
            row["answer_rank"],
            rest,
            topk,
        ]
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An audit root holding the seed-shaped artifacts, plus a secret file just outside it."""
    base = tmp_path / "root"
    _write_json(base / JSON)
    _write_csv(base / CSV)
    (tmp_path / "secret.json").write_text('{\n  "token": 0.861\n}\n', encoding="utf-8")
    return base


def _audit(root: Path, markdown: str):
    report = root / "report.md"
    report.write_text(markdown, encoding="utf-8")
    return audit_report(report)


def test_fixture_artifacts_are_real_files(root):
    data = json.loads((root / JSON).read_text(encoding="utf-8"))
    assert data["max_kl_norm_vs_raw_bits_window"] == 38.09606
    lines = (root / JSON).read_text(encoding="utf-8").split("\n")
    assert lines[7208 - 1] == '  "max_kl_norm_vs_raw_bits_window": 38.09606,'
    assert (root / CSV).read_text(encoding="utf-8").split("\n")[33 - 1].startswith("31,0.4539,")


# -- citation recognition --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        (f"({JSON}:7206–7209)", [("path", JSON, ((7206, 7209),))]),
        ("(dir/probe.json:12)", [("path", "dir/probe.json", ((12, 12),))]),
        ("(probe.json:7206-7209)", [("path", "probe.json", ((7206, 7209),))]),
        ("file.csv:2, 33", [("path", "file.csv", ((2, 2), (33, 33)))]),
        (
            "(x.json:7227–7233, 7538–7546, 7742–7746)",
            [("path", "x.json", ((7227, 7233), (7538, 7546), (7742, 7746)))],
        ),
        ("(x.json:7170–7174, 38 in CSV shows)", [("path", "x.json", ((7170, 7174),))]),
        ("(a.json:3; b.csv:4)", [("path", "a.json", ((3, 3),)), ("path", "b.csv", ((4, 4),))]),
        ("(…pure-next-token.csv:2–5)", [("elided", "pure-next-token.csv", ((2, 5),))]),
        ("(…json:7227–7233, 7538–7546)", [("elided", "json", ((7227, 7233), (7538, 7546)))]),
        ("see (:12) and (…:13)", [("elided", "", ((12, 12),)), ("elided", "", ((13, 13),))]),
        ("[row 32 in CSV]", [("row", "", ((32, 32),))]),  # row N is physical line N in the seed style
        ("(CSV rows 2–5)", [("row", "", ((2, 5),))]),
        ("(x/pure-next-token.csv rows 2–5)", [("path", "x/pure-next-token.csv", ((2, 5),))]),
        ("see JSON L4 and JSON L7–L9", [("json", "", ((4, 4),)), ("json", "", ((7, 9),))]),
        ("as printed [L817]", [("line", "", ((817, 817),))]),
        ("the row 3 of a table; [L 31]", []),
        ("probe.json#L10-L12", [("path", "probe.json", ((10, 12),))]),
        ("../secret.json:1", [("path", "../secret.json", ((1, 1),))]),
        ("started: 2025-10-04 18:04:23; ratio 3.5:1; e.g.:3", []),
        ("output.json: see the tuned block", []),
    ],
)
def test_find_citations(chunk, expected):
    found = [(c.kind.value, c.path, c.ranges) for c in find_citations(chunk)]
    assert found == expected


def test_find_citations_spans_cover_the_written_text():
    chunk = "max 38.10 (x.json:7206–7209) and [row 3 in CSV]"
    citations = find_citations(chunk)
    assert [chunk[c.span[0] : c.span[1]] for c in citations] == ["x.json:7206–7209", "[row 3 in CSV]"]
    assert [c.kind for c in citations] == [CitationKind.PATH, CitationKind.ROW]


# -- claims ----------------------------------------------------------------------------------------


def test_claims_split_sentences_and_keep_report_lines():
    markdown = (
        "# Title\n\n"
        "First 0.861 (a.json:1). Second e.g. L 28 (a.json:2).\n"
        "Third on the next line 38.10\n(a.json:3). Uncited 5.\n\n"
        "1. Ordinal item 0.5 (a.json:4)\n\n"
        "## 2. Heading 7 (a.json:5)\n\n"
        "| L | H | src |\n|---|---|---|\n| L 31 | 0.4539 | (a.json:6) |\n"
    )
    claims = extract_claims(markdown)
    got = [(c.report_line, [n.raw for n in c.numbers], [x.text for x in c.citations]) for c in claims]
    assert got == [
        (3, ["0.861"], ["a.json:1"]),
        (3, ["28"], ["a.json:2"]),
        (4, ["38.10"], ["a.json:3"]),
        (7, ["0.5"], ["a.json:4"]),
        (9, ["7"], ["a.json:5"]),
        (13, ["31", "0.4539"], ["a.json:6"]),
    ]


def test_claims_collect_quotes_and_code_spans_but_not_citation_numbers():
    markdown = (
        "Top-1 is 'Berlin' and “Berlin is the capital of” and \"tuned\" with `blocks[0].ln1` "
        "and `0.861` (001_x/out-Qwen3-8B.json:7206–7209).\n"
    )
    (claim,) = extract_claims(markdown)
    assert claim.quotes == ("blocks[0].ln1", "Berlin", "Berlin is the capital of", "tuned")
    assert [n.raw for n in claim.numbers] == ["0.861"]


def test_citation_only_sentence_joins_the_previous_sentence():
    (claim,) = extract_claims("Entropy is 0.4539 at L 31. (x.csv:33)\n")
    assert [n.raw for n in claim.numbers] == ["0.4539", "31"]


# -- verdicts --------------------------------------------------------------------------------------

CASES = [
    # id, report markdown, expected verdicts in report order
    (
        "seed_json_range",
        f"Window radius=4 at layers [29,31,36], max ≈ 38.10 bits ({JSON}:7206–7209).",
        ["ok"],
    ),
    ("hyphen_range", f"Window max ≈ 38.10 bits ({JSON}:7206-7209).", ["ok"]),
    ("wrong_number", f"Window radius=4, max ≈ 38.20 bits ({JSON}:7206–7209).", ["partial"]),
    ("wrong_lines", f"Depth fraction L_semantic_frac ≈ 0.861 ({JSON}:7100–7102).", ["mismatch"]),
    ("rounding_ok", f"L_semantic_frac ≈ 0.861; first_rank_le_5_frac ≈ 0.806 ({JSON}:7177–7179).", ["ok"]),
    ("rounding_not_tolerance", f"L_semantic_frac ≈ 0.87 ({JSON}:7177).", ["mismatch"]),
    ("percent_vs_fraction", f'75.7% of layers are flagged, tier "high" ({JSON}:7210–7220).', ["ok"]),
    ("multi_range", f"Radius 4 and n_norm_only=0 ({JSON}:7206–7209, 7210–7220).", ["ok"]),
    (
        "seed_three_ranges",
        f"Layer 0 sources `blocks[0].ln1` and the final layer `ln_final` "
        f"({JSON}:7227–7233, 7538–7546, 7742–7746).",
        ["ok"],
    ),
    ("csv_several_lines", f"Entropy falls from 17.00 at L 0 to 0.4539 at L 31 ({CSV}:2, 33).", ["ok"]),
    ("csv_range", f"No copy reflex at L0–L3 ({CSV}:2–5).", ["ok"]),
    (
        "elided_suffix_from_history",
        f"L 31: 0.4539 ({CSV}:33). L 36 has 3.1226 (…pure-next-token.csv:38).",
        ["ok", "ok"],
    ),
    ("elided_suffix_from_root", "L 36 has rest_mass 0.175 (…pure-next-token.csv:38).", ["ok"]),
    (
        "elided_ext_only",
        f"L 31: 0.4539 ({CSV}:33). Then 38.10 bits ({JSON}:7208) and 0.861 (…json:7177).",
        ["ok"] * 3,
    ),
    ("bare_line_elided", f"Entropy 0.4539 at L 31 ({CSV}:33). Top-1 ' Berlin' at L 31 (:33).", ["ok", "ok"]),
    ("bare_line_without_history", "Entropy 0.4539 (:33).", ["unresolvable"]),
    ("row_in_csv", f"L 31: 0.4539 ({CSV}:33). At L 30 top-1 is ' Germany' [row 32 in CSV].", ["ok", "ok"]),
    ("row_in_csv_is_physical_line", f"L 31: 0.4539 ({CSV}:33). At L 30 entropy is 2.2030 [row 31 in CSV].",
     ["ok", "mismatch"]),
    (
        "row_in_csv_wrong_row",
        f"L 31: 0.4539 ({CSV}:33). At L 30 entropy is 2.2030 [row 30 in CSV].",
        ["ok", "mismatch"],
    ),
    (
        "row_after_json_uses_last_csv",
        f"L 31: 0.4539 ({CSV}:33). Max 38.10 ({JSON}:7208). At L 30 top-1 is ' Germany' [row 32 in CSV].",
        ["ok", "ok", "ok"],
    ),
    (
        "table_row_ordinal",
        "| # | Layer | H | src |\n|---|---|---|---|\n| 7. | L 31 | 0.4539 | (…csv:33) |\n",
        ["ok"],
    ),
    ("row_without_csv", "At L 30 top-1 is ' Germany' [row 31 in CSV].", ["unresolvable"]),
    (
        "multi_file_bracket",
        f"L_semantic_frac ≈ 0.861 and entropy 0.4539 ({JSON}:7177; {CSV}:33).",
        ["ok", "ok"],
    ),
    (
        "multi_file_one_wrong",
        f"L_semantic_frac ≈ 0.861 and entropy 0.4539 ({JSON}:7177; {CSV}:20).",
        ["partial", "mismatch"],
    ),
    (
        "second_citation_adds_nothing",
        f"Largest KL ≈ 38.10 bits ({JSON}:7208; {JSON}:7209).",
        ["ok", "mismatch"],
    ),
    (
        "table_cells",
        "| Layer | Entropy | Source |\n|---|---:|---|\n"
        "| L 31 | 0.4539 | (…pure-next-token.csv:33) |\n| **L 30** | 0.4539 | (…pure-next-token.csv:32) |\n",
        ["ok", "partial"],
    ),
    ("citation_in_code_span", f"The window max is 38.10 bits `({JSON}:7208)`.", ["ok"]),
    (
        "citation_in_link_text",
        f"The window max is 38.10 bits ([{JSON}:7208](https://example.org/x)).",
        ["ok"],
    ),
    ("traversal_dotdot", "Token p 0.861 (../secret.json:2).", ["unresolvable"]),
    ("missing_file", "Token p 0.861 (001_layers_baseline/missing.json:2).", ["unresolvable"]),
    ("line_out_of_range", f"Token p 0.861 ({JSON}:99999).", ["unresolvable"]),
    ("reversed_range", f"Window max 38.10 ({JSON}:7209–7206).", ["unresolvable"]),
    ("uncheckable", f"Numeric health is fine ({JSON}:7748–7754).", ["uncheckable"]),
    ("word_value_stated", f"Numeric health is clean ({JSON}:7748–7754).", ["ok"]),
    ("bool_value_stated", f"Norm lens used: yes ({JSON}:807).", ["ok"]),
    ("bool_value_not_stated", f"Norm lens used: maybe ({JSON}:807).", ["uncheckable"]),
    ("table_first_cell_is_data", "| T | H | src |\n|---|---|---|\n| 0.4539 | x | (…csv:33) |\n", ["ok"]),
    (
        "quote_ok",
        'The prompt is "Give the city name only, plain text. The capital of Germany is called simply" '
        f"({JSON}:817).",
        ["ok"],
    ),
    ("quote_wrong", f'The prompt is "Give the country name" ({JSON}:817).', ["mismatch"]),
    (
        "curly_quote_and_json_escape",
        f"Prompt “Berlin is the capital of” ({JSON}:12); city 'München' ({JSON}:60).",
        ["ok", "ok"],
    ),
    ("scientific", f"“ Berlin” at p≈4.59e\u20114, rank 9 (p=0.000459) ({JSON}:10–16, 46–48).", ["ok"]),
    (
        "ordinal_list_item",
        f"1. L_semantic_frac ≈ 0.861 ({JSON}:7177)\n2. Radius 4 ({JSON}:7206)\n",
        ["ok", "ok"],
    ),
    ("csv_quoted_cell", f"At L 29, “Berlin” has p=0.0265 at rank 4 ({CSV}:31).", ["ok"]),
    ("drifted_by_one", f"Max ≈ 38.10 bits in window mode ({JSON}:7207).", ["mismatch"]),
]


@pytest.mark.parametrize(
    ("markdown", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_verdicts(root, markdown, expected):
    result = _audit(root, markdown + "\n")
    assert [v.verdict.value for v in result.verdicts] == expected


def test_absolute_path_outside_root_is_refused(root, tmp_path):
    result = _audit(root, f"Token p 0.861 ({tmp_path / 'secret.json'}:2).\n")
    (verdict,) = result.verdicts
    assert verdict.verdict is Verdict.UNRESOLVABLE
    assert "absolute path outside the audit root" in verdict.reason


def test_absolute_path_inside_root_is_read(root):
    result = _audit(root, f"Window max 38.10 bits ({root / JSON}:7208).\n")
    assert [(v.verdict, v.file) for v in result.verdicts] == [(Verdict.OK, JSON)]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_out_of_root_is_refused(root, tmp_path):
    (root / "link.json").symlink_to(tmp_path / "secret.json")
    result = _audit(root, "Token p 0.861 (link.json:2).\n")
    (verdict,) = result.verdicts
    assert (verdict.verdict, verdict.found) == (Verdict.UNRESOLVABLE, ())
    assert "symlink leads outside" in verdict.reason


def test_elided_suffix_ambiguous_under_root(root):
    (root / "other-pure-next-token.csv").write_text("layer\n0\n", encoding="utf-8")
    (verdict,) = _audit(root, "L 0 value (…pure-next-token.csv:2).\n").verdicts
    assert verdict.verdict is Verdict.UNRESOLVABLE
    assert "matches no earlier citation and 2 files" in verdict.reason


def test_mismatch_hint_names_the_line_that_holds_the_value(root):
    (verdict,) = _audit(root, f"Depth fraction L_semantic_frac ≈ 0.861 ({JSON}:7100–7102).\n").verdicts
    assert verdict.missing == ("0.861",)
    assert verdict.hint == "0.861 found on line 7177"
    assert verdict.evidence[0] == '7100: "pad_07100": null,'


def test_partial_reports_found_missing_and_evidence(root):
    (verdict,) = _audit(root, f"Window radius=4, max ≈ 38.20 bits ({JSON}:7206–7209).\n").verdicts
    assert (verdict.found, verdict.missing) == (("4",), ("38.20",))
    assert verdict.evidence == ('7206: "radius": 4,',)
    assert verdict.hint == f"38.20 not in {JSON}"
    assert verdict.lines == ((7206, 7209),)


def test_unresolvable_reason_names_the_line_count(root):
    (verdict,) = _audit(root, f"Token p 0.861 ({JSON}:99999).\n").verdicts
    assert verdict.reason == f"line 99999 out of range: {JSON} has {JSON_LINES} lines"


def test_row_citation_reads_line_n(root):
    markdown = f"L 31: 0.4539 ({CSV}:33). At L 30 top-1 is ' Germany' [row 32 in CSV]; rows 31–32 too.\n"
    verdicts = _audit(root, markdown).verdicts
    assert [(v.file, v.lines) for v in verdicts[1:]] == [(CSV, ((32, 32),)), (CSV, ((31, 32),))]


def test_format_text_exact(root):
    markdown = f"# R\n\nWindow max ≈ 38.10 bits ({JSON}:7208).\nDepth ≈ 0.87 ({JSON}:7177).\n"
    result = _audit(root, markdown)
    report = root / "report.md"
    assert format_text(result).split("\n") == [
        f"{report}:3  ok  {JSON}:7208  \u2014 found 38.10",
        f'{report}:4  mismatch  {JSON}:7177  \u2014 missing 0.87; cited 7177: "L_semantic_frac": 0.8611,; '
        f"hint: 0.87 not in {JSON}",
        "2 citations: 1 ok, 0 partial, 1 mismatch, 0 unresolvable, 0 forbidden, 0 unbound, 0 uncheckable",
    ]


def test_to_json_is_serialisable(root):
    result = _audit(root, f"Window max ≈ 38.10 bits ({JSON}:7208).\n")
    data = json.loads(json.dumps(to_json(result)))
    assert data["counts"] == {"ok": 1, "partial": 0, "mismatch": 0, "unresolvable": 0, "forbidden": 0,
                              "unbound": 0, "uncheckable": 0}
    assert data["verdicts"][0] | {"evidence": None} == {
        "report_line": 1,
        "citation_text": f"{JSON}:7208",
        "file": JSON,
        "lines": [[7208, 7208]],
        "verdict": "ok",
        "found": ["38.10"],
        "missing": [],
        "evidence": None,
        "hint": None,
        "reason": "",
    }


@pytest.mark.parametrize(
    ("markdown", "as_json", "expected_status"),
    [
        (f"Window max ≈ 38.10 bits ({JSON}:7208).", False, 0),
        (f"Numeric health is clean ({JSON}:7748).", False, 0),  # uncheckable does not fail
        (f"Window max ≈ 38.20 bits ({JSON}:7208).", False, 1),
        (f"Window max ≈ 38.10 bits ({JSON}:99999).", True, 1),
        ("No citations at all, 0.5.", False, 0),
    ],
)
def test_audit_cli_exit_status(root, capsys, markdown, as_json, expected_status):
    report = root / "report.md"
    report.write_text(markdown + "\n", encoding="utf-8")
    assert audit_cli(report, None, as_json) == expected_status
    out = capsys.readouterr().out
    if as_json:
        assert json.loads(out)["counts"]["unresolvable"] == 1
    else:
        assert out.rstrip("\n").split("\n")[-1].endswith("uncheckable")


def test_explicit_root_differs_from_report_dir(root, tmp_path):
    report = tmp_path / "elsewhere" / "report.md"
    report.parent.mkdir()
    report.write_text(f"Window max ≈ 38.10 bits ({JSON}:7208).\n", encoding="utf-8")
    assert [v.verdict for v in audit_report(report).verdicts] == [Verdict.UNRESOLVABLE]
    assert [v.verdict for v in audit_report(report, root).verdicts] == [Verdict.OK]


@pytest.mark.parametrize(
    ("content", "expected_error"),
    [
        (None, r"report\.md: report not found"),
        (b"caf\xe9 0.5 (a.json:1)\n", r"report\.md: not UTF-8 \(byte 3"),
    ],
)
def test_report_errors_name_the_file(tmp_path, content, expected_error):
    report = tmp_path / "report.md"
    if content is not None:
        report.write_bytes(content)
    with pytest.raises(ReportError, match=expected_error):
        audit_report(report)


def test_root_must_be_a_directory(root):
    report = root / "report.md"
    report.write_text("x\n", encoding="utf-8")
    with pytest.raises(ReportError, match="audit root is not a directory"):
        audit_report(report, root / "nope")
