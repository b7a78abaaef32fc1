"""Report plots as deterministic PNG bytes: entropy and rank by layer, the logit-lens heatmap, the per-lens curves
and the cross-model normalized-depth chart.

Data comes from `reportgen.plotdata` (pure records, tested against the CSVs); this module only draws. Rules every
figure follows:

- matplotlib's object API with its own Agg canvas, never pyplot's global figure registry, and one figure at a time
  (``_LOCK``): matplotlib's font and text parsers are not thread-safe and ``--jobs`` builds reports in threads.
- Token strings and model aliases are untrusted: every text artist is made by ``_text`` (or fixed by ``_literal``)
  with ``parse_math=False``, so ``$…$`` is never mathtext, and strings go through ``shown`` (line breaks as ↵,
  control and invisible characters as U+XXXX, whitespace-only tokens as ␣, long strings cut with …).
- Figure sizes come from the data's shape, fixed margins in inches (no tight bbox), so a PNG's size is
  predictable (``heatmap_size``), and the PNG holds the image only (no date or software chunk), so the same data
  gives the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportgen.bound import visible
from reportgen.plotdata import (
    MILESTONES,
    RECORDS,
    DepthSeries,
    Heatmap,
    LensSeries,
    depth_series,
    heatmap_data,
    lens_series,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from reportgen.facts import FactSet
    from reportgen.structure import ReportData

_LOCK = threading.Lock()
DPI = 100
# DejaVu Sans ships with matplotlib; Last Resort (shipped since matplotlib 3.10) draws a block's placeholder for a
# glyph DejaVu lacks (Thai, Hangul, CJK tokens) instead of a missing-glyph warning per token.
LAST_RESORT = "Last Resort High-Efficiency"
CELL_CHARS = 8  # characters of a token inside a heatmap cell
LABEL_CHARS = 14  # characters of an input token or an alias on an axis

# Heatmap geometry, inches: one cell, and the margins around the cell grid (title, tick labels, colour bar).
CELL_W, CELL_H = 0.62, 0.26
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 0.75, 1.15, 0.85, 1.25

# Model plots: kind -> file name suffix (the report's template names them by kind).
MODEL_PLOTS = {"layers": "", "heatmap": "-heatmap", "lenses": "-lenses"}
CROSS_SUFFIX = "-depth"


def shown(text: str, limit: int) -> str:
    """A token or alias as figures show it: `reportgen.bound.visible` (line breaks, control and invisible characters
    made visible), with ↵ for a line break (DejaVu Sans has no ␤), ␣ for each space of a whitespace-only token, cut
    to ``limit`` characters with an ellipsis."""
    out = visible(text).replace("\u2424", "\u21b5")
    if out and not out.strip(" "):
        out = "\u2423" * len(out)
    return out if len(out) <= limit else out[: limit - 1] + "\u2026"


@functools.cache
def font() -> tuple[str, ...]:
    """The font family list of every figure: DejaVu Sans, then Last Resort where this matplotlib ships it."""
    from matplotlib import font_manager

    shipped = any(f.name == LAST_RESORT for f in font_manager.fontManager.ttflist)
    return ("DejaVu Sans", LAST_RESORT) if shipped else ("DejaVu Sans",)


def _text(ax: Axes, x: float, y: float, s: str, **kw: Any) -> Any:
    """ax.text for untrusted strings: literal (no mathtext), in the report font."""
    return ax.text(x, y, s, parse_math=False, fontfamily=list(font()), **kw)


def _literal(artists: Any) -> None:
    """Make text artists that matplotlib created (titles, legends, labels) literal and in the report font."""
    for t in artists:
        t.set_parse_math(False)
        t.set_fontfamily(list(font()))


def _rank_axis(ax: Axes) -> None:
    """Answer rank on a log axis, rank 1 at the top, ticks as plain integers (1, 10, 1,000)."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.invert_yaxis()  # rank 1 at the top: up means closer to the answer
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    """A figure on its own Agg canvas, under the lock (the whole life of the figure: draw and save)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _LOCK:
        fig = Figure(figsize=(width, height), dpi=DPI)
        FigureCanvasAgg(fig)
        yield fig


def _texts(fig: Figure) -> list[tuple[str, bool]]:
    """(string, parse_math) of every non-empty text artist of a figure, for tests of literal rendering."""
    from matplotlib.text import Text

    return [(t.get_text(), t.get_parse_math()) for t in fig.findobj(Text) if t.get_text()]


def png_bytes(fig: Figure) -> bytes:
    """The figure as a 256-colour PNG with no metadata chunk (no Software, no date), so equal data gives equal bytes.

    A palette (fast octree, which unlike median cut keeps rare colours such as the red answer box; no dithering)
    makes the file about a third of Agg's RGBA PNG with no visible loss on flat-coloured plots; reports are
    committed, so their plots' size counts.
    """
    import numpy as np
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())  # type: ignore[attr-defined]
    image = Image.fromarray(rgba, "RGBA").convert("RGB")
    buf = io.BytesIO()
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(buf, format="png")
    return buf.getvalue()


# --- entropy and answer rank by layer (the report's first plot) ----------------------------------------------------


def plot_layers(data: ReportData) -> bytes:
    """Render entropy (bits) and answer rank (log scale) per layer of the primary prompt as PNG bytes."""
    layers = [int(r.layer.value) for r in data.table]  # type: ignore[arg-type]
    entropy = [float(r.entropy.value) for r in data.table]  # type: ignore[arg-type]
    rank = [int(r.rank.value) for r in data.table]  # type: ignore[arg-type]
    with _figure(7, 3.2) as fig:
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
            ax.axvline(int(sem), color="gray", ls="--", lw=1)  # type: ignore[arg-type]
        _literal([ax.set_title(f"{shown(data.alias, 40)}: norm lens, primary prompt")])
        fig.tight_layout()
        return png_bytes(fig)


# --- logit-lens heatmap --------------------------------------------------------------------------------------------


def _grid(n_rows: int, n_pos: int) -> tuple[float, float]:
    """Width and height in inches of the cell grid: a cell per layer and position, stretched to a minimum that
    keeps the axis labels and the title of a small model (a few layers, a short prompt) inside the figure."""
    return max(n_pos * CELL_W, 7.0), max(n_rows * CELL_H, 2.6)


def heatmap_size(n_rows: int, n_pos: int) -> tuple[float, float]:
    """Figure size in inches of a heatmap of ``n_rows`` layers x ``n_pos`` positions (cells plus fixed margins)."""
    grid_w, grid_h = _grid(n_rows, n_pos)
    return MARGIN_L + grid_w + MARGIN_R, MARGIN_T + grid_h + MARGIN_B


def heatmap_figure(hm: Heatmap, alias: str) -> bytes:
    """Draw the logit-lens heatmap: colour = top-1 probability, each cell the top-1 token, the input tokens below.

    Layer 0 (embeddings) is the bottom row, the last layer the top one; the last column is the next-token position,
    where a top-1 that is the gold answer is boxed in red.
    """
    return _render_heatmap(hm, alias)[1]


def _render_heatmap(hm: Heatmap, alias: str) -> tuple[list[tuple[str, bool]], bytes]:
    """(``_texts`` of the figure, PNG bytes)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    n_rows, n_pos = len(hm.layers), len(hm.positions)
    width, height = heatmap_size(n_rows, n_pos)
    grid_w, grid_h = _grid(n_rows, n_pos)
    with _figure(width, height) as fig:
        ax = fig.add_axes((MARGIN_L / width, MARGIN_B / height, grid_w / width, grid_h / height))
        cax = fig.add_axes(((MARGIN_L + grid_w + 0.15) / width, MARGIN_B / height, 0.15 / width, grid_h / height))
        cmap = colormaps["viridis"]
        probs = np.asarray(hm.top1_prob, dtype=float)
        mesh = ax.pcolormesh(np.arange(n_pos + 1) - 0.5, np.arange(n_rows + 1) - 0.5, probs, cmap=cmap, vmin=0.0,
                             vmax=1.0, edgecolors="white", linewidth=0.4)
        bar = fig.colorbar(mesh, cax=cax)
        bar.set_label("top-1 probability (norm lens)")
        for i in range(n_rows):
            for j in range(n_pos):
                r, g, b, _ = cmap(probs[i, j])
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on dark cells
                _text(ax, j, i, shown(hm.top1_tokens[i][j], CELL_CHARS), ha="center", va="center", fontsize=6.5,
                      color="white" if dark else "black")
                if j == n_pos - 1 and hm.answer_at_last[i]:
                    # A box, not bold: the fallback font has no bold face (findfont would log about it).
                    ax.add_patch(Rectangle((j - 0.45, i - 0.4), 0.9, 0.8, fill=False, edgecolor="red", linewidth=1.6))
        ax.set_xlim(-0.5, n_pos - 0.5)
        ax.set_ylim(-0.5, n_rows - 0.5)
        ax.set_yticks(range(n_rows), [str(layer) for layer in hm.layers])
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("layer (0 = embeddings)")
        # Positions (numbers) on top; input tokens (untrusted) below, drawn as literal text, not tick labels:
        # matplotlib copies tick label properties without parse_math when it makes new ticks.
        ax.set_xticks(range(n_pos), [str(p) for p in hm.positions])
        ax.tick_params(axis="x", labelsize=7, top=True, labeltop=True, bottom=True, labelbottom=False)
        ax.set_xlabel("input token at each position; the last column predicts the next token (red box: the gold "
                      "answer)")
        for j, token in enumerate(hm.input_tokens):
            _text(ax, j, -0.02, shown(token, LABEL_CHARS), transform=ax.get_xaxis_transform(), rotation=60,
                  rotation_mode="anchor", ha="right", va="center", fontsize=7)
        ax.xaxis.set_label_coords(0.5, -(MARGIN_B - 0.2) / grid_h)
        cut = "" if n_pos == hm.n_positions else f" (last {n_pos} of {hm.n_positions} positions)"
        title = (f"{shown(alias, 40)}: {shown(hm.lens, 24)} lens, top-1 token by layer and position, prompt "
                 f"{shown(hm.prompt_id, 40)}{cut}")
        _text(ax, 0.5, 1.0 + 0.45 / grid_h, title, transform=ax.transAxes, ha="center", va="bottom", fontsize=10)
        png = png_bytes(fig)  # first: ticks and their labels exist once the figure is drawn
        return _texts(fig), png


# --- per-lens curves ---------------------------------------------------------------------------------------------


def lens_figure(series: list[LensSeries], alias: str) -> bytes:
    """Draw KL to final, answer rank and entropy by layer for each lens: three panels sharing the layer axis, each
    lens's semantic layer as a dotted line of its colour."""
    return _render_lenses(series, alias)[1]


def _render_lenses(series: list[LensSeries], alias: str) -> tuple[list[tuple[str, bool]], bytes]:
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:gray"]
    styles = ["-", "--", "-.", ":"]
    with _figure(8, 7.5) as fig:
        axes = fig.subplots(3, 1, sharex=True)
        panels: list[tuple[Axes, str, str]] = [(axes[0], "kl_bits", "KL(lens \u2016 final) (bits)"),
                                               (axes[1], "answer_rank", "answer rank (log)"),
                                               (axes[2], "entropy_bits", "entropy (bits)")]
        for k, s in enumerate(series):
            style = {"color": colours[k % len(colours)], "ls": styles[k // len(colours) % len(styles)], "lw": 1.4,
                     "marker": "o", "ms": 2.5}
            for ax, attr, _ in panels:
                ax.plot(s.layers, [float("nan") if v is None else v for v in getattr(s, attr)],
                        label=shown(s.lens, 24), **style)
                if s.l_semantic is not None:
                    ax.axvline(s.l_semantic, color=style["color"], ls=":", lw=1)
        _rank_axis(axes[1])
        from matplotlib.ticker import MaxNLocator

        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax, _, label in panels:
            ax.set_ylabel(label)
            ax.grid(True, color="0.9", lw=0.6)
        axes[2].set_xlabel("layer (0 = embeddings); dotted: the lens's semantic layer")
        handles, labels = axes[0].get_legend_handles_labels()
        legend = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.54, 0.955), ncol=min(6, len(labels)),
                            fontsize=8, title="lens", title_fontsize=8, frameon=False)
        _literal([*legend.get_texts(), legend.get_title()])
        _literal([fig.suptitle(f"{shown(alias, 40)}: each lens at the next-token position of the primary prompt",
                               y=0.99)])
        fig.subplots_adjust(left=0.11, right=0.97, top=0.89, bottom=0.07, hspace=0.08)
        png = png_bytes(fig)  # first: ticks and their labels exist once the figure is drawn
        return _texts(fig), png


# --- cross-model normalized depth ----------------------------------------------------------------------------------

_MARKERS = ["s", "v", "D", "*", "P", "X", "o"]


def depth_figure(rows: list[DepthSeries]) -> bytes:
    """Draw the cross-model chart: answer rank against layer / n_layers per model (top), and each model's
    milestones at normalized depth (bottom, one row per model)."""
    return _render_depth(rows)[1]


def depth_size(n_models: int) -> tuple[float, float]:
    """Figure size in inches of the cross-model chart of ``n_models`` models."""
    return _DEPTH_W, _DEPTH_TITLE + _DEPTH_TOP + _DEPTH_GAP + _strip_height(n_models) + _DEPTH_BOTTOM


# Cross-model chart geometry, inches: left margin (aliases), plot width, right margin (legends); panel heights.
_DEPTH_L, _DEPTH_PLOT, _DEPTH_W = 1.45, 5.2, 9.0
_DEPTH_TITLE, _DEPTH_TOP, _DEPTH_GAP, _DEPTH_BOTTOM = 0.45, 3.0, 0.3, 0.6


def _strip_height(n_models: int) -> float:
    return 0.75 * n_models + 0.3


def _render_depth(rows: list[DepthSeries]) -> tuple[list[tuple[str, bool]], bytes]:
    colours = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:gray"]
    width, height = depth_size(len(rows))
    strip_h = _strip_height(len(rows))
    with _figure(width, height) as fig:
        x0, w = _DEPTH_L / width, _DEPTH_PLOT / width
        strip = fig.add_axes((x0, _DEPTH_BOTTOM / height, w, strip_h / height))
        top = fig.add_axes((x0, (_DEPTH_BOTTOM + strip_h + _DEPTH_GAP) / height, w, _DEPTH_TOP / height),
                           sharex=strip)
        for k, r in enumerate(rows):
            colour = colours[k % len(colours)]
            top.plot(r.depth, [float("nan") if v is None else v for v in r.answer_rank], color=colour, lw=1.4,
                     marker="o", ms=2.5, label=shown(r.alias, LABEL_CHARS))
            y = len(rows) - 1 - k
            strip.axhline(y, color=colour, lw=0.6, alpha=0.5)
            for m, (label, _) in enumerate(MILESTONES):
                hit = r.milestones.get(label)
                if hit is not None:
                    # Each milestone a little above the last, so milestones at the same depth stay visible.
                    dy = (m - (len(MILESTONES) - 1) / 2) * 0.16
                    strip.plot([hit[1]], [y + dy], ls="none", marker=_MARKERS[m % len(_MARKERS)], ms=6,
                               color=colour, markeredgecolor="black", markeredgewidth=0.6)
            _text(strip, -0.02, y, shown(r.alias, LABEL_CHARS), transform=strip.get_yaxis_transform(), ha="right",
                  va="center", fontsize=8.5, color=colour)
        _rank_axis(top)
        top.set_ylabel("answer rank, norm lens (log)")
        top.grid(True, color="0.9", lw=0.6)
        top.tick_params(labelbottom=False)
        strip.set_xlim(-0.03, 1.03)
        models = top.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="model",
                            borderaxespad=0)
        strip.set_ylim(-0.6, len(rows) - 0.4)
        strip.set_yticks([])
        strip.set_xlabel("normalized depth (layer / number of layers)")
        # Legend of marker shapes, in black: each model's markers take its colour.
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], ls="none", marker=_MARKERS[m % len(_MARKERS)], ms=7, color="0.6",
                          markeredgecolor="black", markeredgewidth=0.6) for m in range(len(MILESTONES))]
        marks = strip.legend(handles, [label for label, _ in MILESTONES], loc="upper left",
                             bbox_to_anchor=(1.02, 1.0), fontsize=8, title="milestone (lower to upper)",
                             borderaxespad=0, title_fontsize=8)
        _literal([*models.get_texts(), models.get_title(), *marks.get_texts(), marks.get_title()])
        _literal([top.set_title("Answer rank and milestones by normalized depth (primary prompt)")])
        png = png_bytes(fig)  # first: ticks and their labels exist once the figure is drawn
        return _texts(fig), png


# --- writing -------------------------------------------------------------------------------------------------------


def _write(out: Path, rel: str, png: bytes) -> str:
    """Write a plot atomically when the bytes differ from what is there (a plot's name is stable across builds
    of the same snapshot, its drawing may change with this module); return ``rel``."""
    from reportgen.build import atomic_write_bytes

    path = out / rel
    if not path.is_file() or path.read_bytes() != png:
        atomic_write_bytes(path, png)
    return rel


def write_model_plots(data: ReportData, facts: FactSet, out: Path, name: str) -> dict[str, str]:
    """Write every plot of one model report under out/plots/ as ``<name><suffix>.png`` (``name`` is
    ``<alias>-<snapshot id>``).

    Returns:
        kind -> path relative to ``out`` (kinds of ``MODEL_PLOTS``), for the template and the build record.
    """
    pngs = {"layers": plot_layers(data), "lenses": lens_figure(lens_series(facts), data.alias)}
    # `probe run --no-records` writes no per-position table: such a report has no heatmap, not a failed build.
    if facts.has_table(RECORDS):
        pngs["heatmap"] = heatmap_figure(heatmap_data(facts), data.alias)
    return {kind: _write(out, f"plots/{name}{MODEL_PLOTS[kind]}.png", pngs[kind]) for kind in MODEL_PLOTS
            if kind in pngs}


def cross_plot_name(models: dict[str, str]) -> str:
    """File name of the cross-model chart, ``cross-models-<12 hex>-depth.png``: a content id of the model aliases and
    their snapshots (which fix the chart's data), so a new snapshot gets a new file and GC takes the old one."""
    digest = hashlib.sha256(json.dumps(sorted(models.items())).encode()).hexdigest()[:12]
    return f"cross-models-{digest}{CROSS_SUFFIX}.png"


def write_cross_plot(rows: list[DepthSeries], models: dict[str, str], out: Path) -> str:
    """Write the cross-model chart to out/plots/ and return its path relative to ``out``."""
    return _write(out, f"plots/{cross_plot_name(models)}", depth_figure(rows))


__all__ = ["depth_figure", "depth_series", "heatmap_data", "heatmap_figure", "heatmap_size", "lens_figure",
           "lens_series", "plot_layers", "png_bytes", "shown", "write_cross_plot", "write_model_plots"]
