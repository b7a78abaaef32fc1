"""Per-model plot: entropy and answer rank by layer, the semantic layer marked. PNG bytes are deterministic."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from reportgen.structure import ReportData

_LOCK = threading.Lock()


def plot_layers(data: ReportData) -> bytes:
    """Render entropy (bits) and answer rank (log scale) per layer of the primary prompt as PNG bytes."""
    # matplotlib's font and property parsers (pyparsing) are not thread-safe, and --jobs builds reports in
    # threads: one plot at a time.
    with _LOCK:
        return _plot(data)


def _plot(data: ReportData) -> bytes:
    # The object API with its own Agg canvas, not pyplot's global figure registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layers = [int(r.layer.value) for r in data.table]
    entropy = [float(r.entropy.value) for r in data.table]
    rank = [int(r.rank.value) for r in data.table]
    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(layers, entropy, color="tab:blue", marker="o", ms=3, label="entropy (bits)")
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("entropy (bits)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(layers, rank, color="tab:red", marker="s", ms=3, label="answer rank")
    ax2.set_yscale("log")
    ax2.invert_yaxis()  # rank 1 at the top: up means closer to the answer on both axes
    ax2.set_ylabel("answer rank (log)", color="tab:red")
    sem = data.F["L_sem"].value
    if sem is not None:
        ax.axvline(int(sem), color="gray", ls="--", lw=1)
    ax.set_title(f"{data.alias}: norm lens, primary prompt")
    fig.tight_layout()
    buf = io.BytesIO()
    # No Software/date metadata, so the same data always gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def write_plot(data: ReportData, out: Path, name: str) -> str:
    """Write the plot to out/plots/<name>.png (atomically, only if missing) and return its relative path."""
    from reportgen.build import atomic_write_bytes

    rel = f"plots/{name}.png"
    if not (out / rel).is_file():
        atomic_write_bytes(out / rel, plot_layers(data))
    return rel
