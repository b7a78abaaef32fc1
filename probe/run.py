"""Probe one model over a prompt set: capture residuals, decode with lenses, measure, summarise, write artifacts."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import probe
from probe.artifacts import SCHEMA_VERSION, write_model_dir
from probe.capture import capture
from probe.errors import ProbeError
from probe.lensdata import decode_layers, lens_columns
from probe.lenses import Lens, NormLens, RawLens, Unembed, build_lens
from probe.metrics import cosine, entropy_bits, entropy_bits_logp, js_bits, kl_bits_logp, logit_gap, rank_of
from probe.models import LoadedModel, cache_root
from probe.prompts import GoldAnswer, PromptSet, align_gold
from probe.summarize import summarize
from probe.surgery import discover

# Records keep top-k of every layer at every position, so cost grows with prompt length times depth; the lens
# prompts are one sentence. A 20k-token prompt ran 938 s to 14 GB before this limit.
MAX_PROMPT_TOKENS = 1024


@dataclass(frozen=True)
class ProbeConfig:
    """Knobs of a probe run; recorded verbatim in probe.json under `config`."""

    norm_strategy: str = "final_norm"
    top_k_pure: int = 10
    top_k_records: int = 5
    copy_taus: tuple[float, ...] = (0.70, 0.80, 0.90, 0.95)
    copy_tau_headline: float = 0.95
    copy_margin: float = 0.10
    copy_soft_tau: float = 0.33
    copy_soft_ks: tuple[int, ...] = (1, 2, 3)
    semantic_margin_abs: float = 0.002
    top2_logit_gap: float = 0.5
    confirm_window: int = 2
    raw_window_radius: int = 4
    raw_window_radius_high_risk: int = 8
    gate_kl_bits: float = 1e-3
    rank_thresholds: tuple[int, ...] = (10, 5, 1)
    kl_thresholds_bits: tuple[float, ...] = (1.0, 0.5)
    cos_thresholds: tuple[float, ...] = (0.2, 0.4, 0.6)
    p_top1_thresholds: tuple[float, ...] = (0.3, 0.6)
    seed: int = 316
    records: bool = True
    lenses: tuple[str, ...] = ("norm", "raw")  # see probe.lensdata; fitted lenses need a file (lens_files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


PURE_BASE = ("prompt_id", "variant", "role", "layer", "normalizer", "entropy_bits", "top1_id")
PURE_METRICS = ("p_top1", "p_top5", "rest_mass", "p_answer", "answer_rank", "is_answer", "answer_logit_gap",
                "kl_to_final_bits", "kl_final_to_layer_bits", "cos_to_final", "control_margin", "resid_norm",
                "norm_ratio", "cos_raw_normed")
RAW_COLUMNS = ("prompt_id", "variant", "layer", "p_top1_norm", "top1_id_norm", "top1_token_norm", "p_answer_norm",
               "answer_rank_norm", "p_top1_raw", "top1_id_raw", "top1_token_raw", "p_answer_raw", "answer_rank_raw",
               "entropy_bits_norm", "entropy_bits_raw", "kl_norm_vs_raw_bits", "kl_raw_vs_norm_bits", "js_bits",
               "l1_prob_diff", "norm_only_semantics")


@dataclass
class PromptTrace:
    """Per-layer NEXT-position measurements of one prompt; lists are indexed by layer (0 = embeddings)."""

    fact_id: str
    variant: str
    role: str
    text: str
    input_ids: list[int]
    gold: GoldAnswer
    cols: dict[str, list[Any]] = field(default_factory=dict)
    topk_ids: list[list[int]] = field(default_factory=list)
    topk_probs: list[list[float]] = field(default_factory=list)
    raw: dict[str, list[Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, bool]] = field(default_factory=list)
    lenses: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # lens name -> columns (probe.lensdata)
    lens_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # lens name -> records rows
    model_next_logits: torch.Tensor | None = None
    final_logits: torch.Tensor | None = None


class Prober:
    """Holds one loaded model with its lenses and decodes prompts."""

    def __init__(self, lm: LoadedModel, cfg: ProbeConfig, lens_files: dict[str, Path] | None = None):
        self.lm, self.cfg = lm, cfg
        self.parts = discover(lm.model)
        dev = lm.device if lm.device.type != "meta" else torch.device("cpu")
        self.dev = self.parts.unembed_weight.device if lm.extra.get("device_map") else dev
        self.unembed = Unembed.from_parts(self.parts, self.dev)
        self.norm = NormLens.from_parts(self.parts, self.unembed, self.dev, cfg.norm_strategy)
        self.raw = RawLens.from_parts(self.parts, self.unembed, self.dev)
        # Every lens of the run but the norm lens (whose columns are the pure-next-token table) decodes the same
        # residuals into its own table; fitted lenses are loaded from their files (hashes checked on load).
        self.lens_files = dict(lens_files or {})
        self.lenses: dict[str, Lens] = {name: self.raw if name == "raw" else
                                        build_lens(name, self.parts, self.unembed, self.dev, cfg.norm_strategy,
                                                   path=self.lens_files.get(name))
                                        for name in cfg.lenses if name != "norm"}
        for name, lens in self.lenses.items():
            covers = getattr(lens, "has_layer", lambda _layer: True)
            missing = [i for i in range(self.parts.n_layers + 1) if not covers(i)]
            if missing:  # a lens table has a row per layer: a partly fitted lens cannot fill one
                raise ProbeError(f"{self.lens_files.get(name)}: the {name} lens has no fit for layers {missing}; "
                                 f"`probe run --lens {name}` needs every layer (refit without --layers)")
        self.tok = lm.tokenizer
        self._strs: dict[int, str] = {}
        self.vocab = int(self.unembed.weight.shape[0])

    def token(self, i: int) -> str:
        """Decoded string of one token id (cached)."""
        s = self._strs.get(i)
        if s is None:
            s = self._strs[i] = self.tok.decode([i])
        return s

    def copy_mask(self) -> set[int]:
        """Ids whose decoded text is empty, whitespace or punctuation only (never counted as copies).

        Decoding a 262k vocabulary takes seconds, so the mask is cached per weights hash and vocabulary size.
        """
        path = cache_root() / "copy-masks" / f"{self.lm.weights_sha256[:24]}-{self.vocab}.json"
        if path.is_file():
            return set(json.loads(path.read_text()))
        strs = self.tok.batch_decode([[i] for i in range(self.vocab)])
        mask = {i for i, s in enumerate(strs)
                if all(c.isspace() or unicodedata.category(c).startswith("P") for c in s)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted(mask)))
        os.replace(tmp, path)
        return mask

    def encode(self, text: str) -> list[int]:
        """Token ids as the model sees the prompt (with the tokenizer's special tokens, e.g. Gemma's BOS).

        Raises:
            ProbeError: The prompt is longer than the model's context or than MAX_PROMPT_TOKENS.
        """
        ids = list(self.tok(text, add_special_tokens=True)["input_ids"])
        context = getattr(self.lm.model.config, "max_position_embeddings", None) or MAX_PROMPT_TOKENS
        limit = min(MAX_PROMPT_TOKENS, int(context))
        if len(ids) > limit:
            shown = text[:40] + ("\u2026" if len(text) > 40 else "")
            raise ProbeError(f"prompt {shown!r} is {len(ids)} tokens; the probe takes at most {limit} (model context "
                             f"{context}, probe limit {MAX_PROMPT_TOKENS}: it keeps every layer at every position); "
                             "shorten the prompt")
        return ids

    @torch.no_grad()
    def trace(self, fact_id: str, variant: str, role: str, text: str, gold: GoldAnswer,
              other_gold: GoldAnswer | None) -> PromptTrace:
        """Capture one prompt and measure every layer (NEXT position) plus top-k records at all positions."""
        ids = self.encode(text)
        cap = capture(self.lm.model, self.parts, ids, self.dev)
        n1 = cap.resid.shape[0]
        t = PromptTrace(fact_id, variant, role, text, ids, gold)
        last = cap.resid[:, -1, :]  # [n_layers + 1, d_model]
        normed = torch.stack([self.norm.normalize(last[i], i) for i in range(n1)])
        # The records pass decodes every position anyway; its last row is the NEXT logits of that layer.
        z = torch.stack([self._record_layer(t, cap.resid[layer], layer, ids) for layer in range(n1)])
        zr = self.raw.decode(last, 0)
        t.model_next_logits, t.final_logits = cap.logits[-1], z[-1]
        self._next_metrics(t, z, zr, last, normed, gold, other_gold)
        for name, lens in self.lenses.items():
            zl = zr if name == "raw" else decode_layers(lens, last)
            t.lenses[name] = lens_columns(zl, z[-1], gold.first_id)
            if self.cfg.records:  # every lens has its own records: top-k at every position of every layer
                t.lens_records[name] = [row for layer in range(n1)
                                        for row in self._topk_rows(t, lens.decode(cap.resid[layer].float(), layer),
                                                                   layer, ids)]
        return t

    def _record_layer(self, t: PromptTrace, h: torch.Tensor, layer: int, ids: list[int]) -> torch.Tensor:
        """Decode all positions of one layer: entropy and top-k per position, numeric health.

        Returns:
            The NEXT-position logits of this layer, [vocab].
        """
        hn = self.norm.normalize(h, layer)
        logits = self.unembed(hn)  # [seq, vocab]
        t.health.append({"resid": bool(torch.isfinite(h).all()), "normed": bool(torch.isfinite(hn).all()),
                         "logits": bool(torch.isfinite(logits).all()),
                         "max_abs_logit": float(logits.abs().max())})
        if self.cfg.records:
            t.records += self._topk_rows(t, logits, layer, ids)
        return logits[-1]

    def _topk_rows(self, t: PromptTrace, logits: torch.Tensor, layer: int, ids: list[int]) -> list[dict[str, Any]]:
        """Records rows of one layer: entropy and top-k at every position; logits [seq, vocab] float32."""
        k = self.cfg.top_k_records
        logp = torch.log_softmax(logits, -1)  # one normalization serves entropy and top-k
        ent = entropy_bits_logp(logp).tolist()
        lv, ti = logp.topk(k, dim=-1)
        tv, ti = lv.exp().tolist(), ti.tolist()
        rows = []
        for pos in range(len(ids)):
            row: dict[str, Any] = {"prompt_id": t.fact_id, "variant": t.variant, "layer": layer, "pos": pos,
                                   "token_id": ids[pos], "token": self.token(ids[pos]), "entropy_bits": ent[pos]}
            for j in range(k):
                row[f"top{j + 1}_token"] = self.token(ti[pos][j])
                row[f"top{j + 1}_prob"] = tv[pos][j]
            rows.append(row)
        return rows

    def _next_metrics(self, t: PromptTrace, z: torch.Tensor, zr: torch.Tensor, h: torch.Tensor,
                      hn: torch.Tensor, gold: GoldAnswer, other: GoldAnswer | None) -> None:
        """Vectorized per-layer metrics at the NEXT position for the norm and raw lenses."""
        k, gid = self.cfg.top_k_pure, gold.first_id
        n1 = z.shape[0]
        final = z[-1:].expand_as(z)
        # Normalize each distribution once; every divergence below reuses these log-probabilities.
        lz, lr = torch.log_softmax(z, -1), torch.log_softmax(zr, -1)
        lf = lz[-1:].expand_as(lz)
        p = lz.exp()
        tv, ti = p.topk(k, dim=-1)
        rank = rank_of(z, gid)
        c: dict[str, Any] = {
            "layer": list(range(n1)),
            "normalizer": [self.norm.normalizer(i).module for i in range(n1)],  # type: ignore[union-attr]
            "entropy_bits": entropy_bits_logp(lz).tolist(), "top1_id": ti[:, 0].tolist(),
            "p_top1": tv[:, 0].tolist(), "p_top2": tv[:, 1].tolist(), "p_top5": tv[:, :5].sum(-1).tolist(),
            "rest_mass": (1.0 - tv.sum(-1)).clamp_min(0).tolist(), "p_answer": p[:, gid].tolist(),
            "answer_rank": rank.tolist(), "is_answer": (rank == 1).tolist(),
            "answer_logit_gap": logit_gap(z, gid).tolist(),
            "kl_to_final_bits": kl_bits_logp(lz, lf).tolist(), "kl_final_to_layer_bits": kl_bits_logp(lf, lz).tolist(),
            "cos_to_final": cosine(z, final).tolist(),
            # On the control prompt (gold gid = the control answer): p(control answer) - p(primary answer), so a
            # positive margin means the control prompt is answered by its own answer. Probe < 0.2 wrote the negation.
            "control_margin": ((p[:, gid] - p[:, other.first_id]).tolist() if other is not None and
                               t.role == "control" else [None] * n1),
            "resid_norm": h.norm(dim=-1).tolist(), "norm_ratio": (hn.norm(dim=-1) / h.norm(dim=-1)).tolist(),
            "cos_raw_normed": cosine(h, hn).tolist(),
        }
        t.cols = c
        t.topk_ids, t.topk_probs = ti.tolist(), tv.tolist()
        pr = lr.exp()
        rank_raw = rank_of(zr, gid)
        t.raw = {
            "p_top1_raw": pr.max(-1).values.tolist(), "top1_id_raw": zr.argmax(-1).tolist(),
            "p_answer_raw": pr[:, gid].tolist(), "answer_rank_raw": rank_raw.tolist(),
            "entropy_bits_raw": entropy_bits_logp(lr).tolist(), "kl_norm_vs_raw_bits": kl_bits_logp(lz, lr).tolist(),
            "kl_raw_vs_norm_bits": kl_bits_logp(lr, lz).tolist(), "js_bits": js_bits(z, zr).tolist(),
            "l1_prob_diff": (p - pr).abs().sum(-1).tolist(),
            "norm_only_semantics": ((rank == 1) & (rank_raw != 1)).tolist(),
        }

    @torch.no_grad()
    def final_head(self, text: str, temperature: float = 1.0, k: int = 10) -> dict[str, Any]:
        """Final-head distribution (fp32 lens head on the last block's raw output) of a prompt at a temperature."""
        ids = self.encode(text)
        cap = capture(self.lm.model, self.parts, ids, self.dev)
        z = self.norm.decode(cap.resid[-1, -1], cap.resid.shape[0] - 1) / temperature
        p = torch.softmax(z, -1)
        tv, ti = p.topk(k)
        return {"text": text, "temperature": temperature, "entropy_bits": float(entropy_bits(z)),
                "topk": [{"token": self.token(i), "token_id": i, "prob": v} for i, v in zip(ti.tolist(), tv.tolist())],
                "_logits": z}


def git_commit() -> str | None:
    """The probe source's git commit, when it runs from a checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(probe.__file__).parent, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(lm: LoadedModel, cfg: ProbeConfig) -> dict[str, Any]:
    """What determines the numbers besides the inputs: versions, device, dtype, determinism."""
    import transformers

    # The kernel string and the thread count differ between machines that compute the same numbers: they go in
    # manifest.json (`host`), so a rerun elsewhere gives byte-identical artifacts and committed reports stay fresh.
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": str(lm.device),
            "dtype_model": str(lm.dtype).replace("torch.", ""), "dtype_lens": "float32",
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(), "seed": cfg.seed,
            "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def probe_model(lm: LoadedModel, prompts: PromptSet, cfg: ProbeConfig, out_dir: Path, alias: str,
                progress: Any = None, lens_files: dict[str, Path] | None = None) -> Path:
    """Run every prompt of the set through one model and write its artifact directory.

    Args:
        progress: optional callable(str) advanced once per traced prompt (a tqdm update).
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    pr = Prober(lm, cfg, lens_files)
    golds = {(f.id, v): align_gold(pr.tok, prompts.text(f.id, v), f.answer)
             for f in prompts.facts for v in prompts.templates}
    traces: list[PromptTrace] = []
    for f in prompts.facts:
        for v in prompts.templates:
            role = prompts.role(f.id)
            other = golds[(prompts.primary, v)] if role == "control" else None
            traces.append(pr.trace(f.id, v, role, prompts.text(f.id, v), golds[(f.id, v)], other))
            if progress:
                progress(f"{f.id}/{v}")
    t_traces = time.perf_counter() - t0
    extras = {
        "test_prompts": [pr.final_head(tp) for tp in prompts.test_prompts],
        "temperatures": [pr.final_head(prompts.text(prompts.primary, "orig"), temp) for temp in prompts.temperatures],
        "copy_mask": pr.copy_mask(),
        "environment": environment(lm, cfg),
    }
    doc, tables = summarize(pr, prompts, cfg, traces, extras, alias)
    manifest = {
        "probe_version": probe.__version__, "code_commit": git_commit(), "model": doc["model"],
        "prompt_set": {"name": prompts.name, "file": Path(prompts.path).name, "sha256": prompts.sha256},
        "weights_sha256": lm.weights_sha256,
        "timings_s": {"traces": t_traces, "total": time.perf_counter() - t0},
        "host": {"platform": platform.platform(), "num_threads": torch.get_num_threads()},
        "created_unix": int(time.time()),
    }
    assert doc["schema_version"] == SCHEMA_VERSION
    return write_model_dir(out_dir / alias, doc, tables, manifest)

