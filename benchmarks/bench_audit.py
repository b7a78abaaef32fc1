"""Audit cost for correct vs failing citations: the drift hint must not rescan the file per failure.

Builds, in a temp dir, from a real artifact CSV (default: tests/data/foreign/run/pure-next-token.csv, plus a
5,000-line CSV tiled from its rows), one report with 200 correct ``key=value (file:line)`` citations and one
with 100 failing ones (half cite a neighbouring row, half a value with a changed last digit), audits each
(best of ``--repeats``) and prints the time in total and per citation, and the per-citation ratio
failing/correct. With per-file indexes built once, failing citations cost one read of the file (the index) plus
a small constant each: the marginal cost, measured against a report with a tenth as many failures, does not
grow with the file.

    .venv/bin/python benchmarks/bench_audit.py [--csv PATH] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reportgen.audit import Verdict, audit_report  # noqa: E402

DEFAULT_CSV = Path(__file__).resolve().parents[1] / "tests" / "data" / "foreign" / "run" / "pure-next-token.csv"
COLUMNS = ("entropy_bits", "p_top1", "kl_to_final_bits", "cos_to_final", "rest_mass")


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row, strict=False)) for row in reader]


def _tiled(source: Path, target: Path, lines: int) -> None:
    text = source.read_text(encoding="utf-8").split("\n")
    header, data = text[0], [line for line in text[1:] if line]
    body = [data[i % len(data)] for i in range(lines - 1)]
    target.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")


def _shown(value: str) -> str:
    number = float(value)
    return f"{number:.4f}" if number == 0 or 1e-3 <= abs(number) < 1e4 else f"{number:.3e}"


def _changed_last_digit(shown: str) -> str:
    mantissa, sep, exponent = shown.partition("e")
    at = max(i for i, char in enumerate(mantissa) if char.isdigit())
    return mantissa[:at] + str((int(mantissa[at]) + 1) % 10) + mantissa[at + 1 :] + sep + exponent


def _reports(name: str, rows: list[dict[str, str]], correct: int, failing: int) -> tuple[str, str]:
    good, bad = [], []
    usable = [(line, row) for line, row in enumerate(rows, start=2) if all(row.get(c) for c in COLUMNS)]
    for i in range(correct):
        line, row = usable[(i * 7) % len(usable)]
        column = COLUMNS[i % len(COLUMNS)]
        good.append(f"At this row {column}={_shown(row[column])} ({name}:{line}).")
    for i in range(failing):
        line, row = usable[(i * 11) % len(usable)]
        column = COLUMNS[i % len(COLUMNS)]
        shown = _shown(row[column])
        cited = line + 1 if i % 2 == 0 and line < len(rows) + 1 else line
        value = shown if cited != line else _changed_last_digit(shown)
        bad.append(f"At this row {column}={value} ({name}:{cited}).")
    return "\n\n".join(good) + "\n", "\n\n".join(bad) + "\n"


def _timed(report: Path, root: Path, repeats: int) -> tuple[float, dict[str, int]]:
    best, counts = float("inf"), {}
    for _ in range(repeats):
        start = time.perf_counter()
        result = audit_report(report, root)
        best = min(best, time.perf_counter() - start)
        counts = {k: v for k, v in result.counts.items() if v}
    return best, counts


def bench(csv_path: Path, repeats: int, correct: int = 200, failing: int = 100) -> float:
    """Run the benchmark on one CSV; print the timings and return the failing/correct per-citation ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / csv_path.name).write_bytes(csv_path.read_bytes())
        _, rows = _rows(root / csv_path.name)
        good, bad = _reports(csv_path.name, rows, correct, failing)
        (root / "good.md").write_text(good, encoding="utf-8")
        (root / "bad.md").write_text(bad, encoding="utf-8")
        good_s, good_counts = _timed(root / "good.md", root, repeats)
        bad_s, bad_counts = _timed(root / "bad.md", root, repeats)
        ok_result = audit_report(root / "good.md", root)
        assert all(v.verdict is Verdict.OK for v in ok_result.verdicts), "the correct report must audit ok"
        bad_result = audit_report(root / "bad.md", root)
        assert all(v.verdict is Verdict.MISMATCH for v in bad_result.verdicts), "every failing citation fails"
        hinted = sum(v.hint is not None for v in bad_result.verdicts)
        few = failing // 10
        _, few_bad = _reports(csv_path.name, rows, 1, few)
        (root / "few.md").write_text(few_bad, encoding="utf-8")
        few_s, _ = _timed(root / "few.md", root, repeats)
    lines = len(rows) + 1
    per_good, per_bad = good_s / correct, bad_s / failing
    marginal = (bad_s - few_s) / (failing - few)
    print(f"{csv_path.name} ({lines} lines)")
    print(f"  {correct} correct citations: {good_s * 1000:8.1f} ms total, {per_good * 1e6:7.1f} us/citation  "
          f"{good_counts}")
    print(f"  {failing} failing citations: {bad_s * 1000:8.1f} ms total, {per_bad * 1e6:7.1f} us/citation  "
          f"{bad_counts}, {hinted} with a hint")
    ratio = per_bad / per_good
    print(f"  ratio failing/correct per citation: {ratio:.2f}")
    print(f"  {few} failing citations: {few_s * 1000:8.1f} ms; each further failing citation costs "
          f"{marginal * 1e6:7.1f} us (ratio to a correct one: {marginal / per_good:.2f}); the rest is one read "
          "of the file for its hint index")
    return ratio


def main() -> None:
    """Benchmark the given CSV and a 5,000-line CSV tiled from it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench(args.csv, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "tiled-5000.csv"
        _tiled(args.csv, big, 5000)
        bench(big, args.repeats)


if __name__ == "__main__":
    main()
