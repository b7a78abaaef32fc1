"""Report plots: the data each plot draws against the CSVs read independently, deterministic PNG bytes, untrusted
tokens and aliases drawn as literal text, and plots referenced by the reports, sized from the data and collected
when no report refers to them (issue 11, part 4)."""

import csv
import hashlib
import json
import shutil
import struct
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt

from reportgen import plots
from reportgen.build import build_reports, collect_garbage
from reportgen.facts import extract_facts
from reportgen.plotdata import MILESTONES, DepthSeries, Heatmap, LensSeries, depth_series, heatmap_data, lens_series
from reportgen.refresh import refresh
from tests.conftest import BUNDLED_MODELS

# --- independent readings of the artifacts (csv and json modules only) ------------------------------------------


def _probe(model_dir: Path) -> dict:
    return json.loads((model_dir / "probe.json").read_text(encoding="utf-8"))


def _rows(path: Path, prompt: str, variant: str = "orig") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["prompt_id"] == prompt and r["variant"] == variant]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


# --- the data each plot draws ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def facts(probe_run):
    return {alias: extract_facts(probe_run / alias) for alias in BUNDLED_MODELS}


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_heatmap_is_the_records_csv_matrix_of_the_primary_prompt(probe_run, facts, alias):
    probe = _probe(probe_run / alias)
    prompt, n_layers = probe["prompt_set"]["primary"], probe["model"]["n_layers"]
    cells = {(int(r["layer"]), int(r["pos"])): r for r in _rows(probe_run / alias / "records.csv", prompt)}
    positions = sorted({pos for _, pos in cells})
    pure = {int(r["layer"]): r for r in _rows(probe_run / alias / "pure-next-token.csv", prompt)}

    hm = heatmap_data(facts[alias])

    assert (hm.prompt_id, hm.variant, hm.layers) == (prompt, "orig", list(range(n_layers + 1)))
    assert hm.positions == positions == list(range(len(positions))) and hm.n_positions == len(positions)
    assert hm.input_tokens == [cells[0, p]["token"] for p in positions]
    assert hm.top1_tokens == [[cells[layer, p]["top1_token"] for p in positions] for layer in hm.layers]
    assert hm.top1_prob == [[float(cells[layer, p]["top1_prob"]) for p in positions] for layer in hm.layers]
    assert hm.answer_at_last == [pure[layer]["is_answer"] == "True" for layer in hm.layers]
    # Invariant: the last column is the next-token position, which pure-next-token.csv also decodes.
    assert [row[-1] for row in hm.top1_tokens] == [pure[layer]["top1_token"] for layer in hm.layers]
    assert any(hm.answer_at_last), "the gold answer is the top token at some layer of both bundled models"


def test_heatmap_of_a_long_prompt_keeps_its_last_positions(facts):
    hm = heatmap_data(facts["smollm2"], max_positions=5)
    full = heatmap_data(facts["smollm2"])
    assert hm.positions == full.positions[-5:] and hm.n_positions == full.n_positions
    assert [row[-5:] for row in full.top1_tokens] == hm.top1_tokens


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_lens_series_are_the_next_token_rows_of_each_lens_table(probe_run, facts, alias):
    probe = _probe(probe_run / alias)
    prompt, n_layers = probe["prompt_set"]["primary"], probe["model"]["n_layers"]

    series = lens_series(facts[alias])

    assert [s.lens for s in series] == probe["lenses"]["order"]
    # norm, raw, and every other lens table the run wrote (fitted lenses included)
    tables = {p.name for p in (probe_run / alias).glob("lens-*.csv")}
    assert {s.table for s in series} == {"pure-next-token.csv"} | tables and "raw" in [s.lens for s in series]
    for s in series:
        rows = {int(r["layer"]): r for r in _rows(probe_run / alias / s.table, prompt)}
        assert s.layers == list(range(n_layers + 1)) == sorted(rows)
        assert s.kl_bits == [float(rows[layer]["kl_to_final_bits"]) for layer in s.layers]
        assert s.answer_rank == [int(rows[layer]["answer_rank"]) for layer in s.layers]
        assert s.entropy_bits == [float(rows[layer]["entropy_bits"]) for layer in s.layers]
        first_rank1 = next((layer for layer in s.layers if rows[layer]["answer_rank"] == "1"), None)
        assert s.l_semantic == probe["lenses"]["by_lens"][s.lens]["milestones"]["L_semantic"] == first_rank1
    assert series[0].kl_bits[-1] == 0.0  # the norm lens at the last layer is the final head


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_depth_series_normalize_rank_and_milestones_by_the_layer_count(probe_run, facts, alias):
    probe = _probe(probe_run / alias)
    prompt, n = probe["prompt_set"]["primary"], probe["model"]["n_layers"]
    ms = probe["headline"]["milestones"]
    rows = {int(r["layer"]): r for r in _rows(probe_run / alias / "pure-next-token.csv", prompt)}
    expected = {"copy layer": ms["L_copy"], "rank \u2264 10": ms["first_rank_le"]["10"],
                "rank \u2264 5": ms["first_rank_le"]["5"], "semantic layer (rank 1)": ms["L_semantic"],
                "KL to final \u2264 1 bit": ms["first_kl_le"]["1p0"]}

    d = depth_series(facts[alias], alias)

    assert (d.alias, d.n_layers) == (alias, n)
    assert d.depth == [layer / n for layer in range(n + 1)] and d.depth[0] == 0.0 and d.depth[-1] == 1.0
    assert d.answer_rank == [int(rows[layer]["answer_rank"]) for layer in range(n + 1)]
    assert list(d.milestones) == [label for label, _ in MILESTONES] == list(expected)
    assert d.milestones == {k: None if v is None else (v, v / n) for k, v in expected.items()}
    # the probe's own depth fractions agree where it writes them
    assert d.milestones["semantic layer (rank 1)"][1] == pytest.approx(ms["depth_fractions"]["L_semantic"], abs=1e-6)


# --- rendering --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_plots_are_deterministic_and_sized_from_the_data(facts, alias):
    hm, series = heatmap_data(facts[alias]), lens_series(facts[alias])
    first, second = plots.heatmap_figure(hm, alias), plots.heatmap_figure(hm, alias)
    assert first == second
    w, h = plots.heatmap_size(len(hm.layers), len(hm.positions))
    assert _png_size(first) == (round(w * plots.DPI), round(h * plots.DPI))
    assert plots.lens_figure(series, alias) == plots.lens_figure(series, alias)
    rows = [depth_series(facts[a], a) for a in BUNDLED_MODELS]
    depth = plots.depth_figure(rows)
    assert depth == plots.depth_figure(rows)
    w, h = plots.depth_size(len(rows))
    assert _png_size(depth) == (round(w * plots.DPI), round(h * plots.DPI))


@pytest.mark.parametrize("text, limit, expected", [
    ("Berlin", 8, "Berlin"),
    (" Berlin", 8, " Berlin"),
    ("a\nb", 8, "a\u21b5b"),  # DejaVu Sans has no ␤
    ("\u202e", 8, "U+202E"),
    ("\u200b", 8, "U+200B"),
    ("   ", 8, "\u2423\u2423\u2423"),
    ("<script>", 8, "<script>"),
    ("$\\frac{a}{b}$", 8, "$\\frac{\u2026"),
    ("$\\frac{a}{b}$", 14, "$\\frac{a}{b}$"),
    ("", 8, ""),
])
def test_shown(text, limit, expected):
    assert plots.shown(text, limit) == expected


# Each would break or disguise a figure if drawn as mathtext or raw: a macro mathtext rejects (the figure would fail
# to save), a fraction it would typeset, markup, a line break, a right-to-left override, whitespace only.
HOSTILE = ["$\\frac{a}{b}$", "$\\notamacro$", "<script>", "a\nb", "\u202e", "  "]
SHOWN = {"$\\frac{a}{b}$": "$\\frac{a}{b}$", "$\\notamacro$": "$\\notamacro$", "<script>": "<script>",
         "a\nb": "a\u21b5b", "\u202e": "U+202E", "  ": "\u2423\u2423"}


def _literal_texts(texts: list[tuple[str, bool]], shown: str) -> list[bool]:
    return [parse_math for text, parse_math in texts if shown in text]


def test_hostile_tokens_render_as_literal_text():
    n = len(HOSTILE)
    hm = Heatmap("p$\\x$", "orig", "norm", list(range(3)), list(range(n)), HOSTILE,
                 [HOSTILE[k:] + HOSTILE[:k] for k in range(3)], [[0.5] * n] * 3, [False, False, True], n)
    texts, png = plots._render_heatmap(hm, "$\\alias$")
    assert _png_size(png) == tuple(round(v * plots.DPI) for v in plots.heatmap_size(3, n))
    for token in HOSTILE:
        on_axis = SHOWN[token]  # input tokens: up to LABEL_CHARS characters
        in_cell = plots.shown(token, plots.CELL_CHARS)
        assert _literal_texts(texts, on_axis) and not any(_literal_texts(texts, on_axis)), token
        assert len([t for t, pm in texts if t == in_cell and not pm]) >= 3, token  # one cell per layer
    assert any("$\\alias$" in t and not pm for t, pm in texts)
    assert not any("\n" in t or "\u202e" in t for t, _ in texts)


def test_hostile_lens_names_and_aliases_render_as_literal_text():
    series = [LensSeries("$\\notamacro$", "lens-x.csv", [0, 1], [1.0, 0.0], [5, 1], [2.0, 1.0], 1),
              LensSeries("<b>x", "lens-y.csv", [0, 1], [2.0, 0.5], [9, 2], [1.0, 1.5], None)]
    texts, _ = plots._render_lenses(series, "a|b`c $\\bad$")
    for shown in ("$\\notamacro$", "<b>x", "a|b`c $\\bad$"):
        assert _literal_texts(texts, shown) and not any(_literal_texts(texts, shown)), shown
    aliases = ["a|b`c", "<b>x", "[x](y)", "$\\notamacro$"]
    rows = [DepthSeries(a, 2, [0.0, 0.5, 1.0], [10, 3, 1], {label: (1, 0.5) for label, _ in MILESTONES})
            for a in aliases]
    texts, _ = plots._render_depth(rows)
    for alias in aliases:
        assert len(_literal_texts(texts, alias)) >= 2 and not any(_literal_texts(texts, alias)), alias


# --- in the reports ---------------------------------------------------------------------------------------------

HOSTILE_ALIAS = "<b>x [x](y) a|b`c $\\bad$"


def _images(markdown: str) -> dict[str, str]:
    """src (unquoted) -> alt text of every image of a markdown document, as a CommonMark parser reads them."""
    images = {}
    for block in MarkdownIt("commonmark").enable("table").parse(markdown):
        for child in block.children or []:
            if child.type == "image":
                # the alt text as rendered: the image's inline children (escapes resolved), not its raw source
                images[unquote(str(child.attrGet("src")))] = "".join(c.content for c in child.children or [])
    return images


def _bump_seed(model_dir: Path) -> None:
    """Change one artifact (and its manifest hash), as a new probe run would: a new snapshot id."""
    probe_json = model_dir / "probe.json"
    text = probe_json.read_text().replace('"seed": 316', '"seed": 317', 1)
    probe_json.write_text(text)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["path"] == "probe.json":
            art["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (model_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_reports_embed_their_plots_and_gc_collects_unreferenced_ones(probe_run, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "reports"
    shutil.copytree(probe_run / "smollm2", run / HOSTILE_ALIAS)
    shutil.copytree(probe_run / "gemma3-270m", run / "gemma3-270m")
    outcomes = build_reports(run, out)
    assert {(o.model, o.error) for o in outcomes if o.model in (HOSTILE_ALIAS, "gemma3-270m")} == \
        {("gemma3-270m", None), (HOSTILE_ALIAS, None)}

    before = {}
    for alias, model in ((HOSTILE_ALIAS, "smollm2"), ("gemma3-270m", "gemma3-270m")):
        rec = json.loads((out / f"{alias}.build.json").read_text())
        sid = rec["snapshot_id"]
        expected = [f"plots/{alias}-{sid}{suffix}.png" for suffix in ("", "-heatmap", "-lenses")]
        assert sorted(rec["plot_files"]) == sorted(expected)
        images = _images((out / f"{alias}.md").read_text())
        assert set(images) == set(expected)  # the report embeds each plot, as PNG images
        # The alias is text in the alt text: the parser gives it back whole, no link or tag came out of it.
        assert alias in images[expected[1]] and alias in images[expected[2]]
        probe = _probe(probe_run / model)
        n_layers = probe["model"]["n_layers"]
        n_pos = len({r["pos"] for r in _rows(probe_run / model / "records.csv", probe["prompt_set"]["primary"])})
        sizes = {expected[1]: plots.heatmap_size(n_layers + 1, n_pos), expected[2]: (8, 7.5), expected[0]: (7, 3.2)}
        for rel, (w, h) in sizes.items():
            assert _png_size((out / rel).read_bytes()) == (round(w * plots.DPI), round(h * plots.DPI)), rel
        before[alias] = expected
    cross = json.loads((out / "cross-models.build.json").read_text())["plot_file"]
    assert cross.startswith("plots/cross-models-") and cross.endswith("-depth.png")
    assert list(_images((out / "cross-models.md").read_text())) == [cross]
    assert _png_size((out / cross).read_bytes()) == tuple(round(v * plots.DPI) for v in plots.depth_size(2))

    # GC: a plot of ours that nothing references goes; a user's own file and every referenced plot stay.
    (out / "plots" / "gemma3-270m-0123456789ab-heatmap.png").write_bytes(b"stale")
    (out / "plots" / "my-figure.png").write_bytes(b"mine")
    assert collect_garbage(out) == ["plots/gemma3-270m-0123456789ab-heatmap.png"]
    assert (out / "plots" / "my-figure.png").read_bytes() == b"mine"
    assert all((out / rel).is_file() for rels in before.values() for rel in rels) and (out / cross).is_file()

    # A new snapshot of one model: refresh rebuilds it, and its old plots and the old cross chart are collected.
    _bump_seed(run / "gemma3-270m")
    assert refresh(out) == 0
    capsys.readouterr()
    rec = json.loads((out / "gemma3-270m.build.json").read_text())
    assert not any((out / rel).exists() for rel in before["gemma3-270m"])
    assert all((out / rel).is_file() for rel in rec["plot_files"]) and set(rec["plot_files"]).isdisjoint(
        before["gemma3-270m"])
    assert all((out / rel).is_file() for rel in before[HOSTILE_ALIAS])
    new_cross = json.loads((out / "cross-models.build.json").read_text())["plot_file"]
    assert new_cross != cross and (out / new_cross).is_file() and not (out / cross).exists()
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        [Path(r).name for r in [*rec["plot_files"], *before[HOSTILE_ALIAS], new_cross]] + ["my-figure.png"])

    # A deleted plot makes its report stale: refresh draws it again (the same bytes), and the cross chart too.
    heatmap = next(rel for rel in rec["plot_files"] if rel.endswith("-heatmap.png"))
    drawn = (out / heatmap).read_bytes()
    (out / heatmap).unlink()
    (out / new_cross).unlink()
    assert refresh(out) == 0
    printed = capsys.readouterr().out
    assert f"plot {heatmap} missing" in printed and f"plot {new_cross} missing" in printed
    assert (out / heatmap).read_bytes() == drawn and (out / new_cross).is_file()
