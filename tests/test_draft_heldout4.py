"""Independent held-out evaluation (#4) of the narrative validator, written without reading it.

The harness (real fact sheet, drafts, a real loopback OpenAI-compatible stub server, one real build per draft,
verdicts) is imported from tests/test_draft_heldout2.py; the corpus here is new. For each bundled model:

- ERROR drafts: one wrong sentence among correct ones. Each error type imitates how a strong LLM goes wrong when it
  summarises a lens probe from a placeholder fact sheet: wrong rows or milestones, wrong orderings of milestones,
  wrong "between X and Y" ranges, wrong top tokens (another row's placeholder), wrong first/last claims, wrong
  interpretation findings (answer lost at the head, entropy dip, control preference, leakage, stability after the
  semantic layer, trajectory, paraphrase answers, raw-vs-norm figures at the head), wrong lens comparisons, suite,
  temperature and ablation claims, checklist contradictions in fresh paraphrase, counts in words, typed digits and
  tokens, field and unit swaps, the KL direction, overclaims (mechanism, generalisation, training, deployment
  advice), other models and meta sentences. The voice varies: terse, chatty, bullet fragments, hedged prose, a
  correct clause joined to a wrong one, the error inside a subordinate clause. Every instance is checked to be
  wrong for the data at hand at test time, and skipped where the data make it true; no number is hard-coded.
- CORRECT sentences: natural and varied, each checked to be true for the model at test time; they use only the
  model's own placeholders and type no digit or number word.

CAUGHT: the wrong sentence was removed (or its section fell back). FALSE ALARM: a correct sentence was removed.

Run: LENSREPORT_TEST_RUN=runs/bundled HF_HUB_OFFLINE=1 .venv/bin/python -m pytest tests/test_draft_heldout4.py -q -s
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from reportgen.build import write_derived
from reportgen.facts import extract_facts
from reportgen.prompt import build_prompt
from reportgen.rules import evaluate, load_rules
from reportgen.structure import build_data
from tests.conftest import BUNDLED_MODELS
from tests.test_draft_heldout2 import SECTIONS, Facts, Sent, make_drafts, run_draft, verdict_for

# Written by someone who never saw the validator. First measurement (2026-12-02, 13:00 UTC): smollm2 caught 69/92 =
# 75.0 % with 5/79 false alarms, gemma3-270m caught 68/92 = 73.9 % with 4/79; about 4.5 min per model.
# Issue 8 stays open on this corpus: written by someone who never saw the validator, it measured 75.0 % (smollm2)
# and 73.9 % (gemma3-270m) caught with 5 and 4 false alarms when it was written (targets: >= 95 %, 0).
pytestmark = [pytest.mark.slow,
              pytest.mark.xfail(reason="issue 8 open: held-out corpus 4 below 95 % caught / false alarms above 0",
                                strict=False)]

MIN_TYPES, MIN_ERRORS, MIN_CORRECT, MAX_PER_TYPE = 50, 90, 50, 2
# One build per draft (about 2 s each): every type keeps its first instance, second instances fill up to the budget.
ERROR_BUDGET = 92
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}
_ORDINALS = ("zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
# Words a correct sentence may not type (the prompt forbids number words): the cardinals up to twenty and fractions.
FORBIDDEN_WORDS = re.compile(r"\b(" + "|".join(_WORDS + ("twenty", "half", "third", "quarter")) + r")\b", re.I)


def word(n: int) -> str:
    """A whole number in words (0..59), as an LLM would spell a count."""
    if n < 20:
        return _WORDS[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_WORDS[ones]}" if ones else "")


# ---------------------------------------------------------------------------------------------------------------
# Facts: the harness's fact sheet, plus the interpretation findings the prompt shows


class Facts4(Facts):
    """Facts of heldout2 plus per-layer helpers and the interpretation findings of the same prompt."""

    def __init__(self, alias: str, run_model: Path, tmp: Path):
        super().__init__(alias, run_model, tmp)
        facts = extract_facts(run_model)
        checks = evaluate(load_rules(), facts)
        prompt = build_prompt(build_data(alias, facts, checks), checks, "artifacts/x/",
                              write_derived(facts, tmp, alias))
        user = prompt.messages[-1]["content"]
        block = user.split("Interpretation findings", 1)[1].split("```json", 1)[1].split("```", 1)[0]
        self.interp = {r[0]: (r[1], r[2]) for r in map(json.loads, filter(str.strip, block.splitlines()))}
        assert self.interp, "no interpretation findings in the prompt"
        self.top1_layers = [n for n in self.layers if self.rank(n) == 1]
        assert self.top1_layers[:1] == ([self.v("L_semantic")] if self.v("L_semantic") is not None else [])

    def status(self, rule: str) -> str | None:
        return self.interp[rule][0] if rule in self.interp else None

    def text(self, rule: str) -> str:
        return self.interp.get(rule, ("", ""))[1]

    def grab(self, rule: str, pattern: str) -> re.Match | None:
        return re.search(pattern, self.text(rule))

    # derived from the interpretation sentences (what the drafting LLM reads there)
    @property
    def dip(self) -> tuple[int, int, int] | None:
        """(window first, window last, post-copy entropy minimum layer) of the entropy-collapse finding."""
        w = self.grab("entropy_collapse", r"Between \{layer\[(\d+)\]\.layer\} and \{layer\[(\d+)\]\.layer\}")
        m = self.grab("entropy_collapse", r"(?:falls to|lowest entropy is) \{layer\[(\d+)\]\.entropy\}")
        return (int(w[1]), int(w[2]), int(m[1])) if w and m else None

    @property
    def paraphrase(self) -> tuple[int, int] | None:
        """(prompts whose head puts the answer on top, prompts without the answer)."""
        m = self.grab("test_prompt_answers", r"on top for (\d+|none) of the (\d+) test prompts")
        return (0 if m[1] == "none" else int(m[1]), int(m[2])) if m else None

    @property
    def control_rank(self) -> int | None:
        m = self.grab("control_prefers_primary", r"control answer (?:at rank|ranks) (\d+)")
        return int(m[1]) if m else None

    @property
    def max_kl_layer(self) -> int | None:
        m = self.grab("artifact_risk", r"largest divergence, \{max_kl_raw_vs_norm\} at (?:L\s?(\d+)|\{layer\[(\d+)\])")
        return int(m[1] or m[2]) if m else None

    @property
    def norm_only_layers(self) -> list[int] | None:
        m = self.grab("artifact_risk", r"norm lens only \(([^)]*)\)")
        return [int(x) for x in re.findall(r"(\d+)", m[1])] if m else None

    def first(self, pred) -> int | None:
        return next((n for n in self.layers if pred(n)), None)


# ---------------------------------------------------------------------------------------------------------------
# Corpus builders


class Corpus:
    """Collects sentences; an error is kept only when the data make it wrong, a correct one only when true."""

    def __init__(self, f: Facts4, error: bool):
        self.f, self.error, self.out, self.n = f, error, [], Counter()

    def add(self, kind: str, section: str, text: str, why: str, ok: bool) -> None:
        """`ok`: for an error, the data make the sentence wrong; for a correct sentence, they make it true."""
        if not ok or (self.error and self.n[kind] >= MAX_PER_TYPE):
            return
        if any(s.text == text for s in self.out):
            return
        self.n[kind] += 1
        self.out.append(Sent(kind, text, section, why))


def _pair(f: Facts4, cands, cond):
    return next(((a, b) for a, b in cands if a in f.layers and b in f.layers and a != b and cond(a, b)), None)


def error_sentences(f: Facts4) -> list[Sent]:
    c = Corpus(f, error=True)
    add, P, Lr, R, v, N = c.add, f.P, f.Lr, f.R, f.v, f.N
    sem, r10, r5, r1 = v("L_semantic"), v("first_rank_le_10"), v("first_rank_le_5"), v("first_rank_le_1")
    kl1, kl05, cos, Lc = v("first_kl_le_1"), v("first_kl_le_0_5"), v("first_cos_ge_0_6"), v("L_copy")
    frac, tier = v("L_semantic_depth_fraction"), v("lens_artifact_tier")
    mid, q1, q3 = N // 2, N // 4, (3 * N) // 4
    ver = f.verdicts

    # --- the semantic layer put at the wrong row or under another milestone's placeholder
    for k, sec, t in ((sem - 2 if sem and sem >= 2 else mid, "overview",
                       "If you follow the answer up the stack, it first becomes the top token at {k}, and it holds on "
                       "from there."),
                      (mid, "qualitative", "Answer top-1 first at {k} (norm lens).")):
        add("semantic_wrong_row", sec, t.format(k=Lr(k)), f"first top-1 layer is {sem}, not {k}",
            k != sem)
    add("semantic_wrong_milestone", "overview", f"Under the norm lens the answer first tops the distribution at "
        f"{P('first_cos_ge_0_6')}.", f"cosine milestone {cos} != L_semantic {sem}", cos != sem)
    add("semantic_wrong_milestone", "qualitative", f"The answer becomes the top token at {P('L_copy')}, right where "
        "the copy reflex fires.", f"L_copy {Lc} != L_semantic {sem}", Lc != sem)

    # --- rank and KL milestones at the wrong row
    k = (r5 - 3) if r5 is not None and r5 >= 3 else mid
    add("rank_milestone_early", "qualitative", f"The answer is already inside the top {P('rank_threshold_5')} by "
        f"{Lr(k)}.", f"rank at L{k} is {f.rank(k)}", f.rank(k) > 5)
    add("rank_milestone_early", "qualitative", f"Since the answer has entered the top {P('rank_threshold_10')} by "
        f"{Lr(mid)}, the remaining layers mostly sharpen a choice already made.", f"rank at L{mid} is {f.rank(mid)}",
        f.rank(mid) > 10)
    k = (kl1 - 2) if kl1 is not None and kl1 >= 2 else mid
    add("kl_milestone_wrong", "qualitative", f"KL to the final head first drops to {P('kl_threshold_1')} or below "
        f"at {Lr(k)}.", f"first KL<=1 at {kl1}", k != kl1)
    k = N - 3
    add("kl_milestone_wrong", "qualitative", f"The lens stays within {P('kl_threshold_0_5')} of the final head from "
        f"{Lr(k)} onward.", f"KL at L{k}..: {[round(f.kl(j), 2) for j in range(k, N + 1)]}",
        any(f.kl(j) > 0.5 for j in range(k, N + 1)))

    # --- raw-lens confirmation claimed where the data have none
    add("confirmation_claimed", "qualitative", f"The raw lens confirms the semantic layer within a window of "
        f"{P('confirm_window_radius')} layers.", "L_semantic_confirmed is null", v("L_semantic_confirmed") is None)
    add("confirmation_claimed", "overview", f"The answer first tops the norm lens at {P('L_semantic')}, and the raw "
        f"lens agrees within {P('confirm_window_radius')} layers, so the milestone is confirmed.",
        "correct clause + L_semantic_confirmed null", v("L_semantic_confirmed") is None and sem is not None)
    add("raw_lens_semantic", "qualitative", f"Under the raw lens the answer also becomes the top token, at {Lr(sem)}.",
        "L_semantic_raw is null", sem is not None and v("L_semantic_raw") != sem)
    add("raw_lens_semantic", "qualitative", "Interestingly, the raw lens reaches the answer a little before the norm "
        "lens does.", "L_semantic_raw is null", v("L_semantic_raw") is None or (sem is not None and
                                                                                v("L_semantic_raw") >= sem))

    # --- copy reflex at the wrong layer
    for k, t in ((2, "Strict copy collapse first appears at {k}."),
                 (3, "The copy reflex only kicks in at {k}, after a few layers of noise.")):
        add("copy_wrong_layer", "qualitative", t.format(k=Lr(k)), f"L_copy is {Lc}", Lc != k)

    # --- orderings of three milestones
    add("milestone_order", "qualitative", f"The sequence runs copy collapse at {P('L_copy')}, the answer on top at "
        f"{P('L_semantic')}, and only then a cosine of {P('cos_threshold_0_6')} with the final logits at "
        f"{P('first_cos_ge_0_6')}.", f"{Lc}, {sem}, {cos} not increasing",
        None in (Lc, sem, cos) or not (Lc < sem < cos))
    add("milestone_order", "overview", f"Reading the milestones in order: KL falls to {P('kl_threshold_1')} at "
        f"{P('first_kl_le_1')}, then the answer enters the top {P('rank_threshold_10')} at {P('first_rank_le_10')}, "
        f"and last it becomes the top token at {P('first_rank_le_1')}.", f"{kl1}, {r10}, {r1} not increasing",
        None in (kl1, r10, r1) or not (kl1 < r10 < r1))

    # --- "between X and Y"
    add("between_range", "qualitative", f"Somewhere between {Lr(q1)} and {Lr(mid)} the answer climbs into the top "
        f"{P('rank_threshold_10')}.", f"first rank<=10 at {r10}", r10 is None or not q1 <= r10 <= mid)
    a, b = N // 3, (2 * N) // 3
    add("between_range", "overview", f"The semantic layer falls between {Lr(a)} and {Lr(b)}, roughly mid-stack.",
        f"L_semantic {sem}", sem is None or not a <= sem <= b)
    dip = f.dip
    if dip:
        w0, w1, m = dip
        a, b = (N - 4, N - 1) if not N - 4 <= m <= N - 1 else (w0, w0 + 2)
        add("between_entropy", "qualitative", f"After the copy reflex, entropy bottoms out somewhere between {Lr(a)} "
            f"and {Lr(b)}.", f"post-copy minimum at L{m}", not a <= m <= b)
    amax = max(f.layers, key=f.ent)
    a, b = (1, 3) if not 1 <= amax <= 3 else (N - 3, N)
    add("between_entropy", "qualitative", f"The distribution is at its flattest, entropy peaking, between {Lr(a)} "
        f"and {Lr(b)}.", f"entropy argmax L{amax}", not a <= amax <= b)

    # --- which token is on top (another row's placeholder), first/last claims
    pairs = [(N - 1, mid), (q1, N - 1), (q3, q1), (mid, 2), (N - 2, q3)]
    p = _pair(f, pairs, lambda a, b: f.tok(a).strip() != f.tok(b).strip())
    if p:
        a, b = p
        add("top1_row_swap", "qualitative", f"At {Lr(a)} the top token is {R(b, 'top1_token')}.",
            f"L{a} top {f.tok(a)!r}, L{b} top {f.tok(b)!r}", True)
    p = _pair(f, pairs[::-1], lambda a, b: f.tok(a).strip() != f.tok(b).strip() and (a, b) != p)
    if p:
        a, b = p
        add("top1_row_swap", "qualitative", f"Notably, {R(b, 'top1_token')} dominates the lens output at {Lr(a)}, "
            "well before the answer shows up.", f"L{a} top {f.tok(a)!r}, L{b} top {f.tok(b)!r}", True)
    fin = str(v("final_top1_token")).strip()
    k = next((n for n in [mid, q1, q3, 2] if f.tok(n).strip() != fin), None)
    if k is not None:
        add("final_top_wrong", "overview", f"The final head puts {R(k, 'top1_token')} on top.",
            f"final top {fin!r}, L{k} top {f.tok(k)!r}", True)
    add("final_top_wrong", "qualitative", f"At the output the top token is the answer itself, {P('answer_token')}.",
        f"final top {fin!r} vs answer {v('answer_token')!r}", fin != str(v("answer_token")).strip())
    if fin == str(v("answer_token")).strip():
        k = next((n for n in [N - 1, N - 2] if f.tok(n).strip() != fin), None)
        if k is not None:
            add("final_top_wrong", "qualitative", f"Even at the head the model prefers {R(k, 'top1_token')} to the "
                "answer.", f"final top is the answer; L{k} top {f.tok(k)!r}", True)
    repeats = [n for n in f.layers if any(f.tok(j) == f.tok(n) for j in f.layers if j < n)]
    for k, t in zip(repeats[-1:] + repeats[len(repeats) // 2:len(repeats) // 2 + 1],
                    ("{k} is the first layer where {t} is the top token.",
                     "The token {t} first shows up on top at {k}, a sign the stack is shifting.")):
        add("first_claim_wrong", "qualitative", t.format(k=Lr(k), t=R(k, "top1_token")),
            f"{f.tok(k)!r} already on top at L{f.first(lambda j, k=k: f.tok(j) == f.tok(k))}", True)
    laters = [n for n in f.layers if any(f.tok(j) == f.tok(n) for j in f.layers if j > n)]
    for k, t in zip(laters[:1] + laters[len(laters) // 2:len(laters) // 2 + 1],
                    ("{t} holds the top slot for the last time at {k}.",
                     "After {k}, {t} never again leads the distribution.")):
        add("last_claim_wrong", "qualitative", t.format(k=Lr(k), t=R(k, "top1_token")),
            f"{f.tok(k)!r} on top again after L{k}", True)

    # --- another row's value
    p = _pair(f, [(mid, N - 1), (q1, q3), (N - 2, mid)], lambda a, b: f.rank(a) != f.rank(b))
    if p:
        a, b = p
        add("rank_row_swap", "qualitative", f"At {Lr(a)} the answer sits at rank {R(b, 'answer_rank')}.",
            f"rank L{a}={f.rank(a)}, L{b}={f.rank(b)}", True)
    k = next((n for n in (q1, mid, 2) if f.ent(n) != f.ent(N)), None)
    add("final_entropy_swap", "overview", f"The final head ends with an entropy of {R(k, 'entropy')}.",
        f"final entropy {f.ent(N):.3f}, L{k} {f.ent(k):.3f}", k is not None and abs(f.ent(k) - f.ent(N)) > 0.05)

    # --- comparisons flipped (entropy, KL), hedged and plain
    early = [n for n in f.layers if 1 <= n <= N - 1]
    pe = [(a, b) for a in early for b in early if f.ent(b) - f.ent(a) > 0.5]
    if pe:
        a, b = pe[0]
        add("entropy_compare_flip", "qualitative", f"Entropy is higher at {Lr(a)} than at {Lr(b)}.",
            f"{f.ent(a):.3f} < {f.ent(b):.3f}", True)
        a, b = pe[len(pe) // 2]
        add("entropy_compare_flip", "qualitative", f"It appears that the distribution is somewhat more peaked at "
            f"{Lr(b)} ({R(b, 'entropy')}) than at {Lr(a)} ({R(a, 'entropy')}).", f"{f.ent(b):.3f} > {f.ent(a):.3f}",
            True)
    pk = [(a, b) for a in early for b in early if a > b and f.kl(a) - f.kl(b) > 1.0]
    if pk:
        a, b = pk[0]
        add("kl_compare_flip", "qualitative", f"The lens is already closer to the final head at {Lr(a)} than at "
            f"{Lr(b)}.", f"KL {f.kl(a):.2f} > {f.kl(b):.2f}", True)
        a, b = pk[-1]
        add("kl_compare_flip", "qualitative", f"KL to the final head at {Lr(a)} ({R(a, 'kl_to_final')}) is lower than "
            f"at {Lr(b)} ({R(b, 'kl_to_final')}).", f"KL {f.kl(a):.2f} > {f.kl(b):.2f}", True)

    # --- monotonicity and "stays the same" over a stretch
    def nonmono(a, b, val, up):
        return any((val(j + 1) > val(j)) if not up else (val(j + 1) < val(j)) for j in range(a, b))
    add("trend_false", "qualitative", f"KL to the final head falls at every layer from {Lr(1)} to {Lr(mid)}.",
        "KL rises somewhere in the stretch", nonmono(1, mid, f.kl, up=False))
    add("trend_false", "qualitative", f"Rank-wise the answer improves at every step from {Lr(q1)} to {Lr(N - 1)}.",
        "rank worsens somewhere in the stretch", nonmono(q1, N - 1, f.rank, up=False))
    a, b = q1, q3
    add("stays_same_false", "qualitative", f"The top token stays {R(a, 'top1_token')} from {Lr(a)} to {Lr(b)}.",
        "top token changes in the stretch", any(f.tok(j) != f.tok(a) for j in range(a, b + 1)))
    a, b = 1, N // 3
    add("stays_same_false", "qualitative", f"Between {Lr(a)} and {Lr(b)} nothing changes at the top: "
        f"{R(a, 'top1_token')} leads throughout.", "top token changes in the stretch",
        any(f.tok(j) != f.tok(a) for j in range(a, b + 1)))

    # --- entropy at the unembedding: direction, rows, field swaps, signed value
    ch = v("entropy_change_at_unembed")
    wrong_dir = "rises" if ch < 0 else "falls"
    add("unembed_direction", "qualitative", f"At the last layer entropy {wrong_dir} by "
        f"{P('entropy_change_at_unembed_size')}.", f"signed change {ch:.3f}", ch != 0)
    lower = f.ent(N) < f.ent(N - 1)
    add("unembed_direction", "overview", f"The head {'broadens' if lower else 'sharpens'} the prediction: entropy at "
        f"{Lr(N)} is {'higher' if lower else 'lower'} than at {Lr(N - 1)}.",
        f"{f.ent(N):.3f} vs {f.ent(N - 1):.3f}", f.ent(N) != f.ent(N - 1))
    add("signed_value_words", "qualitative", f"Entropy changes by {P('entropy_change_at_unembed')} at the last layer, "
        f"{'an increase' if ch < 0 else 'a decrease'}.", f"signed change {ch:.3f}", ch != 0)
    d = v("entropy_change_first_to_last")
    add("signed_value_words", "qualitative", f"From the embedding layer to the head, entropy "
        f"{'falls' if d > 0 else 'rises'} overall, by {P('entropy_change_first_to_last_size')}.",
        f"first-to-last change {d:.3f}", d != 0)
    add("size_field_swap", "qualitative", f"Between the first and the last layer entropy "
        f"{P('entropy_direction_first_to_last')} by {P('entropy_change_at_unembed_size')}.",
        "that is the size of the last-layer change", abs(v("entropy_change_at_unembed_size")
                                                         - v("entropy_change_first_to_last_size")) > 0.01)

    # --- checklist contradictions, fresh paraphrase
    if ver.get("entropy_rise_at_unembed") == "✗":
        add("checklist_entropy_rise", "qualitative", "The output layer spreads probability more widely than the layer "
            "just before it.", "entropy_rise_at_unembed ✗", True)
    elif ver.get("entropy_rise_at_unembed") == "✓":
        add("checklist_entropy_rise", "qualitative", "The final layer narrows the distribution relative to the "
            "penultimate layer.", "entropy_rise_at_unembed ✓", True)
    if ver.get("filler_anchoring") == "✗":
        add("checklist_filler", "qualitative", "In the first few layers, function words like the and of take the top "
            "slot.", "filler_anchoring ✗", True)
        add("checklist_filler", "qualitative", "Filler anchoring: present, with articles on top early.",
            "filler_anchoring ✗", True)
    if ver.get("punctuation_anchoring") == "✓":
        add("checklist_punct", "qualitative", "Punctuation never becomes the top token at any layer.",
            "punctuation_anchoring ✓", True)
        add("checklist_punct", "fingerprint", "A clean profile with no punctuation or markup anchoring and an answer "
            f"that tops the norm lens at {P('L_semantic')}.", "punctuation_anchoring ✓", sem is not None)
    if ver.get("copy_reflex") == "✓":
        add("checklist_copy", "qualitative", "There is no copy reflex: the earliest layers do not echo the input "
            "token.", "copy_reflex ✓", True)
    if ver.get("tied_embedding_copy") == "✓" and v("tied_embeddings"):
        add("checklist_tied", "qualitative", "The embeddings are untied, so the copy at the embedding layer cannot "
            "come from weight tying.", "tied_embedding_copy ✓, tied", True)
    if ver.get("last_layer_gate") == "✓":
        add("checklist_gate", "overview", "The norm lens does not quite reproduce the model's own logits at the last "
            "layer, so even the final readings are approximate.", "last_layer_gate ✓", True)
    if ver.get("numeric_health") == "✓":
        add("checklist_numeric", "limitations", "Some NaN values turned up in the normed residuals and were masked "
            "out, which may bias the middle layers.", "numeric_health ✓", True)
    if ver.get("determinism") == "✓":
        add("checklist_numeric", "limitations", "Deterministic algorithms were disabled, so the per-layer figures may "
            "shift slightly between runs.", "determinism ✓", True)
    if ver.get("fp32_unembed") == "✓":
        add("checklist_precision", "limitations", "To save memory the lens head unembeds in bfloat16, which blurs the "
            "smallest probabilities.", "fp32_unembed ✓", True)
    if ver.get("copy_mask") == "✓":
        add("checklist_copy_mask", "qualitative", "The copy mask is empty, so no tokens are excluded from the copy "
            "test.", "copy_mask ✓ (non-empty)", True)
        add("checklist_copy_mask", "qualitative", f"The copy mask of {P('copy_mask_size')} tokens covers most of the "
            "vocabulary.", "copy_mask ✓ (< a fifth)", v("copy_mask_size") < 0.5 * v("vocab_size"))
    if ver.get("rms_lens") == "✓":
        add("checklist_norm_kind", "qualitative", "The final norm is a LayerNorm with a bias term, which the lens "
            "keeps as the model applies it.", "rms_lens ✓", True)
    if ver.get("softcap_applied") == "n.a.":
        add("checklist_softcap", "qualitative", "As the config requires, the lens applies a final-logit soft-cap "
            "before decoding.", "softcap_applied n.a. (none applied)", True)
    if ver.get("tuned_attribution") == "n.a.":
        add("tuned_lens_claim", "qualitative", "The tuned lens attributes most of the early-layer gap to rotation "
            "rather than temperature.", "tuned_attribution n.a.; no tuned lens", True)
        add("tuned_lens_claim", "limitations", f"A tuned lens, trained per layer, would move the semantic layer "
            f"earlier than {P('L_semantic')}, as it did here for the raw lens.", "no tuned lens; raw never semantic",
            True)

    # --- interpretation findings contradicted
    st = f.status("answer_lost_at_head")
    if st == "holds":
        add("interp_lost_at_head", "qualitative", f"The final head keeps {P('answer_token')} on top, so nothing is "
            "lost between the last layers and the output.", "answer_lost_at_head holds", True)
        add("interp_lost_at_head", "qualitative", f"Since the head ranks the answer {P('final_answer_rank')}, the answer "
            "was never the top token at any earlier layer.", f"top-1 at {f.top1_layers}", bool(f.top1_layers))
    elif st == "does not hold":
        add("interp_lost_at_head", "qualitative", "The answer is found in the middle of the stack and then lost at the "
            "head.", "answer_lost_at_head does not hold", True)
        add("interp_lost_at_head", "qualitative", f"{P('answer_token')} is the top token at {Lr(N - 2)}, but the head "
            "demotes it.", f"rank at L{N - 2} is {f.rank(N - 2)}; final rank {v('final_answer_rank')}",
            f.rank(N - 2) != 1 or v("final_answer_rank") == 1)
    if f.status("entropy_collapse") == "holds" and dip:
        w0, w1, m = dip
        add("interp_entropy_dip", "qualitative", f"Entropy never collapses after the copy reflex; it stays well spread "
            f"at every layer from {Lr(w0)} to {Lr(w1)}.", f"dips to {f.ent(m):.3f} at L{m}", f.ent(m) <= 1.0)
        k = next(n for n in (m + 3, m - 3, m + 1) if w0 <= n <= w1 and n != m)
        add("interp_entropy_dip", "qualitative", f"The entropy dip after the copy reflex reaches its lowest point at "
            f"{Lr(k)}, before recovering toward the head.", f"minimum at L{m}", True)
    mg = v("control_final_margin")
    if mg is not None and mg > 0:
        add("interp_control", "qualitative", "On the control prompt the model still prefers the primary answer over "
            "the control answer at the head.", f"margin {mg:.3f} > 0", True)
        add("interp_control", "qualitative", f"The control margin ends negative, at {P('control_final_margin')}, so the "
            "country named in the prompt barely steers the answer.", f"margin {mg:.3f} > 0", True)
    elif mg is not None and mg < 0:
        add("interp_control", "qualitative", "On the control prompt the control answer beats the primary answer at "
            "the head.", f"margin {mg:.3f} < 0", True)
    cr = f.control_rank
    if cr is not None:
        add("control_rank", "qualitative", "On the control prompt the control answer is the top token at the head, "
            f"with a margin of {P('control_final_margin')}.", f"control answer rank {cr}", cr != 1)
    st = f.status("test_prompt_leakage")
    if st == "holds":
        add("interp_leakage", "qualitative", "None of the test prompts that contain the gold answer keep it among "
            "their final top tokens.", "test_prompt_leakage holds", True)
        add("interp_leakage", "limitations", "Leakage can be ruled out here: writing the answer into a test prompt "
            "does not carry it into the prediction.", "test_prompt_leakage holds", True)
    elif st == "does not hold":
        add("interp_leakage", "qualitative", "The gold answer leaks from the test prompts that contain it into their "
            "final top tokens.", "test_prompt_leakage does not hold", True)
        add("interp_leakage", "limitations", "Some test prompts that already mention the answer keep it in their final "
            "top tokens, which inflates the apparent recall.", "test_prompt_leakage does not hold", True)
    pa = f.paraphrase
    if pa:
        on, tot = pa
        add("interp_paraphrase", "qualitative", f"The head puts {P('answer_token')} on top for none of the test prompts "
            "that do not contain it.", f"{on} of {tot}", on > 0)
        add("interp_paraphrase", "qualitative", f"For every paraphrase that leaves the answer out, the final head still "
            f"puts {P('answer_token')} on top.", f"{on} of {tot}", on < tot)
        add("count_words", "qualitative", f"The head answers {word(on + 1)} of the {word(tot)} paraphrase prompts "
            "correctly.", f"{on} of {tot}", True)
    st = f.status("semantic_stability")
    if sem is not None and sem < N and f.rank(N) != 1:
        add("interp_stability", "qualitative", f"From {P('L_semantic')} to the head the answer stays the top token at "
            "every layer.", f"final rank {f.rank(N)}", True)
        add("interp_stability", "fingerprint", f"Once the answer takes the top slot at {P('L_semantic')}, it keeps it "
            f"through {Lr(N)}.", f"rank {f.rank(N)} at L{N}", True)
    elif sem == N:
        add("interp_stability", "qualitative", f"After {P('L_semantic')} the answer stays on top for several layers "
            "before the head.", "the semantic layer is the head", True)
        add("interp_stability", "qualitative", f"The answer briefly drops out of the top slot after {P('L_semantic')} "
            "and recovers at the head.", "the semantic layer is the head", True)
    if r5 is not None and r1 is not None:
        add("interp_trajectory", "qualitative", f"The answer enters the top {P('rank_threshold_5')} at "
            f"{P('first_rank_le_5')} and becomes the top token {word(r1 - r5 + 3)} layers later.",
            f"gap {r1 - r5}", True)
        add("interp_trajectory", "overview", f"The answer enters the top {P('rank_threshold_5')} well before it becomes "
            "the top token.", f"{r5} vs {r1}", r5 == r1)
    mk, no = f.max_kl_layer, f.norm_only_layers
    if mk is not None and mk != N:
        add("interp_artifact_head", "qualitative", f"The largest raw-vs-norm divergence, {P('max_kl_raw_vs_norm')}, "
            "sits at the head itself.", f"largest at L{mk}", True)
    if no is not None and no != [N]:
        add("interp_artifact_head", "qualitative", "The only norm-only semantic layer is the head, where the norm lens "
            "is the model's own head.", f"norm-only layers {no}", True)
    if mk is not None:
        k = next(n for n in (mid, q3, N - 2) if n != mk)
        add("interp_artifact_head", "qualitative", f"The raw and norm lenses diverge most at {Lr(k)}, where their KL "
            f"reaches {P('max_kl_raw_vs_norm')}.", f"largest at L{mk}", True)

    # --- lens comparisons
    add("lens_tier_wrong", "overview", "The lens-artifact tier is low, so the raw and norm lenses mostly agree.",
        f"tier {tier}", tier != "low")
    add("lens_tier_wrong", "qualitative", f"Raw and norm lenses differ by {P('kl_threshold_1')} or more at only a "
        "minority of layers.", f"share {v('share_layers_raw_norm_kl_ge_1')}",
        v("share_layers_raw_norm_kl_ge_1") >= 0.5)
    add("lens_agreement", "qualitative", "The norm lens and the raw lens put the answer on top at the same layer.",
        f"raw {v('L_semantic_raw')} vs norm {sem}", v("L_semantic_raw") != sem)
    add("lens_agreement", "qualitative", f"At no layer do the raw and norm lenses differ by more than "
        f"{P('kl_threshold_1')}.", f"largest KL {v('max_kl_raw_vs_norm')}", v("max_kl_raw_vs_norm") > 1)
    n_no = v("n_norm_only_semantic_layers")
    add("norm_only_count", "qualitative", "No layer is semantic under the norm lens alone.", f"count {n_no}", n_no > 0)
    add("norm_only_count", "qualitative", "Several layers have the answer on top under the norm lens only.",
        f"count {n_no}", n_no < 3)

    # --- micro-suite
    missing = [x for x in f.suite if f.sv(x, "L_semantic") is None]
    reached = [x for x in f.suite if f.sv(x, "L_semantic") is not None]
    nm = v("suite_n_missing")
    add("suite_reach", "qualitative", "Every micro-suite fact reaches the top slot at some layer.", f"{nm} missing",
        nm > 0)
    if missing and reached:
        x, y = missing[0], reached[-1]
        add("suite_reach", "qualitative", f"{f.S(x, 'answer')} reaches the top slot at {f.S(y, 'L_semantic')}.",
            f"{x} never reaches top-1", True)
    add("count_words", "qualitative", f"All but {word(nm + 1)} of the micro-suite facts reach the top slot.",
        f"{nm} missing", True)
    ps = next(((a, b) for a in f.suite for b in f.suite if a != b
               and f.sv(a, "final_rank") != f.sv(b, "final_rank")), None)
    if ps:
        a, b = ps
        add("suite_row_swap", "qualitative", f"{f.S(a, 'answer')} ends at rank {f.S(b, 'final_rank')}.",
            f"{a} rank {f.sv(a, 'final_rank')}, {b} rank {f.sv(b, 'final_rank')}", True)
    med = v("suite_L_semantic_median")
    if med is not None and sem is not None:
        if med >= sem:
            add("suite_median_compare", "qualitative", f"Across the micro-suite the median semantic layer, "
                f"{P('suite_L_semantic_median')}, comes earlier than the primary prompt's {P('L_semantic')}.",
                f"median {med} vs {sem}", True)
        if med <= sem:
            add("suite_median_compare", "qualitative", f"The primary prompt is an early case: its semantic layer "
                f"{P('L_semantic')} precedes the suite median of {P('suite_L_semantic_median')}.",
                f"median {med} vs {sem}", True)
        add("suite_median_compare", "qualitative", f"The micro-suite median semantic layer matches the primary prompt's, "
            f"at {P('suite_L_semantic_median')}.", f"median {med} vs {sem}", med != sem)

    # --- temperature and ablation
    lo, hi = f.t_lo, f.t_hi
    add("temperature_wrong", "qualitative", f"Raising the temperature from {f.T(lo, 'temperature')} to "
        f"{f.T(hi, 'temperature')} lowers entropy, from {f.T(lo, 'entropy')} to {f.T(hi, 'entropy')}.",
        "entropy rises with temperature", f.tv(hi, "entropy") > f.tv(lo, "entropy"))
    add("temperature_wrong", "qualitative", f"At the higher temperature {f.T(hi, 'temperature')} the answer slips in "
        f"rank, from {f.T(lo, 'answer_rank')} to {f.T(hi, 'answer_rank')}.",
        f"ranks {f.tv(lo, 'answer_rank')} -> {f.tv(hi, 'answer_rank')}",
        f.tv(hi, "answer_rank") <= f.tv(lo, "answer_rank"))
    add("prob_row_swap", "qualitative", f"At temperature {f.T(lo, 'temperature')} the answer's probability is "
        f"{f.T(hi, 'p_answer')}.", "that is the high-temperature probability",
        not _close(f.tv(lo, "p_answer"), f.tv(hi, "p_answer")))
    add("prob_row_swap", "overview", f"The final head gives the answer a probability of {P('final_p_top1')}.",
        "that is the top-1 probability", not _close(v("final_p_top1"), v("final_p_answer")))
    abl = v("ablation_L_semantic_no_filler")
    if abl is not None and sem is not None:
        if abl == sem:
            add("ablation_wrong", "qualitative", f"Removing filler words brings the semantic layer forward, to "
                f"{P('ablation_L_semantic_no_filler')}.", f"unchanged at {abl}", True)
            add("ablation_wrong", "limitations", f"Because stripping filler words delays the answer to "
                f"{P('ablation_L_semantic_no_filler')}, the prompt's wording matters.", f"unchanged at {abl}", True)
        else:
            add("ablation_wrong", "qualitative", f"Removing filler words leaves the semantic layer where it was, at "
                f"{P('ablation_L_semantic_no_filler')}.", f"{abl} vs {sem}", True)
            add("ablation_wrong", "limitations", f"Because stripping filler words "
                f"{'delays' if abl < sem else 'advances'} the answer to {P('ablation_L_semantic_no_filler')}, the "
                "prompt's wording matters.", f"{abl} vs {sem}", True)

    # --- cosine and depth
    add("cosine_order", "qualitative", f"The lens logits reach a cosine of {P('cos_threshold_0_6')} with the final "
        f"logits only after the answer is on top at {P('L_semantic')}.", f"cos {cos} vs sem {sem}",
        cos is not None and sem is not None and cos < sem)
    add("cosine_order", "qualitative", f"Cosine alignment with the final logits lags the KL milestone: it comes at "
        f"{P('first_cos_ge_0_6')}, after {P('first_kl_le_1')}.", f"cos {cos} vs kl {kl1}",
        cos is not None and kl1 is not None and cos < kl1)
    add("depth_wrong", "overview", "The answer surfaces around the middle of the stack.", f"depth fraction {frac}",
        frac is not None and not 0.35 <= frac <= 0.65)
    add("depth_wrong", "fingerprint", f"An early-resolving profile: with a depth fraction of "
        f"{P('L_semantic_depth_fraction')}, the answer is settled in the first half of the network.",
        f"depth fraction {frac}", frac is not None and frac > 0.5)

    # --- counts and positions in words, typed digits and tokens
    add("layers_in_words", "overview", f"Across its {word(N - 6)} layers, the model keeps the answer out of the top slot "
        f"until {P('L_semantic')}.", f"{N} layers", True)
    if sem is not None:
        gap = N - sem
        add("layers_in_words", "qualitative", f"The answer takes the top slot {word(gap + 3)} layers before the head.",
            f"{gap} layers before", True)
    fr = v("final_answer_rank")
    o = 2 if fr != 2 else 3
    add("rank_words", "overview", f"At the output the answer sits in {_ORDINALS[o]} place.", f"final rank {fr}", fr != o)
    k = N - 1
    add("rank_words", "qualitative", f"At {Lr(k)} the answer is just two places outside the top slot.",
        f"rank {f.rank(k)} at L{k}", f.rank(k) != 3)
    add("window_words", "qualitative", f"The raw lens gets a confirmation window of {word(v('confirm_window_radius') + 3)} "
        "layers around the semantic layer.", f"radius {v('confirm_window_radius')}", True)
    k = next(n for n in (q1, mid, q3) if f.tok(n).strip() != "Paris")
    add("typed_token", "qualitative", f'At {Lr(k)} the top token is "Paris".', f"top {f.tok(k)!r}", True)
    add("typed_token", "overview", "The final head's favourite is 'Germany', not the capital.",
        f"final top {fin!r}", fin != "Germany")
    k = (sem - 4) if sem is not None and sem >= 4 else 3
    add("typed_digits", "overview", f"The answer becomes the top token at layer {k}.", f"L_semantic {sem}", sem != k)
    k = next(n for n in (7, 9, 5) if n in f.layers)
    add("typed_digits", "qualitative", f"Entropy falls to about 0.1 bits at layer {k}.", f"entropy {f.ent(k):.3f}",
        abs(f.ent(k) - 0.1) > 0.05)

    # --- field, unit and direction confusions
    add("field_swap", "overview", f"The model has {P('d_model')} layers.", "d_model is the width",
        v("d_model") != N)
    add("field_swap", "qualitative", f"Punctuation is the top token at {P('copy_mask_size')} layers.",
        "copy_mask_size is a token count", v("copy_mask_size") != v("n_punctuation_top1_layers"))
    other_ans = next(x for x in f.suite if str(f.sv(x, "answer")) != str(v("answer_token")))
    add("answer_token_wrong", "overview", f"The primary prompt's gold answer is {f.S(other_ans, 'answer')}.",
        f"gold answer {v('answer_token')}", True)
    add("gate_kl_swap", "overview", f"The last-layer gate KL is {P('max_kl_raw_vs_norm')}, above its threshold of "
        f"{P('gate_threshold')}.", f"gate KL {v('gate_kl')}", v("max_kl_raw_vs_norm") != v("gate_kl"))
    strong = v("L_semantic_strong")
    k = N if strong != N else N - 3
    add("strong_gate_wrong", "qualitative", f"The strong semantic gate is passed only at {Lr(k)}.",
        f"L_semantic_strong {strong}", strong != k)
    kmax = max(f.layers, key=f.kl)
    k = next(n for n in (mid, q3, N - 1) if n != kmax)
    add("argmax_wrong", "qualitative", f"KL to the final head is largest at {Lr(k)}.", f"argmax L{kmax}", True)
    k = next(n for n in (mid, 2, N - 2) if n != amax)
    add("argmax_wrong", "qualitative", f"Entropy peaks at {Lr(k)}, where the lens is least decided.",
        f"argmax L{amax}", True)
    k = next(n for n in (q1, mid) if abs(f.ent(n) - f.rank(n)) > 0.5)
    add("unit_confusion", "qualitative", f"The answer's rank at {Lr(k)} is {R(k, 'entropy')}.",
        f"rank {f.rank(k)}, entropy {f.ent(k):.3f}", True)
    k = next(n for n in (q3, mid) if abs(f.ent(n) - f.kl(n)) > 0.5)
    add("unit_confusion", "qualitative", f"Entropy at {Lr(k)} is {R(k, 'kl_to_final')}.",
        f"entropy {f.ent(k):.3f}, KL {f.kl(k):.3f}", True)
    rk = sorted((n for n in f.reverse_kl if f.kl(n) > 0 and not _close(f.reverse_kl[n], f.kl(n), 0.05)),
                key=lambda n: -abs(f.reverse_kl[n] - f.kl(n)))
    for k, t in zip(rk[:2], ("KL(final ‖ layer) at {k} is {x}.",
                             "Measured from the final distribution to the layer's, the divergence at {k} is {x}.")):
        add("kl_direction", "qualitative", t.format(k=Lr(k), x=R(k, "kl_to_final")),
            f"KL(final‖layer) {f.reverse_kl[k]:.3f} vs KL(layer‖final) {f.kl(k):.3f}", True)
    add("threshold_confusion", "qualitative", f"The answer enters the top {P('rank_threshold_5')} at "
        f"{P('first_kl_le_1')}.", f"rank5 {r5} vs kl1 {kl1}", r5 != kl1)
    add("threshold_confusion", "qualitative", f"KL falls below {P('kl_threshold_0_5')} at {P('first_rank_le_10')}.",
        f"kl05 {kl05} vs r10 {r10}", kl05 != r10)
    a, b = 1 if f.kl(1) > 0 else 2, N - 1
    add("magnitude_word", "qualitative", f"KL to the final head drops by orders of magnitude from {Lr(a)} to "
        f"{Lr(b)}.", f"{f.kl(a):.2f} -> {f.kl(b):.2f}", f.kl(b) > 0 and f.kl(a) / f.kl(b) < 100)
    if dip:
        m = dip[2]
        add("magnitude_word", "qualitative", f"Entropy collapses by orders of magnitude, from {R(amax, 'entropy')} at "
            f"{Lr(amax)} to {R(m, 'entropy')} at {Lr(m)}.", f"{f.ent(amax):.2f} -> {f.ent(m):.3f}",
            f.ent(m) > 0 and f.ent(amax) / f.ent(m) < 100)

    # --- overclaims, other models, advice, meta (claims no measurement here can check)
    add("mechanism", "qualitative", "Attention heads in the middle layers retrieve the capital and write it into the "
        "residual stream.", "mechanism: no attribution was run", True)
    add("mechanism", "fingerprint", f"A late-binding circuit in which the MLPs of the last blocks look up the "
        f"capital just before {P('L_semantic')}.", "mechanism: no attribution was run", True)
    add("generalisation", "limitations", "These results should carry over to other factual prompts and to other "
        "languages.", "only capital-city prompts in one language", True)
    add("generalisation", "overview", f"Like most small transformers, {P('model_id')} resolves factual answers only "
        "in its last layers.", "claim about other models", True)
    add("training_claim", "limitations", "The late emergence suggests the model saw too little geography during "
        "pretraining.", "training data: not measured", True)
    add("training_claim", "qualitative", "Distillation from a larger teacher explains why the answer appears so "
        "abruptly.", "training procedure: not measured", True)
    add("deployment_advice", "limitations", "For production use the model is reliable enough to deploy for factual "
        "look-ups.", "deployment advice", True)
    add("deployment_advice", "limitations", "We would not recommend this model for medical question answering.",
        "advice outside the measurements", True)
    add("other_models", "overview", "Compared with GPT-2, this model reaches the answer later in its stack.",
        "another model", True)
    add("other_models", "limitations", "Larger Llama and Gemma checkpoints show the same late collapse, so the size "
        "of the model does not matter.", "other models", True)
    add("meta", "overview", "As an AI language model, I cannot inspect the weights directly, but the numbers suggest "
        "a late answer.", "meta sentence", True)
    add("meta", "limitations", "This section was drafted automatically and has not been reviewed by a human.",
        "meta sentence", True)
    return _within_budget(c.out)


def _within_budget(errors: list[Sent]) -> list[Sent]:
    seen: set[str] = set()
    first = [e for e in errors if not (e.kind in seen or seen.add(e.kind))]
    rest = [e for e in errors if e not in first]
    rest = rest[::2] + rest[1::2]  # spread the second instances over the whole list of types
    keep = first + rest[:max(0, ERROR_BUDGET - len(first))]
    return [e for e in errors if e in keep]


def _close(a, b, rel=1e-3) -> bool:
    return abs(float(a) - float(b)) <= rel * max(abs(float(a)), abs(float(b)), 1e-12)


def correct_sentences(f: Facts4) -> list[Sent]:
    c = Corpus(f, error=False)
    add, P, Lr, R, v, N = c.add, f.P, f.Lr, f.R, f.v, f.N
    sem, r10, r5, r1 = v("L_semantic"), v("first_rank_le_10"), v("first_rank_le_5"), v("first_rank_le_1")
    kl1, kl05, cos, Lc = v("first_kl_le_1"), v("first_kl_le_0_5"), v("first_cos_ge_0_6"), v("L_copy")
    frac, ver, mid = v("L_semantic_depth_fraction"), f.verdicts, N // 2
    conf_none = v("L_semantic_confirmed") is None and v("L_semantic_raw") is None

    # overview
    add("arch", "overview", f"{P('model_id')} is a {P('architecture')} with {P('n_layers')} transformer layers, a "
        f"residual width of {P('d_model')} and a vocabulary of {P('vocab_size')} tokens.", "facts", True)
    add("semantic", "overview", f"Under the norm lens, {P('answer_token')} first becomes the top token at "
        f"{P('L_semantic')}.", "definition", sem is not None)
    add("unconfirmed", "overview", "The raw lens never puts the answer on top, so the semantic layer stays "
        "unconfirmed.", "raw and confirmed null", conf_none and ver.get("confirmed_semantics") == "✗")
    add("tier", "overview", f"With a {P('lens_artifact_tier')} lens-artifact tier (score {P('lens_artifact_score')}), "
        "this evaluation reads ranks and milestones rather than probabilities.", "guidance", bool(v("prefer_ranks")))
    add("gate", "overview", f"The last-layer gate passes: at the head the norm lens matches the model's own logits, "
        f"with a KL of {P('gate_kl')} against a threshold of {P('gate_threshold')}.", "gate",
        v("gate_passed") and v("gate_kl") < v("gate_threshold") and ver.get("last_layer_gate") == "✓")
    fin_is_answer = str(v("final_top1_token")).strip() == str(v("answer_token")).strip()
    if v("final_answer_rank") == 1 and fin_is_answer:
        add("final", "overview", f"At the output the answer holds rank {P('final_answer_rank')}, so "
            f"{P('final_top1_token')} is the final top token.", "rank 1", True)
    else:
        add("final", "overview", f"At the output the answer slips to rank {P('final_answer_rank')}, behind "
            f"{P('final_top1_token')}.", "rank > 1", v("final_answer_rank") > 1)
    add("depth", "overview", f"The semantic layer lies at a depth fraction of {P('L_semantic_depth_fraction')} of the "
        "stack.", "fact", frac is not None)
    add("late", "overview", f"Put simply, {P('model_id')} commits to {P('answer_token')} late: the answer is not on "
        f"top at any layer before {P('L_semantic')}.", "frac >= 0.75", frac is not None and frac >= 0.75)
    add("tied", "overview", f"Input and output embeddings are tied, and the final norm is an {P('final_norm_kind')}.",
        "facts", bool(v("tied_embeddings")) and v("final_norm_kind") == "RMSNorm")
    add("hedge_tier", "overview", f"Because the lens-artifact tier is {P('lens_artifact_tier')}, the norm-lens "
        "milestones may partly reflect the lens rather than the model.", "hedge", v("lens_artifact_tier") == "high")

    # qualitative
    add("copy", "qualitative", f"A copy reflex shows at {P('L_copy')}, and tied embeddings explain the copying at the "
        "embedding layer.", "both ✓", ver.get("copy_reflex") == "✓" and ver.get("tied_embedding_copy") == "✓"
        and Lc is not None)
    add("row0", "qualitative", f"At {Lr(0)} the top token is {R(0, 'top1_token')}, with an entropy of "
        f"{R(0, 'entropy')}.", "row", True)
    dip = f.dip
    if dip and f.status("entropy_collapse") == "holds":
        m = dip[2]
        add("dip", "qualitative", f"After the copy layers, entropy falls to {R(m, 'entropy')} at {Lr(m)} and climbs "
            f"back to {R(N, 'entropy')} at the head.", "finding", f.ent(N) > f.ent(m))
        add("dip_hidden", "qualitative", "The first-to-last entropy change hides the dip that follows the copy "
            "reflex.", "finding", True)
    add("unembed", "qualitative", f"Entropy {P('entropy_direction_at_unembed')} by "
        f"{P('entropy_change_at_unembed_size')} at the last layer.", "direction + size", True)
    add("first_last", "qualitative", f"Over the whole stack, from the first to the last layer, entropy "
        f"{P('entropy_direction_first_to_last')} by {P('entropy_change_first_to_last_size')}.", "direction + size",
        True)
    add("rank_ms", "qualitative", f"The answer enters the top {P('rank_threshold_10')} at {P('first_rank_le_10')} and "
        f"the top {P('rank_threshold_5')} at {P('first_rank_le_5')}.", "definitions", None not in (r10, r5))
    add("kl_ms", "qualitative", f"KL to the final head first falls to {P('kl_threshold_1')} or below at "
        f"{P('first_kl_le_1')}, and to {P('kl_threshold_0_5')} or below at {P('first_kl_le_0_5')}.", "definitions",
        None not in (kl1, kl05))
    add("cos_ms", "qualitative", f"The lens logits reach a cosine of {P('cos_threshold_0_6')} with the final logits at "
        f"{P('first_cos_ge_0_6')}, before the answer takes the top slot at {P('L_semantic')}.", "cos < sem",
        None not in (cos, sem) and cos < sem)
    add("raw_norm", "qualitative", f"Raw and norm lenses differ by at least {P('kl_threshold_1')} on a share of "
        f"{P('share_layers_raw_norm_kl_ge_1')} of the layers, and their largest KL is {P('max_kl_raw_vs_norm')}.",
        "facts", True)
    add("norm_only", "qualitative", f"The count of layers that are semantic under the norm lens only is "
        f"{P('n_norm_only_semantic_layers')}.", "fact", True)
    mg = v("control_final_margin")
    add("control", "qualitative", f"On the control prompt the control answer ends ahead of the primary answer, by a "
        f"final margin of {P('control_final_margin')}.", "margin > 0", mg is not None and mg > 0)
    add("control_words", "qualitative", "At the head the control prompt prefers its own answer to the primary "
        "answer.", "finding clear", mg is not None and mg > 0 and f.status("control_prefers_primary") == "does not hold")
    add("punct", "qualitative", f"Punctuation is the top token at {P('n_punctuation_top1_layers')} layers.", "✓",
        ver.get("punctuation_anchoring") == "✓")
    add("filler", "qualitative", "Grammatical fillers such as articles never take the top slot in the early layers.",
        "✗", ver.get("filler_anchoring") == "✗")
    runs, start = [], 0
    for n in f.layers[1:] + [None]:
        if n is None or f.tok(n) != f.tok(start):
            runs.append((start, (n if n is not None else N + 1) - 1))
            start = n
    a, b = max(runs, key=lambda r: r[1] - r[0])
    add("run", "qualitative", f"From {Lr(a)} through {Lr(b)} the top token stays {R(a, 'top1_token')}.",
        f"same token L{a}..L{b}", b - a >= 2)
    a, b = mid, N - 1
    add("rank_improves", "qualitative", f"The answer's rank improves from {R(a, 'answer_rank')} at {Lr(a)} to "
        f"{R(b, 'answer_rank')} at {Lr(b)}.", f"{f.rank(a)} -> {f.rank(b)}", f.rank(b) < f.rank(a))
    early = [n for n in f.layers if 1 <= n <= N - 1]
    pk = [(a, b) for a in early for b in early if b > a + 2 and f.kl(a) - f.kl(b) > 2.0]
    if pk:
        a, b = pk[-1]
        add("kl_compare", "qualitative", f"The lens is closer to the final head at {Lr(b)} than at {Lr(a)}, with KL "
            f"of {R(b, 'kl_to_final')} against {R(a, 'kl_to_final')}.", f"{f.kl(b):.2f} < {f.kl(a):.2f}", True)
    pe = [(a, b) for a in early for b in early if a < b and f.ent(a) - f.ent(b) > 1.0]
    if pe:
        a, b = pe[-1]
        add("entropy_compare", "qualitative", f"Entropy is lower at {Lr(b)} ({R(b, 'entropy')}) than at {Lr(a)} "
            f"({R(a, 'entropy')}).", f"{f.ent(b):.3f} < {f.ent(a):.3f}", True)
    amax = max(f.layers, key=f.ent)
    add("entropy_max", "qualitative", f"Entropy peaks at {Lr(amax)}, where it reaches {R(amax, 'entropy')}.",
        f"argmax L{amax}", True)
    kmax = max(f.layers, key=f.kl)
    add("kl_max", "qualitative", f"KL to the final head is largest at {Lr(kmax)}, at {R(kmax, 'kl_to_final')}.",
        f"argmax L{kmax}", True)
    amin = min(f.layers, key=f.ent)
    add("entropy_min", "qualitative", f"Entropy is lowest of all at {Lr(amin)} ({R(amin, 'entropy')}), the layer of "
        "the copy reflex.", f"argmin L{amin} == L_copy", amin == Lc)
    if f.status("answer_lost_at_head") == "holds" and f.top1_layers:
        t = f.top1_layers[-1] if f.top1_layers[-1] < N else f.top1_layers[0]
        add("lost", "qualitative", f"{P('answer_token')} is the top token at {Lr(t)}, but the final head ranks it "
            f"{R(N, 'answer_rank')} and puts {R(N, 'top1_token')} on top.", "finding", f.rank(N) > 1 and t < N)
    elif f.status("answer_lost_at_head") == "does not hold":
        add("lost", "qualitative", f"The final head keeps {P('answer_token')} on top, at rank {R(N, 'answer_rank')}, so "
            "the answer is not lost at the head.", "finding", f.rank(N) == 1)
    st = f.status("test_prompt_leakage")
    add("leak", "qualitative", "Some test prompts that already contain the gold answer still keep it among their "
        "final top tokens.", "leakage holds", st == "holds")
    add("leak", "qualitative", "Test prompts that already contain the gold answer do not keep it among their final "
        "top tokens.", "leakage does not hold", st == "does not hold")
    pa = f.paraphrase
    add("paraphrase", "qualitative", f"On some of the test prompts that do not contain the answer, the final head puts "
        f"{P('answer_token')} on top.", "finding", bool(pa) and 0 < pa[0])
    st = f.status("semantic_stability")
    if st == "holds" and sem is not None and f.rank(N) > 1:
        add("stability", "qualitative", f"The answer does not stay on top after {P('L_semantic')}: at {Lr(N)} it "
            f"falls to rank {R(N, 'answer_rank')}.", "finding", True)
    add("stability", "qualitative", "The semantic layer is the head itself, so whether the answer stays on top after "
        "it cannot be evaluated.", "sem == N", sem == N and st == "not evaluable")
    lo, hi = f.t_lo, f.t_hi
    add("temp_entropy", "qualitative", f"Raising the temperature from {f.T(lo, 'temperature')} to "
        f"{f.T(hi, 'temperature')} raises entropy from {f.T(lo, 'entropy')} to {f.T(hi, 'entropy')}.",
        "entropy up", f.tv(hi, "entropy") > f.tv(lo, "entropy"))
    add("temp_rank", "qualitative", f"The answer's rank is {f.T(lo, 'answer_rank')} at temperature "
        f"{f.T(lo, 'temperature')} and {f.T(hi, 'answer_rank')} at {f.T(hi, 'temperature')}.", "rows", True)
    abl = v("ablation_L_semantic_no_filler")
    if abl is not None and sem is not None:
        how = ("moves the semantic layer earlier, to" if abl < sem else
               "leaves the semantic layer at" if abl == sem else "moves the semantic layer later, to")
        add("ablation", "qualitative", f"Removing filler words {how} {P('ablation_L_semantic_no_filler')}.",
            f"{abl} vs {sem}", True)
    add("suite_missing", "qualitative", f"In the micro-suite, {P('suite_n_missing')} facts never reach the top slot.",
        "fact", v("suite_n_missing") > 1)
    reached = [x for x in f.suite if f.sv(x, "L_semantic") is not None and str(f.sv(x, "answer"))
               != str(v("answer_token"))]
    for x in reached[:2]:
        add("suite_reached", "qualitative", f"{f.S(x, 'answer')} reaches the top slot at {f.S(x, 'L_semantic')}.",
            f"{x} reached", True)
    missing = [x for x in f.suite if f.sv(x, "L_semantic") is None]
    for x in missing[:2]:
        add("suite_never", "qualitative", f"{f.S(x, 'answer')} never reaches the top slot and ends at rank "
            f"{f.S(x, 'final_rank')}.", f"{x} null", True)
    add("suite_median", "qualitative", f"The micro-suite median semantic layer is {P('suite_L_semantic_median')}.",
        "fact", v("suite_L_semantic_median") is not None)
    add("mask", "qualitative", f"The copy mask holds {P('copy_mask_size')} of the {P('vocab_size')} vocabulary "
        "tokens.", "facts", True)
    mk, no = f.max_kl_layer, f.norm_only_layers
    add("artifact_head", "qualitative", f"The largest raw-vs-norm divergence, {P('max_kl_raw_vs_norm')}, is at the "
        f"head, {Lr(N)}, where the norm lens is the model's own head.", "finding", mk == N)
    add("artifact_head", "qualitative", f"The only norm-only semantic layer is the head, {Lr(N)}, where the norm lens "
        "is the model's own head.", "finding", no == [N] and v("n_norm_only_semantic_layers") == 1)
    add("strong", "qualitative", f"The strong semantic gate is first passed at {P('L_semantic_strong')}.", "fact",
        v("L_semantic_strong") is not None)
    add("soft_copy", "qualitative", f"The first soft copy layer is {P('L_copy_soft_k1')}, and the copy milestone is "
        f"{P('copy_stability')}.", "facts", v("L_copy_soft_k1") is not None)
    a = N // 3
    add("rank_row", "qualitative", f"At {Lr(a)} the answer still ranks {R(a, 'answer_rank')}.", "row", f.rank(a) > 1)
    if r10 is not None and r10 >= 1 and f.rank(r10 - 1) > 10:
        add("not_yet", "qualitative", f"At {Lr(r10 - 1)} the answer is not yet in the top {P('rank_threshold_10')}: "
            f"its rank there is {R(r10 - 1, 'answer_rank')}.", f"rank {f.rank(r10 - 1)}", True)
        add("first_in", "qualitative", f"At {Lr(r10)} the answer's rank is {R(r10, 'answer_rank')}, inside the top "
            f"{P('rank_threshold_10')} for the first time.", "definition", f.rank(r10) <= 10)
    add("numeric", "qualitative", "No NaN or Inf values turned up in the residuals, normed residuals or logits.", "✓",
        ver.get("numeric_health") == "✓" and not v("any_nan_or_inf"))
    add("determinism", "qualitative", "Deterministic algorithms were enabled for the run.", "✓",
        ver.get("determinism") == "✓")
    add("precision", "qualitative", "The lens head unembeds in full precision.", "✓", ver.get("fp32_unembed") == "✓")
    add("fragment", "qualitative", f"Copy collapse at {P('L_copy')}; answer on top at {P('L_semantic')}; KL at or "
        f"under {P('kl_threshold_1')} first at {P('first_kl_le_1')}.", "milestones", None not in (Lc, sem, kl1))
    s = N
    while s > 0 and f.kl(s - 1) > f.kl(s):
        s -= 1
    add("kl_trend", "qualitative", f"From {Lr(s)} to {Lr(N)} KL to the final head falls at every layer.",
        f"strictly decreasing from L{s}", N - s >= 3)
    add("outside", "qualitative", f"The answer appears to stay outside the top {P('rank_threshold_10')} until "
        f"{P('first_rank_le_10')}.", "definition", r10 is not None and r10 > 0)
    add("window", "qualitative", f"The raw lens gets a confirmation window of {P('confirm_window_radius')} layers "
        "around the semantic layer and does not confirm the answer within it.", "confirmed null",
        v("L_semantic_confirmed") is None)
    add("tied_copy", "qualitative", "The copy at the embedding layer is explained by the tied embeddings.", "fact",
        bool(v("layer0_copy_is_tied_artifact")))
    add("penultimate", "qualitative", f"The answer's rank goes from {R(N - 1, 'answer_rank')} at {Lr(N - 1)} to "
        f"{R(N, 'answer_rank')} at {Lr(N)}.", "rows", True)
    add("head_kl", "qualitative", f"At the head itself, {Lr(N)}, KL to the final head is {R(N, 'kl_to_final')}.",
        "row", True)
    add("penult_top", "qualitative", f"At {Lr(N - 1)} the top token is {R(N - 1, 'top1_token')}, and the answer ranks "
        f"{R(N - 1, 'answer_rank')}.", "row", True)
    add("rank1", "qualitative", f"The answer reaches rank {P('rank_threshold_1')} at {P('first_rank_le_1')}.",
        "definition", r1 is not None)

    # limitations
    add("lim_mech", "limitations", "A lens reads what the residual stream decodes to; it cannot say which heads or "
        "MLPs wrote it.", "limitation", True)
    add("lim_prompt", "limitations", "The per-layer rows come from the primary prompt alone, so they cannot show how "
        "other phrasings would behave.", "limitation", True)
    add("lim_norm", "limitations", "The norm lens applies the final norm and unembedding to layers that were never "
        "trained to be read that way, which can distort the early layers.", "limitation", True)
    add("lim_probs", "limitations", f"With a {P('lens_artifact_tier')} artifact tier, probabilities before the head "
        "depend on the normalizer, so they are not read here.", "prefer_ranks",
        bool(v("prefer_ranks")) and v("lens_artifact_tier") != "low")
    add("lim_thresholds", "limitations", "The milestones depend on the chosen thresholds; other thresholds would move "
        "them.", "limitation", True)
    add("lim_lenses", "limitations", "Only the norm and raw lenses are compared; no tuned lens was fitted.", "n.a.",
        ver.get("tuned_attribution") == "n.a.")
    add("lim_domain", "limitations", "The micro-suite holds only capital-city facts, so it cannot show how other kinds "
        "of knowledge behave.", "suite answers", True)
    add("lim_causal", "limitations", "The probe does not intervene on the residual stream, so it cannot show that any "
        "layer is necessary for the answer.", "limitation", True)
    add("lim_unconfirmed", "limitations", "Because the raw lens never confirms the semantic layer, the norm-lens "
        "milestone may partly reflect the lens itself.", "confirmed null", conf_none)

    # fingerprint
    add("fp_copy_late", "fingerprint", f"Copy first, answer late: a copy reflex at {P('L_copy')}, and the answer first "
        f"on top at {P('L_semantic')} under a {P('lens_artifact_tier')} artifact tier.", "late",
        Lc is not None and frac is not None and frac >= 0.75)
    add("fp_ranks", "fingerprint", f"The answer lingers outside the top {P('rank_threshold_10')} until "
        f"{P('first_rank_le_10')} and first tops the norm lens at {P('L_semantic')}, which the raw lens never "
        "confirms.", "definitions", None not in (r10, sem) and conf_none)
    if f.status("answer_lost_at_head") == "holds":
        add("fp_lost", "fingerprint", f"An answer found at {P('L_semantic')} and lost at the head, where it ranks "
            f"{P('final_answer_rank')}.", "finding", sem is not None and v("final_answer_rank") > 1)
    add("fp_head", "fingerprint", f"An answer that surfaces only at the head, {P('L_semantic')}, and holds rank "
        f"{P('final_answer_rank')} there.", "sem == N", sem == N and v("final_answer_rank") == 1)
    middle = range(N // 3, (2 * N) // 3 + 1)
    n_punct_mid = sum(1 for n in middle if f.tok(n).strip() and all(not ch.isalnum() for ch in f.tok(n).strip()))
    add("fp_punct", "fingerprint", f"Punctuation-dominated middle layers, with punctuation on top at "
        f"{P('n_punctuation_top1_layers')} layers, ahead of an answer at {P('L_semantic')}.",
        f"punctuation on top at {n_punct_mid}/{len(middle)} middle layers",
        n_punct_mid > len(middle) / 2 and sem is not None and sem > max(middle))
    if dip and f.status("entropy_collapse") == "holds":
        m = dip[2]
        add("fp_dip", "fingerprint", f"Entropy dips to {R(m, 'entropy')} at {Lr(m)} and recovers by the head, with the "
            f"answer first on top at {P('L_semantic')}.", "finding", sem is not None and f.ent(N) > f.ent(m))
    add("fp_artifact", "fingerprint", f"High lens-artifact risk (score {P('lens_artifact_score')}) and a norm-lens "
        f"semantic layer at {P('L_semantic')} that the raw lens never reproduces.", "raw null",
        v("lens_artifact_tier") == "high" and v("L_semantic_raw") is None and sem is not None)
    add("fp_climb", "fingerprint", f"A tied-embedding copy at {P('L_copy')}, then a long climb in rank to the top "
        f"slot at {P('L_semantic')}.", "r10 far after L_copy",
        None not in (Lc, r10, sem) and r10 - Lc >= N / 2 and bool(v("layer0_copy_is_tied_artifact")))
    return c.out


# ---------------------------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="module")
def facts4(probe_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("facts4")
    return {alias: Facts4(alias, probe_run / alias, tmp) for alias in BUNDLED_MODELS}


def _check_corpus(f: Facts4, errors: list[Sent], correct: list[Sent]) -> None:
    kinds = Counter(e.kind for e in errors)
    assert len({e.text for e in errors}) == len(errors), "duplicate error sentences"
    assert len({c.text for c in correct}) == len(correct), "duplicate correct sentences"
    assert max(kinds.values()) <= MAX_PER_TYPE, kinds.most_common(3)
    assert len(kinds) >= MIN_TYPES, f"{f.alias}: only {len(kinds)} error types"
    assert len(errors) >= MIN_ERRORS, f"{f.alias}: only {len(errors)} error sentences"
    assert len(correct) >= MIN_CORRECT, f"{f.alias}: only {len(correct)} correct sentences"
    assert {s.section for s in correct} == set(SECTIONS) >= {e.section for e in errors}
    for s in errors + correct:
        for name in re.findall(r"\{([^{}]+)\}", s.text):
            assert name in f.sheet, f"{f.alias}: {{{name}}} is not on the sheet: {s.text}"
    for s in correct:
        bare = re.sub(r"\{[^}]*\}", "", s.text)
        assert not re.search(r"\d", bare), f"digit typed: {s.text}"
        assert not FORBIDDEN_WORDS.search(bare), f"number word typed: {s.text}"
        others = [o.text for o in correct if o is not s and s.text in o.text]
        assert not others, f"substring of another correct sentence: {s.text}"


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_validator_heldout4(probe_run, tmp_path, alias, facts4):
    t0 = time.time()
    f = facts4[alias]
    errors, correct = error_sentences(f), correct_sentences(f)
    _check_corpus(f, errors, correct)

    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(probe_run / alias, run / alias)
    drafts = make_drafts(errors, correct)

    results = []  # (err, caught, finding)
    correct_hits: dict[str, list[str]] = defaultdict(list)
    correct_seen: Counter = Counter()
    for i, (err, ctx, text) in enumerate(drafts):
        record = run_draft(run, tmp_path / f"d{i:03d}", alias, text)
        if err is not None:
            results.append((err, *verdict_for(err, record)))
        for s in ctx:
            correct_seen[s.text] += 1
            removed, finding = verdict_for(s, record)
            if removed:
                correct_hits[s.text].append(finding or "(removed; no finding matched)")
    elapsed = time.time() - t0

    by_type: dict[str, list] = defaultdict(list)
    for err, caught, finding in results:
        by_type[err.kind].append((caught, finding))
    lines = [f"\n=== {alias}: {len(by_type)} error types, {len(errors)} error drafts, {len(correct)} correct "
             f"sentences, {len(drafts)} builds, {elapsed:.0f} s ===",
             f"{'type':<26}{'n':>3}{'caught':>8}{'missed':>8}  validator findings (kinds)"]
    for kind in sorted(by_type):
        rows = by_type[kind]
        kinds = Counter(k.split(":")[0] for c, fnd in rows if c for k in (fnd.split("; ") if fnd else ["(none)"]))
        lines.append(f"{kind:<26}{len(rows):>3}{sum(c for c, _ in rows):>8}{sum(not c for c, _ in rows):>8}  "
                     + ", ".join(f"{k}×{n}" for k, n in kinds.most_common()))
    misses = [e for e, c, _ in results if not c]
    lines.append(f"\nMISSES ({len(misses)}):")
    lines += [f"- [{e.kind}/{e.section}] {e.text}\n    why wrong: {e.why}" for e in misses]
    lines.append(f"\nFALSE ALARMS ({len(correct_hits)} of {len(correct)} correct sentences removed at least once):")
    by_text = {s.text: s for s in correct}
    for t, fnds in correct_hits.items():
        lines.append(f"- [{by_text[t].kind}/{by_text[t].section}] {t}\n    removed in {len(fnds)}/{correct_seen[t]} "
                     f"drafts; finding: {Counter(fnds).most_common(1)[0][0]}")
    n_caught = sum(c for _, c, _ in results)
    rate = n_caught / len(results)
    lines.append(f"\n{alias}: caught {n_caught}/{len(results)} = {rate:.1%}; "
                 f"false alarms {len(correct_hits)}/{len(correct)} correct sentences")
    print("\n".join(lines))

    assert rate >= 0.95, f"{alias}: caught {rate:.1%} < 95%"
    assert not correct_hits, f"{alias}: {len(correct_hits)} correct sentences removed"
