"""Resource figures of issue 9: fact extraction memory against artifact size, audit time against paragraph length.

    .venv/bin/python benchmarks/bench_reliability.py --run runs/bundled/smollm2 --mb 100

1. Extraction: a copy of a real run whose records.csv is tiled (distinct keys) to about --mb megabytes; each
   measurement runs in a fresh process and reports its peak RSS above the interpreter with the package imported,
   as a multiple of the artifacts' total size (target: at most 3x). Extraction, then one cell read, then a report
   build on the same copy.
2. Audit: one paragraph of N cited sentences for growing N; time per character should stay flat (linear).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]

PEAK = """
import sys, time
from pathlib import Path
from reportgen.build import build_reports
from reportgen.facts import extract_facts

def status(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024

open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS, after the imports
base = status("VmRSS")
t0 = time.perf_counter()
step = sys.argv[2]
if step == "extract":
    facts = extract_facts(Path(sys.argv[1]))
elif step == "extract+get":
    facts = extract_facts(Path(sys.argv[1]))
    fact = facts.get("records.csv[prompt_id=germany,variant=orig,layer=15,pos=3].entropy_bits")
elif step == "build":
    build_reports(Path(sys.argv[1]).parent, Path(sys.argv[3]))
print(status("VmHWM") - base, time.perf_counter() - t0)
"""


def tiled_run(src: Path, dest: Path, target_mb: float) -> int:
    """Copy a model run and tile its records.csv to about target_mb (keys made distinct); return total bytes."""
    shutil.copytree(src, dest)
    lines = (src / "records.csv").read_text().split("\n")
    header, rows = lines[0], [ln for ln in lines[1:] if ln]
    out = [header]
    size, copy = len(header), 0
    while size < target_mb * 1e6:
        for row in rows:
            first, rest = row.split(",", 1)
            line = f"{first}{'' if copy == 0 else f'_{copy}'},{rest}"
            out.append(line)
            size += len(line) + 1
        copy += 1
    text = "\n".join(out) + "\n"
    (dest / "records.csv").write_text(text)
    manifest = json.loads((dest / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["path"] == "records.csv":
            art["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return sum((dest / a["path"]).stat().st_size for a in manifest["artifacts"])


def peak(model_dir: Path, step: str, out: Path) -> tuple[float, float]:
    res = subprocess.run([sys.executable, "-c", PEAK, str(model_dir), step, str(out)], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    peak_bytes, seconds = res.stdout.split()[-2:]
    return int(peak_bytes), float(seconds)


def bench_extraction(run: Path, mb: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "run" / run.name
        total = tiled_run(run, model, mb)
        print(f"artifacts of {model.name}: {total / 1e6:.1f} MB (records.csv tiled to "
              f"{(model / 'records.csv').stat().st_size / 1e6:.1f} MB)")
        for step in ("extract", "extract+get", "build"):
            rss, seconds = peak(model, step, Path(tmp) / "reports")
            print(f"  {step:12s} peak RSS +{rss / 1e6:7.1f} MB = {rss / total:.2f} x artifact size "
                  f"(target <= 3x), {seconds:.2f} s")


def bench_audit(sizes: list[int]) -> None:
    from reportgen.audit import audit_report

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a.json").write_text('{\n  "x": 0.5\n}\n')
        print("audit of one paragraph of N cited sentences:")
        base = None
        for n in sizes:
            text = " ".join(f"The value is 0.5 at step {i % 7} (a.json:2)." for i in range(n)) + "\n"
            (root / "r.md").write_text(text)
            t0 = time.perf_counter()
            result = audit_report(root / "r.md")
            elapsed = time.perf_counter() - t0
            per_kb = elapsed / (len(text) / 1e3)
            base = base or per_kb
            print(f"  {len(text) / 1e3:8.0f} KB  {elapsed:7.3f} s  {per_kb * 1e3:6.2f} ms/KB  "
                  f"(x{per_kb / base:.2f} of the smallest; {len(result.verdicts)} citations)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", type=Path, default=ROOT / "runs/bundled/smollm2")
    p.add_argument("--mb", type=float, default=100.0, help="size to tile records.csv to")
    p.add_argument("--audit-sizes", default="250,1000,4000,16000")
    args = p.parse_args()
    bench_extraction(args.run, args.mb)
    bench_audit([int(s) for s in args.audit_sizes.split(",")])


if __name__ == "__main__":
    main()
