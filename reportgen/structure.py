"""Facts -> report structure: named facts, the layer tables, derived facts, checklist records and interpretation
findings for templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportgen.facts import Fact, FactSet
from reportgen.jsonmap import format_path
from reportgen.rules import CheckResult, Verdict

if TYPE_CHECKING:  # interpret builds on this module; the annotation only names its record
    from reportgen.interpret import Finding

PURE = "pure-next-token.csv"


def J(*path: str | int) -> str:
    """Fact key of a probe.json leaf from its path parts (quoting handled by jsonmap)."""
    return "probe.json:" + format_path(tuple(path))


def C(file: str, column: str, **key: Any) -> str:
    """Fact key of a CSV cell: key columns in manifest order, then the column."""
    kv = ",".join(f"{k}={v}" for k, v in key.items())
    return f"{file}[{kv}].{column}"


@dataclass
class LayerRow:
    """One row of the report's layer table: facts on one pure-next-token.csv line."""

    layer: Fact
    entropy: Fact
    top1: Fact
    p_top1: Fact
    rank: Fact
    p_answer: Fact
    kl: Fact
    is_semantic: bool
    kl_rev: Fact | None = None  # KL(final ‖ layer), bits
    cos: Fact | None = None  # cosine of the layer's logits to the final logits
    rest_mass: Fact | None = None  # probability outside the table's top-k
    top5: list[tuple[Fact, Fact]] = field(default_factory=list)  # (token, probability), ranks one to five


@dataclass(frozen=True)
class Column:
    """One column of a per-layer detail table: its header (words only), CSV column, render format and alignment."""

    header: str
    csv: str
    fmt: str  # a reportgen.render.FORMATS key
    numeric: bool = True  # right-aligned


@dataclass
class DetailTable:
    """A collapsed per-layer table of the primary prompt, read from one CSV: the columns that CSV has, and per
    layer its layer cell and the cells of those columns, in column order."""

    summary: str  # plain words: it is shown in an HTML <summary>, where no value can be bound
    columns: list[Column]
    rows: list[tuple[Fact, list[Fact]]]


@dataclass
class ReportData:
    """Everything a report template shows; values are Facts so every number carries its citation."""

    alias: str
    F: dict[str, Fact]
    table: list[LayerRow]
    suite: list[dict[str, Fact]]
    temps: list[dict[str, Fact]]
    tests: list[dict[str, Fact]]
    checks: list[CheckResult]
    flags: dict[str, Any] = field(default_factory=dict)
    verdicts: dict[str, Fact] = field(default_factory=dict)  # rule id -> derived verdict fact (true/false/null)
    lenses: list[dict[str, Fact]] = field(default_factory=list)  # one row per lens of the run (probe.lensdata)
    findings: list[Finding] = field(default_factory=list)  # interpretation findings, in rule order
    details: list[DetailTable] = field(default_factory=list)  # raw vs norm, then one per lens besides norm


# name in templates -> probe.json path
HEADLINE: dict[str, tuple[str | int, ...]] = {
    "model_id": ("model", "model_id"), "arch": ("model", "architecture"), "n_layers": ("model", "n_layers"),
    "d_model": ("model", "d_model"), "vocab": ("model", "vocab_size"), "tied": ("model", "tied_embeddings"),
    "softcap_applied": ("model", "softcap_applied"), "norm_kind": ("model", "final_norm", "kind"),
    "gamma_offset": ("model", "final_norm", "gamma_offset"), "weights_sha": ("model", "weights_sha256"),
    "answer": ("headline", "answer"), "prompt_text": ("headline", "prompt_text"),
    "final_token": ("headline", "final", "top1_token"), "final_p_top1": ("headline", "final", "p_top1"),
    "final_entropy": ("headline", "final", "entropy_bits"), "final_rank": ("headline", "final", "answer_rank"),
    "final_p_answer": ("headline", "final", "p_answer"),
    "entropy_rise": ("headline", "entropy_rise_at_unembed_bits"),
    "L_sem": ("headline", "milestones", "L_semantic"), "L_sem_raw": ("headline", "milestones", "L_semantic_raw"),
    "L_conf": ("headline", "milestones", "L_semantic_confirmed"), "L_copy": ("headline", "milestones", "L_copy"),
    "L_copy_soft1": ("headline", "milestones", "L_copy_soft", "k1"),
    "copy_stability": ("headline", "milestones", "copy_stability"),
    "rank10": ("headline", "milestones", "first_rank_le", "10"),
    "rank5": ("headline", "milestones", "first_rank_le", "5"),
    "rank1": ("headline", "milestones", "first_rank_le", "1"),
    "kl1": ("headline", "milestones", "first_kl_le", "1p0"), "kl05": ("headline", "milestones", "first_kl_le", "0p5"),
    "cos02": ("headline", "milestones", "first_cos_ge", "0p2"),
    "cos04": ("headline", "milestones", "first_cos_ge", "0p4"),
    "cos06": ("headline", "milestones", "first_cos_ge", "0p6"),
    "L_strong": ("headline", "milestones", "gates", "L_semantic_strong"),
    "L_strong_run2": ("headline", "milestones", "gates", "L_semantic_strong_run2"),
    "gate_passed": ("last_layer_gate", "passed"), "gate_kl": ("last_layer_gate", "max_kl_bits"),
    "gate_threshold": ("last_layer_gate", "threshold_bits"),
    "gate_temp": ("last_layer_gate", "headline", "temp_est"),
    "tier": ("raw_vs_norm", "headline", "tier"), "risk_score": ("raw_vs_norm", "headline", "lens_artifact_score"),
    "pct_kl1": ("raw_vs_norm", "headline", "pct_layers_kl_ge_1p0"),
    "max_kl_raw": ("raw_vs_norm", "headline", "max_kl_norm_vs_raw_bits"),
    "n_norm_only": ("raw_vs_norm", "headline", "n_norm_only_semantics_layers"),
    "window_radius": ("raw_vs_norm", "window", "radius"),
    "ctrl_first": ("control", "first_control_margin_pos"), "ctrl_max": ("control", "max_control_margin"),
    "ctrl_final": ("control", "final_control_margin"), "ctrl_strong": ("control", "first_control_strong_pos"),
    "suite_median": ("micro_suite", "L_semantic", "median"),
    "suite_missing": ("micro_suite", "L_semantic", "n_missing"),
    "prefer_ranks": ("measurement_guidance", "prefer_ranks"),
    "suppress_probs": ("measurement_guidance", "suppress_abs_probs"),
    "copy_reflex": ("surface", "copy_reflex"), "layer0_tied": ("surface", "layer0_copy_is_tied_embedding_artifact"),
    "n_punct": ("surface", "n_punctuation_top1_layers"), "mask_size": ("copy_mask", "size"),
    "nan_inf": ("numeric_health", "any_nan_or_inf"), "det": ("environment", "deterministic_algorithms"),
    "seed": ("environment", "seed"), "torch": ("environment", "torch"), "device": ("environment", "device"),
    "dtype": ("environment", "dtype_model"), "norm_strategy": ("normalization", "strategy"),
    "traj_shape": ("normalization", "trajectory", "shape"),
}


def add_derived(facts: FactSet, primary: str) -> None:
    """Facts computed once here and cited through their sources: depth fractions and ablation deltas."""
    n = J("model", "n_layers")
    for name, path in (("L_semantic_frac", ("headline", "milestones", "L_semantic")),
                       ("L_semantic_confirmed_frac", ("headline", "milestones", "L_semantic_confirmed")),
                       ("first_rank_le_5_frac", ("headline", "milestones", "first_rank_le", "5"))):
        v = facts.get(J(*path)).value
        facts.add_derived(f"derived:{name}", None if v is None else v / facts.get(n).value, "fraction",
                          [J(*path), n], f"{path[-1]} / n_layers")
    for m in ("L_semantic", "L_copy"):
        a, b = J("ablation", primary, f"{m}_orig"), J("ablation", primary, f"{m}_nf")
        if a in facts and b in facts:
            va, vb = facts.get(a).value, facts.get(b).value
            facts.add_derived(f"derived:delta_{m}_no_filler", None if va is None or vb is None else vb - va,
                              "layer", [a, b], f"{m}_nf - {m}_orig")


def build_data(alias: str, facts: FactSet, checks: list[CheckResult]) -> ReportData:
    """Collect the named facts, table rows and per-prompt lists a report needs."""
    primary = facts.get(J("prompt_set", "primary")).value
    add_derived(facts, str(primary))
    F = {name: facts.get(J(*path)) for name, path in HEADLINE.items() if J(*path) in facts}
    for m in ("L_semantic", "L_copy"):
        for v in ("orig", "nf"):
            if J("ablation", primary, f"{m}_{v}") in facts:
                F[f"abl_{m}_{v}"] = facts.get(J("ablation", primary, f"{m}_{v}"))
    F.update({f.key.split(":", 1)[1]: f for f in facts.derived()})
    n = int(F["n_layers"].value)
    l_sem = F["L_sem"].value
    table = []
    for layer in range(n + 1):
        def cell(col: str, _layer: int = layer) -> Fact:
            return facts.get(C(PURE, col, prompt_id=primary, variant="orig", layer=_layer))

        top5 = [(cell("top1_token"), cell("p_top1"))] + [
            (cell(f"top{k}_token"), cell(f"top{k}_prob")) for k in range(2, 6)
            if C(PURE, f"top{k}_token", prompt_id=primary, variant="orig", layer=layer) in facts]
        table.append(LayerRow(cell("layer"), cell("entropy_bits"), cell("top1_token"), cell("p_top1"),
                              cell("answer_rank"), cell("p_answer"), cell("kl_to_final_bits"), layer == l_sem,
                              cell("kl_final_to_layer_bits"), cell("cos_to_final"), cell("rest_mass"), top5))
    fact_ids = [f.value for f in facts.by_prefix(J("prompt_set", "facts")) if f.key.endswith(".id")]
    suite = [{"fact": facts.get(J("micro_suite", "per_fact", fid, "L_semantic")),
              "frac": facts.get(J("micro_suite", "per_fact", fid, "L_semantic_frac")),
              "final_rank": facts.get(J("micro_suite", "per_fact", fid, "final_answer_rank")),
              "answer": facts.get(J("prompt_set", "facts", i, "answer"))} for i, fid in enumerate(fact_ids)]
    temps, i = [], 0
    while J("temperature_exploration", i, "temperature") in facts:
        temps.append({k: facts.get(J("temperature_exploration", i, p)) for k, p in
                      (("t", "temperature"), ("entropy", "entropy_bits"), ("p_answer", "p_answer"),
                       ("rank", "answer_rank"))})
        i += 1
    tests, i = [], 0
    while J("test_prompts", i, "text") in facts:
        tests.append({"text": facts.get(J("test_prompts", i, "text")),
                      "top1": facts.get(J("test_prompts", i, "topk", 0, "token")),
                      "p": facts.get(J("test_prompts", i, "topk", 0, "prob")),
                      "entropy": facts.get(J("test_prompts", i, "entropy_bits"))})
        i += 1
    flags = {"has_control": J("control", "first_control_margin_pos") in facts}
    first, last = table[0].entropy, table[-1].entropy
    if first.value is not None and last.value is not None:
        F["entropy_change"] = facts.add_derived("derived:entropy_change_first_to_last", last.value - first.value,
                                                "bits", [first.key, last.key], "entropy(last) - entropy(first)")
    data = ReportData(alias, F, table, suite, temps, tests, checks, flags, add_verdicts(facts, checks),
                      lens_rows(facts, F))
    data.details = detail_tables(facts, str(primary), n)
    from reportgen.interpret import evaluate_findings, load_findings  # late: interpret builds on this module

    data.findings = evaluate_findings(load_findings(), facts)
    from reportgen.sheet import add_sheet_facts  # late: sheet builds on this module

    add_sheet_facts(facts, data)
    return data


def lens_rows(facts: FactSet, F: dict[str, Fact]) -> list[dict[str, Fact]]:
    """The lens comparison: per lens of the run its name, milestones, mean KL and top-1 agreement (empty for
    artifacts written before lenses were data); names the preferred lens and its rule's floor in ``F``."""
    rows, i = [], 0
    while J("lenses", "order", i) in facts:
        name = facts.get(J("lenses", "order", i))
        base = ("lenses", "by_lens", str(name.value))
        rows.append({"name": name, "L_sem": facts.get(J(*base, "milestones", "L_semantic")),
                     "rank5": facts.get(J(*base, "milestones", "first_rank_le", "5")),
                     "kl1": facts.get(J(*base, "milestones", "first_kl_le", "1p0")),
                     "mean_kl": facts.get(J(*base, "mean_kl_final_to_lens_bits")),
                     "agree": facts.get(J(*base, "top1_agreement"))})
        fit = J(*base, "fit", "kl_lens_bits")
        if fit in facts:  # a fitted lens: its held-out figures and the temperature / rotation split
            rows[-1].update({key: facts.get(J(*base, "fit", field)) for key, field in (
                ("fit_corpus", "corpus"), ("fit_n", "heldout_positions"), ("fit_norm", "kl_norm_bits"),
                ("fit_temp", "kl_temperature_bits"), ("fit_lens", "kl_lens_bits"),
                ("fit_dtemp", "delta_temperature_bits"), ("fit_drot", "delta_rotation_bits"))})
        i += 1
    if rows:
        F["preferred_lens"] = facts.get(J("lenses", "preferred", "lens"))
        F["lens_agreement_floor"] = facts.get(J("lenses", "preferred", "agreement_floor"))
    return rows


RAW_VS_NORM = "raw-vs-norm.csv"
# The raw lens beside the norm lens, and their divergence in both directions (raw-vs-norm.csv).
RAW_COLUMNS = (Column("Norm top token", "top1_token_norm", "tok", False),
               Column("Raw top token", "top1_token_raw", "tok", False), Column("p(raw top)", "p_top1_raw", "prob"),
               Column("Raw answer rank", "answer_rank_raw", "v"),
               Column("KL(norm ‖ raw) (bits)", "kl_norm_vs_raw_bits", "sig"),
               Column("KL(raw ‖ norm) (bits)", "kl_raw_vs_norm_bits", "sig"),
               Column("Answer on top under the norm lens only", "norm_only_semantics", "v", False))
# A lens's own per-layer table (lens-<name>.csv); the same columns for every lens, fitted or not.
LENS_COLUMNS = (Column("Top token", "top1_token", "tok", False), Column("p(top)", "p_top1", "prob"),
                Column("Answer rank", "answer_rank", "v"), Column("KL to final (bits)", "kl_to_final_bits", "sig"),
                Column("Reverse KL (bits)", "kl_final_to_layer_bits", "sig"),
                Column("Cosine to final", "cos_to_final", "sig"))


def detail_table(facts: FactSet, summary: str, file: str, primary: str, n: int,
                 columns: tuple[Column, ...]) -> DetailTable | None:
    """The primary prompt's rows of a per-layer CSV (layers 0 to n), with the columns it has at every layer; None
    when the run has no such table (artifacts written before it existed)."""
    def key(col: str, layer: int) -> str:
        return C(file, col, prompt_id=primary, variant="orig", layer=layer)

    if any(key("layer", layer) not in facts for layer in range(n + 1)):
        return None
    present = [c for c in columns if all(key(c.csv, layer) in facts for layer in range(n + 1))]
    rows = [(facts.get(key("layer", layer)), [facts.get(key(c.csv, layer)) for c in present])
            for layer in range(n + 1)]
    return DetailTable(summary, present, rows)


def detail_tables(facts: FactSet, primary: str, n: int) -> list[DetailTable]:
    """Raw vs norm lens, then one table per lens other than the norm lens (whose table is the main one)."""
    raw = detail_table(facts, "Lens detail: norm lens against the raw lens (the residual decoded without the "
                       "final norm)", RAW_VS_NORM, primary, n, RAW_COLUMNS)
    out, i = [raw] if raw else [], 0
    while J("lenses", "order", i) in facts:
        name = str(facts.get(J("lenses", "order", i)).value)
        table = J("lenses", "by_lens", name, "table")
        i += 1
        if name != "norm" and table in facts:
            lens = detail_table(facts, f"Lens {name} per layer (primary prompt, from its own table)",
                                str(facts.get(table).value), primary, n, LENS_COLUMNS)
            out += [lens] if lens else []
    return out


_VERDICT_VALUE = {Verdict.PASS: True, Verdict.FAIL: False, Verdict.NA: None}


def add_verdicts(facts: FactSet, checks: list[CheckResult]) -> dict[str, Fact]:
    """Each checklist verdict as a derived fact (true ✓, false ✗, null n.a.) so a printed ✓ is bound like a number."""
    return {c.rule.id: facts.add_derived(f"derived:check_{c.rule.id}", _VERDICT_VALUE[c.verdict], "verdict",
                                         [f.key for _, f in c.evidence], c.rule.check)
            for c in checks if c.evidence}
