"""reportgen on a real probe run of both bundled models: facts on their lines, reports that audit 100 % ok."""

import re
import shutil

import pytest

from reportgen.audit import Verdict, audit_report
from reportgen.build import build_reports
from reportgen.cli import main as reportgen_main
from reportgen.facts import extract_facts
from tests.conftest import BUNDLED_MODELS
from tests.helpers_facts import assert_facts_on_lines

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reports(probe_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    outcomes = build_reports(probe_run, out)
    assert [o.error for o in outcomes] == [None, None]
    return out


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_every_fact_sits_on_its_cited_line(probe_run, alias):
    facts = extract_facts(probe_run / alias)
    assert len(facts) > 5000
    assert assert_facts_on_lines(probe_run / alias, facts) == len(facts)


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_generated_reports_audit_fully_ok(reports, alias):
    result = audit_report(reports / f"{alias}.md")
    assert len(result.verdicts) > 150
    bad = [v for v in result.verdicts if v.verdict is not Verdict.OK]
    assert bad == []


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_report_has_the_seed_sections_and_bold_semantic_layer(reports, alias):
    text = (reports / f"{alias}.md").read_text()
    for heading in ("## Overview", "## Method sanity-check", "## Quantitative findings", "## Qualitative patterns",
                    "## Checklist", "## Limitations", "## Model fingerprint"):
        assert heading in text
    assert re.search(r"^\| \*\*\[L \d+\]\([^)]*\)\*\* \|", text, re.M), "semantic layer row is not bold"
    assert "(no LLM configured)" in text
    assert (reports / f"{alias}.build.json").is_file()


def test_corrupted_copy_fails_with_exactly_the_two_changes(reports, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(reports, root)
    path = root / "smollm2.md"
    lines = path.read_text().splitlines(keepends=True)
    # 1) change one number: the entropy cell of the layer-3 table row
    row = next(i for i, ln in enumerate(lines) if ln.startswith("| [L 3]("))
    cells = lines[row].split(" | ")
    cells[1] = re.sub(r"^\[[^\]]*\]", "[99.99]", cells[1])
    lines[row] = " | ".join(cells)
    # 2) shift one bound value by one line
    sent = next(i for i, ln in enumerate(lines) if ln.startswith("- Punctuation anchoring"))
    lines[sent] = re.sub(r"probe\.json#L(\d+)", lambda m: f"probe.json#L{int(m.group(1)) + 1}", lines[sent])
    path.write_text("".join(lines))
    result = audit_report(path)
    bad = [(v.report_line, v.verdict) for v in result.verdicts if v.verdict is not Verdict.OK]
    assert bad == [(row + 1, Verdict.MISMATCH), (sent + 1, Verdict.MISMATCH)]
    assert reportgen_main(["audit", str(path)]) == 1
    assert reportgen_main(["audit", str(reports / "smollm2.md")]) == 0


def test_rebuild_is_byte_identical(probe_run, reports, tmp_path):
    out = tmp_path / "again"
    build_reports(probe_run, out)
    for alias in BUNDLED_MODELS:
        assert (out / f"{alias}.md").read_bytes() == (reports / f"{alias}.md").read_bytes()


def test_facts_cli_lists_facts_with_lines(probe_run, capsys):
    assert reportgen_main(["facts", str(probe_run / "smollm2")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"probe\.json:headline\.final\.top1_token = \" Berlin\".*\(probe\.json:\d+\)", out)
