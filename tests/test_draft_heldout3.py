"""Independent held-out evaluation (#3) of the narrative validator, written without reading it.

A third corpus, by a different author than #1 and #2, reusing the #2 harness (`tests.test_draft_heldout2`: the
fact sheet of each bundled model, draft assembly, the loopback OpenAI-compatible stub server, verdicts). For each
bundled model it generates from the real facts, at test time:

- ERROR drafts: full replies (overview, qualitative, limitations, fingerprint) with exactly one wrong sentence among
  correct ones. Error types are the `kind` of each sentence: misplaced placeholders (a layer as a probability, a
  rank as a layer, a threshold as a measurement, a fraction as a KL), swapped rows, wrong milestone order, invented
  trends (plateau, zigzag, U shape, levelling off), wrong extremes, number words for proportions, relative depth,
  mechanism and causal stories, generalisation beyond the run, temperature / control / ablation / micro-suite
  misreadings, lens identity, bits vs nats, KL direction, KL vs cross-entropy, paraphrased checklist
  contradictions, hedged or negated falsehoods, false sameness, final-head claims, advice, architecture and
  meta claims, typed numbers and quoted tokens. Each is checked to be WRONG for the data at hand; an instance the
  data make true is skipped (no number or verdict is hard-coded).
- CORRECT sentences: varied, natural, and checked TRUE for the data; they fill every draft, and all-correct
  drafts cover each of them at least once.

CAUGHT: the wrong sentence was removed (or its section fell back). FALSE ALARM: a correct sentence was removed.

Run: LENSREPORT_TEST_RUN=runs/bundled .venv/bin/python -m pytest tests/test_draft_heldout3.py -s -p no:cacheprovider
"""

from __future__ import annotations

import re
import shutil
import statistics
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

from tests.conftest import BUNDLED_MODELS
from tests.test_draft_heldout2 import NUMBER_WORDS, SECTIONS, Facts, Sent, make_drafts, run_draft, verdict_for

# Written by someone who never saw the validator; it measured 66.4 % (smollm2) and 64.7 % (gemma3-270m) caught with
# 2 false alarms each, and the validator was then generalised against it (extentcheck, placeholder roles, more claim
# words), so it is now a regression test; tests/test_draft_heldout4.py is the next independent one.
pytestmark = pytest.mark.slow

MIN_KINDS, MIN_ERRORS, MIN_CORRECT = 45, 90, 45
PER_KIND = 2  # instances kept per error type and model: breadth over depth, and ~2 s a build on a shared machine
# Fact-sheet names a mechanism claim would need; the run measures none of them (checked per model).
MECHANISM_WORDS = ("heads", "attn", "attention", "mlp", "circuit", "neuron")


# ---------------------------------------------------------------------------------------------------------------
# Data views on Facts (pure functions: every check below is computed from these)


def answer(f: Facts) -> str:
    return str(f.v("answer_token")).strip()


def is_answer(f: Facts, n: int) -> bool:
    return f.tok(n).strip() == answer(f)


def is_punct(token: str) -> bool:
    """A top token made only of punctuation characters (commas, quotes, dashes)."""
    t = token.strip()
    return bool(t) and all(unicodedata.category(c).startswith("P") for c in t)


def close(a: float, b: float, tol: float = 1e-3) -> bool:
    """Equal up to a relative tolerance (a gate KL of 0 is not 'close' to a threshold of 0.001)."""
    return abs(float(a) - float(b)) <= tol * max(abs(float(a)), abs(float(b))) + 1e-12


def count(f: Facts, pred: Callable[[int], bool]) -> int:
    return sum(1 for n in f.layers if pred(n))


def decreasing_run_to_output(f: Facts) -> int:
    """First layer s such that KL shrinks strictly at every step from s to the output."""
    s = f.N
    while s > 0 and f.kl(s - 1) > f.kl(s):
        s -= 1
    return s


def monotone_rank_run(f: Facts) -> tuple[int, int] | None:
    """The latest run of >= 3 layers over which the answer's rank strictly improves at every step."""
    best = None
    for a in f.layers:
        b = a
        while b + 1 <= f.N and f.rank(b + 1) < f.rank(b):
            b += 1
        if b - a >= 2:
            best = (a, b)
    return best


def longest_token_run(f: Facts) -> tuple[int, int]:
    runs, start = [], 0
    for n in f.layers[1:] + [f.N + 1]:
        if n > f.N or f.tok(n) != f.tok(start):
            runs.append((start, n - 1))
            start = n
    return max(runs, key=lambda r: r[1] - r[0])


class Pool:
    """Collects sentences; `add` keeps one only when its check holds (wrong for errors, true for correct)."""

    def __init__(self) -> None:
        self.items: list[Sent] = []

    def add(self, ok: bool, kind: str, section: str, text: str, why: str) -> None:
        assert section in SECTIONS, section
        if ok:
            self.items.append(Sent(kind, text, section, why))


# ---------------------------------------------------------------------------------------------------------------
# Error sentences, grouped by family. Each `add` states its own check: the first argument is True only when the
# sentence is wrong for this model's data.


def _errors_placeholders(f: Facts, e: Pool) -> None:
    """A fact of the wrong measure in a slot: layers as probabilities, ranks as layers, thresholds as values."""
    P, R, v, N = f.P, f.R, f.v, f.N
    L = v("L_semantic")
    e.add(L is not None, "layer_as_prob", "overview", f"The final head gives the answer a probability of only "
          f"{P('L_semantic')}.", f"L_semantic={L} is a layer index, not a probability")
    kl1 = v("first_kl_le_1")
    e.add(kl1 is not None, "layer_as_prob", "qualitative", f"At the output the top token carries a probability of "
          f"{P('first_kl_le_1')}.", f"first_kl_le_1={kl1} is a layer, final_p_top1={v('final_p_top1'):.3f}")
    fr = v("final_answer_rank")
    e.add(fr != L, "rank_as_layer", "qualitative", f"The answer first takes the top slot at layer "
          f"{P('final_answer_rank')}.", f"final_answer_rank={fr} is a rank; the answer first leads at L{L}")
    r = f.rank(N)  # a rank small enough to read as a layer, and before the semantic layer
    e.add(L is not None and r < L, "rank_as_layer", "overview", f"By layer {R(N, 'answer_rank')} the answer "
          "already leads the distribution.", f"{r} is the answer's rank at L{N}; it first leads at L{L}")
    e.add(not close(v("gate_kl"), v("gate_threshold")), "threshold_as_measured", "qualitative",
          f"The last-layer gate measured a KL of {P('gate_threshold')} between the lens and the model's own logits.",
          f"measured gate_kl={v('gate_kl')}, {v('gate_threshold')} is the threshold")
    e.add(not close(v("max_kl_raw_vs_norm"), v("kl_threshold_1")), "threshold_as_measured", "qualitative",
          f"The largest KL between the raw and the norm lens, over all layers, is {P('kl_threshold_1')}.",
          f"max_kl_raw_vs_norm={v('max_kl_raw_vs_norm'):.1f}; {v('kl_threshold_1')} is a threshold")
    e.add(L is not None and f.rank(L) != v("rank_threshold_5"), "threshold_as_measured", "qualitative",
          f"At {P('L_semantic')} the answer's rank stands at {P('rank_threshold_5')}.",
          f"rank at L{L} is {f.rank(L) if L is not None else None}, not the threshold 5")
    share, mx = v("share_layers_raw_norm_kl_ge_1"), v("max_kl_raw_vs_norm")
    e.add(not close(share, mx), "fraction_as_value", "qualitative", f"Raw and norm lens are never more than "
          f"{P('share_layers_raw_norm_kl_ge_1')} apart in KL at any layer.",
          f"that is the share of layers {share:.2f}; the max KL is {mx:.1f} bits")
    frac = v("L_semantic_depth_fraction")
    pa = v("final_p_answer")
    e.add(frac is not None and not close(frac, pa), "fraction_as_value", "overview", f"At the output the answer "
          f"receives a probability of {P('L_semantic_depth_fraction')}.",
          f"that is the depth fraction {frac:.2f}; final_p_answer={pa:.3f}")
    e.add(v("d_model") != v("n_layers"), "wrong_count_fact", "overview", f"The model stacks {P('d_model')} "
          "transformer layers.", f"d_model={v('d_model')} is the width; n_layers={v('n_layers')}")
    e.add(v("vocab_size") != v("copy_mask_size"), "wrong_count_fact", "qualitative", f"The copy mask holds "
          f"{P('vocab_size')} tokens.", f"copy_mask_size={v('copy_mask_size')}, vocab_size={v('vocab_size')}")


def _errors_rows(f: Facts, e: Pool) -> None:
    """A value of one row (layer, suite fact, temperature) stated for another."""
    R, Lr, N = f.R, f.Lr, f.N
    a = next((a for a in range(N // 3, N - 1) if abs(f.ent(a) - f.ent(a + 1)) > 0.5), None)
    if a is not None:
        e.add(True, "row_swap", "qualitative", f"At {Lr(a)} the entropy is {R(a + 1, 'entropy')}.",
              f"entropy at L{a} is {f.ent(a):.2f}, {f.ent(a + 1):.2f} belongs to L{a + 1}")
    b = next((b for b in range(N // 2, N - 1) if f.rank(b) != f.rank(b + 2)), None)
    if b is not None:
        e.add(True, "row_swap", "qualitative", f"The answer's rank at {Lr(b)} is {R(b + 2, 'answer_rank')}.",
              f"rank at L{b} is {f.rank(b)}, {f.rank(b + 2)} belongs to L{b + 2}")
    pairs = [(x, y) for x in f.suite for y in f.suite if x != y and f.sv(x, "final_rank") != f.sv(y, "final_rank")]
    for x, y in pairs[:1] + pairs[-1:]:
        e.add(True, "suite_row_swap", "qualitative", f"{f.S(x, 'answer')} finishes the micro-suite at rank "
              f"{f.S(y, 'final_rank')}.", f"{x} ends at rank {f.sv(x, 'final_rank')}, {y} at {f.sv(y, 'final_rank')}")
    lo, hi = f.t_lo, f.t_hi
    e.add(not close(f.tv(lo, "p_answer"), f.tv(hi, "p_answer")), "temp_row_swap", "qualitative",
          f"At temperature {f.T(lo, 'temperature')} the answer's probability is {f.T(hi, 'p_answer')}.",
          f"p_answer at T={lo} is {f.tv(lo, 'p_answer'):.3g}, at T={hi} {f.tv(hi, 'p_answer'):.3g}")
    e.add(not close(f.tv(lo, "entropy"), f.tv(hi, "entropy")), "temp_row_swap", "qualitative",
          f"At temperature {f.T(hi, 'temperature')} the output entropy is {f.T(lo, 'entropy')}.",
          f"entropy at T={hi} is {f.tv(hi, 'entropy'):.2f}, {f.tv(lo, 'entropy'):.3g} is at T={lo}")


def _errors_comparisons(f: Facts, e: Pool) -> None:
    """Two milestones or two rows compared the wrong way round."""
    P, Lr, v, N = f.P, f.Lr, f.v, f.N
    L, kl1, cos = v("L_semantic"), v("first_kl_le_1"), v("first_cos_ge_0_6")
    r5, r10 = v("first_rank_le_5"), v("first_rank_le_10")
    e.add(L is not None and (kl1 is None or kl1 >= L), "milestone_order", "qualitative", f"KL to the final head "
          f"falls to {P('kl_threshold_1')} before the answer first leads the distribution.",
          f"first_kl_le_1={kl1}, L_semantic={L}")
    e.add(L is not None and cos is not None and cos <= L, "milestone_order", "qualitative", f"The lens logits reach "
          f"a cosine of {P('cos_threshold_0_6')} with the final logits only after the answer has taken the top "
          "slot.", f"first_cos_ge_0_6={cos} <= L_semantic={L}")
    e.add(L is not None and r5 is not None and r5 <= L, "milestone_order", "overview", f"The answer gets into the "
          f"top {P('rank_threshold_5')} only after it has already become the top token.",
          f"first_rank_le_5={r5} <= L_semantic={L} (top-1 implies top-5)")
    e.add(L is not None and r10 is not None and L - r10 < 3, "milestone_gap", "qualitative", f"Several layers "
          f"separate the answer's entry into the top {P('rank_threshold_10')} from the layer where it leads.",
          f"first_rank_le_10={r10}, L_semantic={L}")
    e.add(kl1 is not None and N - kl1 < 3, "milestone_gap", "qualitative", f"KL to the final head is below "
          f"{P('kl_threshold_1')} several layers before the output.", f"first_kl_le_1={kl1}, output L{N}")
    kmax = max(range(N), key=f.kl)
    e.add(f.kl(kmax) > f.kl(N - 1) + 0.5, "row_compare", "qualitative", f"KL to the final head is lower at "
          f"{Lr(kmax)} than at {Lr(N - 1)}.", f"KL {f.kl(kmax):.2f} at L{kmax} vs {f.kl(N - 1):.2f} at L{N - 1}")
    amax = max(f.layers, key=f.ent)
    low = next((n for n in range(1, N) if f.ent(n) < f.ent(amax) - 1.0 and n != amax), None)
    if low is not None:
        e.add(True, "row_compare", "qualitative", f"The distribution at {Lr(amax)} is sharper than the one at "
              f"{Lr(low)}.", f"entropy {f.ent(amax):.2f} at L{amax} > {f.ent(low):.2f} at L{low}")
    a, b = N // 4, N - 1
    e.add(f.rank(a) > 2 * f.rank(b), "row_compare", "qualitative", f"The answer is ranked better at {Lr(a)} than "
          f"at {Lr(b)}.", f"rank {f.rank(a)} at L{a} vs {f.rank(b)} at L{b}")


def _errors_trends(f: Facts, e: Pool) -> None:
    """Invented shapes of a curve: plateaus, zigzags, U shapes, levelling off, monotone claims, reversals."""
    Lr, N = f.Lr, f.N
    w = next((a for a in range(0, 2 * N // 3) if max(map(f.ent, range(a, a + 4))) - min(map(f.ent, range(a, a + 4)))
              > 1.5), None)
    if w is not None:
        e.add(True, "trend_plateau", "qualitative", f"Entropy stays essentially flat from {Lr(w)} to {Lr(w + 3)}.",
              f"entropy spans {min(map(f.ent, range(w, w + 4))):.2f}..{max(map(f.ent, range(w, w + 4))):.2f} bits")
    a, b = N // 3, N // 3 + 4
    ranks = [f.rank(n) for n in range(a, b + 1)]
    e.add(max(ranks) > 2 * min(ranks), "trend_plateau", "qualitative", f"The answer's rank holds steady from "
          f"{Lr(a)} to {Lr(b)}.", f"ranks {ranks}")
    e.add(any(f.kl(n + 1) > f.kl(n) for n in range(N)), "trend_monotonic", "qualitative", f"KL to the final head "
          f"shrinks at every step from {Lr(0)} to the output.",
          f"KL rises at L{next(n + 1 for n in range(N) if f.kl(n + 1) > f.kl(n))}")
    a, b = N // 3, 2 * N // 3
    e.add(any(f.rank(n + 1) > f.rank(n) for n in range(a, b)), "trend_monotonic", "qualitative", f"The answer's "
          f"rank improves at every layer between {Lr(a)} and {Lr(b)}.",
          f"ranks {[f.rank(n) for n in range(a, b + 1)]}")
    s = decreasing_run_to_output(f)
    e.add(N - s >= 2, "trend_oscillates", "qualitative", f"KL to the final head zigzags up and down between "
          f"{Lr(s)} and {Lr(N)}.", f"KL strictly decreasing from L{s} to L{N}")
    run = monotone_rank_run(f)
    if run:
        e.add(True, "trend_oscillates", "qualitative", f"Between {Lr(run[0])} and {Lr(run[1])} the answer's rank "
              "swings back and forth.", f"ranks {[f.rank(n) for n in range(run[0], run[1] + 1)]} improve steadily")
    ents = [f.ent(n) for n in f.layers]
    med, amin = statistics.median(ents), min(f.layers, key=f.ent)
    e.add(ents[0] <= med or ents[-1] <= med or not N / 3 <= amin <= 2 * N / 3, "trend_u_shape", "fingerprint",
          "A U-shaped entropy profile: broad at the embeddings, sharpest around mid-depth, broad again at the output.",
          f"entropy L0={ents[0]:.2f}, median {med:.2f}, argmin L{amin}")
    e.add(f.kl(N) <= min(f.kl(n) for n in f.layers), "trend_u_shape", "qualitative", "KL to the final head traces a "
          "U shape over depth, high early, lowest mid-stack and high again at the output.",
          f"KL at the output is {f.kl(N):.2f}, the minimum")
    a = 2 * N // 3
    kls = [f.kl(n) for n in range(a, N + 1)]
    e.add(max(kls) - min(kls) > 1.0, "trend_levels_off", "qualitative", f"After {Lr(a)} KL to the final head levels "
          "off and barely changes over the remaining layers.", f"KL spans {min(kls):.2f}..{max(kls):.2f} bits")
    late = [f.ent(n) for n in range(a, N + 1)]
    e.add(max(late) - min(late) > 1.5, "trend_levels_off", "limitations", f"Entropy settles from {Lr(a)} onward, "
          "so the late layers add little beyond what is already decoded there.",
          f"entropy spans {min(late):.2f}..{max(late):.2f} bits")
    e.add(f.kl(N - 3) > f.kl(N), "trend_direction", "qualitative", "Over the last few layers KL to the final head "
          "grows.", f"KL {f.kl(N - 3):.2f} at L{N - 3} -> {f.kl(N):.2f} at L{N}")
    e.add(f.rank(N - 1) < f.rank(N // 2), "trend_direction", "qualitative", "In the second half of the stack the "
          "answer's rank gets steadily worse.", f"rank {f.rank(N // 2)} at L{N // 2} -> {f.rank(N - 1)} at L{N - 1}")


def _errors_extremes(f: Facts, e: Pool) -> None:
    """Peaks, troughs and coincidences at the wrong layer."""
    P, Lr, v, N = f.P, f.Lr, f.v, f.N
    emax, kmax = max(f.layers, key=f.ent), max(f.layers, key=f.kl)
    e.add(f.ent(kmax) < f.ent(emax) - 0.5, "peak_wrong", "qualitative", f"Entropy peaks at {Lr(kmax)}.",
          f"argmax entropy is L{emax} ({f.ent(emax):.2f}); L{kmax} has {f.ent(kmax):.2f}")
    e.add(f.kl(emax) < f.kl(kmax) - 1.0, "peak_wrong", "qualitative", f"The lens is furthest from the final head at "
          f"{Lr(emax)}.", f"argmax KL is L{kmax} ({f.kl(kmax):.2f}); L{emax} has {f.kl(emax):.2f}")
    emin = min(f.ent(n) for n in f.layers)
    x = N - 1
    e.add(f.ent(x) > emin + 0.5, "trough_wrong", "qualitative", f"The sharpest distribution of the whole stack is "
          f"decoded at {Lr(x)}.", f"entropy at L{x} is {f.ent(x):.2f}, the minimum is {emin:.2f}")
    m = N // 2
    kmin = min(f.kl(n) for n in range(N))
    e.add(f.kl(m) > kmin + 0.5, "trough_wrong", "qualitative", f"Before the output, the lens comes closest to the "
          f"final head at {Lr(m)}.", f"KL at L{m} is {f.kl(m):.2f}; the minimum before the output is {kmin:.2f}")
    L = v("L_semantic")
    e.add(L is not None and f.ent(L) > emin + 0.3, "coincidence_claim", "qualitative", f"Entropy is at its lowest "
          f"exactly where the answer first leads, at {P('L_semantic')}.",
          f"entropy at L{L} is {f.ent(L) if L is not None else 0:.2f}; minimum {emin:.2f}")
    c = v("L_copy")
    e.add(c is not None and kmax != c and f.kl(c) < f.kl(kmax) - 1, "coincidence_claim", "qualitative",
          f"KL to the final head peaks at the copy layer, {P('L_copy')}.", f"argmax KL is L{kmax}, L_copy={c}")


def _errors_counts_depth(f: Facts, e: Pool) -> None:
    """Proportions in words and relative depth."""
    P, v, N = f.P, f.v, f.N
    n_all = N + 1
    top1 = count(f, lambda n: f.rank(n) == 1)
    in10 = count(f, lambda n: f.rank(n) <= 10)
    low_kl = count(f, lambda n: f.kl(n) <= 1.0)
    punct = count(f, lambda n: is_punct(f.tok(n)))
    e.add(top1 <= n_all / 2, "count_most", "overview", "At most layers the answer is already the top token.",
          f"{top1}/{n_all} layers")
    e.add(in10 <= n_all / 2, "count_most", "qualitative", f"Most layers keep the answer within the top "
          f"{P('rank_threshold_10')}.", f"{in10}/{n_all} layers")
    e.add(not 0.35 <= punct / n_all <= 0.65, "count_half", "qualitative", "Roughly half of the layers put a "
          "punctuation mark at the top.", f"{punct}/{n_all} layers")
    # the same proportion without a number word, so only its content can give it away
    e.add(not 0.35 <= low_kl / n_all <= 0.65, "count_half", "qualitative", f"Layers within {P('kl_threshold_1')} "
          "of the final head are about as numerous as those further away.", f"{low_kl}/{n_all} layers")
    e.add(punct > N / 3, "count_handful", "qualitative", "Only a handful of layers have punctuation as their top "
          "token.", f"{punct}/{n_all} layers")
    e.add(n_all - low_kl > N / 3, "count_handful", "qualitative", f"Only a handful of layers stay more than "
          f"{P('kl_threshold_1')} away from the final head.", f"{n_all - low_kl}/{n_all} layers")
    e.add(top1 < 3, "count_handful", "overview", "Several layers put the answer at the top of the distribution.",
          f"{top1} layer(s)")
    L, kl1, cos, c = v("L_semantic"), v("first_kl_le_1"), v("first_cos_ge_0_6"), v("L_copy")
    e.add(L is None or L > N / 3, "depth_first_third", "overview", "The answer becomes the top token within the "
          "first third of the network.", f"L_semantic={L} of {N}")
    e.add(kl1 is None or kl1 > N / 3, "depth_first_third", "qualitative", f"KL to the final head drops below "
          f"{P('kl_threshold_1')} in the first third of the stack.", f"first_kl_le_1={kl1} of {N}")
    e.add(cos is not None and cos <= N / 2, "depth_past_midpoint", "qualitative", f"Only past the midpoint does the "
          f"cosine to the final logits reach {P('cos_threshold_0_6')}.", f"first_cos_ge_0_6={cos} of {N}")
    e.add(c is not None and c <= N / 2, "depth_past_midpoint", "qualitative", "The strict copy collapse happens "
          "past the midpoint of the stack.", f"L_copy={c} of {N}")
    e.add(cos is not None and cos < 0.75 * N, "depth_final_quarter", "qualitative", f"The cosine milestone, "
          f"{P('first_cos_ge_0_6')}, falls in the final quarter of the stack.", f"first_cos_ge_0_6={cos} of {N}")
    fp = next((n for n in f.layers if is_punct(f.tok(n))), None)
    e.add(fp is not None and fp < 0.75 * N, "depth_final_quarter", "qualitative", "Punctuation first reaches the "
          "top slot only in the final quarter of the stack.", f"first punctuation top-1 at L{fp} of {N}")
    e.add(L is not None and abs(L - N / 2) > N / 6, "depth_middle", "fingerprint", f"A mid-depth resolver: the "
          f"answer takes the top slot around the middle of the stack, at {P('L_semantic')}.", f"L_semantic={L}/{N}")
    r10 = v("first_rank_le_10")
    e.add(r10 is not None and abs(r10 - N / 2) > N / 6, "depth_middle", "qualitative", f"The answer enters the top "
          f"{P('rank_threshold_10')} near the midpoint of the network.", f"first_rank_le_10={r10}/{N}")


def _errors_mechanism(f: Facts, e: Pool) -> None:
    """Stories about components, causes and other settings that a lens run cannot show."""
    P, v = f.P, f.v
    blind = not any(w in k.lower() for k in f.sheet for w in MECHANISM_WORDS)
    why = "the run decodes the residual stream only; no head/MLP/circuit measurement exists on the sheet"
    e.add(blind, "mech_attention", "qualitative", "Attention heads in the last blocks move the answer from the "
          "country name to the final position.", why)
    e.add(blind, "mech_attention", "overview", f"A few late attention heads are responsible for the answer "
          f"appearing at {P('L_semantic')}.", why)
    e.add(blind, "mech_mlp", "qualitative", f"The MLP of the block just before {P('L_semantic')} writes the "
          "capital into the residual stream.", why)
    e.add(blind, "mech_mlp", "qualitative", f"The final MLP spreads probability mass, which is why entropy "
          f"{P('entropy_direction_at_unembed')} at the last layer.", why)
    e.add(blind, "mech_circuit", "qualitative", "A dedicated capital-lookup circuit switches on in the late "
          "layers.", why)
    e.add(blind, "mech_circuit", "fingerprint", "A model that stores country-capital facts in its middle layers "
          "and retrieves them through a late lookup circuit.", why)
    e.add(True, "causal_overreach", "qualitative", f"The punctuation that fills the middle layers is what delays "
          f"the answer until {P('L_semantic')}.", "correlational lens data; no intervention on punctuation was run")
    e.add(True, "causal_overreach", "qualitative", f"The early copy reflex at {P('L_copy')} is what pushes the "
          "answer towards the last layers.", "correlational lens data; no intervention on copying was run")
    e.add(True, "generalise_prompts", "limitations", "Since the layer rows are representative, the same semantic "
          "layer would hold for any factual question put to this model.", "single primary prompt")
    L = v("L_semantic")
    differs = [x for x in f.suite if f.sv(x, "L_semantic") != L]
    e.add(bool(differs), "generalise_prompts", "qualitative", f"Because the answer resolves at {P('L_semantic')} "
          "here, every capital in the micro-suite resolves at that layer too.", f"{differs} differ from L{L}")
    e.add(True, "generalise_language", "qualitative", "Asked the same question in French or Japanese, the model "
          "would resolve the answer at the same depth.", "only English prompts were run")
    e.add(True, "generalise_language", "limitations", "The layer profile carries over unchanged to prompts in "
          "other languages.", "only English prompts were run")
    e.add(True, "generalise_size", "qualitative", "Larger models of the same family would surface the "
          "answer earlier in relative depth.", "only this model was probed")
    e.add(True, "generalise_size", "fingerprint", "The late-resolving profile typical of every model size in "
          "this family.", "only this model size was probed")


def _errors_experiments(f: Facts, e: Pool) -> None:
    """Temperature sweep, control prompt, filler ablation, micro-suite and copy read wrongly."""
    P, S, v = f.P, f.S, f.v
    lo, hi = f.t_lo, f.t_hi
    e.add(f.tv(hi, "entropy") > f.tv(lo, "entropy"), "temp_trend", "qualitative", f"Raising the temperature from "
          f"{f.T(lo, 'temperature')} to {f.T(hi, 'temperature')} makes the output distribution sharper.",
          f"entropy {f.tv(lo, 'entropy'):.3g} -> {f.tv(hi, 'entropy'):.3g}")
    e.add(f.tv(hi, "answer_rank") == f.tv(lo, "answer_rank"), "temp_trend", "qualitative", f"At the higher "
          f"temperature, {f.T(hi, 'temperature')}, the answer slips to a worse rank than at "
          f"{f.T(lo, 'temperature')}.", f"rank {f.tv(lo, 'answer_rank')} at both temperatures")
    m = v("control_final_margin")
    e.add(m is not None and m > 0, "control_misread", "qualitative", f"On the control prompt the primary answer, "
          f"{P('answer_token')}, still wins at the output.", f"margin p(control)-p(primary)={m:.3f} > 0")
    e.add(m is not None and m > 0, "control_misread", "qualitative", f"The control prompt ends with a negative "
          f"margin of {P('control_final_margin')}, so the control answer loses.", f"margin {m:.3f} > 0")
    L, abl = v("L_semantic"), v("ablation_L_semantic_no_filler")
    if L is not None and abl is not None:
        for how, wrong in (("moves the semantic layer later, to", abl <= L),
                           ("leaves the semantic layer unchanged at", abl != L),
                           ("brings the semantic layer forward, to", abl >= L)):
            e.add(wrong, "ablation_misread", "qualitative", f"Removing the filler word {how} "
                  f"{P('ablation_L_semantic_no_filler')}.", f"ablated {abl} vs L_semantic {L}")
    missing = [x for x in f.suite if f.sv(x, "L_semantic") is None]
    reached = [x for x in f.suite if f.sv(x, "L_semantic") is not None and x != answer(f)]
    if missing:
        x = missing[0]
        e.add(True, "suite_which", "qualitative", f"{S(x, 'answer')} reaches the top slot at {S(x, 'L_semantic')}.",
              f"{x} never reaches top-1")
    if reached:
        y = reached[-1]
        e.add(True, "suite_which", "qualitative", f"{S(y, 'answer')} never makes it to the top slot in the "
              "micro-suite.", f"{y} leads at L{f.sv(y, 'L_semantic')}")
    e.add(bool(missing), "suite_which", "overview", "Every fact in the micro-suite eventually reaches the top slot.",
          f"{len(missing)} missing")
    med = v("suite_L_semantic_median")
    e.add(med is not None and L is not None and med >= L, "suite_median", "qualitative", f"The micro-suite's "
          f"median semantic layer lies before the primary prompt's {P('L_semantic')}.",
          f"median {med} vs L_semantic {L}")
    e.add(med is not None and L is not None and med <= L, "suite_median", "qualitative", f"The micro-suite's "
          f"median semantic layer comes after the primary prompt's {P('L_semantic')}.",
          f"median {med} vs L_semantic {L}")
    e.add(med is not None and v("suite_n_missing") != med, "suite_median", "qualitative", f"Across the micro-suite "
          f"the median semantic layer is {P('suite_n_missing')}.", f"median {med}; suite_n_missing is a count")
    c = v("L_copy")
    e.add(c is not None and not is_answer(f, c), "copy_vs_semantic", "qualitative", f"The early copy at "
          f"{P('L_copy')} already puts the answer on top.", f"top token at L{c} is {f.tok(c)!r}")
    e.add(c is not None and c != L, "copy_vs_semantic", "qualitative", f"The copy layer and the semantic layer "
          f"coincide at {P('L_copy')}.", f"L_copy={c}, L_semantic={L}")
    e.add(v("L_semantic_confirmed") is None, "confirm_misread", "qualitative", f"The raw lens confirms the semantic "
          f"layer at {P('L_semantic_confirmed')}.", "L_semantic_confirmed is null")
    e.add(v("L_semantic_confirmed") is None, "confirm_misread", "overview", f"Within a window of "
          f"{P('confirm_window_radius')} layers the raw lens agrees with the norm lens on the answer.",
          "not confirmed within the window")
    n_no = v("n_norm_only_semantic_layers")
    e.add(bool(n_no), "norm_only_misread", "qualitative", "No layer is semantic under the norm lens alone.",
          f"n_norm_only_semantic_layers={n_no}")
    e.add(bool(n_no) and v("L_semantic_raw") is None, "norm_only_misread", "qualitative", f"The raw lens alone "
          f"finds the answer at {P('n_norm_only_semantic_layers')} layers where the norm lens does not.",
          f"the count is norm-only ({n_no}); the raw lens never ranks the answer first")
    e.add(L is not None and v("first_rank_le_10") != L, "milestone_synonym", "qualitative",
          f"The answer first takes the top slot at {P('first_rank_le_10')}.",
          f"first_rank_le_10={v('first_rank_le_10')}, L_semantic={L}")
    e.add(v("L_semantic_strong") is not None and v("L_semantic_confirmed") is None, "milestone_synonym",
          "qualitative", f"The strong semantic gate is first passed at {P('L_semantic_confirmed')}.",
          f"strong at L{v('L_semantic_strong')}, confirmed is null")
    e.add(v("L_semantic_raw") is None and v("L_semantic_strong") is not None, "milestone_synonym", "qualitative",
          f"Under the raw lens the answer first leads at {P('L_semantic_strong')}.", "L_semantic_raw is null")
    e.add(v("first_kl_le_0_5") != v("first_rank_le_5"), "milestone_synonym", "qualitative", f"KL to the final head "
          f"first drops to {P('kl_threshold_0_5')} at {P('first_rank_le_5')}.",
          f"first_kl_le_0_5={v('first_kl_le_0_5')}, first_rank_le_5={v('first_rank_le_5')}")


def _errors_lenses(f: Facts, e: Pool) -> None:
    """Lens identity, units, KL direction and KL vs cross-entropy / entropy."""
    P, R, Lr, v, N = f.P, f.R, f.Lr, f.v, f.N
    e.add(f.verdicts.get("preferred_lens_honored") == "✓", "lens_raw_norm", "overview", "All milestones in this "
          "report are read off the raw lens.", "preferred_lens_honored ✓: milestones use the norm lens")
    e.add(v("L_semantic_raw") != v("L_semantic"), "lens_raw_norm", "qualitative", f"Under the raw lens the answer "
          f"becomes the top token at {P('L_semantic')}.", f"L_semantic_raw={v('L_semantic_raw')}")
    tuned_na = f.verdicts.get("tuned_attribution") == "n.a."
    e.add(tuned_na, "lens_tuned", "qualitative", f"A tuned lens fitted alongside agrees with the norm lens that the "
          f"answer arrives at {P('L_semantic')}.", "no tuned lens (tuned_attribution n.a.)")
    e.add(tuned_na, "lens_tuned", "limitations", "The tuned-lens attribution shows that most of the gap to the final "
          "head is a temperature mismatch rather than a rotation.", "tuned_attribution n.a.")
    a = N // 3
    e.add(True, "unit_nats", "qualitative", f"At {Lr(a)} KL to the final head is {R(a, 'kl_to_final')} nats.",
          "kl_to_final is in bits")
    e.add(True, "unit_nats", "qualitative", f"The output head's entropy is {P('final_entropy')} nats.",
          "entropy is in bits")
    cand = [n for n in range(1, N) if f.reverse_kl and abs(f.reverse_kl[n] - f.kl(n)) > 0.1 * max(1, f.kl(n))]
    for n in (cand[len(cand) // 3:len(cand) // 3 + 1] + cand[-1:]) if cand else []:
        e.add(True, "kl_direction", "qualitative", f"At {Lr(n)} the KL from the final head to the layer's "
              f"distribution, KL(final ‖ layer), is {R(n, 'kl_to_final')}.",
              f"that is KL(layer‖final)={f.kl(n):.2f}; KL(final‖layer)={f.reverse_kl[n]:.2f}")
    b = next((n for n in range(N // 2, N) if f.ent(n) > 0.05), None)
    if b is not None:
        e.add(True, "kl_vs_xent", "qualitative", f"The cross-entropy of the lens at {Lr(b)} against the final head "
              f"is {R(b, 'kl_to_final')}.", f"cross-entropy = H + KL; entropy at L{b} is {f.ent(b):.2f}")
    c = next((n for n in range(1, N) if abs(f.ent(n) - f.kl(n)) > 0.5), None)
    if c is not None:
        e.add(True, "kl_vs_entropy", "qualitative", f"Entropy at {Lr(c)} is {R(c, 'kl_to_final')}.",
              f"entropy {f.ent(c):.2f}, KL {f.kl(c):.2f}")
    e.add(not close(v("final_entropy"), v("max_kl_raw_vs_norm")), "kl_vs_entropy", "qualitative", f"The output "
          f"distribution has an entropy of {P('max_kl_raw_vs_norm')}.",
          f"final_entropy={v('final_entropy'):.2f}; that is the raw-vs-norm KL")


def _errors_checklist(f: Facts, e: Pool) -> None:
    """Checklist verdicts contradicted in paraphrase, far from the rule titles."""
    ok = f.verdicts.get
    e.add(ok("fp32_unembed") == "✓", "checklist_numerics", "limitations", "The decoding head ran at reduced "
          "precision, so small logit differences may be rounding noise.", "fp32_unembed ✓")
    e.add(ok("determinism") == "✓", "checklist_numerics", "limitations", "Repeated runs may not reproduce these "
          "numbers, since non-deterministic kernels were allowed.", "determinism ✓")
    e.add(ok("numeric_health") == "✓", "checklist_numerics", "qualitative", "A few activations overflowed along the "
          "way, which may distort the late layers.", "numeric_health ✓")
    e.add(ok("last_layer_gate") == "✓", "checklist_lens", "overview", "Even at the last layer the lens drifts "
          "noticeably from the model's own output distribution.", "last_layer_gate ✓")
    e.add(ok("rms_lens") == "✓", "checklist_lens", "qualitative", "The lens re-centres each residual by subtracting "
          "its mean, as a LayerNorm would.", "rms_lens ✓ (RMSNorm, no mean subtraction)")
    e.add(ok("dual_lens_metrics") == "✓", "checklist_lens", "limitations", "The raw-versus-norm comparison was only "
          "computed for a few layers.", "dual_lens_metrics ✓ (every layer)")
    e.add(ok("tied_embedding_copy") == "✓", "checklist_surface", "qualitative", "The embedding layer's top token has "
          "nothing to do with the last word of the prompt.", "tied_embedding_copy ✓")
    e.add(ok("copy_reflex") == "✓", "checklist_surface", "qualitative", "None of the earliest layers echoes a token "
          "from the prompt.", "copy_reflex ✓")
    e.add(ok("punctuation_anchoring") == "✓", "checklist_surface", "qualitative", "Commas, quotes and other marks "
          "never rise to the top of the decoded distribution.", "punctuation_anchoring ✓")
    e.add(ok("filler_anchoring") == "✗", "checklist_surface", "qualitative", "Words like the, is and of dominate the "
          "top slot in the early layers.", "filler_anchoring ✗")
    rise = ok("entropy_rise_at_unembed")
    e.add(rise == "✗", "checklist_entropy", "qualitative", "The very last step broadens the output distribution.",
          "entropy_rise_at_unembed ✗")
    e.add(rise == "✓", "checklist_entropy", "qualitative", "The very last step sharpens the output distribution.",
          "entropy_rise_at_unembed ✓")
    e.add(ok("copy_mask") == "✓", "checklist_mask", "qualitative", "The copy mask "
          "takes up most of the vocabulary.", f"copy_mask ✓ ({f.v('copy_mask_size')}/{f.v('vocab_size')})")


def _errors_negations_hedges(f: Facts, e: Pool) -> None:
    """Hedged falsehoods, false negations, false sameness, final-head claims."""
    P, R, Lr, v, N = f.P, f.R, f.Lr, f.v, f.N
    m = N // 2
    e.add(f.rank(m) > 5, "hedged_false", "qualitative", f"The answer is probably already within the top "
          f"{P('rank_threshold_5')} by {Lr(m)}.", f"rank {f.rank(m)} at L{m}")
    mid = [f.kl(n) for n in range(N // 3, 2 * N // 3 + 1)]
    e.add(max(mid) - min(mid) > 2.0, "hedged_false", "qualitative", "KL to the final head appears roughly constant "
          "across the middle layers.", f"KL spans {min(mid):.2f}..{max(mid):.2f} in the middle third")
    L, kl1 = v("L_semantic"), v("first_kl_le_1")
    e.add(L is not None, "negation_never", "overview", "Under the norm lens the answer never becomes the top token.",
          f"L_semantic={L}")
    e.add(kl1 is not None, "negation_never", "qualitative", f"KL to the final head never drops to "
          f"{P('kl_threshold_1')} or below.", f"first_kl_le_1={kl1}")
    cos, c, r10 = v("first_cos_ge_0_6"), v("L_copy"), v("first_rank_le_10")
    e.add(L is not None and cos is not None and cos < L, "negation_not_until", "qualitative", f"The lens logits do "
          f"not reach a cosine of {P('cos_threshold_0_6')} with the final logits until {P('L_semantic')}.",
          f"first_cos_ge_0_6={cos} < {L}")
    e.add(c is not None and r10 is not None and c < r10, "negation_not_until", "qualitative", f"No copying shows up "
          f"until {P('first_rank_le_10')}.", f"L_copy={c} < first_rank_le_10={r10}")
    e.add(any(is_punct(f.tok(n)) for n in range(N)), "negation_no_layer", "qualitative", "No layer before the output "
          "has a punctuation mark as its top token.",
          f"punctuation at {[n for n in range(N) if is_punct(f.tok(n))][:4]}")
    e.add(any(f.kl(n) > 1.0 for n in range(N // 2 + 1, N)), "negation_no_layer", "qualitative", f"No layer past "
          f"the midpoint is more than {P('kl_threshold_1')} away from the final head.",
          f"KL>1 at {[n for n in range(N // 2 + 1, N) if f.kl(n) > 1.0][:4]}")
    a = N // 3
    e.add(len({f.tok(n) for n in range(a, a + 4)}) > 1, "same_equal", "qualitative", f"The top token stays the same "
          f"from {Lr(a)} to {Lr(a + 3)}.", f"tokens {[f.tok(n) for n in range(a, a + 4)]}")
    pair = next(((x, y) for x in range(1, N) for y in range(x + 2, N) if abs(f.ent(x) - f.ent(y)) > 1.0), None)
    if pair:
        x, y = pair
        e.add(True, "same_equal", "qualitative", f"Entropy is the same at {Lr(x)} and {Lr(y)}, at "
              f"{R(x, 'entropy')}.", f"{f.ent(x):.2f} vs {f.ent(y):.2f}")
    e.add(v("L_semantic_raw") != L, "same_equal", "overview", "The raw lens arrives at the same semantic layer as "
          "the norm lens.", f"L_semantic_raw={v('L_semantic_raw')}, L_semantic={L}")
    fr, top = v("final_answer_rank"), str(v("final_top1_token")).strip()
    e.add(fr == 1, "final_head", "overview", "At the output the model prefers another token over the answer.",
          f"final_answer_rank={fr}")
    e.add(fr == 1 and top == answer(f), "final_head", "qualitative", f"The answer wins at the output only narrowly, "
          f"with {P('final_top1_token')} close behind it.", "final_top1_token is the answer itself")
    e.add(top != answer(f), "final_head", "qualitative", f"The final head's top token is the answer, "
          f"{P('answer_token')}.", f"final top-1 {top!r}, answer {answer(f)!r}")
    e.add(fr != 1, "final_head", "overview", f"The answer holds rank {P('final_answer_rank')} at the output, ahead "
          "of every other token.", f"final_answer_rank={fr}")


def _errors_offtopic_format(f: Facts, e: Pool) -> None:
    """Advice, architecture and meta claims, typed numbers, quoted tokens, signs, probabilities, tier and gate."""
    P, v, N = f.P, f.v, f.N
    e.add(True, "offtopic_recommend", "limitations", "On this evidence the model is safe to deploy for geography "
          "questions.", "deployment advice, not a measurement")
    e.add(True, "offtopic_recommend", "qualitative", "The model should be fine-tuned on more capital-city data to "
          "fix its late resolution.", "training advice, not a measurement")
    e.add(v("model_dtype") != "float16" or v("device") != "cuda", "arch_contradict", "overview", "The probe ran the "
          "model in half precision on a GPU.", f"dtype {v('model_dtype')}, device {v('device')}")
    e.add(bool(v("tied_embeddings")), "arch_contradict", "qualitative", "Because input and output embeddings are "
          "untied, the copying at the embedding layer is a genuine finding.", "tied_embeddings is true")
    e.add(v("final_norm_kind") != "LayerNorm", "arch_contradict", "overview", f"{P('model_id')} normalises its final "
          "residual with a LayerNorm.", f"final_norm_kind={v('final_norm_kind')}")
    e.add(True, "meta_report", "overview", "This report sets the model side by side with several other models.",
          "a single-model report")
    e.add(True, "meta_report", "limitations", "All per-layer numbers in this report are averaged over the whole "
          "micro-suite.", "layer rows come from the primary prompt only")
    L = v("L_semantic")
    if L is not None and L >= 3:
        e.add(True, "typed_number", "qualitative", f"The answer first takes the top slot at layer {L - 3}.",
              f"typed number; L_semantic={L}")
    kl1 = v("first_kl_le_1")
    if kl1 is not None and kl1 >= 4:
        e.add(True, "typed_number", "qualitative", f"KL to the final head first drops below one bit at layer "
              f"{kl1 - 4}.", f"typed number; first_kl_le_1={kl1}")
    e.add(str(v("final_top1_token")).strip() != "Paris", "quoted_token", "qualitative", "At the output the top "
          "token is \"Paris\".", f"typed token; final top-1 {v('final_top1_token')!r}")
    e.add(f.tok(0).strip() != "Germany", "quoted_token", "qualitative", "The embedding layer's top token is "
          "\"Germany\".", f"typed token; layer-0 top-1 {f.tok(0)!r}")
    npunct = v("n_punctuation_top1_layers")
    k = npunct + 3 if npunct + 3 < len(NUMBER_WORDS) else npunct // 3
    e.add(k != npunct, "number_word", "qualitative", f"Punctuation is the top token at {NUMBER_WORDS[k]} layers.",
          f"number word {k}; n_punctuation_top1_layers={npunct}")
    opposite = {"rises": "falls", "falls": "rises"}
    d1, d2 = v("entropy_direction_at_unembed"), v("entropy_direction_first_to_last")
    if d1 in opposite:
        e.add(True, "sign_direction", "qualitative", f"Entropy {opposite[d1]} by "
              f"{P('entropy_change_at_unembed_size')} at the last layer.", f"it {d1}")
    if d2 in opposite:
        e.add(True, "sign_direction", "qualitative", f"From the embedding layer to the output, entropy "
              f"{opposite[d2]} by {P('entropy_change_first_to_last_size')}.", f"it {d2}")
    pr = bool(v("prefer_ranks"))
    e.add(pr, "abs_prob_interpreted", "overview", f"The answer's output probability, {P('final_p_answer')}, can be "
          "read as a calibrated confidence.", "prefer_ranks: absolute probabilities are unreliable here")
    e.add(pr and v("final_p_top1") < 0.9, "abs_prob_interpreted", "qualitative", f"A final top-token probability "
          f"of {P('final_p_top1')} means the model is all but certain.", f"p={v('final_p_top1'):.3f}, prefer_ranks")
    tier = v("lens_artifact_tier")
    e.add(tier != "low", "tier_misread", "overview", "The lens-artifact risk is low, so the norm-lens probabilities "
          "can be trusted as they stand.", f"tier {tier}")
    e.add(v("share_layers_raw_norm_kl_ge_1") >= 0.5, "tier_misread", "qualitative", "The raw and norm lenses agree "
          "closely at most layers.", f"share with KL>=1: {v('share_layers_raw_norm_kl_ge_1'):.2f}")
    g, t = v("gate_kl"), v("gate_threshold")
    e.add(g < t, "gate_misread", "qualitative", f"The gate KL of {P('gate_kl')} exceeds its threshold of "
          f"{P('gate_threshold')}, so the final-layer lens is off.", f"{g} < {t}")
    e.add(bool(v("gate_passed")) and g <= 1e-9, "gate_misread", "overview", "The last-layer gate passes, but at the "
          "output the lens still differs measurably from the model's own logits.", f"gate_kl={g}")
    e.add(True, "output_layer_confusion", "qualitative", f"The output head corresponds to {f.Lr(N - 1)}, the last "
          "decoded row.", f"the last decoded row is L{N}")
    e.add(True, "output_layer_confusion", "qualitative", f"The rows run from {f.Lr(1)} to {f.Lr(N)}; the embedding "
          "output is not decoded.", "layer 0 (embeddings) is decoded")
    e.add(f.verdicts.get("confirmed_semantics") == "✗", "limitation_false", "limitations", "Since every milestone "
          "is confirmed by the raw lens, lens artefacts are not a concern here.", "confirmed_semantics ✗")
    e.add(tier != "low", "limitation_false", "limitations", "The norm lens is exact at every layer, so the only "
          "caveat concerns the raw lens.", f"exact only at the last layer; tier {tier}")


ERROR_GROUPS = (_errors_placeholders, _errors_rows, _errors_comparisons, _errors_trends, _errors_extremes,
                _errors_counts_depth, _errors_mechanism, _errors_experiments, _errors_lenses, _errors_checklist,
                _errors_negations_hedges, _errors_offtopic_format)


def error_sentences(f: Facts) -> list[Sent]:
    pool = Pool()
    for group in ERROR_GROUPS:
        group(f, pool)
    seen: Counter = Counter()
    kept = []
    for s in pool.items:  # the first PER_KIND wrong instances of each type, in the order written
        seen[s.kind] += 1
        if seen[s.kind] <= PER_KIND:
            kept.append(s)
    return kept


# ---------------------------------------------------------------------------------------------------------------
# Correct sentences. Each `add` states the check that makes it true for this model.


def _correct_overview(f: Facts, c: Pool) -> None:
    P, v, N = f.P, f.v, f.N
    L, frac, fr = v("L_semantic"), v("L_semantic_depth_fraction"), v("final_answer_rank")
    c.add(True, "ov_model", "overview", f"This report follows {P('model_id')}, a {P('architecture')} with "
          f"{P('n_layers')} transformer layers, through the norm lens and the raw lens.", "facts")
    c.add(L is not None, "ov_semantic", "overview", f"Under the norm lens the answer {P('answer_token')} first "
          f"becomes the top token at {P('L_semantic')}.", "definition")
    c.add(v("L_semantic_confirmed") is None and v("lens_artifact_tier") in ("medium", "high"), "ov_trust", "overview",
          f"The raw lens never confirms that layer and the artifact tier is {P('lens_artifact_tier')}, so the "
          "milestones are best read as rank evidence.", "unconfirmed, tier")
    c.add(bool(v("gate_passed")) and v("gate_kl") <= v("gate_threshold"), "ov_gate", "overview", f"At the output "
          f"the lens reproduces the model's own logits, with a gate KL of {P('gate_kl')} against a threshold of "
          f"{P('gate_threshold')}.", "gate passed")
    c.add(fr == 1 and L == N, "ov_final", "overview", f"The answer is also the final head's top token, at rank "
          f"{P('final_answer_rank')}.", "final rank 1")
    c.add(fr is not None and fr > 1 and L is not None and L < N, "ov_final", "overview", f"At the output, however, "
          f"{P('final_top1_token')} takes the top slot and the answer falls back to rank {P('final_answer_rank')}.",
          "final rank > 1")
    c.add(frac is not None and frac >= 0.75, "ov_late", "overview", f"The answer arrives late, at "
          f"{P('L_semantic_depth_fraction')} of the depth.", f"{frac:.2f}")
    c.add(v("L_copy") == 0 and bool(v("layer0_copy_is_tied_artifact")), "ov_copy", "overview", f"The embedding layer "
          f"copies the last prompt token, a strict copy collapse at {P('L_copy')}.", "L_copy 0, tied artifact")
    c.add(bool(v("prefer_ranks")), "ov_ranks", "overview", f"Because the artifact risk is "
          f"{P('lens_artifact_tier')}, the report leans on ranks and KL thresholds rather than absolute "
          "probabilities.", "prefer_ranks")


def _correct_profile(f: Facts, c: Pool) -> None:
    """Trends, extremes and comparisons over explicit layers."""
    R, Lr, v, N = f.R, f.Lr, f.v, f.N
    c.add(True, "q_entropy_last", "qualitative", f"Entropy {f.P('entropy_direction_at_unembed')} by "
          f"{f.P('entropy_change_at_unembed_size')} at the very last layer.", "direction placeholder")
    c.add(True, "q_entropy_span", "qualitative", f"Over the whole stack, entropy "
          f"{f.P('entropy_direction_first_to_last')} by {f.P('entropy_change_first_to_last_size')} from the "
          "embedding layer to the output.", "direction placeholder")
    c.add(f.ent(0) < 0.1, "q_entropy_l0", "qualitative", f"The distribution at {Lr(0)} is almost fully peaked, with "
          f"entropy {R(0, 'entropy')}.", f"{f.ent(0):.3f}")
    s = decreasing_run_to_output(f)
    c.add(N - s >= 2, "q_kl_trend", "qualitative", f"KL to the final head drops at every step from {Lr(s)} to "
          f"{Lr(N)}, where it reaches {R(N, 'kl_to_final')}.", f"strictly decreasing from L{s}")
    a, b = N // 2, N - 1
    c.add(f.rank(b) < f.rank(a), "q_rank_trend", "qualitative", f"Between {Lr(a)} and {Lr(b)} the answer's rank "
          f"improves from {R(a, 'answer_rank')} to {R(b, 'answer_rank')}.", f"{f.rank(a)} -> {f.rank(b)}")
    emax, kmax = max(f.layers, key=f.ent), max(f.layers, key=f.kl)
    c.add(True, "q_entropy_max", "qualitative", f"The broadest distribution, with entropy {R(emax, 'entropy')}, "
          f"appears at {Lr(emax)}.", f"argmax L{emax}")
    c.add(True, "q_kl_max", "qualitative", f"The lens is furthest from the final head at {Lr(kmax)}, where KL "
          f"reaches {R(kmax, 'kl_to_final')}.", f"argmax L{kmax}")
    c.add(f.kl(N - 1) < f.kl(kmax) - 1, "q_kl_compare", "qualitative", f"KL to the final head is lower at "
          f"{Lr(N - 1)} than at {Lr(kmax)}.", f"{f.kl(N - 1):.2f} < {f.kl(kmax):.2f}")
    y = N // 4
    c.add(f.ent(emax) > f.ent(y) + 0.5 and y != emax, "q_entropy_compare", "qualitative", f"Entropy at {Lr(emax)} "
          f"is well above its value at {Lr(y)}.", f"{f.ent(emax):.2f} vs {f.ent(y):.2f}")
    m = N // 2
    c.add(f.rank(m) > 100, "q_rank_far", "qualitative", f"At {Lr(m)} the answer is still far outside the top "
          f"{f.P('rank_threshold_10')}, at rank {R(m, 'answer_rank')}.", f"rank {f.rank(m)}")
    a, b = longest_token_run(f)
    c.add(b - a >= 1, "q_token_run", "qualitative", f"From {Lr(a)} through {Lr(b)} the top token stays "
          f"{R(a, 'top1_token')}.", f"same token L{a}..L{b}")
    c.add(f.rank(N - 1) > 0, "q_rank_row", "qualitative", f"The layer before the output, {Lr(N - 1)}, ranks the "
          f"answer at {R(N - 1, 'answer_rank')}.", "row fact")
    c.add(True, "q_rows", "qualitative", f"Decoded rows run from the embedding output at {Lr(0)} to the last block "
          f"at {Lr(N)}.", "layer map")
    c.add(True, "q_final_entropy", "qualitative", f"The output distribution has an entropy of "
          f"{f.P('final_entropy')}.", "fact")
    rise = v("entropy_direction_at_unembed")
    c.add(rise == "falls", "q_last_step", "qualitative", "The final step sharpens the distribution rather than "
          "broadening it.", "entropy falls at the last layer")
    c.add(rise == "rises", "q_last_step", "qualitative", "The final step broadens the distribution rather than "
          "sharpening it.", "entropy rises at the last layer")


def _correct_milestones(f: Facts, c: Pool) -> None:
    P, Lr, v, N = f.P, f.Lr, f.v, f.N
    L, r10, r5 = v("L_semantic"), v("first_rank_le_10"), v("first_rank_le_5")
    c.add(L is not None and L > 0, "q_no_earlier", "qualitative", f"No layer before {P('L_semantic')} has the answer "
          "as its top token.", "definition")
    c.add(r10 is not None and L is not None and r10 < L, "q_rank_before_top", "qualitative", f"The answer enters the "
          f"top {P('rank_threshold_10')} at {P('first_rank_le_10')}, before it takes the top slot at "
          f"{P('L_semantic')}.", f"{r10} < {L}")
    c.add(r10 is not None and r10 == r5 == L, "q_rank_same_layer", "qualitative", f"The answer enters the top "
          f"{P('rank_threshold_10')}, the top {P('rank_threshold_5')} and the top slot all at the same layer, "
          f"{P('L_semantic')}.", "all equal")
    c.add(L == N and L is not None, "q_only_output", "qualitative", f"The answer takes the top slot only at the "
          f"output layer itself, {Lr(N)}.", "L_semantic == N")
    c.add(L is not None and L < N and v("final_answer_rank") > 1, "q_lost_at_output", "qualitative", f"The answer "
          f"leads at {P('L_semantic')} but loses the top slot again at the output.", "final rank > 1")
    c.add(v("L_semantic_strong") == L and L is not None, "q_strong", "qualitative", f"The answer passes the strong "
          f"semantic gate at {P('L_semantic_strong')}, the layer where it first leads.", "strong == L")
    c.add(v("first_kl_le_0_5") is not None, "q_kl05", "qualitative", f"KL to the final head first drops to "
          f"{P('kl_threshold_0_5')} or below at {P('first_kl_le_0_5')}.", "definition")
    cos = v("first_cos_ge_0_6")
    c.add(cos is not None and L is not None and cos <= L - 3, "q_cos", "qualitative", f"By {P('first_cos_ge_0_6')} "
          f"the lens logits already align with the final logits at a cosine of {P('cos_threshold_0_6')}, well "
          "before the answer leads.", f"{cos} << {L}")
    c.add(all(f.rank(n) > 10 for n in range(0, N // 2 + 1)), "q_first_half", "qualitative", f"Up to the midpoint "
          f"of the stack the answer stays outside the top {P('rank_threshold_10')}.", "ranks > 10")
    c.add(v("L_semantic_raw") is None, "q_raw_never", "qualitative", "The raw lens never ranks the answer first at "
          "any layer.", "raw null")
    c.add(v("L_semantic_confirmed") is None and (v("L_semantic_depth_fraction") or 0) >= 0.75, "q_hedge_late",
          "qualitative", "The late arrival may partly be a lens effect, since the raw lens does not confirm it.",
          "unconfirmed")
    c.add(v("copy_stability") is not None, "q_copy_stability", "qualitative", f"The copy onset is "
          f"{P('copy_stability')} when the copy threshold changes.", "fact")
    c.add(v("layer0_copy_is_tied_artifact") is True, "q_copy_tied", "qualitative", f"The embedding layer's top token "
          f"is {f.R(0, 'top1_token')}, the last token of the prompt, as tied embeddings predict.", "tied artifact")


def _correct_experiments(f: Facts, c: Pool) -> None:
    P, S, v, N = f.P, f.S, f.v, f.N
    npunct, n_all = v("n_punctuation_top1_layers"), N + 1
    c.add(f.verdicts.get("punctuation_anchoring") == "✓" and npunct > 1, "q_punct", "qualitative", f"Punctuation is "
          f"the top token at {P('n_punctuation_top1_layers')} layers.", "✓")
    c.add(npunct > n_all / 2, "q_punct_most", "qualitative", "Punctuation holds the top slot at most layers.",
          f"{npunct}/{n_all}")
    c.add(0 < npunct <= n_all / 4, "q_punct_few", "qualitative", "Punctuation takes the top slot at only a few "
          "layers.", f"{npunct}/{n_all}")
    c.add(f.verdicts.get("filler_anchoring") == "✗", "q_filler", "qualitative", "Filler words such as articles never "
          "lead in the early layers.", "✗")
    c.add(True, "q_raw_share", "qualitative", f"The share of layers where raw and norm lens are at least "
          f"{P('kl_threshold_1')} apart is {P('share_layers_raw_norm_kl_ge_1')}.", "fact")
    c.add(True, "q_raw_max", "qualitative", f"At its widest, the gap between the raw and the norm lens reaches "
          f"{P('max_kl_raw_vs_norm')} of KL.", "fact")
    n_no = v("n_norm_only_semantic_layers")
    c.add(n_no == 1, "q_norm_only", "qualitative", f"Only {P('n_norm_only_semantic_layers')} layer counts as "
          "semantic under the norm lens alone.", "fact")
    m = v("control_final_margin")
    c.add(m is not None and m > 0, "q_control", "qualitative", f"On the control prompt the control answer finishes "
          f"ahead of {P('answer_token')}, with a final margin of {P('control_final_margin')}.", "margin > 0")
    lo, hi = f.t_lo, f.t_hi
    c.add(f.tv(lo, "entropy") < 0.1, "q_temp_low", "qualitative", f"At temperature {f.T(lo, 'temperature')} the "
          f"output is close to deterministic, with entropy {f.T(lo, 'entropy')}.", "entropy < 0.1")
    c.add(f.tv(lo, "answer_rank") == f.tv(hi, "answer_rank"), "q_temp_rank", "qualitative", f"Temperature reshapes "
          f"the spread but not the order: the answer holds rank {f.T(hi, 'answer_rank')} at both "
          f"{f.T(lo, 'temperature')} and {f.T(hi, 'temperature')}.", "equal ranks")
    c.add(f.tv(hi, "entropy") > f.tv(lo, "entropy"), "q_temp_high", "qualitative", f"At temperature "
          f"{f.T(hi, 'temperature')} the entropy climbs to {f.T(hi, 'entropy')}.", "rises")
    L, abl = v("L_semantic"), v("ablation_L_semantic_no_filler")
    c.add(abl is not None and abl == L, "q_ablation", "qualitative", f"Dropping the filler word leaves the semantic "
          f"layer at {P('ablation_L_semantic_no_filler')}.", "equal")
    c.add(abl is not None and L is not None and 0 < L - abl <= 2, "q_ablation", "qualitative", f"Without the filler "
          f"word the answer leads a little earlier, at {P('ablation_L_semantic_no_filler')}.", "earlier by <= 2")
    missing = [x for x in f.suite if f.sv(x, "L_semantic") is None]
    reached = [x for x in f.suite if f.sv(x, "L_semantic") is not None and x != answer(f)]
    if missing:
        x = missing[0]
        c.add(True, "q_suite_missing", "qualitative", f"{S(x, 'answer')} never takes the top slot in the "
              f"micro-suite and ends at rank {S(x, 'final_rank')}.", f"{x} null")
    if reached:
        y = reached[-1]
        c.add(True, "q_suite_reached", "qualitative", f"In the micro-suite {S(y, 'answer')} takes the top slot at "
              f"{S(y, 'L_semantic')}.", f"{y} reached")
    c.add(v("suite_L_semantic_median") is not None and v("suite_n_missing") > 1, "q_suite_summary", "qualitative",
          f"Across the micro-suite the median semantic layer is {P('suite_L_semantic_median')}, and "
          f"{P('suite_n_missing')} facts never resolve.", "facts")
    c.add(f.verdicts.get("copy_mask") == "✓", "q_mask", "qualitative", f"The copy mask covers {P('copy_mask_size')} "
          f"tokens of a vocabulary of {P('vocab_size')}, a small part of it.", "✓")
    c.add(True, "q_score", "qualitative", f"Its lens-artifact score of {P('lens_artifact_score')} places it in the "
          f"{P('lens_artifact_tier')} risk tier.", "facts")
    c.add(not v("any_nan_or_inf") and bool(v("deterministic_algorithms")), "q_health", "qualitative", "Numerics were "
          "clean, with no NaN or Inf values, and deterministic algorithms were on.", "facts")
    c.add(f.verdicts.get("rms_lens") == "✓", "q_norm_kind", "qualitative", f"The lens applies the model's "
          f"{P('final_norm_kind')} final norm at every layer.", "✓")
    c.add(f.verdicts.get("fp32_unembed") == "✓", "q_precision", "qualitative", "The unembedding inside the lens head "
          "runs at full precision.", "✓")
    c.add(bool(v("tied_embeddings")), "q_device", "qualitative", f"The model ran in {P('model_dtype')} on "
          f"{P('device')}, with tied input and output embeddings.", "facts")


def _correct_limitations(f: Facts, c: Pool) -> None:
    v = f.v
    c.add(True, "lim_components", "limitations", "Lens readouts show what each layer's residual stream encodes; they "
          "cannot say which components wrote it.", "limitation")
    c.add(True, "lim_single_prompt", "limitations", "Every per-layer number comes from a single prompt, so the "
          "profile may look different on other inputs.", "limitation")
    c.add(True, "lim_borrowed_head", "limitations", "The norm lens reuses the final norm and unembedding at every "
          "depth, a readout the early layers were never trained for.", "limitation")
    c.add(True, "lim_cutoffs", "limitations", "The milestones depend on the chosen rank and KL cut-offs; other "
          "cut-offs would move them.", "limitation")
    c.add(bool(v("prefer_ranks")), "lim_probs", "limitations", f"With a {f.P('lens_artifact_tier')} artifact tier, "
          "absolute probabilities at intermediate layers should not be taken at face value.", "prefer_ranks")
    c.add(f.verdicts.get("tuned_attribution") == "n.a.", "lim_tuned", "limitations", "No tuned lens was fitted, so "
          "whether a learned translator would shift the milestones remains unknown.", "n.a.")
    c.add(True, "lim_capitals", "limitations", "The micro-suite holds only capital cities, which says little about "
          "other kinds of facts.", "suite")
    c.add(v("L_semantic_confirmed") is None, "lim_unconfirmed", "limitations", "Without raw-lens confirmation the "
          "semantic layer rests on the norm lens alone.", "confirmed null")
    c.add(True, "lim_observational", "limitations", "Apart from the filler ablation, nothing here intervenes on the "
          "model, so the findings are observational.", "limitation")
    c.add(True, "lim_temperature", "limitations", "The temperature sweep describes the output head only, not the "
          "intermediate layers.", "temperature_exploration is final-head")


def _correct_fingerprint(f: Facts, c: Pool) -> None:
    P, v, N = f.P, f.v, f.N
    L, frac, cp = v("L_semantic"), v("L_semantic_depth_fraction") or 0, v("L_copy")
    c.add(cp is not None and cp < N / 3 and frac >= 0.75, "fp_copy_late", "fingerprint", f"Copy first, answer last: "
          f"the prompt is echoed at {P('L_copy')} and the answer leads only at {P('L_semantic')}.", "late")
    c.add(v("L_semantic_confirmed") is None and v("first_rank_le_10") is not None, "fp_unconfirmed", "fingerprint",
          f"Answer in the top {P('rank_threshold_10')} at {P('first_rank_le_10')}, on top at {P('L_semantic')}, and "
          "never confirmed by the raw lens.", "unconfirmed")
    c.add(L == N and v("n_punctuation_top1_layers") > (N + 1) / 2, "fp_output_only", "fingerprint", f"A late "
          f"resolver whose answer surfaces only at the output head, {f.Lr(N)}, after a long run of punctuation.",
          "L == N, punctuation at most layers")
    c.add(L is not None and L < N and v("final_answer_rank") > 1, "fp_slip", "fingerprint", f"A late resolver that "
          f"finds the answer at {P('L_semantic')} and then hands the output head's top slot to "
          f"{P('final_top1_token')}.", "final rank > 1")
    c.add(frac >= 0.75, "fp_tier", "fingerprint", f"A {P('lens_artifact_tier')}-risk lens profile in which the answer "
          f"arrives at {P('L_semantic_depth_fraction')} of the depth.", "late")
    c.add(all(f.rank(n) > 100 for n in range(N // 2 + 1)) and frac >= 0.75, "fp_far", "fingerprint", f"Far from the "
          f"answer up to the midpoint of the stack, with the answer leading only at {P('L_semantic')}.",
          "ranks > 100 in the first half")


CORRECT_GROUPS = (_correct_overview, _correct_profile, _correct_milestones, _correct_experiments,
                  _correct_limitations, _correct_fingerprint)


def correct_sentences(f: Facts) -> list[Sent]:
    pool = Pool()
    for group in CORRECT_GROUPS:
        group(f, pool)
    return pool.items


# ---------------------------------------------------------------------------------------------------------------
# The measurement


@pytest.fixture(scope="module")
def facts3(probe_run, tmp_path_factory) -> dict[str, Facts]:
    tmp = tmp_path_factory.mktemp("facts3")
    return {alias: Facts(alias, probe_run / alias, tmp) for alias in BUNDLED_MODELS}


def _check_corpus(alias: str, errors: list[Sent], correct: list[Sent]) -> None:
    """The corpus itself meets the brief before anything is measured."""
    assert len({e.text for e in errors}) == len(errors), "duplicate error sentences"
    assert len({c.text for c in correct}) == len(correct), "duplicate correct sentences"
    assert len({e.kind for e in errors}) >= MIN_KINDS, f"{alias}: only {len({e.kind for e in errors})} error types"
    assert len(errors) >= MIN_ERRORS, f"{alias}: only {len(errors)} error sentences"
    assert len(correct) >= MIN_CORRECT, f"{alias}: only {len(correct)} correct sentences"
    assert not re.search(r"\d", " ".join(re.sub(r"\{[^}]*\}", "", c.text) for c in correct)), "digit typed"
    words = re.compile(r"\b(?:" + "|".join(NUMBER_WORDS) + r")\b", re.I)
    assert not [c.text for c in correct if words.search(re.sub(r"\{[^}]*\}", "", c.text))], "number word typed"
    # verdict_for matches by substring: no sentence may contain another, or a verdict could go to the wrong one
    texts = [s.text for s in errors + correct]
    assert not [(a, b) for a in texts for b in texts if a != b and a in b], "a sentence contains another"


def _report(alias: str, results: list[tuple[Sent, bool, str]], correct: list[Sent],
            hits: dict[str, list[str]], seen: Counter, n_drafts: int, elapsed: float) -> tuple[float, str]:
    by_type: dict[str, list[tuple[bool, str]]] = defaultdict(list)
    for err, caught, finding in results:
        by_type[err.kind].append((caught, finding))
    lines = [f"\n=== heldout3 {alias}: {len(by_type)} error types, {len(results)} error sentences, {len(correct)} "
             f"correct sentences, {n_drafts} builds, {elapsed:.0f} s ===",
             f"{'type':<24}{'n':>4}{'caught':>8}{'missed':>8}  validator findings (kinds)"]
    for kind in sorted(by_type):
        rows = by_type[kind]
        kinds = Counter(k.split(":")[0] for ok, fnd in rows if ok for k in (fnd.split("; ") if fnd else ["(none)"]))
        lines.append(f"{kind:<24}{len(rows):>4}{sum(ok for ok, _ in rows):>8}{sum(not ok for ok, _ in rows):>8}  "
                     + ", ".join(f"{k}×{n}" for k, n in kinds.most_common()))
    misses = [e for e, ok, _ in results if not ok]
    lines.append(f"\nMISSES ({len(misses)}):")
    lines += [f"- [{e.kind}/{e.section}] {e.text}\n    why wrong: {e.why}" for e in misses]
    lines.append(f"\nFALSE ALARMS ({len(hits)} of {len(correct)} correct sentences removed at least once):")
    by_text = {c.text: c for c in correct}
    for t, fnds in hits.items():
        lines.append(f"- [{by_text[t].kind}/{by_text[t].section}] {t}\n    removed in {len(fnds)}/{seen[t]} drafts; "
                     f"finding: {Counter(fnds).most_common(1)[0][0]}")
    caught = sum(ok for _, ok, _ in results)
    rate = caught / len(results)
    lines.append(f"\n{alias}: caught {caught}/{len(results)} = {rate:.1%}; false alarms {len(hits)}/{len(correct)} "
                 "correct sentences")
    return rate, "\n".join(lines)


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_validator_heldout3(probe_run, tmp_path, alias, facts3):
    t0 = time.time()
    f = facts3[alias]
    errors, correct = error_sentences(f), correct_sentences(f)
    _check_corpus(alias, errors, correct)

    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(probe_run / alias, run / alias)  # one model per build keeps each draft to one report
    drafts = make_drafts(errors, correct)
    results: list[tuple[Sent, bool, str]] = []
    hits: dict[str, list[str]] = defaultdict(list)
    seen: Counter = Counter()
    for i, (err, ctx, text) in enumerate(drafts):
        out = tmp_path / f"d{i:03d}"
        record = run_draft(run, out, alias, text)
        if err is not None:
            results.append((err, *verdict_for(err, record)))
        for c in ctx:
            seen[c.text] += 1
            removed, finding = verdict_for(c, record)
            if removed:
                hits[c.text].append(finding or "(removed; no finding matched)")
        shutil.rmtree(out, ignore_errors=True)  # keeps tmp small over ~150 builds
    rate, text = _report(alias, results, correct, hits, seen, len(drafts), time.time() - t0)
    print(text)
    assert rate >= 0.95, f"{alias}: caught {rate:.1%} < 95%"
    assert not hits, f"{alias}: {len(hits)} correct sentences removed"
