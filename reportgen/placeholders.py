"""Fact-sheet placeholders: the only way a drafted sentence states a value.

The LLM never types a number, a quote or a token. The fact sheet names every fact with a readable placeholder
and the draft writes ``{name}`` where the value goes; the renderer replaces it with
`reportgen.render.bound_value`, a link bound to the fact's artifact line, in the format the fact's unit needs.

Grammar (``PLACEHOLDER``): ``{name}``, ``{family[index].field}`` or ``{family[index]}``; names are ASCII
identifiers, indexes are letters, digits, ``_``, ``.`` or ``-``:

- headline facts: ``{n_layers}``, ``{final_top1_token}``, ``{final_p_top1}``, ``{L_semantic}``,
  ``{L_semantic_confirmed}``, ``{first_rank_le_5}`` with its threshold ``{rank_threshold_5}``, ``{first_kl_le_1}``
  with ``{kl_threshold_1}``, ``{gate_kl}``, ``{gate_threshold}``; signed changes come with a magnitude and a
  direction word: ``{entropy_change_at_unembed}`` (signed), ``{entropy_change_at_unembed_size}`` (≥ 0),
  ``{entropy_direction_at_unembed}`` ("rises"/"falls");
- one row per decoded layer of the primary prompt: ``{layer[29].layer}`` (prints "L 29"), ``.entropy``,
  ``.top1_token``, ``.answer_rank``, ``.kl_to_final``;
- micro-suite facts by answer: ``{suite[Paris].L_semantic}``, ``.final_rank``, ``.answer``;
- temperatures: ``{temperature[2].temperature}``, ``.entropy``, ``.p_answer``, ``.answer_rank``.

Each `Slot` records what a sentence may say with it (`measure`, milestone `family`, `row`, `sign`), which
`reportgen.claimcheck` checks against the words around the placeholder. A unit word the drafter wrote right after a
placeholder whose format prints the unit (``{gate_kl} bits``), or "layer" right before a layer (``layer
{L_semantic}``), is dropped, so it is not printed twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from reportgen.bound import Binding
from reportgen.facts import Fact
from reportgen.render import bound_value
from reportgen.structure import ReportData

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\[[A-Za-z0-9_.\-]+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")

# data.F name -> (placeholder, fmt, measure, milestone family, description). Order is sheet order.
HEADLINE: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("model_id", "model_id", "v", "text", "", "model id"),
    ("arch", "architecture", "v", "text", "", "architecture class"),
    ("n_layers", "n_layers", "v", "count", "", "number of transformer layers"),
    ("d_model", "d_model", "v", "count", "", "residual width"),
    ("vocab", "vocab_size", "v", "count", "", "vocabulary size"),
    ("tied", "tied_embeddings", "v", "bool", "", "input and output embeddings tied"),
    ("norm_kind", "final_norm_kind", "v", "text", "", "final norm type"),
    ("dtype", "model_dtype", "v", "text", "", "dtype the model ran in"),
    ("device", "device", "v", "text", "", "device the probe ran on"),
    ("answer", "answer_token", "tok", "token", "", "gold answer of the primary prompt"),
    ("final_token", "final_top1_token", "tok", "token", "", "top-1 token of the final head"),
    ("final_p_top1", "final_p_top1", "prob", "prob", "", "final head probability of its top-1 token"),
    ("final_p_answer", "final_p_answer", "prob", "prob", "", "final head probability of the answer"),
    ("final_rank", "final_answer_rank", "v", "rank", "", "final head rank of the answer"),
    ("final_entropy", "final_entropy", "bits", "entropy", "", "final head entropy"),
    ("entropy_rise", "entropy_change_at_unembed", "bits", "entropy", "",
     "signed entropy change, last layer vs the one before"),
    ("entropy_change_at_unembed_size", "entropy_change_at_unembed_size", "bits", "entropy", "", "its magnitude"),
    ("entropy_direction_at_unembed", "entropy_direction_at_unembed", "v", "direction", "", "its direction"),
    ("entropy_change", "entropy_change_first_to_last", "bits", "entropy", "",
     "signed entropy change, first to last layer"),
    ("entropy_change_first_to_last_size", "entropy_change_first_to_last_size", "bits", "entropy", "", "its magnitude"),
    ("entropy_direction_first_to_last", "entropy_direction_first_to_last", "v", "direction", "", "its direction"),
    ("L_sem", "L_semantic", "layer", "layer", "semantic", "first layer where the answer is top-1 (norm lens)"),
    ("L_conf", "L_semantic_confirmed", "layer", "layer", "confirmed", "semantic layer confirmed by the raw lens"),
    ("L_sem_raw", "L_semantic_raw", "layer", "layer", "raw", "first layer where the answer is top-1 (raw lens)"),
    ("L_strong", "L_semantic_strong", "layer", "layer", "strong", "first layer passing the strong semantic gate"),
    ("L_copy", "L_copy", "layer", "layer", "copy", "first strict copy-collapse layer"),
    ("L_copy_soft1", "L_copy_soft_k1", "layer", "layer", "copy", "first soft copy layer (k=1)"),
    ("copy_stability", "copy_stability", "v", "text", "", "copy milestone stability"),
    ("rank10", "first_rank_le_10", "layer", "layer", "rank10", "first layer with answer rank <= rank_threshold_10"),
    ("rank_threshold_10", "rank_threshold_10", "v", "threshold", "rank10", "rank threshold"),
    ("rank5", "first_rank_le_5", "layer", "layer", "rank5", "first layer with answer rank <= rank_threshold_5"),
    ("rank_threshold_5", "rank_threshold_5", "v", "threshold", "rank5", "rank threshold"),
    ("rank1", "first_rank_le_1", "layer", "layer", "semantic", "first layer with answer rank <= rank_threshold_1"),
    ("rank_threshold_1", "rank_threshold_1", "v", "threshold", "semantic", "rank threshold"),
    ("kl1", "first_kl_le_1", "layer", "layer", "kl1", "first layer with KL to final <= kl_threshold_1"),
    ("kl_threshold_1", "kl_threshold_1", "bits", "kl", "kl1", "KL threshold"),
    ("kl05", "first_kl_le_0_5", "layer", "layer", "kl05", "first layer with KL to final <= kl_threshold_0_5"),
    ("kl_threshold_0_5", "kl_threshold_0_5", "bits", "kl", "kl05", "KL threshold"),
    ("cos06", "first_cos_ge_0_6", "layer", "layer", "cos", "first layer with cosine to final >= cos_threshold_0_6"),
    ("cos_threshold_0_6", "cos_threshold_0_6", "exact", "threshold", "cos", "cosine threshold"),
    ("gate_passed", "gate_passed", "v", "bool", "", "last-layer gate passed"),
    ("gate_kl", "gate_kl", "bits", "kl", "", "last-layer gate: max KL of the lens to the model head"),
    ("gate_threshold", "gate_threshold", "bits", "kl", "", "last-layer gate threshold"),
    ("tier", "lens_artifact_tier", "v", "text", "", "raw-vs-norm lens-artifact risk tier"),
    ("risk_score", "lens_artifact_score", "sig", "score", "", "lens-artifact score (0 to 1)"),
    ("pct_kl1", "share_layers_raw_norm_kl_ge_1", "pct", "fraction", "", "share of layers where raw and norm lens "
     "differ by >= kl_threshold_1"),
    ("max_kl_raw", "max_kl_raw_vs_norm", "bits", "kl", "", "largest raw-vs-norm KL"),
    ("n_norm_only", "n_norm_only_semantic_layers", "v", "count", "", "layers semantic under the norm lens only"),
    ("window_radius", "confirm_window_radius", "v", "count", "", "raw-lens confirmation window radius in layers"),
    ("ctrl_final", "control_final_margin", "sig", "margin", "", "control prompt: final margin of control answer"),
    ("suite_median", "suite_L_semantic_median", "v", "median", "", "micro-suite median semantic layer"),
    ("suite_missing", "suite_n_missing", "v", "count", "", "micro-suite facts never reaching top-1"),
    ("prefer_ranks", "prefer_ranks", "v", "bool", "", "guidance: prefer ranks over probabilities"),
    ("copy_reflex", "copy_reflex", "v", "bool", "", "copy reflex in the first layers"),
    ("layer0_tied", "layer0_copy_is_tied_artifact", "v", "bool", "", "layer-0 copy explained by tied embeddings"),
    ("n_punct", "n_punctuation_top1_layers", "v", "count", "", "layers whose top-1 token is punctuation"),
    ("mask_size", "copy_mask_size", "v", "count", "", "copy mask size in tokens"),
    ("nan_inf", "any_nan_or_inf", "v", "bool", "", "any NaN or Inf seen"),
    ("det", "deterministic_algorithms", "v", "bool", "", "deterministic algorithms enabled"),
    ("L_semantic_frac", "L_semantic_depth_fraction", "pct", "fraction", "", "L_semantic / n_layers"),
    ("abl_L_semantic_nf", "ablation_L_semantic_no_filler", "layer", "layer", "ablation",
     "L_semantic with filler words removed"),
)
COMPACT_SKIP = frozenset({"d_model", "vocab_size", "cos_threshold_0_6", "first_cos_ge_0_6", "L_copy_soft_k1",
                          "copy_stability", "suite_L_semantic_median", "control_final_margin"})
# Row fields: (placeholder field, LayerRow attribute, fmt, measure)
ROW_FIELDS = (("layer", "layer", "layer", "layer"), ("entropy", "entropy", "bits", "entropy"),
              ("top1_token", "top1", "tok", "token"), ("answer_rank", "rank", "v", "rank"),
              ("kl_to_final", "kl", "bits", "kl"))
SIGNED = {"entropy_change_at_unembed": "entropy_change_at_unembed",
          "entropy_change_at_unembed_size": "entropy_change_at_unembed",
          "entropy_direction_at_unembed": "entropy_change_at_unembed",
          "entropy_change_first_to_last": "entropy_change_first_to_last",
          "entropy_change_first_to_last_size": "entropy_change_first_to_last",
          "entropy_direction_first_to_last": "entropy_change_first_to_last"}
UNIT_WORDS = {"bits": r"bits?", "pct": r"%|percent\b", "layer": ""}


@dataclass(frozen=True)
class Slot:
    """One placeholder: its fact, print format, what it measures, and what a sentence may claim with it.

    Attributes:
        name: The placeholder name, ``layer[29].answer_rank``.
        fact: The fact printed in its place.
        fmt: A `reportgen.render.FORMATS` key.
        measure: layer, rank, prob, entropy, kl, count, token, text, bool, fraction, direction, threshold, …
        description: Sheet text.
        family: The milestone a layer placeholder is (semantic, confirmed, raw, strong, copy, rank10, rank5, kl1,
            kl05, cos, ablation); empty for others.
        row: The layer of a ``layer[N].*`` placeholder.
        signed: Name of the signed change the placeholder speaks about (its own name for the signed value).

    """

    name: str
    fact: Fact
    fmt: str
    measure: str
    description: str
    family: str = ""
    row: int | None = None
    signed: str = ""


@dataclass(frozen=True)
class Sheet:
    """The placeholders of one prompt and what rendering them needs (artifact prefix, derived bindings)."""

    slots: Mapping[str, Slot]
    prefix: str
    derived: Mapping[str, Binding] = field(default_factory=dict)
    words: frozenset[str] = frozenset()  # token strings of the run a sentence may not write unquoted

    def value(self, name: str) -> object:
        """The value of a placeholder's fact, or None when the sheet has no such placeholder."""
        slot = self.slots.get(name)
        return None if slot is None else slot.fact.value


def _index(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_") or "x"


def build_slots(data: ReportData, compact: bool = False) -> dict[str, Slot]:
    """Every placeholder the sheet offers: headline facts, then (unless compact) layer rows, suite, temperatures."""
    slots: dict[str, Slot] = {}
    for f_name, name, fmt, measure, family, description in HEADLINE:
        if f_name in data.F and not (compact and name in COMPACT_SKIP):
            slots[name] = Slot(name, data.F[f_name], fmt, measure, description, family, signed=SIGNED.get(name, ""))
    if compact:
        return slots
    for row in data.table:
        n = int(row.layer.value)
        for fld, attr, fmt, measure in ROW_FIELDS:
            name = f"layer[{n}].{fld}"
            slots[name] = Slot(name, getattr(row, attr), fmt, measure, "", "row" if fld == "layer" else "", n)
    for item in data.suite:
        key = _index(str(item["answer"].value))
        for fld, fact, fmt, measure, family in (("answer", item["answer"], "tok", "token", ""),
                                                ("L_semantic", item["fact"], "layer", "layer", "semantic"),
                                                ("final_rank", item["final_rank"], "v", "rank", "")):
            slots[f"suite[{key}].{fld}"] = Slot(f"suite[{key}].{fld}", fact, fmt, measure, "", family)
    for item in data.temps:
        key = _index(f"{item['t'].value:g}")
        for fld, fact, fmt, measure in (("temperature", item["t"], "exact", "temperature"),
                                        ("entropy", item["entropy"], "bits", "entropy"),
                                        ("p_answer", item["p_answer"], "prob", "prob"),
                                        ("answer_rank", item["rank"], "v", "rank")):
            slots[f"temperature[{key}].{fld}"] = Slot(f"temperature[{key}].{fld}", fact, fmt, measure, "")
    return slots


def run_tokens(data: ReportData) -> list[str]:
    """Every token string the run produced or was asked about (rows, suite, test prompts, prompt text)."""
    tokens = [str(row.top1.value) for row in data.table]
    tokens += [str(item["answer"].value) for item in data.suite]
    tokens += [str(item["top1"].value) for item in data.tests]
    tokens += [str(data.F[name].value) for name in ("answer", "final_token", "prompt_text") if name in data.F]
    return tokens


def sheet_line(slot: Slot) -> str:
    """One fact-sheet line, ``[name, description, value, unit]``; ensure_ascii, so tokens arrive escaped."""
    unit = {"layer": "layer index", "rank": "rank", "token": "token", "fraction": "fraction",
            "prob": "probability", "entropy": "bits", "kl": "bits", "bool": "yes/no"}.get(slot.measure, slot.fact.unit)
    # \u003c/\u003e: the same JSON value, but a token string such as <|im_end|> or <end_of_turn> never reaches a
    # chat template as text a server would parse into a real control token.
    line = json.dumps([slot.name, slot.description, slot.fact.value, unit], ensure_ascii=True)
    return line.replace("<", "\\u003c").replace(">", "\\u003e")


def render_placeholders(text: str, sheet: Sheet) -> str:
    """Replace every known placeholder by its bound value; unknown ones are left for validation to report.

    A unit word right after a value whose format prints it, and "layer"/"L" right before a printed layer, are
    removed so the unit is not doubled.
    """
    out, pos = [], 0
    for match in PLACEHOLDER.finditer(text):
        slot = sheet.slots.get(match.group(1))
        if slot is None:
            continue
        before = text[pos:match.start()]
        if slot.fmt == "layer":
            before = re.sub(r"\b(?:[Ll]ayer|L)\s*$", "", before)
        out.append(before)
        out.append(bound_value(slot.fact, slot.fmt, sheet.prefix, dict(sheet.derived)))
        pos = match.end()
        unit = UNIT_WORDS.get(slot.fmt)
        if unit:
            after = re.match(rf"\s*(?:{unit})", text[pos:], re.IGNORECASE)
            pos += after.end() if after else 0
    out.append(text[pos:])
    return "".join(out)
