"""The reports committed under reports/ audit 100 % ok and are fresh (refresh would rebuild nothing)."""

from pathlib import Path

import pytest

from reportgen.audit import Verdict, audit_report
from reportgen.refresh import refresh

REPORTS = Path(__file__).parents[1] / "reports"
DIRS = sorted({p.parent for p in REPORTS.glob("*/*.build.json")})


def test_there_are_committed_reports():
    assert [d.name for d in DIRS] == ["bundled"]
    assert {p.name for p in (REPORTS / "bundled").glob("*.md")} == {"smollm2.md", "gemma3-270m.md",
                                                                   "cross-models.md"}


@pytest.mark.parametrize("md", sorted(REPORTS.glob("*/*.md")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_report_audits_ok(md):
    result = audit_report(md)
    assert result.verdicts and [v for v in result.verdicts if v.verdict is not Verdict.OK] == []


@pytest.mark.parametrize("reports_dir", DIRS, ids=lambda p: p.name)
def test_committed_reports_are_fresh(reports_dir, capsys):
    assert refresh(reports_dir, dry_run=True) == 0
    out = capsys.readouterr().out
    assert "stale" not in out.replace("0 stale of", ""), f"run `reportgen refresh {reports_dir}`:\n{out}"
