"""Templates fail loudly on missing variables; hostile token strings cannot break a real report's table."""

import csv
import io
import re
import shutil

import pytest
from markdown_it import MarkdownIt

from reportgen.audit import Verdict, audit_report
from reportgen.build import build_reports
from reportgen.errors import ReportError
from reportgen.render import render
from tests.helpers_facts import rewrite_artifact


def test_missing_template_variable_is_an_error_naming_the_template():
    with pytest.raises(ReportError, match=r"templates/narrative/fingerprint.md.j2: 'd' is undefined"):
        render("narrative/fingerprint.md.j2", "artifacts/x/")


@pytest.mark.slow
def test_hostile_token_cannot_break_the_layer_table(probe_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(probe_run / "smollm2", run / "smollm2")
    csv_path = run / "smollm2" / "pure-next-token.csv"
    rows = list(csv.reader(io.StringIO(csv_path.read_text())))
    col = rows[0].index("top1_token")
    hit = next(r for r in rows if r[:4] == ["germany", "orig", "positive", "3"])
    hit[col] = "x|y`<b>![i](http://e/)*"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    rewrite_artifact(run / "smollm2", "pure-next-token.csv", buf.getvalue())
    out = tmp_path / "reports"
    assert [o.error for o in build_reports(run, out)] == [None]
    md = (out / "smollm2.md").read_text()
    table_row = next(ln for ln in md.splitlines() if ln.startswith("| [L 3]("))
    html = MarkdownIt("commonmark").enable("table").render("| a | b | c | d | e | f | g |\n"
                                                           "|---|---|---|---|---|---|---|\n" + table_row + "\n")
    assert html.count("<td>") == 7 and html.count("<a href=") == 7 and "<b>" not in html and "<img" not in html and "<code>" not in html
    assert "x|y`<b>" in html.replace("&lt;", "<").replace("&gt;", ">")  # shown as text, not markup
    assert [v for v in audit_report(out / "smollm2.md").verdicts if v.verdict is not Verdict.OK] == []


@pytest.mark.slow
def test_probe_json_off_contract_is_refused_with_its_line(probe_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(probe_run / "smollm2", run / "smollm2")
    pj = run / "smollm2" / "probe.json"
    text = re.sub(r'"p_top1": [0-9.e-]+', '"p_top1": "high"', pj.read_text(), count=1)
    rewrite_artifact(run / "smollm2", "probe.json", text)
    (outcome,) = build_reports(run, tmp_path / "reports")
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"p_top1": "high"' in ln)
    assert outcome.error.startswith(f"{tmp_path}/reports/artifacts/smollm2-")
    assert f"probe.json:{line}: at headline.final.p_top1: 'high' is not of type 'number'" in outcome.error
