"""reportgen.facts: every fact cites the line that holds it; manifest hashes, keys and units are checked."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reportgen.errors import ReportError
from reportgen.facts import Fact, FactSet, extract_facts, format_facts, infer_unit
from tests.helpers_facts import assert_facts_complete, assert_facts_on_lines

CSV_NAME = "pure-next-token.csv"
KEY_COLUMNS = ["prompt_id", "variant", "layer"]

PROBE: dict[str, Any] = {
    "schema_version": "1.0",
    "model": {"name": "smollm2", "n_layers": 30, "tied_embeddings": True},
    "diagnostics": {
        "milestones": {"L_semantic": 12, "L_copy": None},
        "final_kl_bits": 0.0012,
        "depth_frac": 0.4,
    },
    "timings": {"load_s": 1.25},
    "per_prompt": [
        {"prompt_id": "pos", "text": 'Say "Berlin" \\ naïve → ✓ 😀\ttab', "entropy_bits": [3.5, 2.25, 0.75]},
        {"prompt_id": "neg", "text": "", "entropy_bits": []},
    ],
}
# json.dumps(PROBE, indent=2) puts these on the lines below (read off the file; the tests fail on a shift).
EXPECTED_JSON = [
    ("probe.json:schema_version", "1.0", None, "probe.json:2"),
    ("probe.json:model.n_layers", 30, None, "probe.json:5"),
    ("probe.json:model.tied_embeddings", True, None, "probe.json:6"),
    ("probe.json:diagnostics.milestones.L_semantic", 12, "layer", "probe.json:10"),
    ("probe.json:diagnostics.milestones.L_copy", None, None, "probe.json:11"),
    ("probe.json:diagnostics.final_kl_bits", 0.0012, "bits", "probe.json:13"),
    ("probe.json:diagnostics.depth_frac", 0.4, "fraction", "probe.json:14"),
    ("probe.json:timings.load_s", 1.25, "seconds", "probe.json:17"),
    ("probe.json:per_prompt[0].prompt_id", "pos", None, "probe.json:21"),
    ("probe.json:per_prompt[0].text", 'Say "Berlin" \\ naïve → ✓ 😀\ttab', None, "probe.json:22"),
    ("probe.json:per_prompt[0].entropy_bits[1]", 2.25, "bits", "probe.json:25"),
    ("probe.json:per_prompt[1].entropy_bits", 0, "items", "probe.json:32"),
    ("probe.json:per_prompt", 2, "items", "probe.json:19\u201334"),
    ("probe.json:diagnostics", 3, "keys", "probe.json:8\u201315"),
]


def _csv_frame() -> pd.DataFrame:
    """A small next-token table as the probe writes it with pandas, tokens chosen to look like other types."""
    rows = []
    tokens = [" Berlin", "nan", "1", "True", 'say "hi"', "a,b", "é😀", ""]
    for p, prompt in enumerate(["pos", "neg"]):
        for v, variant in enumerate(["orig", "ctl"]):
            for layer in range(3):
                i = p * 6 + v * 3 + layer
                rows.append({
                    "prompt_id": prompt, "variant": variant, "layer": layer,
                    "entropy_bits": round(4.0 - layer * 1.25 + p * 0.5, 4),
                    "p_top1": None if i == 5 else round(0.08 * (i + 1), 3),
                    "rank": i + 1, "top1_token": tokens[i % len(tokens)], "is_answer": layer == 2,
                })
    return pd.DataFrame(rows)


def _write_run(model_dir: Path, probe: Any = PROBE, csv_text: str | None = None, **dumps: Any) -> Path:
    """Write probe.json, the CSV and a manifest with correct hashes; return the model directory."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "probe.json").write_text(json.dumps(probe, **(dumps or {"indent": 2})), encoding="utf-8")
    if csv_text is None:
        csv_text = _csv_frame().to_csv(index=False)
    (model_dir / CSV_NAME).write_bytes(csv_text.encode("utf-8"))
    _write_manifest(model_dir, [("probe.json", "json"), (CSV_NAME, "csv")])
    return model_dir


def _write_manifest(model_dir: Path, files: list[tuple[str, str]]) -> None:
    artifacts = []
    for name, kind in files:
        data = (model_dir / name).read_bytes()
        entry = {"path": name, "kind": kind, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        if kind == "csv":
            entry.update(rows=data.count(b"\n") - 1, key_columns=KEY_COLUMNS)
        artifacts.append(entry)
    manifest = {"schema_version": "1.0", "probe_version": "0.1.0", "model": {"name": "smollm2"},
                "artifacts": artifacts, "timings": {"total_s": 1.0}}
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "run" / "smollm2")


def test_every_fact_is_on_its_cited_line_and_none_is_missing(model_dir):
    factset = extract_facts(model_dir)
    assert assert_facts_on_lines(model_dir, factset) == len(factset) == 12 * 8 + 16
    assert_facts_complete(model_dir, factset)


@pytest.mark.parametrize(("key", "expected_value", "expected_unit", "expected_cite"), EXPECTED_JSON)
def test_json_facts(model_dir, key, expected_value, expected_unit, expected_cite):
    fact = extract_facts(model_dir).get(key)
    assert (fact.value, fact.unit, fact.cite()) == (expected_value, expected_unit, expected_cite)
    assert type(fact.value) is type(expected_value)


@pytest.mark.parametrize(
    ("key", "expected_value", "expected_unit", "expected_line"),
    [
        ("[prompt_id=pos,variant=orig,layer=0].entropy_bits", 4.0, "bits", 2),
        ("[prompt_id=pos,variant=orig,layer=1].top1_token", "nan", None, 3),  # text column stays text
        ("[prompt_id=pos,variant=orig,layer=2].top1_token", "1", None, 4),
        ("[prompt_id=pos,variant=ctl,layer=0].top1_token", "True", None, 5),
        ("[prompt_id=pos,variant=ctl,layer=1].top1_token", 'say "hi"', None, 6),
        ("[prompt_id=pos,variant=ctl,layer=2].p_top1", None, None, 7),  # empty cell
        ("[prompt_id=pos,variant=ctl,layer=2].top1_token", "a,b", None, 7),
        ("[prompt_id=neg,variant=orig,layer=0].top1_token", "é😀", None, 8),
        ("[prompt_id=neg,variant=orig,layer=1].top1_token", None, None, 9),
        ("[prompt_id=neg,variant=orig,layer=1].p_top1", 0.64, "probability", 9),
        ("[prompt_id=neg,variant=ctl,layer=2].layer", 2, "layer", 13),
        ("[prompt_id=neg,variant=ctl,layer=2].rank", 12, None, 13),
        ("[prompt_id=neg,variant=ctl,layer=2].is_answer", True, None, 13),
        ("[prompt_id=neg,variant=ctl,layer=1].is_answer", False, None, 12),
    ],
)
def test_csv_facts(model_dir, key, expected_value, expected_unit, expected_line):
    fact = extract_facts(model_dir).get(CSV_NAME + key)
    expected_cite = f"{CSV_NAME}:{expected_line}"
    assert (fact.value, fact.unit, fact.cite()) == (expected_value, expected_unit, expected_cite)
    assert type(fact.value) is type(expected_value)


@pytest.mark.parametrize(
    "dumps",
    [{"indent": 4}, {"indent": "\t"}, {"separators": (",", ":")}, {"indent": 2, "sort_keys": True},
     {"indent": 1, "ensure_ascii": False}, {}],
    ids=["indent4", "tabs", "compact", "sort_keys", "utf8", "one-line"],
)
def test_foreign_pretty_printing_gives_the_same_facts_on_their_lines(tmp_path, model_dir, dumps):
    foreign = _write_run(tmp_path / "foreign", **dumps)
    factset = extract_facts(foreign)
    assert_facts_on_lines(foreign, factset)
    assert {f.key: f.value for f in factset} == {f.key: f.value for f in extract_facts(model_dir)}


def test_crlf_csv_keeps_physical_line_numbers(tmp_path):
    crlf = _write_run(tmp_path / "crlf", csv_text=_csv_frame().to_csv(index=False, lineterminator="\r\n"))
    factset = extract_facts(crlf)
    assert factset.get(f"{CSV_NAME}[prompt_id=neg,variant=ctl,layer=2].rank").line == 13
    assert_facts_on_lines(crlf, factset)


def test_quoted_key_cells_and_column_names(tmp_path):
    csv_text = 'prompt_id,variant,layer,"top 1"\n"a,b",x y,0,1.5\n"",=,1,\n'
    factset = extract_facts(_write_run(tmp_path / "q", csv_text=csv_text))
    assert [f.key for f in factset.by_prefix(CSV_NAME)] == [
        f'{CSV_NAME}[prompt_id="a,b",variant="x y",layer=0].prompt_id',
        f'{CSV_NAME}[prompt_id="a,b",variant="x y",layer=0].variant',
        f'{CSV_NAME}[prompt_id="a,b",variant="x y",layer=0].layer',
        f'{CSV_NAME}[prompt_id="a,b",variant="x y",layer=0]["top 1"]',
        f'{CSV_NAME}[prompt_id="",variant="=",layer=1].prompt_id',
        f'{CSV_NAME}[prompt_id="",variant="=",layer=1].variant',
        f'{CSV_NAME}[prompt_id="",variant="=",layer=1].layer',
        f'{CSV_NAME}[prompt_id="",variant="=",layer=1]["top 1"]',
    ]
    assert_facts_on_lines(tmp_path / "q", factset)


def test_sha_mismatch_names_file_and_both_hashes(model_dir):
    expected = hashlib.sha256((model_dir / CSV_NAME).read_bytes()).hexdigest()
    with (model_dir / CSV_NAME).open("a") as f:
        f.write("pos,orig,9,1.0,0.5,1,x,False\n")
    found = hashlib.sha256((model_dir / CSV_NAME).read_bytes()).hexdigest()
    with pytest.raises(ReportError, match=f"^{CSV_NAME}: sha256 mismatch: manifest expects {expected}, "
                                          f"file has {found}; .*re-run `probe run`"):
        extract_facts(model_dir)


def test_duplicate_csv_key_names_file_and_both_lines(tmp_path):
    csv_text = "prompt_id,variant,layer,entropy_bits\npos,orig,0,1.0\npos,orig,1,2.0\npos,orig,0,3.0\n"
    with pytest.raises(ReportError, match=rf"^{CSV_NAME}: lines 2 and 4 share the key "
                                          rf"{CSV_NAME}\[prompt_id=pos,variant=orig,layer=0\]"):
        extract_facts(_write_run(tmp_path / "dup", csv_text=csv_text))


@pytest.mark.parametrize(
    ("key", "expected_error"),
    [
        ("probe.json:diagnostics.milestones.L_semantc",
         r"did you mean probe\.json:diagnostics\.milestones\.L_semantic"),
        ("probe.json:per_prompt[0].entropy_bit", r"did you mean probe\.json:per_prompt\[0\]\.entropy_bits"),
        (f"{CSV_NAME}[prompt_id=pos,variant=orig,layer=1].entropy",
         r"did you mean pure-next-token\.csv\[prompt_id=pos,variant=orig,layer=1\]\.entropy_bits"),
        ("nothing-like-it", r"^unknown fact key 'nothing-like-it'; list keys with `reportgen facts`$"),
    ],
)
def test_unknown_key_suggests_close_matches(model_dir, key, expected_error):
    with pytest.raises(ReportError, match=expected_error):
        extract_facts(model_dir).get(key)


def test_derived_facts_cite_all_their_sources(model_dir):
    factset = extract_facts(model_dir)
    ratio = 12 / 30
    frac = factset.add_derived("derived:L_semantic_frac", ratio, "fraction",
                               ["probe.json:diagnostics.milestones.L_semantic", "probe.json:model.n_layers"],
                               "L_semantic / n_layers")
    assert (frac.value, frac.unit, frac.file, frac.line) == (ratio, "fraction", "probe.json", 10)
    assert frac.cite() == "probe.json:10; probe.json:5"
    assert factset.get("derived:L_semantic_frac") == frac
    pct = factset.add_derived("derived:L_semantic_pct", 100 * ratio, "percent",
                              ["derived:L_semantic_frac", "probe.json:model.n_layers",
                               f"{CSV_NAME}[prompt_id=pos,variant=orig,layer=0].layer"], "100 * frac")
    assert pct.cite() == f"probe.json:10; probe.json:5; {CSV_NAME}:2"  # flattened, repeats dropped
    assert pct.to_dict()["sources"][0] == "derived:L_semantic_frac"
    assert pct.to_dict()["formula"] == "100 * frac"
    assert_facts_on_lines(model_dir, factset)


@pytest.mark.parametrize(
    ("key", "sources", "expected_error"),
    [
        ("probe.json:model.n_layers", ["probe.json:model.n_layers"], r"'probe\.json:model\.n_layers' is def"),
        ("derived:x", [], r"derived fact 'derived:x' needs at least one source"),
        ("derived:x", ["probe.json:model.n_layer"], r"unknown fact key .* did you mean probe\.json:model"),
    ],
)
def test_derived_fact_errors(model_dir, key, sources, expected_error):
    with pytest.raises(ReportError, match=expected_error):
        extract_facts(model_dir).add_derived(key, 1, None, sources, "f")


def test_assert_facts_on_lines_catches_wrong_lines_and_values(model_dir):
    good = extract_facts(model_dir)
    fact = good.get("probe.json:diagnostics.milestones.L_semantic")
    cell = good.get(f"{CSV_NAME}[prompt_id=pos,variant=orig,layer=1].entropy_bits")
    for bad in (Fact(fact.key, fact.value, fact.unit, fact.file, fact.line + 1, fact.line + 1),
                Fact(fact.key, 13, fact.unit, fact.file, fact.line, fact.line),
                Fact(cell.key, cell.value, cell.unit, cell.file, cell.line + 1, cell.line + 1),
                Fact(cell.key, 9.5, cell.unit, cell.file, cell.line, cell.line)):
        with pytest.raises(AssertionError):
            assert_facts_on_lines(model_dir, FactSet([bad]))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("entropy_bits", "bits"), ("kl_nats", "nats"), ("depth_frac", "fraction"), ("frac_layers", "fraction"),
     ("p_top1", "probability"), ("prob", "probability"), ("probability_answer", "probability"),
     ("probe_count", None), ("layer", "layer"), ("L_semantic", "layer"), ("first_layer", "layer"),
     ("n_layers", None), ("load_s", "seconds"), ("step_ms", "milliseconds"), ("weights_bytes", "bytes"),
     ("bytes", "bytes"), ("hit_pct", "percent"), ("rank", None), ("frac_bits", "bits")],
)
def test_infer_unit(name, expected):
    assert infer_unit(name) == expected


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["1", "-2", "+3", ""], [1, -2, 3, None]),
        (["1", "2.5", "1e-3", "nan", "inf"], [1.0, 2.5, 0.001, math.nan, math.inf]),
        (["True", "False", ""], [True, False, None]),
        (["1", "x", "True", "nan"], ["1", "x", "True", "nan"]),
        (["1_000", "2"], ["1_000", "2"]),  # Python's int() would accept 1_000; a CSV number would not
        (["٣", "4"], ["٣", "4"]),  # nor non-ASCII digits
    ],
)
def test_csv_columns_are_typed_as_a_whole(tmp_path, cells, expected):
    csv_text = "prompt_id,variant,layer,v\n" + "".join(f"p,o,{i},{c}\n" for i, c in enumerate(cells))
    factset = extract_facts(_write_run(tmp_path / "t", csv_text=csv_text))
    got = [factset.get(f"{CSV_NAME}[prompt_id=p,variant=o,layer={i}].v").value for i in range(len(cells))]
    assert [str(g) for g in got] == [str(e) for e in expected]  # str(): nan == nan
    assert list(map(type, got)) == list(map(type, expected))


def test_format_facts_text_and_json(tmp_path):
    small = _write_run(tmp_path / "s", probe={"diagnostics": {"L_semantic": 3, "name": "é"}},
                       csv_text="prompt_id,variant,layer,entropy_bits\npos,orig,0,1.5\n")
    factset = extract_facts(small)
    factset.add_derived("derived:half", 1.5, "layer", ["probe.json:diagnostics.L_semantic"], "L / 2")
    assert format_facts(factset, as_json=False) == "\n".join([
        "probe.json:diagnostics.L_semantic = 3 layer  (probe.json:3)",
        'probe.json:diagnostics.name = "é"  (probe.json:4)',
        f'{CSV_NAME}[prompt_id=pos,variant=orig,layer=0].prompt_id = "pos"  ({CSV_NAME}:2)',
        f'{CSV_NAME}[prompt_id=pos,variant=orig,layer=0].variant = "orig"  ({CSV_NAME}:2)',
        f"{CSV_NAME}[prompt_id=pos,variant=orig,layer=0].layer = 0 layer  ({CSV_NAME}:2)",
        f"{CSV_NAME}[prompt_id=pos,variant=orig,layer=0].entropy_bits = 1.5 bits  ({CSV_NAME}:2)",
        "derived:half = 1.5 layer  (probe.json:3)",
    ])
    data = json.loads(format_facts(factset, as_json=True))
    assert data[0] == {"key": "probe.json:diagnostics.L_semantic", "value": 3, "unit": "layer",
                       "file": "probe.json", "line": 3, "end_line": 3, "cite": "probe.json:3"}
    assert data[-1]["sources"] == ["probe.json:diagnostics.L_semantic"] and data[-1]["formula"] == "L / 2"
    assert data == factset.to_json()


def test_by_prefix_len_iter_and_blocks(model_dir):
    factset = extract_facts(model_dir)
    assert [f.value for f in factset.by_prefix("probe.json:per_prompt[0].entropy_bits")] == [3.5, 2.25, 0.75]
    assert len(factset) == len(list(factset)) == len(factset.to_json())
    assert "probe.json:per_prompt" in factset and "probe.json:per_prompt" not in {f.key for f in factset}
    assert [b.cite() for b in factset.blocks()][:3] == ["probe.json:1\u201335", "probe.json:3\u20137",
                                                         "probe.json:8\u201315"]


@pytest.mark.parametrize(
    ("breakage", "expected_error"),
    [
        (lambda d: (d / "manifest.json").unlink(), r"manifest\.json: no manifest .*RUN/<model>/"),
        (lambda d: (d / "manifest.json").write_text("{"), r"manifest is not valid JSON"),
        (lambda d: _edit_manifest(d, schema_version="2.0"), r"schema_version '2\.0' is not 1\.x"),
        (lambda d: _edit_manifest(d, artifacts={}), r"'artifacts' must be a list, found dict"),
        (lambda d: _edit_artifact(d, 0, path="../probe.json"), r"artifacts\[0\]: path '\.\./probe\.json' mu"),
        (lambda d: _edit_artifact(d, 0, sha256=None), r"artifacts\[0\]: expected an object with string path"),
        (lambda d: _edit_artifact(d, 1, key_columns=["prompt"]), r"key_columns of pure-next-token\.csv must"),
        (lambda d: (d / "probe.json").unlink(), r"probe\.json: listed in manifest\.json but unreadable"),
    ],
)
def test_manifest_errors(model_dir, breakage, expected_error):
    breakage(model_dir)
    with pytest.raises(ReportError, match=expected_error):
        extract_facts(model_dir)


def _edit_manifest(model_dir: Path, **changes: Any) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    (model_dir / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def _edit_artifact(model_dir: Path, index: int, **changes: Any) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["artifacts"][index].update(changes)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("csv_text", "expected_error"),
    [
        ('prompt_id,variant,layer,t\npos,orig,0,"two\nlines"\npos,orig,1,x\n', r":2\u20133: one record span"),
        ("prompt_id,variant,layer\npos,orig\n", r"pure-next-token\.csv:2: expected 3 cells .*found 2"),
        ("prompt_id,variant,layer,layer\n", r":1: header repeats columns \['layer'\]"),
        ("\nprompt_id,variant,layer\n", r":1: expected a header line"),
        ('prompt_id,variant,layer\n"a"b,c,1\n', r"pure-next-token\.csv:2: malformed CSV"),
        (b"prompt_id,variant,layer\n\xff,x,1\n", r"pure-next-token\.csv: byte 24 is not UTF-8"),
    ],
)
def test_malformed_csv_errors(tmp_path, csv_text, expected_error):
    model_dir = tmp_path / "bad"
    _write_run(model_dir)
    data = csv_text if isinstance(csv_text, bytes) else csv_text.encode()
    (model_dir / CSV_NAME).write_bytes(data)
    _write_manifest(model_dir, [("probe.json", "json"), (CSV_NAME, "csv")])
    with pytest.raises(ReportError, match=expected_error):
        extract_facts(model_dir)


def test_invalid_json_artifact_error_names_file_line_column(model_dir):
    (model_dir / "probe.json").write_text('{\n  "a": 1,\n}\n')
    _write_manifest(model_dir, [("probe.json", "json"), (CSV_NAME, "csv")])
    with pytest.raises(ReportError, match=r"^probe\.json:3:1: invalid JSON: expected a string key"):
        extract_facts(model_dir)


def test_extraction_of_a_2_mb_10k_row_csv_is_fast(tmp_path):
    header = KEY_COLUMNS + [f"m{j}_bits" for j in range(11)] + ["top1_token"]
    lines = [",".join(header)]
    for i in range(10_000):
        metrics = ",".join(f"{((i * 7919 + j * 104729) % 100003) / 7.123456789:.15g}" for j in range(11))
        lines.append(f"p{i // 100},{'orig' if i % 2 else 'ctl'},{i % 100},{metrics}, tok{i % 37}")
    big = _write_run(tmp_path / "big", csv_text="\n".join(lines) + "\n")
    size = (big / CSV_NAME).stat().st_size
    start = time.perf_counter()
    factset = extract_facts(big)
    elapsed = time.perf_counter() - start
    assert size > 1.9e6 and len(factset) >= 130_000
    # Measured ~0.3 s on a shared 2-core machine; the bound only catches a quadratic or per-cell-object slide.
    assert elapsed < 3.0, f"extracting {size / 1e6:.1f} MB took {elapsed:.2f} s"
