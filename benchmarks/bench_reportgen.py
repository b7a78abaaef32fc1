"""Benchmark: time to build and to audit one model's report, and refresh time for unchanged and stale reports.

Uses an existing run directory (default runs/bundled; make one with `make demo`). Prints figures and ratios;
the refresh target is < 2 s for 10 unchanged reports with 0 LLM calls.

    python benchmarks/bench_reportgen.py [--run runs/bundled] [--model smollm2] [--copies 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from reportgen.audit import audit_report
from reportgen.build import build_model_report, build_reports
from reportgen.refresh import refresh


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default="runs/bundled")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--copies", type=int, default=10)
    a = ap.parse_args()
    src = Path(a.run) / a.model
    if not (src / "manifest.json").is_file():
        raise SystemExit(f"{src}: no probe run; run `make demo` first")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out = tmp / "one"
        build_s = timed(lambda: build_model_report(src, out))
        report = out / f"{a.model}.md"
        audit_s = timed(lambda: audit_report(report))
        n_cit = len(audit_report(report).verdicts)
        # 10 model directories with distinct names (the same artifacts), so refresh sees 10 reports + cross.
        run = tmp / "run"
        for i in range(a.copies):
            shutil.copytree(src, run / f"{a.model}-{i:02d}")
        many = tmp / "many"
        build_reports(run, many)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            unchanged_s = timed(lambda: refresh(many))
        # Make exactly one report stale (its source artifacts change) and time the refresh that rebuilds it.
        target = run / f"{a.model}-00"
        probe_json = target / "probe.json"
        text = probe_json.read_text().replace('"seed": 316', '"seed": 317', 1)
        probe_json.write_text(text)
        manifest = json.loads((target / "manifest.json").read_text())
        import hashlib

        for art in manifest["artifacts"]:
            if art["path"] == "probe.json":
                art["sha256"] = hashlib.sha256(text.encode()).hexdigest()
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        with contextlib.redirect_stdout(sink):
            t0 = time.perf_counter()
            refresh(many)
            stale_s = time.perf_counter() - t0
        rebuilt = sink.getvalue().count("rebuilt ")
    print(f"build one report ({a.model}):          {build_s:6.2f} s (median of 3)")
    print(f"audit one report ({n_cit} citations):   {audit_s:6.2f} s (median of 3)")
    print(f"refresh {a.copies} unchanged reports + cross: {unchanged_s * 1000:6.1f} ms, 0 LLM calls (target < 2 s; "
          f"ratio to target {unchanged_s / 2:.2f})")
    print(f"refresh with 1 stale report:          {stale_s:6.2f} s ({rebuilt} reports rebuilt: the stale one and "
          f"cross-models); ratio to one build {stale_s / build_s:.2f}")


if __name__ == "__main__":
    main()
