"""Turn per-prompt traces into probe.json (summaries, milestones, diagnostics) and the CSV tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from probe import lensdata
from probe import milestones as ms
from probe.artifacts import SCHEMA_VERSION, Table, escape_token
from probe.metrics import kl_bits

if TYPE_CHECKING:
    from probe.prompts import PromptSet
    from probe.run import ProbeConfig, Prober, PromptTrace

FILLERS = {"is", "the", "a", "of"}


def tkey(x: float) -> str:
    """Threshold as a key without dots (dots separate JSON path parts in fact keys): 0.95 -> '0p95'."""
    return f"{x:g}".replace(".", "p") if isinstance(x, float) and not float(x).is_integer() else f"{x:g}p0"


def copy_cols(cfg: ProbeConfig) -> list[str]:
    """Names of the copy-flag columns in pure-next-token.csv."""
    return ([f"copy_strict_tau_{tkey(t)}" for t in cfg.copy_taus] +
            [f"copy_soft_k{k}_tau_{tkey(cfg.copy_soft_tau)}" for k in cfg.copy_soft_ks])


def pure_columns(cfg: ProbeConfig) -> tuple[str, ...]:
    """Column order of pure-next-token.csv."""
    from probe.run import PURE_BASE, PURE_METRICS

    topk = [c for j in range(2, cfg.top_k_pure + 1) for c in (f"top{j}_token", f"top{j}_prob")]  # top-1 is above
    return (*PURE_BASE, "top1_token", *PURE_METRICS, *copy_cols(cfg), *topk)


def prompt_milestones(t: PromptTrace, cfg: ProbeConfig, mask: set[int], n: int, vocab: int) -> dict[str, Any]:
    """Every milestone of one prompt, computed from its per-layer columns."""
    c, prompt_ids = t.cols, t.input_ids
    RANK_TS, KL_TS, COS_TS, P1_TS = (cfg.rank_thresholds, cfg.kl_thresholds_bits, cfg.cos_thresholds,
                                     cfg.p_top1_thresholds)
    strict = {tkey(tau): ms.first_layer(ms.copy_strict_flags(c["top1_id"], c["p_top1"], c["p_top2"], prompt_ids,
                                                             mask, tau, cfg.copy_margin)) for tau in cfg.copy_taus}
    soft = {f"k{k}": ms.first_layer(ms.copy_soft_flags(c["top1_id"], c["p_top1"], prompt_ids, mask,
                                                       cfg.copy_soft_tau, k)) for k in cfg.copy_soft_ks}
    l_copy = strict[tkey(cfg.copy_tau_headline)]
    l_sem = ms.first_layer(c["is_answer"])
    l_sem_raw = ms.first_layer([r == 1 for r in t.raw["answer_rank_raw"]])
    conf = ms.confirmed_semantics(c["answer_rank"], t.raw["answer_rank_raw"], cfg.confirm_window)
    earliest_copy = min((x for x in [l_copy, soft.get("k1")] if x is not None), default=None)
    out: dict[str, Any] = {
        "prompt_id": t.fact_id, "variant": t.variant, "role": t.role,
        "L_copy": l_copy, "L_copy_strict": strict, "L_copy_soft": soft,
        "copy_stability": ms.copy_stability({str(tau): strict[tkey(tau)] for tau in cfg.copy_taus}, n),
        "L_semantic": l_sem, "L_semantic_raw": l_sem_raw, **conf,
        "first_rank_le": {str(r): ms.first_layer([x <= r for x in c["answer_rank"]]) for r in RANK_TS},
        "first_kl_le": {tkey(k): v for k, v in zip(KL_TS, ms.threshold_milestones(c["kl_to_final_bits"], KL_TS,
                                                                                 True).values())},
        "first_cos_ge": {tkey(k): v for k, v in zip(COS_TS, ms.threshold_milestones(c["cos_to_final"], COS_TS,
                                                                                  False).values())},
        "first_p_top1_ge": {tkey(k): v for k, v in zip(P1_TS, ms.threshold_milestones(c["p_top1"], P1_TS,
                                                                                    False).values())},
        "gates": ms.semantic_gates(c["answer_rank"], c["p_answer"], c["answer_logit_gap"], vocab,
                                   cfg.semantic_margin_abs, cfg.top2_logit_gap),
        "delta_layers_copy_to_semantic": (l_sem - earliest_copy) if l_sem is not None and earliest_copy is not None
        else None,
    }
    out["depth_fractions"] = {k: (v / n if v is not None else None) for k, v in [
        ("L_semantic", l_sem), ("L_semantic_confirmed", conf["L_semantic_confirmed"]), ("L_copy", l_copy),
        ("first_rank_le_5", out["first_rank_le"].get("5")), ("first_kl_le_1p0", out["first_kl_le"].get("1p0"))]}
    out["delta_hat"] = (out["delta_layers_copy_to_semantic"] / n
                        if out["delta_layers_copy_to_semantic"] is not None else None)
    return out


def last_layer_gate(pr: Prober, t: PromptTrace, threshold: float) -> dict[str, Any]:
    """Does the norm lens at the last layer reproduce the model's own logits? Plus a temperature fit."""
    lens, model = t.final_logits, t.model_next_logits
    assert lens is not None and model is not None
    kl = float(kl_bits(lens, model))
    grid = [10 ** (-1 + 2 * i / 24) for i in range(25)]
    scale, kl_t = ms.temperature_fit([(s, float(kl_bits(lens / s, model))) for s in grid])
    pl, pm = torch.softmax(lens, -1), torch.softmax(model, -1)
    return {"prompt_id": t.fact_id, "variant": t.variant, "kl_lens_vs_model_bits": kl, "threshold_bits": threshold,
            "passed": kl < threshold, "top1_agree": int(lens.argmax()) == int(model.argmax()),
            "p_top1_lens": float(pl.max()), "p_top1_model": float(pm.max()), "temp_est": scale,
            "kl_after_temp_bits": kl_t}


def pure_rows(pr: Prober, t: PromptTrace, cfg: ProbeConfig, mask: set[int]) -> list[dict[str, Any]]:
    """Rows of pure-next-token.csv for one prompt."""
    from probe.run import PURE_METRICS

    c, n1 = t.cols, len(t.cols["layer"])
    flags = {}
    for tau in cfg.copy_taus:
        flags[f"copy_strict_tau_{tkey(tau)}"] = ms.copy_strict_flags(c["top1_id"], c["p_top1"], c["p_top2"],
                                                                     t.input_ids, mask, tau, cfg.copy_margin)
    for k in cfg.copy_soft_ks:
        flags[f"copy_soft_k{k}_tau_{tkey(cfg.copy_soft_tau)}"] = ms.copy_soft_flags(
            c["top1_id"], c["p_top1"], t.input_ids, mask, cfg.copy_soft_tau, k)
    rows = []
    for i in range(n1):
        row: dict[str, Any] = {"prompt_id": t.fact_id, "variant": t.variant, "role": t.role, "layer": i,
                               "normalizer": c["normalizer"][i], "entropy_bits": c["entropy_bits"][i],
                               "top1_id": c["top1_id"][i], "top1_token": pr.token(c["top1_id"][i])}
        row.update({m: c[m][i] for m in PURE_METRICS})
        row.update({name: f[i] for name, f in flags.items()})
        for j in range(1, cfg.top_k_pure):
            row[f"top{j + 1}_token"] = pr.token(t.topk_ids[i][j])
            row[f"top{j + 1}_prob"] = t.topk_probs[i][j]
        rows.append(row)
    return rows


def raw_rows(pr: Prober, t: PromptTrace) -> list[dict[str, Any]]:
    """Rows of raw-vs-norm.csv for one prompt."""
    c, r = t.cols, t.raw
    return [{"prompt_id": t.fact_id, "variant": t.variant, "layer": i, "p_top1_norm": c["p_top1"][i],
             "top1_id_norm": c["top1_id"][i], "top1_token_norm": pr.token(c["top1_id"][i]),
             "p_answer_norm": c["p_answer"][i], "answer_rank_norm": c["answer_rank"][i],
             "p_top1_raw": r["p_top1_raw"][i], "top1_id_raw": r["top1_id_raw"][i],
             "top1_token_raw": pr.token(r["top1_id_raw"][i]), "p_answer_raw": r["p_answer_raw"][i],
             "answer_rank_raw": r["answer_rank_raw"][i], "entropy_bits_norm": c["entropy_bits"][i],
             "entropy_bits_raw": r["entropy_bits_raw"][i], "kl_norm_vs_raw_bits": r["kl_norm_vs_raw_bits"][i],
             "kl_raw_vs_norm_bits": r["kl_raw_vs_norm_bits"][i], "js_bits": r["js_bits"][i],
             "l1_prob_diff": r["l1_prob_diff"][i], "norm_only_semantics": r["norm_only_semantics"][i]}
            for i in range(len(c["layer"]))]


def norm_trajectory(resid_norm: list[float], ratio: list[float], cosr: list[float], l_sem: int | None) -> dict:
    """Shape of log ||h|| over depth and whether the normalizer changes the residual sharply before L_semantic."""
    xs = list(range(len(resid_norm)))
    ys = [math.log(max(v, 1e-30)) for v in resid_norm]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    ss_tot = sum((y - my) ** 2 for y in ys) or 1e-30
    r2 = 1 - sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys)) / ss_tot
    upto = len(xs) if l_sem is None else l_sem + 1
    spikes = [i for i in range(upto) if ratio[i] > 3 or cosr[i] < 0.8]
    shape = "spike" if spikes else "plateau" if abs(slope) <= 0.01 else "monotonic" if r2 >= 0.7 else "non_monotonic"
    return {"shape": shape, "slope_log_norm_per_layer": slope, "r2": r2, "n_spikes_before_semantic": len(spikes),
            "spike_layers": spikes}


def summarize(pr: Prober, prompts: PromptSet, cfg: ProbeConfig, traces: list[PromptTrace],
              extras: dict[str, Any], alias: str) -> tuple[dict[str, Any], list[Table]]:
    """Build the probe.json document and the CSV tables."""
    n, vocab, mask = pr.parts.n_layers, pr.vocab, extras["copy_mask"]
    by = {(t.fact_id, t.variant): t for t in traces}
    head = by[(prompts.primary, "orig")]
    mst = {(t.fact_id, t.variant): prompt_milestones(t, cfg, mask, n, vocab) for t in traces}
    hm = mst[(prompts.primary, "orig")]
    gates = [last_layer_gate(pr, t, cfg.gate_kl_bits) for t in traces]
    worst_gate = max(gates, key=lambda g: g["kl_lens_vs_model_bits"])
    raw_sum = {f"{t.fact_id}/{t.variant}": ms.raw_norm_summary(t.raw["kl_norm_vs_raw_bits"], t.cols["answer_rank"],
                                                              t.raw["answer_rank_raw"], t.raw["js_bits"],
                                                              t.raw["l1_prob_diff"]) for t in traces}
    head_raw = raw_sum[f"{prompts.primary}/orig"]
    radius = cfg.raw_window_radius_high_risk if head_raw["tier"] == "high" else cfg.raw_window_radius
    centers = [hm["L_semantic"], hm["first_rank_le"]["5"], hm["first_kl_le"]["1p0"], hm["L_copy"],
               hm["L_copy_soft"].get("k1")]
    win = ms.window_layers(centers, radius, n)
    hc = head.cols
    layer0_top1 = hc["top1_id"][0]
    tied_note = {"tied_embeddings": pr.parts.tied, "layer0_top1_id": layer0_top1,
                 "layer0_top1_token": escape_token(pr.token(layer0_top1)),
                 "layer0_top1_is_last_input_token": layer0_top1 == head.input_ids[-1],
                 "layer0_copy_is_tied_embedding_artifact": pr.parts.tied and layer0_top1 == head.input_ids[-1]}
    copy_reflex_layers = [i for i in range(min(4, n + 1))
                          if any(mst_flag for mst_flag in _copy_flags_at(head, cfg, mask, i))]
    punct = [i for i in range(n + 1) if hc["top1_id"][i] in mask]
    filler = [i for i in range(min(6, n + 1)) if pr.token(hc["top1_id"][i]).strip().lower() in FILLERS]
    health_bad = sorted({i for t in traces for i, h in enumerate(t.health)
                         if not (h["resid"] and h["normed"] and h["logits"])})
    bias = pr.unembed.bias
    ctrl = by.get((prompts.control, "orig"))
    control = _control_summary(ctrl, pr, cfg, prompts) if ctrl is not None else None
    ablation = {f.id: _ablation(mst.get((f.id, "orig")), mst.get((f.id, "no_filler"))) for f in prompts.facts
                if (f.id, "no_filler") in mst}
    suite = {f.id: {"L_semantic": mst[(f.id, "orig")]["L_semantic"],
                    "L_semantic_frac": mst[(f.id, "orig")]["depth_fractions"]["L_semantic"],
                    "L_copy": mst[(f.id, "orig")]["L_copy"],
                    "final_answer_rank": by[(f.id, "orig")].cols["answer_rank"][n]} for f in prompts.facts}
    traj = norm_trajectory(hc["resid_norm"], hc["norm_ratio"], hc["cos_raw_normed"], hm["L_semantic"])
    guidance = ms.guidance(head_raw["tier"], worst_gate["passed"], hm["L_semantic_confirmed"], pr.parts.tied,
                           hm["L_copy"] == 0 or hm["L_copy_soft"].get("k1") == 0)
    lenses = _lenses_block(pr, cfg, traces, head)
    guidance["preferred_lens"] = lenses["preferred"]["lens"]
    final = {"entropy_bits": hc["entropy_bits"][n], "top1_token": escape_token(pr.token(hc["top1_id"][n])),
             "top1_id": hc["top1_id"][n], "p_top1": hc["p_top1"][n], "p_answer": hc["p_answer"][n],
             "answer_rank": hc["answer_rank"][n],
             "topk": [{"token": escape_token(pr.token(i)), "token_id": i, "prob": p}
                      for i, p in zip(head.topk_ids[n], head.topk_probs[n])]}
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": _model_block(pr, alias),
        "config": cfg.to_dict(),
        "prompt_set": prompts.to_dict(),
        "gold": {f"{t.fact_id}/{t.variant}": {**t.gold.to_dict(), "pieces": [escape_token(p) for p in t.gold.pieces]}
                 for t in traces},
        "headline": {
            "prompt_id": prompts.primary, "variant": "orig", "prompt_text": head.text, "answer": head.gold.string,
            "n_layers": n, "final": final,
            "entropy_rise_at_unembed_bits": hc["entropy_bits"][n] - hc["entropy_bits"][n - 1],
            "milestones": hm,
        },
        "last_layer_gate": {"threshold_bits": cfg.gate_kl_bits, "passed": all(g["passed"] for g in gates),
                            "max_kl_bits": worst_gate["kl_lens_vs_model_bits"], "headline": gates[traces.index(head)],
                            "per_prompt": gates},
        "milestones": {f"{k[0]}/{k[1]}": v for k, v in mst.items()},
        "control": control,
        "ablation": ablation,
        "lenses": lenses,
        "micro_suite": {"per_fact": suite,
                        "L_semantic": ms.median_iqr([s["L_semantic"] for s in suite.values()]),
                        "L_semantic_frac": ms.median_iqr([s["L_semantic_frac"] for s in suite.values()])},
        "raw_vs_norm": {"headline": head_raw, "per_prompt": raw_sum,
                        "window": {"radius": radius, "escalated": radius != cfg.raw_window_radius,
                                   "centers": [c for c in centers if c is not None], "layers": win,
                                   "n_norm_only": sum(head.raw["norm_only_semantics"][i] for i in win),
                                   "max_kl_norm_vs_raw_bits": max(head.raw["kl_norm_vs_raw_bits"][i] for i in win)
                                   if win else None}},
        "surface": {"copy_reflex": bool(copy_reflex_layers), "copy_reflex_layers": copy_reflex_layers,
                    "n_copy_reflex_layers": len(copy_reflex_layers),
                    "punctuation_top1_layers": punct, "n_punctuation_top1_layers": len(punct),
                    "filler_top1_layers_0_5": filler, "n_filler_top1_layers_0_5": len(filler), **tied_note},
        "normalization": {"strategy": pr.norm.strategy, "trajectory": traj, "n_layers_described": n + 1,
                          "per_layer": [{"layer": i, **pr.norm.normalizer(i).to_dict(),  # type: ignore[union-attr]
                                         "resid_norm": hc["resid_norm"][i], "norm_ratio": hc["norm_ratio"][i],
                                         "cos_raw_normed": hc["cos_raw_normed"][i]} for i in range(n + 1)]},
        "layer_map": {"n_layers_mapped": n + 1,
                      "layers": [{"layer": 0, "stream": "embeddings", "block": None}] +
                                [{"layer": i + 1, "stream": "post_block", "block": i} for i in range(n)]},
        "numeric_health": {"any_nan_or_inf": bool(health_bad), "layers_flagged": health_bad,
                           "max_abs_logit": max(h["max_abs_logit"] for t in traces for h in t.health)},
        "unembed_bias": {"present": bias is not None, "l2_norm": float(bias.norm()) if bias is not None else 0.0,
                         "max_abs": float(bias.abs().max()) if bias is not None else 0.0},
        "copy_mask": {"size": len(mask), "sample": [escape_token(pr.token(i)) for i in sorted(mask)[:16]],
                      "rule": "decoded text is empty, whitespace or Unicode punctuation"},
        "measurement_guidance": guidance,
        "test_prompts": [_strip(x) for x in extras["test_prompts"]],
        "temperature_exploration": [_with_answer(_strip(x), x, head.gold.first_id) for x in extras["temperatures"]],
        "environment": extras["environment"],
    }
    return doc, _tables(pr, cfg, traces, mst, head, win, mask)


def _copy_flags_at(t: PromptTrace, cfg: ProbeConfig, mask: set[int], i: int) -> list[bool]:
    c = t.cols
    strict = ms.copy_strict_flags(c["top1_id"], c["p_top1"], c["p_top2"], t.input_ids, mask,
                                  cfg.copy_tau_headline, cfg.copy_margin)
    soft = ms.copy_soft_flags(c["top1_id"], c["p_top1"], t.input_ids, mask, cfg.copy_soft_tau, 1)
    return [strict[i], soft[i]]


def _control_summary(t: PromptTrace, pr: Prober, cfg: ProbeConfig, prompts: PromptSet) -> dict[str, Any]:
    m, c = t.cols["control_margin"], t.cols
    strong = [m[i] > 0 and c["is_answer"][i] and c["answer_logit_gap"][i] >= cfg.top2_logit_gap
              for i in range(len(m))]
    return {"prompt_id": t.fact_id, "answer": t.gold.string, "contrast_answer": prompts.fact(prompts.primary).answer,
            "first_control_margin_pos": ms.first_layer([x > 0 for x in m]),
            "max_control_margin": max(m), "max_control_margin_layer": max(range(len(m)), key=lambda i: m[i]),
            "first_control_strong_pos": ms.first_layer(strong), "final_control_margin": m[-1]}


def _ablation(orig: dict | None, nf: dict | None) -> dict[str, Any]:
    def delta(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else b - a

    assert orig is not None and nf is not None
    return {"L_copy_orig": orig["L_copy"], "L_semantic_orig": orig["L_semantic"], "L_copy_nf": nf["L_copy"],
            "L_semantic_nf": nf["L_semantic"], "delta_L_copy": delta(orig["L_copy"], nf["L_copy"]),
            "delta_L_semantic": delta(orig["L_semantic"], nf["L_semantic"])}


def _model_block(pr: Prober, alias: str) -> dict[str, Any]:
    lm, cfg = pr.lm, pr.lm.model.config
    return {"alias": alias, "model_id": lm.source.model_id, "source": lm.source.kind,
            "gguf_file": lm.source.gguf_file and lm.source.gguf_file.rsplit("/", 1)[-1],
            "revision": lm.source.revision, "weights_sha256": lm.weights_sha256,
            "architecture": pr.parts.arch_class, "model_type": pr.parts.model_type, "n_layers": pr.parts.n_layers,
            "d_model": int(pr.unembed.weight.shape[1]), "vocab_size": pr.vocab,
            "n_heads": getattr(cfg, "num_attention_heads", None),
            "tied_embeddings": pr.parts.tied, "final_logit_softcapping": pr.parts.softcap,
            "softcap_applied": pr.parts.softcap is not None, "embed_scale": pr.parts.embed_scale,
            "final_norm": pr.parts.final_norm_info.to_dict()}


def _strip(x: dict[str, Any]) -> dict[str, Any]:
    return {"text": x["text"], "temperature": x["temperature"], "entropy_bits": x["entropy_bits"],
            "topk": [{**e, "token": escape_token(e["token"])} for e in x["topk"]]}


def _with_answer(d: dict[str, Any], x: dict[str, Any], gid: int) -> dict[str, Any]:
    z = x["_logits"]
    d["p_answer"] = float(torch.softmax(z, -1)[gid])
    d["answer_rank"] = int((z > z[gid]).sum()) + 1
    return d


def _lenses_block(pr: Prober, cfg: ProbeConfig, traces: list[PromptTrace], head: PromptTrace) -> dict[str, Any]:
    """Per lens: its table, the file it was loaded from, milestones on the primary prompt and the summary the
    preferred-lens rule reads (`probe.lensdata`)."""
    final_top1 = [t.cols["top1_id"][-1] for t in traces]
    by_lens: dict[str, Any] = {}
    for name in cfg.lenses:
        per_prompt = [t.cols if name == "norm" else t.lenses[name] for t in traces]
        cols = head.cols if name == "norm" else head.lenses[name]
        path = pr.lens_files.get(name)
        by_lens[name] = {
            "table": "pure-next-token.csv" if name == "norm" else f"lens-{name}.csv",
            "file": None if path is None else Path(path).name,
            "file_sha256": None if path is None else _sha256_path(Path(path)),
            "milestones": lensdata.lens_milestones(cols, cfg.rank_thresholds, cfg.kl_thresholds_bits),
            **lensdata.lens_summary(per_prompt, final_top1),
            "fit": None if path is None else lensdata.fit_summary(Path(path), name),
        }
    preferred = lensdata.preferred_lens({name: by_lens[name] for name in cfg.lenses})
    return {"order": list(cfg.lenses), "by_lens": by_lens, "preferred": preferred}


def _sha256_path(path: Path) -> str:
    """sha256 of a lens file, or of every file of a lens directory (name and bytes, sorted)."""
    import hashlib

    h = hashlib.sha256()
    # A lens directory may hold other files (a downloaded wheel, notes): only the lens's own files are its identity.
    files = sorted(p for p in path.iterdir() if p.name in lensdata.LENS_DIR_FILES) if path.is_dir() else [path]
    for p in files:
        h.update(p.name.encode() if path.is_dir() else b"")
        h.update(p.read_bytes())
    return h.hexdigest()


def _lens_rows(pr: Prober, traces: list[PromptTrace], name: str) -> list[dict[str, Any]]:
    """Rows of lens-<name>.csv: the pure-next-token columns of probe.lensdata for one lens."""
    rows = []
    for t in traces:
        c = t.lenses[name]
        for i in range(len(c["layer"])):
            rows.append({"prompt_id": t.fact_id, "variant": t.variant, "layer": i,
                         "top1_token": pr.token(c["top1_id"][i]),
                         **{k: c[k][i] for k in lensdata.LENS_COLUMNS if k in c and k != "layer"}})
    return rows


def _tables(pr: Prober, cfg: ProbeConfig, traces: list[PromptTrace], mst: dict, head: PromptTrace,
            win: list[int], mask: set[int]) -> list[Table]:
    pure = [r for t in traces for r in pure_rows(pr, t, cfg, mask)]
    raw = [r for t in traces for r in raw_rows(pr, t)]
    n1 = pr.parts.n_layers + 1
    window = []
    for i in win:
        for lens in ("norm", "raw"):
            sfx = "_norm" if lens == "norm" else "_raw"
            r = raw[traces.index(head) * n1 + i]
            window.append({"prompt_id": head.fact_id, "variant": head.variant, "layer": i, "lens": lens,
                           "p_top1": r["p_top1" + sfx], "top1_id": r["top1_id" + sfx],
                           "top1_token": r["top1_token" + sfx], "p_answer": r["p_answer" + sfx],
                           "answer_rank": r["answer_rank" + sfx], "kl_norm_vs_raw_bits": r["kl_norm_vs_raw_bits"]})
    mrows = []
    for ti, t in enumerate(traces):
        m = mst[(t.fact_id, t.variant)]
        named = {"L_copy": m["L_copy"], **{f"L_copy_soft_{k}": v for k, v in m["L_copy_soft"].items()},
                 "L_semantic": m["L_semantic"], "L_semantic_raw": m["L_semantic_raw"],
                 "L_semantic_confirmed": m["L_semantic_confirmed"],
                 **{f"first_rank_le_{k}": v for k, v in m["first_rank_le"].items()},
                 **{f"first_kl_le_{k}": v for k, v in m["first_kl_le"].items()},
                 **{f"first_cos_ge_{k}": v for k, v in m["first_cos_ge"].items()},
                 **{k: v for k, v in m["gates"].items() if k.startswith("L_")}}
        for name, layer in named.items():
            row = {"prompt_id": t.fact_id, "variant": t.variant, "milestone": name, "layer": layer,
                   "depth_frac": None if layer is None else layer / pr.parts.n_layers, "lens": "norm"}
            if layer is not None:
                row.update({"answer_rank": t.cols["answer_rank"][layer], "p_answer": t.cols["p_answer"][layer],
                            "kl_to_final_bits": t.cols["kl_to_final_bits"][layer],
                            "entropy_bits": t.cols["entropy_bits"][layer], "pure_csv_line": 2 + ti * n1 + layer})
            mrows.append(row)
    rec_cols = ("prompt_id", "variant", "layer", "pos", "token_id", "token", "entropy_bits",
                *[c for j in range(1, cfg.top_k_records + 1) for c in (f"top{j}_token", f"top{j}_prob")])
    from probe.run import RAW_COLUMNS

    tables = [
        Table("pure-next-token.csv", pure_columns(cfg), ("prompt_id", "variant", "layer"), pure),
        Table("raw-vs-norm.csv", RAW_COLUMNS, ("prompt_id", "variant", "layer"), raw),
        Table("raw-vs-norm-window.csv", ("prompt_id", "variant", "layer", "lens", "p_top1", "top1_id", "top1_token",
                                         "p_answer", "answer_rank", "kl_norm_vs_raw_bits"),
              ("prompt_id", "variant", "layer", "lens"), window),
        Table("milestones.csv", ("prompt_id", "variant", "milestone", "layer", "depth_frac", "lens", "answer_rank",
                                 "p_answer", "kl_to_final_bits", "entropy_bits", "pure_csv_line"),
              ("prompt_id", "variant", "milestone"), mrows),
    ]
    tables += [Table(f"lens-{name}.csv", lensdata.LENS_COLUMNS, ("prompt_id", "variant", "layer"),
                     _lens_rows(pr, traces, name)) for name in cfg.lenses if name != "norm"]
    if cfg.records:
        tables.append(Table("records.csv", rec_cols, ("prompt_id", "variant", "layer", "pos"),
                            [r for t in traces for r in t.records]))
        tables += [Table(f"records-{name}.csv", rec_cols, ("prompt_id", "variant", "layer", "pos"),
                         [r for t in traces for r in t.lens_records[name]]) for name in cfg.lenses if name != "norm"]
    return tables
