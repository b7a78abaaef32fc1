"""Interpretation rules (`interpret.toml`): findings about the primary prompt's layer profile, each value bound.

A rule is data: a `measure` (a function here that reads facts and returns named values) and `cases` (a condition
over those values, a status and a sentence template). The measures only select and compute; every value they
return is a `Fact`: a cell or leaf of the artifacts (bound to its own line) or a derived fact added to the
`FactSet` (written to the derived-facts file by `reportgen.build.write_derived`, so the audit checks it too).
Sentences are rendered later by `reportgen.render.render_finding`, never built here.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Union

from reportgen.errors import ReportError
from reportgen.facts import Fact, FactSet, FactValue

# The checklist's expression language, so both rule files read the same way (a whitelisted ast evaluator).
from reportgen.rules import _eval, _parse, toml_entries
from reportgen.structure import PURE, C, J

DEFAULT_FINDINGS = Path(str(files("reportgen").joinpath("interpret.toml")))
FORMATS = frozenset({"v", "bits", "prob", "pct", "layer", "sig", "tok", "exact", "item"})
SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")

# A finding's value: one fact, a list of facts (joined when printed), or a list of records (printed by `items`).
Value = Union[Fact, list[Fact], list[dict[str, Fact]]]


class Status(enum.Enum):
    """What a rule concluded on one run."""

    FIRES = "fires"
    """The pattern the rule looks for is in the data."""
    CLEAR = "clear"
    """It is not; the sentence says what the data show instead."""
    NA = "na"
    """The rule cannot be evaluated on this run; the sentence says why."""

    @property
    def label(self) -> str:
        """How a report names the status beside the rule's title."""
        return {"fires": "holds", "clear": "does not hold", "na": "not evaluable"}[self.value]


@dataclass(frozen=True)
class Case:
    """One outcome of a rule: the condition, the status it gives and the sentence template."""

    when: str
    status: Status
    text: str


@dataclass(frozen=True)
class FindingRule:
    """One interpretation rule as loaded from `interpret.toml`."""

    id: str
    title: str
    doc: str
    measure: str
    cases: tuple[Case, ...]
    missing: str
    params: dict[str, float] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)
    origin: str = ""


@dataclass(frozen=True)
class Finding:
    """A rule's conclusion on one run: its status, the sentence template and the values it names."""

    rule: FindingRule
    status: Status
    text: str
    values: dict[str, Value]


# --- loading ---------------------------------------------------------------------------------------------------


def load_findings(path: Path = DEFAULT_FINDINGS) -> list[FindingRule]:
    """Load and check the interpretation rules.

    Raises:
        ReportError: Unreadable or invalid TOML, an unknown field, measure, status or format, an expression that
            does not parse, a digit typed into a sentence, or an ``item`` value without its ``items`` template.
    """
    rules = []
    for raw, where in toml_entries(path, "findings", "interpretation rules", "finding"):
        unknown = set(raw) - {"id", "title", "doc", "measure", "cases", "missing", "params", "items"}
        if unknown:
            raise ReportError(f"{where}: unknown fields {sorted(unknown)}")
        if raw.get("measure") not in MEASURES:
            raise ReportError(f"{where}: measure {raw.get('measure')!r} is not one of {sorted(MEASURES)}")
        absent = [name for name in ("id", "title", "missing") if not isinstance(raw.get(name), str)]
        absent += [f"cases[{k}].{name}" for k, case in enumerate(raw.get("cases", []))
                   for name in ("status", "when", "text") if not isinstance(case.get(name), str)]
        if absent or not raw.get("cases"):
            raise ReportError(f"{where}: needs the string fields {absent or ['cases']}")
        cases = []
        for case in raw.get("cases", []):
            try:
                status = Status(case.get("status"))
            except ValueError as e:
                raise ReportError(f"{where}: status {case.get('status')!r} is not fires, clear or na") from e
            _parse(case["when"], where)
            cases.append(Case(case["when"], status, case["text"]))
        rule = FindingRule(raw["id"], raw["title"], str(raw.get("doc", "")), raw["measure"], tuple(cases),
                           raw["missing"], dict(raw.get("params", {})), dict(raw.get("items", {})), where)
        if SLOT.search(rule.missing):
            raise ReportError(f"{where}: the `missing` sentence is shown when there is no data, so it has no values")
        for template in [rule.missing, *(c.text for c in cases), *rule.items.values()]:
            _check_template(rule, template, where)
        rules.append(rule)
    return rules


def _check_template(rule: FindingRule, template: str, where: str) -> None:
    """A sentence states numbers only through bound values, in a known format."""
    if re.search(r"\d", SLOT.sub("", template)):
        raise ReportError(f"{where}: a sentence types a digit outside a value slot: {template!r}")
    for name, fmt in SLOT.findall(template):
        if (fmt or "v") not in FORMATS:
            raise ReportError(f"{where}: format {fmt!r} of {{{name}}} is not one of {sorted(FORMATS)}")
        if fmt == "item" and name not in rule.items:
            raise ReportError(f"{where}: {{{name}:item}} needs an items.{name} template")


# --- evaluating ------------------------------------------------------------------------------------------------


def evaluate_findings(rules: list[FindingRule], facts: FactSet) -> list[Finding]:
    """Evaluate every rule on one model's facts; derived values are added to ``facts``.

    Raises:
        ReportError: A case names a value its measure does not return, or its expression fails.
    """
    ctx = Context.from_facts(facts)
    cache: dict[str, dict[str, Value] | None] = {}
    out = []
    for rule in rules:
        if rule.measure not in cache:
            cache[rule.measure] = MEASURES[rule.measure](ctx) if ctx is not None else None
        values = cache[rule.measure]
        if values is None:
            out.append(Finding(rule, Status.NA, rule.missing, {}))
            continue
        env = {**rule.params, **{name: _plain(v) for name, v in values.items()}}
        for case in rule.cases:
            try:
                holds = _eval(_parse(case.when, rule.origin), env, rule.origin)
            except TypeError as e:
                raise ReportError(f"{rule.origin}: cannot evaluate {case.when!r} with {env}: {e}") from e
            if holds:
                missing = {name for name, _ in SLOT.findall(case.text)} - values.keys()
                if missing:
                    raise ReportError(f"{rule.origin}: the sentence names {sorted(missing)}, which measure "
                                      f"{rule.measure!r} does not return")
                out.append(Finding(rule, case.status, case.text, values))
                break
    return out


def _plain(value: Value) -> Any:
    """A value as the conditions see it: the fact's value, a list of values, or a list of records' values."""
    if isinstance(value, Fact):
        return value.value
    return [{k: f.value for k, f in v.items()} if isinstance(v, dict) else v.value for v in value]


@dataclass(frozen=True)
class Context:
    """What the measures read: the facts, and where the primary prompt's rows are."""

    facts: FactSet
    prompt_id: str
    n_layers: int
    variant: str = "orig"

    @classmethod
    def from_facts(cls, facts: FactSet) -> Context | None:
        """The primary prompt's context, or None when the run names no primary prompt or has no rows for it."""
        if J("prompt_set", "primary") not in facts or J("model", "n_layers") not in facts:
            return None
        ctx = cls(facts, str(facts.get(J("prompt_set", "primary")).value), int(facts.get(J("model", "n_layers")).value))
        return ctx if ctx.key("answer_rank", ctx.n_layers) in facts else None

    def key(self, column: str, layer: int, prompt_id: str | None = None, file: str = PURE) -> str:
        """Fact key of a next-token table cell of the primary (or the named) prompt."""
        return C(file, column, prompt_id=prompt_id or self.prompt_id, variant=self.variant, layer=layer)

    def cell(self, column: str, layer: int, prompt_id: str | None = None, file: str = PURE) -> Fact:
        """A cell of the next-token table (or another per-layer table) at one layer."""
        return self.facts.get(self.key(column, layer, prompt_id, file))

    def column(self, column: str) -> list[Fact]:
        """One column of the primary prompt, layers 0 to n."""
        return [self.cell(column, layer) for layer in range(self.n_layers + 1)]

    def json(self, *path: str | int) -> Fact | None:
        """A probe.json leaf, or None when the run does not have it."""
        key = J(*path)
        return self.facts.get(key) if key in self.facts else None

    def derive(self, name: str, value: FactValue, unit: str | None, sources: list[Fact], formula: str) -> Fact:
        """A derived fact ``derived:interp_<name>`` (reused when a previous evaluation added it)."""
        key = f"derived:interp_{name}"
        if key in self.facts:
            return self.facts.get(key)
        return self.facts.add_derived(key, value, unit, [s.key for s in sources], formula)


# --- measures: each returns named values, or None when the data needed are absent ---------------------------


def answer_at_head(ctx: Context) -> dict[str, Value] | None:
    """Layers before the head where the answer is top-1; the head's rank, probability and top token."""
    n, rank = ctx.n_layers, ctx.column("answer_rank")
    top1 = [ctx.cell("layer", i) for i in range(n) if rank[i].value == 1]
    values: dict[str, Value] = {
        "answer": ctx.facts.get(J("headline", "answer")), "top1_layers": top1, "final_layer": ctx.cell("layer", n),
        "final_rank": rank[n], "final_p": ctx.cell("p_answer", n), "final_top1": ctx.cell("top1_token", n)}
    if top1:
        values["last_top1"] = top1[-1]
    return values


def entropy_dip(ctx: Context) -> dict[str, Value] | None:
    """The entropy minimum between the copy-reflex layers and the head, and the rise from it to the head."""
    n = ctx.n_layers
    reflex, i = [], 0
    while (f := ctx.json("surface", "copy_reflex_layers", i)) is not None:
        reflex.append(int(f.value))  # type: ignore[arg-type]
        i += 1
    # Layer 0 is the embedding: with tied embeddings its near-zero entropy is the input token copied back.
    first = max(reflex, default=0) + 1
    if first > n - 1:
        return None
    entropy = ctx.column("entropy_bits")
    low = min(range(first, n), key=lambda layer: entropy[layer].value)  # type: ignore[arg-type,return-value]
    recovery = ctx.derive("entropy_recovery_bits", entropy[n].value - entropy[low].value, "bits",  # type: ignore[operator]
                          [entropy[n], entropy[low]], f"entropy(L{n}) - min entropy over L{first}..L{n - 1}")
    return {"window_first": ctx.cell("layer", first), "window_last": ctx.cell("layer", n - 1),
            "min_entropy": entropy[low], "min_layer": ctx.cell("layer", low), "min_top1": ctx.cell("top1_token", low),
            "min_p_top1": ctx.cell("p_top1", low), "final_entropy": entropy[n], "recovery": recovery}


def control(ctx: Context) -> dict[str, Value] | None:
    """The control prompt's final margin p(control) - p(primary), its largest margin, and its final rank."""
    margin, cid = ctx.json("control", "final_control_margin"), ctx.json("control", "prompt_id")
    if margin is None or cid is None or margin.value is None:
        return None
    n = ctx.n_layers
    return {"final_margin": margin, "control_id": cid, "control_answer": ctx.json("control", "answer"),
            "contrast": ctx.json("control", "contrast_answer"),
            "max_margin": ctx.json("control", "max_control_margin"),
            "max_margin_layer": ctx.json("control", "max_control_margin_layer"),
            "control_rank": ctx.cell("answer_rank", n, str(cid.value)),
            "control_top1": ctx.cell("top1_token", n, str(cid.value))}


def artifact(ctx: Context) -> dict[str, Value] | None:
    """The raw-vs-norm score split into its terms (probe.milestones.artifact_score) and what sits at the head."""
    head = ("raw_vs_norm", "headline")
    score = ctx.json(*head, "lens_artifact_score")
    if score is None:
        return None
    share, n_no = ctx.json(*head, "pct_layers_kl_ge_1p0"), ctx.json(*head, "n_norm_only_semantics_layers")
    max_kl, max_layer = ctx.json(*head, "max_kl_norm_vs_raw_bits"), ctx.json(*head, "max_kl_layer")
    layers, i = [], 0
    while (f := ctx.json(*head, "norm_only_semantic_layers", i)) is not None:
        layers.append(f)
        i += 1
    n = ctx.n_layers
    # The weights are the probe's (probe/milestones.py artifact_score); the terms are printed, the weights not.
    c_share = ctx.derive("artifact_term_share", 0.6 * share.value, None, [share],  # type: ignore[operator,union-attr]
                         "0.6 * pct_layers_kl_ge_1p0 (probe.milestones.artifact_score)")
    c_no = ctx.derive("artifact_term_norm_only", 0.3 if n_no.value else 0.0, None, [n_no],  # type: ignore[union-attr]
                      "0.3 if n_norm_only_semantics_layers > 0 else 0 (probe.milestones.artifact_score)")
    c_max = ctx.derive("artifact_term_max_kl", 0.1 * min(1.0, max_kl.value / 5.0), None, [max_kl],  # type: ignore[operator,union-attr]
                       "0.1 * min(1, max_kl_norm_vs_raw_bits / 5) (probe.milestones.artifact_score)")
    tier = ctx.json(*head, "tier")
    cut_low = ctx.derive("artifact_tier_low_below", 0.2, None, [tier], "tier cut-off: low below (probe.milestones)")  # type: ignore[list-item]
    cut_high = ctx.derive("artifact_tier_high_above", 0.5, None, [tier], "tier cut-off: high above (probe.milestones)")  # type: ignore[list-item]
    head_no = ctx.derive("norm_only_at_head", any(f.value == n for f in layers), None,
                         [*layers, ctx.cell("layer", n)] if layers else [n_no, ctx.cell("layer", n)],  # type: ignore[list-item]
                         "the head layer is among norm_only_semantic_layers")
    return {"tier": tier, "cut_low": cut_low, "cut_high": cut_high, "score": score, "share": share, "n_norm_only": n_no,
            "norm_only_layers": layers, "max_kl": max_kl, "max_kl_layer": max_layer, "c_share": c_share,
            "c_norm_only": c_no, "c_max": c_max, "final_layer": ctx.cell("layer", n),
            "gate_kl": ctx.json("last_layer_gate", "max_kl_bits"), "head_norm_only": head_no,
            "max_at_head": ctx.derive("max_kl_at_head", max_layer.value == n, None,  # type: ignore[union-attr]
                                      [max_layer, ctx.cell("layer", n)], "max_kl_layer == n_layers")}


@dataclass(frozen=True)
class _TestPrompt:
    """One test prompt: its text fact, whether it contains the answer, and the answer's place in its top-k."""

    index: int
    text: Fact
    contains: bool
    position: int | None  # 0-based index in topk of the gold token id, None when absent


def _test_prompts(ctx: Context) -> tuple[list[_TestPrompt], Fact, Fact] | None:
    """The test prompts with the gold answer (string and first token id) of the primary prompt."""
    gold_id = ctx.json("gold", f"{ctx.prompt_id}/{ctx.variant}", "first_id")
    answer = ctx.json("gold", f"{ctx.prompt_id}/{ctx.variant}", "string")
    if gold_id is None or answer is None:
        return None
    out, i = [], 0
    while (text := ctx.json("test_prompts", i, "text")) is not None:
        ids, j = [], 0
        while (tid := ctx.json("test_prompts", i, "topk", j, "token_id")) is not None:
            ids.append(tid.value)
            j += 1
        position = ids.index(gold_id.value) if gold_id.value in ids else None
        out.append(_TestPrompt(i, text, str(answer.value) in str(text.value), position))
        i += 1
    return out, gold_id, ctx.facts.get(J("headline", "answer"))  # the answer as the report names it


def _rank_fact(ctx: Context, prompt: _TestPrompt, gold_id: Fact) -> Fact:
    assert prompt.position is not None
    token_id = ctx.json("test_prompts", prompt.index, "topk", prompt.position, "token_id")
    return ctx.derive(f"test{prompt.index}_answer_rank", prompt.position + 1, None, [token_id, gold_id],  # type: ignore[list-item]
                      f"1 + index of the gold token id in test_prompts[{prompt.index}].topk")


def _record(ctx: Context, prompt: _TestPrompt, gold_id: Fact) -> dict[str, Fact]:
    at = ("test_prompts", prompt.index, "topk")
    return {"text": prompt.text, "rank": _rank_fact(ctx, prompt, gold_id),
            "p": ctx.json(*at, prompt.position, "prob"), "top1": ctx.json(*at, 0, "token")}  # type: ignore[dict-item]


def _count(ctx: Context, name: str, prompts: list[_TestPrompt], among: list[_TestPrompt], formula: str) -> Fact:
    """A count of test prompts, citing the texts it counted (or, for none, the texts it looked at)."""
    return ctx.derive(name, len(prompts), None, [p.text for p in prompts or among], formula)


def leakage_in_tests(ctx: Context) -> dict[str, Value] | None:
    """Test prompts with the answer in their text whose final top-k still holds the answer's token."""
    found = _test_prompts(ctx)
    top_k = ctx.json("config", "top_k_pure")
    if found is None or top_k is None:
        return None
    prompts, gold_id, answer = found
    with_answer = [p for p in prompts if p.contains]
    if not with_answer:
        return None
    leaks = [p for p in with_answer if p.position is not None]
    return {"answer": answer, "top_k": top_k,
            "n_with_answer": _count(ctx, "n_test_with_answer", with_answer, prompts,
                                    "test prompts whose text contains the gold answer"),
            "n_leaks": _count(ctx, "n_test_leaks", leaks, with_answer,
                              "of those, prompts whose final top-k holds the gold token id"),
            "leaks": [_record(ctx, p, gold_id) for p in leaks]}


def answers_in_tests(ctx: Context) -> dict[str, Value] | None:
    """Test prompts without the answer in their text whose final top token is the answer's token."""
    found = _test_prompts(ctx)
    if found is None:
        return None
    prompts, gold_id, answer = found
    without = [p for p in prompts if not p.contains]
    if not without:
        return None
    on_top = [p for p in without if p.position == 0]
    return {"answer": answer,
            "n_without": _count(ctx, "n_test_without_answer", without, prompts,
                                "test prompts whose text does not contain the gold answer"),
            "n_on_top": _count(ctx, "n_test_answer_on_top", on_top, without,
                               "of those, prompts whose final top-1 token is the gold token id"),
            "on_top": [_record(ctx, p, gold_id) for p in on_top]}


def stability(ctx: Context) -> dict[str, Value] | None:
    """Layers from the semantic layer to the head where the answer is not the top token, with its rank."""
    l_sem = ctx.json("headline", "milestones", "L_semantic")
    if l_sem is None:
        return None
    n = ctx.n_layers
    start = n + 1 if l_sem.value is None else int(l_sem.value)  # type: ignore[arg-type]
    drops = [{"layer": ctx.cell("layer", i), "rank": ctx.cell("answer_rank", i)}
             for i in range(start, n + 1) if ctx.cell("answer_rank", i).value != 1]
    return {"l_sem": l_sem, "final_layer": ctx.cell("layer", n), "drops": drops}  # type: ignore[dict-item]


def trajectory(ctx: Context) -> dict[str, Value] | None:
    """First layer with the answer in the top five, first at top-1, first of the run of top-1 layers to the head."""
    n, rank = ctx.n_layers, ctx.column("answer_rank")
    top5 = next((i for i in range(n + 1) if rank[i].value <= 5), None)  # type: ignore[operator]
    top1 = next((i for i in range(n + 1) if rank[i].value == 1), None)
    stable = None
    for i in range(n, -1, -1):  # walk back from the head while the answer stays on top
        if rank[i].value != 1:
            break
        stable = i
    def layer(i: int | None) -> Fact:
        # A milestone never reached is printed "none", bound to a derived null citing the ranks it looked at.
        if i is not None:
            return ctx.cell("layer", i)
        return ctx.derive("never", None, "layer", rank, "no layer meets the condition (answer_rank by layer)")

    values: dict[str, Value] = {"answer": ctx.facts.get(J("headline", "answer")), "top5": layer(top5),
                                "top1": layer(top1), "stable": layer(stable), "final_rank": rank[n],
                                "final_layer": ctx.cell("layer", n)}
    if top5 is not None:
        values["top5_rank"] = rank[top5]
    return values


MEASURES: dict[str, Callable[[Context], Union[dict[str, Value], None]]] = {
    "answer_at_head": answer_at_head, "entropy_dip": entropy_dip, "control": control, "artifact": artifact,
    "leakage_in_tests": leakage_in_tests,
    "answers_in_tests": answers_in_tests, "stability": stability, "trajectory": trajectory,
}
