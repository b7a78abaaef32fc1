"""Milestones and diagnostics derived from per-layer measurements: pure functions over plain sequences."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def first_layer(flags: Sequence[bool], start: int = 0) -> int | None:
    """Index of the first True at or after `start`, else None."""
    return next((i for i in range(start, len(flags)) if flags[i]), None)


def contains_run(seq: Sequence[int], window: Sequence[int]) -> bool:
    """Whether `window` occurs as a contiguous run inside `seq`."""
    k = len(window)
    return k > 0 and any(list(seq[i : i + k]) == list(window) for i in range(len(seq) - k + 1))


def copy_strict_flags(top1: Sequence[int], p1: Sequence[float], p2: Sequence[float], prompt_ids: Sequence[int],
                      mask: set[int], tau: float, margin: float) -> list[bool]:
    """Strict copy collapse per layer: top-1 is a prompt token (not whitespace/punctuation), p1 > tau and
    p1 - p2 > margin."""
    prompt = set(prompt_ids)
    return [t in prompt and t not in mask and a > tau and a - b > margin for t, a, b in zip(top1, p1, p2)]


def copy_soft_flags(top1: Sequence[int], p1: Sequence[float], prompt_ids: Sequence[int], mask: set[int],
                    tau: float, k: int) -> list[bool]:
    """Soft copy per layer: the top-1 ids of the last k layers (ending here) form a contiguous run of the prompt,
    the current top-1 clears tau, and it is not a whitespace/punctuation token (the seed skipped that filter)."""
    flags = []
    for i in range(len(top1)):
        if i + 1 < k:
            flags.append(False)
            continue
        window = list(top1[i - k + 1 : i + 1])
        flags.append(top1[i] not in mask and p1[i] > tau and contains_run(prompt_ids, window))
    return flags


def confirmed_semantics(rank_norm: Sequence[int], rank_raw: Sequence[int], window: int) -> dict[str, Any]:
    """Earliest norm-lens rank-1 layer that the raw lens corroborates (raw rank 1 within +-window layers).

    Unlike the seed, every norm rank-1 layer is tried, not only the first one.
    """
    n = len(rank_norm)
    for layer in range(n):
        if rank_norm[layer] != 1:
            continue
        lo, hi = max(0, layer - window), min(n - 1, layer + window)
        raw_hits = [j for j in range(lo, hi + 1) if rank_raw[j] == 1]
        if raw_hits:
            return {"L_semantic_confirmed": layer, "confirmed_source": "raw", "raw_rank1_layer": raw_hits[0],
                    "window": window}
    return {"L_semantic_confirmed": None, "confirmed_source": None, "raw_rank1_layer": None, "window": window}


def semantic_gates(rank: Sequence[int], p_answer: Sequence[float], gap: Sequence[float], vocab: int,
                   margin_abs: float, top2_gap: float) -> dict[str, Any]:
    """Gates on the semantic onset: uniform margin, top-2 logit gap, run of two, and their combination."""
    n = len(rank)
    margin_ok = [rank[i] == 1 and p_answer[i] - 1.0 / vocab >= margin_abs for i in range(n)]
    top2_ok = [rank[i] == 1 and gap[i] >= top2_gap for i in range(n)]
    strong = [a and b for a, b in zip(margin_ok, top2_ok)]
    run2 = [rank[i] == 1 and i + 1 < n and rank[i + 1] == 1 for i in range(n)]
    strong_run2 = [strong[i] and i + 1 < n and strong[i + 1] for i in range(n)]
    return {
        "L_semantic_margin_ok": first_layer(margin_ok), "L_semantic_top2_ok": first_layer(top2_ok),
        "L_semantic_run2": first_layer(run2), "L_semantic_strong": first_layer(strong),
        "L_semantic_strong_run2": first_layer(strong_run2),
        "config": {"margin_abs": margin_abs, "top2_logit_gap": top2_gap},
    }


def threshold_milestones(values: Sequence[float], thresholds: Sequence[float], below: bool) -> dict[str, int | None]:
    """First layer where values <= t (below=True) or >= t, per threshold; keys are the thresholds as strings."""
    out: dict[str, int | None] = {}
    for t in thresholds:
        flags = [v <= t for v in values] if below else [v >= t for v in values]
        out[f"{t:g}"] = first_layer(flags)
    return out


def copy_stability(l_by_tau: dict[str, int | None], n_layers: int) -> str:
    """Compare strict copy onsets at the loosest and strictest tau: none | stable | fragile | mixed."""
    taus = sorted(l_by_tau, key=float)
    lo, hi = l_by_tau[taus[0]], l_by_tau[taus[-1]]
    if lo is None and hi is None:
        return "none"
    if lo is None or hi is None:
        return "fragile"
    spread = abs(hi - lo)
    if spread <= max(2, 0.05 * n_layers):
        return "stable"
    return "fragile" if spread >= max(6, 0.15 * n_layers) else "mixed"


def artifact_score(pct_kl_ge_1: float, n_norm_only: int, max_kl: float) -> tuple[float, str]:
    """Lens-artifact risk: 0.6*share(KL>=1 bit) + 0.3*[any norm-only semantics] + 0.1*min(1, maxKL/5).

    Tier: < 0.2 low, <= 0.5 medium, else high (the seed's v1 score and cut-offs).
    """
    score = 0.6 * pct_kl_ge_1 + 0.3 * (1.0 if n_norm_only > 0 else 0.0) + 0.1 * min(1.0, max_kl / 5.0)
    tier = "low" if score < 0.2 else "medium" if score <= 0.5 else "high"
    return score, tier


def raw_norm_summary(kl_norm_raw: Sequence[float], rank_norm: Sequence[int], rank_raw: Sequence[int],
                     js: Sequence[float], l1: Sequence[float]) -> dict[str, Any]:
    """Raw-vs-norm agreement over all layers of one prompt."""
    n = len(kl_norm_raw)
    norm_only = [i for i in range(n) if rank_norm[i] == 1 and rank_raw[i] != 1]
    pct1 = sum(k >= 1.0 for k in kl_norm_raw) / n
    max_kl = max(kl_norm_raw)
    score, tier = artifact_score(pct1, len(norm_only), max_kl)
    return {
        "n_layers_checked": n,
        "pct_layers_kl_ge_1p0": pct1,
        "pct_layers_kl_ge_0p5": sum(k >= 0.5 for k in kl_norm_raw) / n,
        "n_norm_only_semantics_layers": len(norm_only),
        "earliest_norm_only_semantic": norm_only[0] if norm_only else None,
        "norm_only_semantic_layers": norm_only,
        "max_kl_norm_vs_raw_bits": max_kl,
        "max_kl_layer": max(range(n), key=lambda i: kl_norm_raw[i]),
        "js_bits_p50": statistics.median(js),
        "l1_prob_diff_p50": statistics.median(l1),
        "lens_artifact_score": score,
        "tier": tier,
    }


def window_layers(centers: Sequence[int | None], radius: int, n_layers: int) -> list[int]:
    """Sorted union of [c - radius, c + radius] over the non-null centers, clipped to 0..n_layers."""
    out: set[int] = set()
    for c in centers:
        if c is not None:
            out.update(range(max(0, c - radius), min(n_layers, c + radius) + 1))
    return sorted(out)


def median_iqr(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and IQR of the non-null values, with how many were null."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return {"median": None, "q1": None, "q3": None, "n": 0, "n_missing": len(values)}
    if len(vals) == 1:
        q1 = q3 = vals[0]
    else:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return {"median": statistics.median(vals), "q1": q1, "q3": q3, "n": len(vals),
            "n_missing": len(values) - len(vals)}


def temperature_fit(kl_at: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Pick the (scale, KL) pair with the smallest KL from a grid evaluation."""
    return min(kl_at, key=lambda t: t[1])


def guidance(tier: str, gate_pass: bool, confirmed: int | None, tied: bool, l_copy0: bool) -> dict[str, Any]:
    """How a report should read the numbers: ranks vs probabilities, which onset to headline, caveats."""
    reasons = []
    if tier == "high":
        reasons.append("high_lens_artifact_risk")
    if not gate_pass:
        reasons.append("last_layer_gate_failed")
    if tied and l_copy0:
        reasons.append("layer0_copy_from_tied_embeddings")
    prefer_ranks = tier in {"medium", "high"} or not gate_pass
    return {
        "prefer_ranks": prefer_ranks,
        "suppress_abs_probs": tier == "high" or not gate_pass,
        "preferred_lens": "norm",
        "use_confirmed_semantics": confirmed is not None,
        "reasons": reasons,
    }
