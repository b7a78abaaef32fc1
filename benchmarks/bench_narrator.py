"""Build the bundled reports with the offline narrator (`make narrator`) and measure what it publishes.

    .venv/bin/python benchmarks/bench_narrator.py [--run runs/bundled-new] [--out DIR]

Per report: sentences drafted (last round) and published, sections that fell back to deterministic text, LLM
calls and rounds, prompt/completion tokens, wall time, and the audit of the published report. The reports go to a
fresh directory (a temporary one unless --out), so nothing is answered from the response cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from reportgen.audit import Verdict, audit_report
from reportgen.build import build_model_report, model_dirs
from reportgen.narrate import make_narrator


def summarize(out: Path, alias: str, outcome, seconds: float) -> dict:
    """Figures of one built report, from its build outcome and validation record."""
    record = json.loads((out / f"{alias}.validation.json").read_text())
    drafted = sum(s["sentences"] for s in record.get("sections", {}).values())
    removed = len(record.get("removed_sentences", []))
    llm = outcome.llm or {}
    usage = llm.get("usage") or {}
    verdicts = audit_report(out / f"{alias}.md").verdicts
    counts = Counter(v.verdict.value for v in verdicts)
    return {
        "model": alias, "source": outcome.narrative_source, "error": record.get("error"),
        "rounds": len(record.get("rounds", [])), "calls": llm.get("calls", 0), "cache_hits": llm.get("cache_hits", 0),
        "drafted": drafted, "published": drafted - removed, "removed": removed,
        "fallback_sections": record.get("fallback_sections", []),
        "finding_kinds": record.get("counts", {}),
        "prompt_tokens": usage.get("prompt_tokens", 0), "completion_tokens": usage.get("completion_tokens", 0),
        "seconds": round(seconds, 1),
        "audit": {"values": len(verdicts), "ok": counts.get(Verdict.OK.value, 0),
                  "not_ok": {k: n for k, n in counts.items() if k != Verdict.OK.value}},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/bundled-new"), help="a complete probe run")
    ap.add_argument("--out", type=Path, help="reports directory (default: a fresh temporary one)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-narrator-"))
    narrator, close = make_narrator(argparse.Namespace(llm="narrator", llm_model=None, base_url=None), out)
    rows = []
    try:
        for md in model_dirs(args.run):
            began = time.perf_counter()
            outcome = build_model_report(md, out, None, narrator)
            seconds = time.perf_counter() - began
            if outcome.error:
                print(f"{md.name}: FAILED: {outcome.error}", file=sys.stderr)
                return 1
            rows.append(summarize(out, md.name, outcome, seconds))
        startup = narrator._server.startup_s if narrator._server is not None else None
    finally:
        close()
    print(f"reports in {out}; llama-server startup {startup:.1f} s (counted in the first report's time)"
          if startup is not None else f"reports in {out}; every draft came from the cache")
    for r in rows:
        audit = f"{r['audit']['ok']}/{r['audit']['values']} ok" + (f", {r['audit']['not_ok']}" if r["audit"]["not_ok"]
                                                                   else "")
        print(f"{r['model']}: [{r['source']}] sentences drafted {r['drafted']}, published {r['published']} "
              f"(removed {r['removed']}); fell back: {', '.join(r['fallback_sections']) or 'none'}; "
              f"{r['calls']} LLM calls ({r['rounds']} rounds, {r['cache_hits']} cached); tokens prompt "
              f"{r['prompt_tokens']}, completion {r['completion_tokens']}; {r['seconds']} s; audit {audit}"
              + (f"; error: {r['error']}" if r["error"] else ""))
        if r["finding_kinds"]:
            print(f"  last-round findings by kind: {r['finding_kinds']}")
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0 if all(not r["audit"]["not_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
