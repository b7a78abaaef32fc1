"""Benchmark: time per report plot (reading its data from the facts, and drawing it to PNG bytes) and PNG sizes.

Uses an existing run directory (default runs/bundled; make one with `make demo`). Each figure is the median of
--repeats runs; fact extraction (shared with the report) is timed once and not counted in any plot.

    python benchmarks/bench_plots.py [--run runs/bundled] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from reportgen import plots
from reportgen.build import model_dirs
from reportgen.facts import extract_facts
from reportgen.plotdata import depth_series, heatmap_data, lens_series
from reportgen.rules import evaluate, load_rules
from reportgen.structure import build_data


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def _shape(png: bytes) -> str:
    return f"{int.from_bytes(png[16:20], 'big')}x{int.from_bytes(png[20:24], 'big')}"


def bench_model(model_dir: Path, repeats: int) -> Any:
    """Print data and draw times of each model plot; return the model's facts (for the cross-model chart)."""
    t0 = time.perf_counter()
    facts = extract_facts(model_dir)
    extract_ms = (time.perf_counter() - t0) * 1000
    alias = model_dir.name
    data = build_data(alias, facts, evaluate(load_rules(None), facts))
    cases: list[tuple[str, Callable[[], Any], Callable[[Any], bytes]]] = [
        ("layers", lambda: data, plots.plot_layers),
        ("heatmap", partial(heatmap_data, facts), partial(_swap(plots.heatmap_figure), alias)),
        ("lenses", partial(lens_series, facts), partial(_swap(plots.lens_figure), alias)),
    ]
    for kind, read, draw in cases:
        data_s, value = timed(read, repeats)
        draw_s, png = timed(partial(draw, value), repeats)
        print(f"{alias:<14} {kind:<8} {data_s * 1000:8.1f} {draw_s * 1000:8.1f} {len(png) / 1024:8.1f}  {_shape(png)}")
    print(f"{alias:<14} (fact extraction, shared with the report: {extract_ms:.0f} ms)")
    return facts


def _swap(fn: Callable[[Any, str], bytes]) -> Callable[[str, Any], bytes]:
    return lambda alias, value: fn(value, alias)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", default="runs/bundled")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"{'model':<14} {'plot':<8} {'data ms':>8} {'draw ms':>8} {'PNG KiB':>8}  size")
    rows = [depth_series(bench_model(d, a.repeats), d.name) for d in model_dirs(Path(a.run))]
    if len(rows) >= 2:
        draw_s, png = timed(partial(plots.depth_figure, rows), a.repeats)
        print(f"{'cross-models':<14} {'depth':<8} {'':>8} {draw_s * 1000:8.1f} {len(png) / 1024:8.1f}  {_shape(png)}")


if __name__ == "__main__":
    main()
