"""Interpretation rules (issue 11): each finding against an independent reading of the artifacts (plain csv/json),
on both bundled models, and crafted runs where each rule must not fire."""

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest
import tomllib

from reportgen.build import write_derived
from reportgen.errors import ReportError
from reportgen.facts import FactSet, extract_facts
from reportgen.interpret import DEFAULT_FINDINGS, Status, evaluate_findings, load_findings
from reportgen.render import render_finding
from tests.conftest import BUNDLED_MODELS

PURE, RAW = "pure-next-token.csv", "raw-vs-norm.csv"
PARAMS = {rule["id"]: rule.get("params", {}) for rule in tomllib.loads(DEFAULT_FINDINGS.read_text())["findings"]}


# --- an independent reading of one model's artifacts -------------------------------------------------------


@dataclasses.dataclass
class Run:
    """What the tests read with csv and json alone: probe.json and the primary prompt's rows, by layer."""

    probe: dict
    rows: list[dict]  # pure-next-token.csv rows of the primary prompt (orig), layer 0..n
    raw: list[dict]  # raw-vs-norm.csv rows of the primary prompt (orig)
    control: list[dict]  # pure-next-token.csv rows of the control prompt (orig)

    @property
    def n(self) -> int:
        return self.probe["model"]["n_layers"]

    def ranks(self) -> list[int]:
        return [int(r["answer_rank"]) for r in self.rows]


def _rows(path: Path, prompt_id: str) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["prompt_id"] == prompt_id and r["variant"] == "orig"]
    return sorted(rows, key=lambda r: int(r["layer"]))


def read_run(model_dir: Path) -> Run:
    probe = json.loads((model_dir / "probe.json").read_text())
    primary, control = probe["prompt_set"]["primary"], probe["prompt_set"]["control"]
    return Run(probe, _rows(model_dir / PURE, primary), _rows(model_dir / RAW, primary),
               _rows(model_dir / PURE, control))


@pytest.fixture(scope="module", params=BUNDLED_MODELS)
def model(request, probe_run, tmp_path_factory):
    """(alias, independent reading, findings by rule id, derived bindings) of one bundled model."""
    facts = extract_facts(probe_run / request.param)
    findings = {f.rule.id: f for f in evaluate_findings(load_findings(), facts)}
    derived = write_derived(facts, tmp_path_factory.mktemp("derived"), request.param)
    return request.param, read_run(probe_run / request.param), findings, derived


def values(finding, name):
    v = finding.values[name]
    return [f.value for f in v] if isinstance(v, list) else v.value


# --- each rule on the real runs, against the independent reading -------------------------------------------


def test_every_rule_gives_one_finding(model):
    findings = model[2]
    assert list(findings) == [r.id for r in load_findings()]


def test_answer_lost_at_head(model):
    alias, run, findings, _ = model
    f, ranks, n = findings["answer_lost_at_head"], run.ranks(), run.n
    top1 = [layer for layer in range(n) if ranks[layer] == 1]
    assert values(f, "top1_layers") == top1
    assert values(f, "final_rank") == ranks[n]
    assert values(f, "final_p") == pytest.approx(float(run.rows[n]["p_answer"]), rel=1e-6)
    assert values(f, "final_top1") == run.rows[n]["top1_token"]
    assert (f.status is Status.FIRES) == (bool(top1) and ranks[n] > 1)
    # issue 11: Gemma-3 has the answer on top at L 17 and loses it at the head (rank 6); SmolLM2 keeps it
    if alias == "gemma3-270m":
        assert f.status is Status.FIRES and top1 == [17] and ranks[n] == 6
    else:
        assert f.status is Status.CLEAR


def test_entropy_collapse_and_recovery(model):
    _, run, findings, _ = model
    f, n = findings["entropy_collapse"], run.n
    entropy = [float(r["entropy_bits"]) for r in run.rows]
    first = max(run.probe["surface"]["copy_reflex_layers"], default=0) + 1
    low = min(range(first, n), key=lambda i: entropy[i])
    assert (values(f, "window_first"), values(f, "window_last")) == (first, n - 1)
    assert values(f, "min_layer") == low
    assert values(f, "min_entropy") == pytest.approx(entropy[low], rel=1e-6)
    assert values(f, "recovery") == pytest.approx(entropy[n] - entropy[low], rel=1e-6)
    p = PARAMS["entropy_collapse"]
    fires = entropy[low] <= p["collapse_max_bits"] and entropy[n] - entropy[low] >= p["recovery_min_bits"]
    assert (f.status is Status.FIRES) == fires
    assert fires  # issue 11: SmolLM2 falls to 0.30 bits at L 20; Gemma-3 to 0.19 bits at L 5


def test_control_margin(model):
    _, run, findings, _ = model
    f, n = findings["control_prefers_primary"], run.n
    margin = float(run.control[n]["control_margin"])  # p(control answer) - p(primary answer) at the head
    assert values(f, "final_margin") == pytest.approx(margin, rel=1e-6)
    assert values(f, "control_rank") == int(run.control[n]["answer_rank"])
    assert f.status is (Status.FIRES if margin < 0 else Status.CLEAR if margin > 0 else Status.NA)
    peak = max(range(n + 1), key=lambda i: float(run.control[i]["control_margin"]))
    assert values(f, "max_margin_layer") == peak


def test_artifact_risk_terms_rebuild_the_score(model):
    _, run, findings, _ = model
    f, n = findings["artifact_risk"], run.n
    kl = [float(r["kl_norm_vs_raw_bits"]) for r in run.raw]
    norm_only = [int(r["layer"]) for r in run.raw if r["norm_only_semantics"] == "True"]
    share = sum(k >= 1.0 for k in kl) / len(kl)
    terms = (0.6 * share, 0.3 if norm_only else 0.0, 0.1 * min(1.0, max(kl) / 5.0))  # probe/milestones.py
    assert [values(f, k) for k in ("c_share", "c_norm_only", "c_max")] == pytest.approx(terms, rel=1e-5)
    assert sum(terms) == pytest.approx(values(f, "score"), rel=1e-5)
    assert values(f, "norm_only_layers") == norm_only
    assert values(f, "max_kl_layer") == max(range(n + 1), key=lambda i: kl[i])
    tier = run.probe["raw_vs_norm"]["headline"]["tier"]
    assert f.status is (Status.CLEAR if tier == "low" else Status.FIRES)
    head = findings["artifact_at_head"]
    at_head = n in norm_only or max(range(n + 1), key=lambda i: kl[i]) == n
    assert (head.status is Status.FIRES) == at_head
    assert values(head, "head_norm_only") is (n in norm_only)


def test_artifact_terms_use_the_probes_weights_and_cut_offs(model):
    """The rule prints the score's terms and tier cut-offs as derived facts; they must stay the probe's."""
    from probe.milestones import artifact_score

    f = model[2]["artifact_risk"]
    assert artifact_score(1.0, 0, 0.0)[0] == pytest.approx(0.6) and artifact_score(0.0, 1, 0.0)[0] == 0.3
    assert artifact_score(0.0, 0, 5.0)[0] == pytest.approx(0.1)
    low, high = values(f, "cut_low"), values(f, "cut_high")
    assert artifact_score(low / 0.6 - 1e-9, 0, 0.0)[1] == "low" and artifact_score(low / 0.6, 0, 0.0)[1] == "medium"
    assert artifact_score(high / 0.6, 0, 0.0)[1] == "medium"
    assert artifact_score(high / 0.6 + 1e-9, 0, 0.0)[1] == "high"


def _test_prompts(run):
    gold = run.probe["gold"][f"{run.probe['prompt_set']['primary']}/orig"]
    out = []
    for t in run.probe["test_prompts"]:
        ids = [e["token_id"] for e in t["topk"]]
        rank = ids.index(gold["first_id"]) + 1 if gold["first_id"] in ids else None
        p = t["topk"][rank - 1]["prob"] if rank else None
        out.append((t["text"], gold["string"] in t["text"], rank, p))
    return out


def test_leakage_in_test_prompts(model):
    alias, run, findings, _ = model
    f, prompts = findings["test_prompt_leakage"], _test_prompts(run)
    with_answer = [p for p in prompts if p[1]]
    leaks = [(text, rank, p) for text, contains, rank, p in with_answer if rank is not None]
    assert values(f, "n_with_answer") == len(with_answer) and values(f, "n_leaks") == len(leaks)
    assert [(r["text"].value, r["rank"].value, r["p"].value) for r in f.values["leaks"]] == leaks
    assert values(f, "top_k") == len(run.probe["test_prompts"][0]["topk"])
    assert f.status is (Status.FIRES if leaks else Status.CLEAR)
    # SmolLM2 keeps Berlin in the top ten of two prompts that contain it; Gemma-3 of none
    assert len(leaks) == {"smollm2": 2, "gemma3-270m": 0}[alias]


def test_answers_in_test_prompts(model):
    _, run, findings, _ = model
    f, prompts = findings["test_prompt_answers"], _test_prompts(run)
    without = [p for p in prompts if not p[1]]
    on_top = [(text, p) for text, _, rank, p in without if rank == 1]
    assert values(f, "n_without") == len(without) and values(f, "n_on_top") == len(on_top)
    assert [(r["text"].value, r["p"].value) for r in f.values["on_top"]] == on_top
    assert f.status is (Status.FIRES if on_top else Status.CLEAR)


def test_stability_after_the_semantic_layer(model):
    _, run, findings, _ = model
    f, ranks, n = findings["semantic_stability"], run.ranks(), run.n
    l_sem = next((i for i in range(n + 1) if ranks[i] == 1), None)
    assert values(f, "l_sem") == l_sem  # the probe's milestone is the first layer at rank one here
    if l_sem is None or l_sem == n:
        assert f.status is Status.NA
        return
    drops = [(i, ranks[i]) for i in range(l_sem, n + 1) if ranks[i] != 1]
    assert [(d["layer"].value, d["rank"].value) for d in f.values["drops"]] == drops
    assert f.status is (Status.FIRES if drops else Status.CLEAR)


def test_answer_trajectory(model):
    _, run, findings, _ = model
    f, ranks, n = findings["answer_trajectory"], run.ranks(), run.n
    top5 = next((i for i in range(n + 1) if ranks[i] <= 5), None)
    top1 = next((i for i in range(n + 1) if ranks[i] == 1), None)
    stable = next((i for i in range(n + 1) if all(r == 1 for r in ranks[i:])), None)
    assert (values(f, "top5"), values(f, "top1"), values(f, "stable")) == (top5, top1, stable)
    assert values(f, "final_rank") == ranks[n]
    lost = "lost at the head" in f.text
    assert lost is (top1 is not None and ranks[n] != 1)


def test_findings_render_as_bound_links_without_free_digits(model):
    """Every digit of a rendered finding is inside a link (a bound value); the derived ones have a line."""
    findings = model[2]
    for f in findings.values():
        text = render_finding(f, "artifacts/x/", model[3])
        assert not re.search(r"\d", re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)), (f.rule.id, text)


# --- crafted runs: each rule must not fire where its condition does not hold ---------------------------------


@pytest.fixture(scope="module")
def base_facts(probe_run):
    """The probe.json and next-token/raw-vs-norm cells of both models, as plain facts to edit."""
    out = {}
    for alias in BUNDLED_MODELS:
        keep = ("probe.json", PURE, RAW, "lens-raw.csv")
        out[alias] = [f for f in extract_facts(probe_run / alias) if f.file in keep and not f.sources]
    return out


def crafted(facts, changes=None, drop=()):
    """A FactSet of ``facts`` with some values replaced (key -> value) and some files left out."""
    changes = changes or {}
    return FactSet([dataclasses.replace(f, value=changes.get(f.key, f.value)) for f in facts if f.file not in drop])


def status_of(facts, rule_id):
    return {f.rule.id: f for f in evaluate_findings(load_findings(), facts)}[rule_id]


def cell(prompt, layer, column, file=PURE):
    return f"{file}[prompt_id={prompt},variant=orig,layer={layer}].{column}"


def test_answer_kept_at_the_head_does_not_fire(base_facts):
    f = status_of(crafted(base_facts["gemma3-270m"], {cell("germany", 18, "answer_rank"): 1}), "answer_lost_at_head")
    assert f.status is Status.CLEAR
    # never on top before the head: nothing was found, so nothing is lost
    never = {cell("germany", 17, "answer_rank"): 3}
    assert status_of(crafted(base_facts["gemma3-270m"], never), "answer_lost_at_head").status is Status.CLEAR


def test_flat_entropy_does_not_fire(base_facts):
    flat = {cell("germany", i, "entropy_bits"): 3.0 for i in range(1, 30)}
    f = status_of(crafted(base_facts["smollm2"], flat), "entropy_collapse")
    assert f.status is Status.CLEAR
    # a dip without a recovery by the head is no collapse-and-recovery either
    no_recovery = {cell("germany", 30, "entropy_bits"): 0.5}
    assert status_of(crafted(base_facts["smollm2"], no_recovery), "entropy_collapse").status is Status.CLEAR


def test_control_fires_only_on_a_negative_margin(base_facts):
    key = "probe.json:control.final_control_margin"
    assert status_of(crafted(base_facts["gemma3-270m"]), "control_prefers_primary").status is Status.CLEAR
    assert status_of(crafted(base_facts["gemma3-270m"], {key: -0.2}), "control_prefers_primary").status is Status.FIRES
    assert status_of(crafted(base_facts["gemma3-270m"], {key: 0.0}), "control_prefers_primary").status is Status.NA
    assert status_of(crafted(base_facts["gemma3-270m"], {key: None}), "control_prefers_primary").status is Status.NA


def test_low_tier_and_head_free_divergence_do_not_fire(base_facts):
    low = {"probe.json:raw_vs_norm.headline.tier": "low"}
    assert status_of(crafted(base_facts["smollm2"], low), "artifact_risk").status is Status.CLEAR
    # gemma: the largest divergence is at the head; move it to L 17 (not the head, and L 17 is not the head either)
    moved = {"probe.json:raw_vs_norm.headline.max_kl_layer": 17}
    assert status_of(crafted(base_facts["gemma3-270m"], moved), "artifact_at_head").status is Status.CLEAR


def test_no_leak_and_no_paraphrase_answer_do_not_fire(base_facts):
    facts = base_facts["smollm2"]
    gold = next(f.value for f in facts if f.key == "probe.json:gold[\"germany/orig\"].first_id")
    other = {f.key: -1 for f in facts if f.key.startswith("probe.json:test_prompts[") and f.key.endswith(".token_id")
             and f.value == gold}
    assert status_of(crafted(facts, other), "test_prompt_leakage").status is Status.CLEAR
    assert status_of(crafted(facts, other), "test_prompt_answers").status is Status.CLEAR
    # no test prompt contains the answer: leakage cannot be evaluated, and says so
    texts = {f.key: "The capital of Germany is" for f in facts if f.key.endswith(".text")
             and f.key.startswith("probe.json:test_prompts[")}
    f = status_of(crafted(facts, texts), "test_prompt_leakage")
    assert f.status is Status.NA and "cannot be evaluated" in f.text


def test_stable_answer_does_not_fire(base_facts):
    f = status_of(crafted(base_facts["gemma3-270m"], {cell("germany", 18, "answer_rank"): 1}), "semantic_stability")
    assert f.status is Status.CLEAR
    none = {"probe.json:headline.milestones.L_semantic": None}
    assert status_of(crafted(base_facts["gemma3-270m"], none), "semantic_stability").status is Status.NA


def test_missing_tables_make_every_table_rule_say_it_cannot_be_evaluated(base_facts):
    facts = crafted(base_facts["smollm2"], drop=(PURE,))
    findings = evaluate_findings(load_findings(), facts)
    table_rules = {"answer_lost_at_head", "entropy_collapse", "semantic_stability", "answer_trajectory"}
    for f in findings:
        if f.rule.id in table_rules:
            assert f.status is Status.NA and f.text == f.rule.missing and "cannot be evaluated" in f.text


# --- the rules file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, error", [
    ('measure = "nope"', "measure 'nope' is not one of"),
    ('measure = "trajectory"\n[[findings.cases]]\nstatus = "fires"\nwhen = "True"\ntext = "rank 5 at {top5:layer}"',
     "types a digit outside a value slot"),
    ('measure = "trajectory"\n[[findings.cases]]\nstatus = "maybe"\nwhen = "True"\ntext = "x"', "status 'maybe'"),
    ('measure = "stability"\n[[findings.cases]]\nstatus = "fires"\nwhen = "True"\ntext = "at {drops:item}"',
     "needs an items.drops template"),
    ('measure = "trajectory"\n[[findings.cases]]\nstatus = "fires"\nwhen = "True"\ntext = "{top5:weird}"',
     "format 'weird'"),
    ('measure = "trajectory"', "needs the string fields \\['cases'\\]"),
    ('measure = "trajectory"\n[[findings.cases]]\nstatus = "fires"\nwhen = "True"', "cases\\[0\\].text"),
])
def test_bad_rules_are_refused(tmp_path, body, error):
    path = tmp_path / "interpret.toml"
    path.write_text(f'[[findings]]\nid = "x"\ntitle = "x"\nmissing = "x"\n{body}\n')
    with pytest.raises(ReportError, match=error):
        load_findings(path)


# --- the report and the LLM prompt carry the same findings -------------------------------------------------


@pytest.fixture(scope="module")
def built(probe_run, tmp_path_factory):
    from reportgen.build import build_reports

    out = tmp_path_factory.mktemp("reports")
    assert all(o.error is None for o in build_reports(probe_run, out))
    return out


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_report_interpretation_and_detail_tables(built, alias):
    from reportgen.audit import Verdict, audit_report

    text = (built / f"{alias}.md").read_text()
    section = text.split("## Interpretation", 1)[1].split("\n## ", 1)[0]
    bullets = [line for line in section.splitlines() if line.startswith("- **")]
    assert [b.split("**")[1] for b in bullets] == [r.title for r in load_findings()]
    # top five, raw vs norm, and the raw lens's own table, each collapsed; every cell audited
    summaries = re.findall(r"<summary>([^<]*)</summary>", text)
    assert summaries[0].startswith("Top five tokens") and any("raw lens" in s for s in summaries)
    assert len(summaries) == 3
    header = next(line for line in text.splitlines() if line.startswith("| Layer | Entropy"))
    for column in ("Reverse KL", "Cosine to final", "Rest mass"):
        assert column in header
    bad = [v for v in audit_report(built / f"{alias}.md").verdicts if v.verdict is not Verdict.OK]
    assert bad == []


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_prompt_gets_the_same_findings_as_escaped_data(probe_run, tmp_path, alias):
    from reportgen.prompt import build_prompt
    from reportgen.rules import evaluate, load_rules
    from reportgen.structure import build_data

    facts = extract_facts(probe_run / alias)
    checks = evaluate(load_rules(), facts)
    data = build_data(alias, facts, checks)
    prompt = build_prompt(data, checks, "artifacts/x/", write_derived(facts, tmp_path, alias))
    user = prompt.messages[1]["content"]
    block = user.split("Interpretation findings", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    lines = [json.loads(line) for line in block.splitlines()]
    assert [(rule_id, status) for rule_id, status, _ in lines] == [(f.rule.id, f.status.label) for f in data.findings]
    assert "<" not in block and ">" not in block  # token strings stay data (\u003c, \u003e)
    # a value the sheet names is a placeholder the draft can write; the lost-at-head layer is a row placeholder
    if alias == "gemma3-270m":
        assert "{layer[17].layer}" in lines[0][2] and "{layer[18].answer_rank}" in lines[0][2]


def test_every_lens_besides_norm_gets_a_detail_table(base_facts, probe_run):
    """A fitted lens (here a stand-in named tuned, reading the raw lens's table) gets its own collapsed table, and a
    lens whose table the run lacks gets none."""
    from reportgen.facts import Fact
    from reportgen.structure import LENS_COLUMNS, detail_tables

    facts = base_facts["gemma3-270m"]
    extra = [Fact("probe.json:lenses.order[2]", "tuned", None, "probe.json", 1, 1),
             Fact("probe.json:lenses.by_lens.tuned.table", "lens-raw.csv", None, "probe.json", 1, 1),
             Fact("probe.json:lenses.order[3]", "prism", None, "probe.json", 1, 1),
             Fact("probe.json:lenses.by_lens.prism.table", "lens-prism.csv", None, "probe.json", 1, 1)]
    tables = detail_tables(FactSet([*facts, *extra]), "germany", 18)
    assert [t.summary.split(" per layer")[0] for t in tables[1:]] == ["Lens raw", "Lens tuned"]
    assert [c.csv for c in tables[2].columns] == [c.csv for c in LENS_COLUMNS]
    by_layer = {int(r["layer"]): r for r in _rows(probe_run / "gemma3-270m" / "lens-raw.csv", "germany")}
    for layer, cells in tables[1].rows:
        row = by_layer[layer.value]
        assert [str(c.value) if c.key.endswith("_token") else c.value for c in cells] == [
            row[c.csv] if c.csv.endswith("_token") else pytest.approx(float(row[c.csv]), rel=1e-6)
            for c in tables[1].columns]
