"""Batch isolation, refresh after a rerun, and refresh surviving kill -9 (real runs, real files)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.batch import run_batch
from probe.prompts import load_prompt_set
from probe.run import ProbeConfig
from reportgen.audit import Verdict, audit_report
from reportgen.build import build_reports
from reportgen.refresh import refresh

pytestmark = pytest.mark.slow


def all_ok(out: Path) -> None:
    for md in sorted(out.glob("*.md")):
        bad = [v for v in audit_report(md).verdicts if v.verdict is not Verdict.OK]
        assert bad == [], md.name


def snapshot_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def workspace(probe_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(probe_run, run)
    out = tmp_path / "reports"
    assert all(o.error is None for o in build_reports(run, out))
    return run, out


def test_failing_model_leaves_others_intact(workspace, capsys):
    run, _ = workspace
    before = snapshot_files(run / "smollm2")
    res = run_batch(["no-such-model-alias"], run, load_prompt_set(), ProbeConfig(), progress=False)
    assert list(res.failures) == ["no-such-model-alias"]
    assert "unknown model 'no-such-model-alias'" in res.failures["no-such-model-alias"]
    assert snapshot_files(run / "smollm2") == before
    status = json.loads((run / "run.json").read_text())["models"]
    assert status["smollm2"]["status"] == "ok" and status["no-such-model-alias"]["status"] == "failed"


def test_unchanged_inputs_rewrite_nothing(workspace, capsys):
    _, out = workspace
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert refresh(out) == 0
    text = capsys.readouterr().out
    assert text.count("kept ") == 3 and "0 stale of 3" in text
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_rerun_one_model_rebuilds_exactly_it_and_cross(workspace, tmp_path, capsys):
    run, out = workspace
    prompts = tmp_path / "prompts.toml"
    src = load_prompt_set().path
    prompts.write_text(Path(src).read_text().replace("values = [0.1, 2.0]", "values = [0.5, 3.0]"))
    gemma_before = (out / "gemma3-270m.md").read_bytes()
    res = run_batch(["smollm2"], run, load_prompt_set(prompts), ProbeConfig(), progress=False)
    assert not res.failures
    assert refresh(out, dry_run=True) == 0
    dry = capsys.readouterr().out
    assert "stale    smollm2: artifacts changed: probe.json" in dry and "kept     gemma3-270m" in dry
    assert refresh(out) == 0
    text = capsys.readouterr().out
    assert "rebuilt  smollm2: artifacts changed: probe.json" in text
    assert "rebuilt  cross-models: model snapshots changed; a model report was rebuilt" in text
    assert "kept     gemma3-270m: up to date" in text
    assert (out / "gemma3-270m.md").read_bytes() == gemma_before
    assert re.search(r"^\| \[0\.5\]\(", (out / "smollm2.md").read_text(), re.M)
    all_ok(out)
    # the superseded snapshot is gone, the current one is cited
    assert len(list((out / "artifacts").glob("smollm2-*"))) == 1


KILLER = """
import sys
from pathlib import Path
from reportgen.refresh import refresh
refresh(Path(sys.argv[1]))
"""


@pytest.mark.parametrize("delay", [0.4, 1.2, 2.5])
def test_kill_9_during_refresh_then_refresh_again(workspace, tmp_path, delay):
    run, out = workspace
    # make both model reports stale by changing the templates' input: a rules file change is simplest
    rec = out / "smollm2.build.json"
    data = json.loads(rec.read_text())
    data["snapshot_id"] = "0" * 12  # the source now differs from what the record says
    rec.write_text(json.dumps(data))
    rec2 = out / "gemma3-270m.build.json"
    d2 = json.loads(rec2.read_text())
    d2["templates_sha256"] = "stale"
    rec2.write_text(json.dumps(d2))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(out)], env=env, stdout=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    all_ok(out)  # whatever was interrupted, every report is old-and-consistent or new-and-consistent
    assert refresh(out) == 0
    assert refresh(out) == 0  # and the second pass finds nothing left to do
    all_ok(out)
    assert not list(out.glob(".*tmp*")) and not list((out / "artifacts").glob(".*"))
