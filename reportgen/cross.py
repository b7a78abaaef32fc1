"""The cross-model report: normalized-depth milestones (a table and a chart), copy reflex, artifact risk, gate and
ablation per model."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import reportgen
from reportgen.errors import ReportError
from reportgen.facts import Fact, extract_facts
from reportgen.plotdata import DepthSeries, depth_series
from reportgen.render import render, templates_hash
from reportgen.structure import J

CROSS = "cross-models"

# column name -> probe.json path under the model's snapshot
COLUMNS: dict[str, tuple[str | int, ...]] = {
    "n_layers": ("model", "n_layers"),
    "L_sem": ("headline", "milestones", "L_semantic"),
    "L_sem_frac": ("headline", "milestones", "depth_fractions", "L_semantic"),
    "rank5_frac": ("headline", "milestones", "depth_fractions", "first_rank_le_5"),
    "kl1_frac": ("headline", "milestones", "depth_fractions", "first_kl_le_1p0"),
    "copy_reflex": ("surface", "copy_reflex"),
    "tied_copy": ("surface", "layer0_copy_is_tied_embedding_artifact"),
    "tier": ("raw_vs_norm", "headline", "tier"),
    "risk": ("raw_vs_norm", "headline", "lens_artifact_score"),
    "gate_passed": ("last_layer_gate", "passed"),
    "gate_kl": ("last_layer_gate", "max_kl_bits"),
    "final_token": ("headline", "final", "top1_token"),
    "final_rank": ("headline", "final", "answer_rank"),
}


@dataclass
class ModelRow:
    """One model's facts for the cross-model tables."""

    alias: str
    snapshot: str  # e.g. artifacts/smollm2-8a90d2d961b4
    F: dict[str, Fact]
    depth: DepthSeries | None = None  # answer rank and milestones by normalized depth, for the chart


def _row(out: Path, alias: str, snapshot: str) -> ModelRow:
    facts = extract_facts(out / snapshot)

    def fact(key: str) -> Fact:
        # Facts carry their file relative to the reports dir, so one template binds values of several snapshots.
        f = facts.get(key)
        return replace(f, key=f"{snapshot}/{f.key}", file=f"{snapshot}/{f.file}")

    F = {name: fact(J(*path)) for name, path in COLUMNS.items()}
    primary = facts.get(J("prompt_set", "primary")).value
    for key in ("delta_L_semantic", "L_semantic_orig", "L_semantic_nf"):
        k = J("ablation", str(primary), key)
        if k in facts:
            F[key] = fact(k)
    return ModelRow(alias, snapshot, F, depth_series(facts, alias))


def build_cross_report(out: Path) -> Path | None:
    """Write cross-models.md from every model report's build record in `out` (None when under two models)."""
    records = sorted(p for p in out.glob("*.build.json") if p.name != f"{CROSS}.build.json")
    rows = []
    for rec_path in records:
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
            if not isinstance(rec.get("artifacts_dir"), str):
                raise TypeError("no string artifacts_dir")
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as e:
            raise ReportError(f"{rec_path}: unreadable build record ({e}); rebuild that report") from e
        if not (out / rec["artifacts_dir"]).is_dir():
            raise ReportError(f"{rec_path}: snapshot {rec['artifacts_dir']} is missing; rebuild that report")
        rows.append(_row(out, rec_path.name[: -len(".build.json")], rec["artifacts_dir"]))
    if len(rows) < 2:
        return None
    from reportgen.build import atomic_write
    from reportgen.plots import write_cross_plot

    models = {r.alias: r.snapshot for r in rows}
    plot = write_cross_plot([r.depth for r in rows if r.depth is not None], models, out)
    text = render("cross_models.md.j2", "", rows=rows, plot=plot)
    atomic_write(out / f"{CROSS}.md", text)
    record = {"generator_version": reportgen.__version__, "templates_sha256": templates_hash(),
              "models": models, "plot_file": plot,
              "report_sha256": hashlib.sha256(text.encode()).hexdigest()}
    atomic_write(out / f"{CROSS}.build.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out / f"{CROSS}.md"
