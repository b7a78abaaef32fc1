"""Lenses as data: every lens of a run decodes the same NEXT-position residuals into its own per-layer table,
milestones and summary, and the preferred lens is chosen by a documented rule, not by fiat.

Table ``lens-<name>.csv`` (one per lens other than the norm lens, whose table stays ``pure-next-token.csv``): one row
per (prompt_id, variant, layer), columns `LENS_COLUMNS`; KL is measured against the model's own final distribution
(the norm lens at the last layer, which the last-layer gate ties to the model's logits), in bits, both directions.

Preferred lens (`preferred_lens`): the lens with the lowest mean KL(final ‖ lens) in bits over every non-final layer
of every probe prompt, among lenses whose top-1 agreement with the final head (share of those layers where the lens's
top token is the final top token) is at least the norm lens's minus 0.05. The probe prompts are never a lens's fitting
corpus, so for a fitted lens these figures are held out. Ties keep the earlier lens of the run's list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from probe.lenses import Lens
from probe.metrics import cosine, entropy_bits_logp, kl_bits_logp, rank_of

LENS_COLUMNS = ("prompt_id", "variant", "layer", "entropy_bits", "top1_id", "top1_token", "p_top1", "p_top5",
                "p_answer", "answer_rank", "is_answer", "kl_to_final_bits", "kl_final_to_layer_bits", "cos_to_final")
AGREEMENT_SLACK = 0.05
LENS_DIR_FILES = ("config.json", "params.pt", "prism.json", "prism.pt", "fit-report.json")


@dataclass
class LensTrace:
    """One lens on one prompt: per-layer columns (lists of n_layers + 1)."""

    lens: str
    cols: dict[str, list[Any]]


def lens_columns(z: torch.Tensor, final: torch.Tensor, gold_id: int, k: int = 5) -> dict[str, list[Any]]:
    """Per-layer metrics of one lens at the NEXT position.

    Args:
        z: Lens logits [n_layers + 1, vocab], float32.
        final: The model's final logits [vocab] (the reference every layer is compared with).
        gold_id: The answer's first token id.
        k: Top-k mass to report as p_top5 (5).

    Returns:
        Column name -> list over layers (tensors already converted to Python numbers).
    """
    if z.dim() != 2 or final.shape != z.shape[1:]:
        raise ValueError(f"lens logits {tuple(z.shape)} and final logits {tuple(final.shape)}: expected "
                         "[n_layers + 1, vocab] and [vocab]")
    lz = torch.log_softmax(z.float(), -1)
    lf = torch.log_softmax(final.float(), -1).expand_as(lz)
    p = lz.exp()
    tv, ti = p.topk(k, dim=-1)
    rank = rank_of(z, gold_id)
    return {
        "layer": list(range(z.shape[0])), "entropy_bits": entropy_bits_logp(lz).tolist(),
        "top1_id": ti[:, 0].tolist(), "p_top1": tv[:, 0].tolist(), "p_top5": tv.sum(-1).tolist(),
        "p_answer": p[:, gold_id].tolist(), "answer_rank": rank.tolist(), "is_answer": (rank == 1).tolist(),
        "kl_to_final_bits": kl_bits_logp(lz, lf).tolist(), "kl_final_to_layer_bits": kl_bits_logp(lf, lz).tolist(),
        "cos_to_final": cosine(z.float(), final.float().expand_as(z)).tolist(),
    }


def decode_layers(lens: Lens, last: torch.Tensor) -> torch.Tensor:
    """Decode the NEXT-position residual of every layer: last [n_layers + 1, d_model] -> [n_layers + 1, vocab]."""
    return torch.stack([lens.decode(last[i].float(), i) for i in range(last.shape[0])])


def first_layer(flags: list[bool]) -> int | None:
    """The first layer where a flag holds, or None."""
    return next((i for i, f in enumerate(flags) if f), None)


def lens_milestones(cols: dict[str, list[Any]], rank_thresholds: tuple[int, ...],
                    kl_thresholds: tuple[float, ...]) -> dict[str, Any]:
    """Milestones of one lens on one prompt: the first layer reaching each rank and KL threshold."""
    ranks, kls = cols["answer_rank"], cols["kl_to_final_bits"]
    return {
        "L_semantic": first_layer([r == 1 for r in ranks]),
        "first_rank_le": {str(t): first_layer([r <= t for r in ranks]) for t in rank_thresholds},
        "first_kl_le": {f"{t:g}".replace(".", "p") if not float(t).is_integer() else f"{t:g}p0":
                        first_layer([kl <= t for kl in kls]) for t in kl_thresholds},
    }


def lens_summary(per_prompt: list[dict[str, list[Any]]], final_top1: list[int]) -> dict[str, Any]:
    """Mean KL(final ‖ lens) over every non-final layer of every prompt, and top-1 agreement with the final head.

    Args:
        per_prompt: The lens's columns for each prompt.
        final_top1: The final head's top-1 id for each prompt, in the same order.
    """
    kls = [kl for cols in per_prompt for kl in cols["kl_final_to_layer_bits"][:-1]]
    agree = [top == ref for cols, ref in zip(per_prompt, final_top1) for top in cols["top1_id"][:-1]]
    return {"mean_kl_final_to_lens_bits": sum(kls) / len(kls) if kls else None,
            "top1_agreement": sum(agree) / len(agree) if agree else None, "n_layer_prompts": len(kls)}


def preferred_lens(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Apply the module's rule to per-lens summaries (insertion order = the run's lens order)."""
    norm = summaries.get("norm", {}).get("top1_agreement")
    floor = None if norm is None else norm - AGREEMENT_SLACK
    eligible = [name for name, s in summaries.items() if s["mean_kl_final_to_lens_bits"] is not None
                and (floor is None or (s["top1_agreement"] or 0.0) >= floor)]
    best = min(eligible, key=lambda name: summaries[name]["mean_kl_final_to_lens_bits"]) if eligible else "norm"
    return {"lens": best, "eligible": eligible, "agreement_floor": floor,
            "rule": "lowest mean KL(final || lens) over non-final layers of the probe prompts, among lenses whose "
                    "top-1 agreement with the final head is at least the norm lens's minus 0.05"}


def fit_summary(path: Path, name: str) -> dict[str, Any] | None:
    """The held-out figures of a fitted lens's ``fit-report.json`` (`probe.fit`), or None when it has none.

    Mean KL(final ‖ ·) in bits over layers 0..n-1 of the held-out corpus positions, for the norm lens, a per-layer
    temperature on it, and this lens; the gap to the norm lens split into what the temperature removes and the rest
    (the lens's rotation/translation).
    """
    report = (path if path.is_dir() else path.parent) / "fit-report.json"
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
        mean = doc["heldout"]["mean_over_layers_0_to_n_minus_1"]
        return {"corpus": str(doc["corpus"]["name"]), "heldout_positions": int(doc["tokens"]["heldout_positions"]),
                "kl_direction": str(doc["kl_direction"]), "kl_norm_bits": float(mean["kl_norm_bits"]),
                "kl_temperature_bits": float(mean["kl_temperature_bits"]),
                "kl_lens_bits": float(mean[f"kl_{name}_bits"]),
                "delta_temperature_bits": float(mean["delta_temperature"]),
                "delta_rotation_bits": float(mean["delta_rotation"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a lens without a (readable) fit report: its held-out figures are simply not known
