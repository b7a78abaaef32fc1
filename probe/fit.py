"""Fit tuned and Prism lenses on a corpus and report held-out KL(final || lens) per layer.

Data: residuals of distinct corpus positions (`probe.corpus.collect_residuals`; position 0 is dropped).

Tuned-lens recipes:

- ``cpu`` (default off a GPU): closed-form ridge least squares per layer (regress h_final - h_l on [h_l, 1],
  ridge = `ridge` * mean diagonal of the centered Gram matrix, intercept unpenalized, float64), then a short
  fine-tune of all translators minimizing the sum over layers of mean KL(final || lens) in bits with Adam
  (linear decay, gradient-norm clip 1.0).
- ``gpu`` (``--device cuda``): the tuned-lens library's defaults: identity init, SGD with Nesterov momentum 0.9,
  lr 1.0 * (1 - 0.9), weight decay 1e-3, linear decay, clip 1.0, 250 steps of up to 2**18 positions each (drawn
  from the collected pool), KL(final || lens).

Held-out report: per layer, mean KL(final || lens) in bits over held-out positions for the norm lens, the
temperature-only baseline (one scalar 1/tau per layer on the norm-lens logits, fitted by Newton's method on the fit
split; the KL is convex in 1/tau) and the fitted lens; the attribution splits KL_norm - KL_tuned into
KL_norm - KL_temperature ("temperature") and KL_temperature - KL_tuned ("rotation": everything beyond a scale).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from probe.artifacts import atomic_write_text, dumps_json
from probe.corpus import Residuals, collect_residuals, load_corpus, split_documents
from probe.lenses import Lens, NormLens, Unembed
from probe.models import LoadedModel
from probe.prism import LENS_FACTORIES as PRISM_FACTORIES
from probe.prism import fit_prism
from probe.surgery import discover
from probe.tuned import LENS_FACTORIES as TUNED_FACTORIES
from probe.tuned import TunedLens

LN2 = math.log(2.0)
REPORT_FILE = "fit-report.json"
ROW_BUDGET = 2**26  # floats per [rows, vocab] logits block while training / evaluating
LENS_FACTORIES: dict[str, Callable[..., Lens]] = {**TUNED_FACTORIES, **PRISM_FACTORIES}
Log = Callable[[str], None]
__all__ = ["LENS_FACTORIES", "Residuals", "add_fit_parser", "collect_residuals", "fit_tuned", "run_fit"]


def _quiet(_msg: str) -> None:
    return None


@dataclass(frozen=True)
class Recipe:
    """How the translators are fitted."""

    name: str
    init: str  # "lstsq" | "identity"
    optimizer: str  # "adam" | "sgd"
    steps: int
    lr: float
    batch: int  # positions per step (every layer sees the same positions)
    momentum: float = 0.9
    weight_decay: float = 0.0
    ridge: float = 1e-3
    clip: float = 1.0


CPU_RECIPE = Recipe("cpu", "lstsq", "adam", steps=30, lr=5e-4, batch=64)
GPU_RECIPE = Recipe("gpu", "identity", "sgd", steps=250, lr=1.0 * (1 - 0.9), batch=2**18, weight_decay=1e-3)


def ridge_lambda(xc: torch.Tensor, ridge: float) -> float:
    """Ridge penalty: `ridge` times the mean diagonal of the centered Gram matrix xc^T xc."""
    return float(ridge * (xc * xc).sum() / xc.shape[1])


def lstsq_translator(x: torch.Tensor, y: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge least squares y ~ x a + c with an unpenalized intercept, in float64.

    Args:
        x: [n_pos, d] inputs (h_l); y: [n_pos, d] targets (h_final - h_l).

    Returns:
        (weight [d, d], bias [d]) float32 in the nn.Linear convention (weight = a.T).
    """
    xd, yd = x.double(), y.double()
    xm, ym = xd.mean(0), yd.mean(0)
    xc, yc = xd - xm, yd - ym
    gram = xc.T @ xc
    gram.diagonal().add_(ridge_lambda(xc, ridge))
    a = torch.linalg.solve(gram, xc.T @ yc)
    return a.T.float().contiguous(), (ym - xm @ a).float()


def _target_logp(lens: NormLens, h_final: torch.Tensor, n: int) -> torch.Tensor:
    return torch.log_softmax(lens.decode(h_final, n), -1)


def _kl_bits(lp: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(P || softmax(logits)) in bits over the last axis; lp are P's log-probabilities."""
    return (lp.exp() * (lp - torch.log_softmax(logits, -1))).sum(-1) / LN2


def finetune(lens: TunedLens, norm: NormLens, resid: torch.Tensor, recipe: Recipe, seed: int,
             log: Log = _quiet) -> list[float]:
    """Minimize sum_l mean KL(final || tuned_l) over positions of resid [n + 1, n_pos, d]; replaces lens.weight/bias.

    Returns:
        The loss (sum over layers of mean KL in bits) of every step.
    """
    n, n_pos = lens.n_layers, resid.shape[1]
    w = lens.weight.detach().clone().requires_grad_(True)
    b = lens.bias.detach().clone().requires_grad_(True)
    if recipe.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam([w, b], lr=recipe.lr, betas=(recipe.momentum, 0.999),
                                                      weight_decay=recipe.weight_decay, amsgrad=True)
    elif recipe.optimizer == "sgd":
        opt = torch.optim.SGD([w, b], lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                              weight_decay=recipe.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {recipe.optimizer!r}; expected adam or sgd")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / max(1, recipe.steps)))
    gen = torch.Generator().manual_seed(seed)
    batch = min(recipe.batch, n_pos)
    rows = max(1, ROW_BUDGET // int(lens.unembed.weight.shape[0]))
    micro = min(batch, rows)
    group = max(1, rows // micro)
    losses = []
    for step in range(recipe.steps):
        idx = torch.randperm(n_pos, generator=gen)[:batch].to(resid.device)
        opt.zero_grad(set_to_none=False)
        total = 0.0
        for m0 in range(0, batch, micro):
            mb = idx[m0: m0 + micro]
            with torch.no_grad():
                lp = _target_logp(norm, resid[n, mb], n)
            for l0 in range(0, n, group):
                layers = slice(l0, min(n, l0 + group))
                h = resid[layers, mb]  # [g, mb, d]
                t = h + torch.baddbmm(b[layers].unsqueeze(1), h, w[layers].transpose(1, 2))
                kl = _kl_bits(lp, lens.unembed(lens.final_norm(t)))  # [g, mb]
                loss = kl.sum() / batch
                loss.backward()
                total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_([w, b], recipe.clip)
        opt.step()
        sched.step()
        losses.append(total)
        if step % 10 == 0 or step == recipe.steps - 1:
            log(f"step {step + 1}/{recipe.steps}: sum over layers of KL {total:.3f} bits")
    lens.weight, lens.bias = w.detach(), b.detach()
    return losses


def fit_tuned(lm: LoadedModel, corpus_texts: Sequence[str], *, tokens: int = 8192, steps: int | None = None,
              device: str | torch.device | None = None, recipe: Recipe | None = None, seed: int = 316,
              max_len: int = 128, residuals: Residuals | None = None, log: Log = _quiet) -> TunedLens:
    """Fit a tuned lens on the fit-split texts (or on already collected `residuals`).

    Args:
        tokens: distinct positions to collect (ignored when `residuals` is given).
        steps: fine-tune steps (overrides the recipe's).
        recipe: CPU_RECIPE (default off cuda) or GPU_RECIPE (default on cuda).

    Returns:
        The lens; `lens.fit_info` holds the recipe, positions and per-step losses.
    """
    dev = torch.device(device) if device is not None else lm.device
    recipe = recipe or (GPU_RECIPE if dev.type == "cuda" else CPU_RECIPE)
    if steps is not None:
        recipe = replace(recipe, steps=steps)
    parts = discover(lm.model)
    unembed = Unembed.from_parts(parts, dev)
    norm = NormLens.from_parts(parts, unembed, dev)
    t0 = time.perf_counter()
    res = residuals or collect_residuals(lm, parts, corpus_texts, tokens, dev, max_len, log)
    t_collect = time.perf_counter() - t0
    lens = TunedLens.identity(parts, unembed, dev, lm.source.model_id, lm.source.revision)
    resid = res.resid
    if recipe.init == "lstsq":
        for layer in range(lens.n_layers):
            lens.weight[layer], lens.bias[layer] = lstsq_translator(resid[layer], resid[-1] - resid[layer],
                                                                    recipe.ridge)
    elif recipe.init != "identity":
        raise ValueError(f"unknown init {recipe.init!r}; expected lstsq or identity")
    t_init = time.perf_counter() - t0 - t_collect
    losses: list[float] = []
    kept: list[int] = []
    if recipe.steps > 0:
        # Guard (lstsq init only): positions held back from the fine-tune decide, per layer, whether the fine-tuned
        # translator replaces the closed-form one (they were seen by the closed form, which favors keeping it).
        n_val = min(128, resid.shape[1] // 10) if recipe.init == "lstsq" else 0
        train, val = resid[:, : resid.shape[1] - n_val], resid[:, resid.shape[1] - n_val:]
        before = heldout_kl({"t": lens.decode}, norm, val)["t"] if n_val else []
        w0, b0 = lens.weight.clone(), lens.bias.clone()
        losses = finetune(lens, norm, train, recipe, seed, log)
        if n_val:
            after = heldout_kl({"t": lens.decode}, norm, val)["t"]
            for layer in range(lens.n_layers):
                if after[layer] > before[layer]:
                    lens.weight[layer], lens.bias[layer] = w0[layer], b0[layer]
                else:
                    kept.append(layer)
            log(f"fine-tune kept for {len(kept)}/{lens.n_layers} layers (closed form elsewhere)")
        else:
            kept = list(range(lens.n_layers))
    lens.fit_info = {"recipe": asdict(recipe), "seed": seed, "fit_positions": res.n_positions,
                     "fit_documents": res.n_documents, "fit_tokens_run": res.n_tokens_run,
                     "time_collect_s": t_collect, "time_init_s": t_init,
                     "time_finetune_s": time.perf_counter() - t0 - t_collect - t_init, "losses_bits": losses,
                     "finetuned_layers": kept}
    return lens


@torch.no_grad()
def fit_temperatures(norm: NormLens, resid: torch.Tensor, max_positions: int = 128, iters: int = 40) -> list[float]:
    """Per layer, tau minimizing mean KL(final || softmax(z_norm / tau)) on resid [n + 1, n_pos, d_model].

    Newton's method on beta = 1/tau (the KL is convex in beta: its second derivative is the mean of Var_q[z]),
    halving beta when a step would leave beta > 0. The last layer's tau is 1 (it is the final head itself).
    """
    n = resid.shape[0] - 1
    h = resid[:, :max_positions]
    p = _target_logp(norm, h[n], n).exp()
    taus = []
    for layer in range(n):
        z = norm.decode(h[layer], layer)
        ep = (p * z).sum(-1).double()
        beta = 1.0
        for _ in range(iters):
            q = torch.softmax(beta * z, -1)
            qz = q * z
            eq = qz.sum(-1).double()
            grad = float((eq - ep).mean())
            hess = float(((qz * z).sum(-1).double() - eq * eq).mean())
            new = beta - grad / max(hess, 1e-12)
            new = new if new > 0 else beta / 2
            done = abs(new - beta) < 1e-6 * beta
            beta = new
            if done:
                break
        taus.append(1.0 / beta)
    return taus + [1.0]


@torch.no_grad()
def heldout_kl(decoders: dict[str, Callable[[torch.Tensor, int], torch.Tensor]], norm: NormLens,
               resid: torch.Tensor) -> dict[str, list[float]]:
    """Mean KL(final || lens) in bits per layer 0..n for each named decoder on resid [n + 1, n_pos, d_model]."""
    n, n_pos = resid.shape[0] - 1, resid.shape[1]
    chunk = max(1, ROW_BUDGET // int(norm.unembed.weight.shape[0]) // 4)
    sums = {k: [0.0] * (n + 1) for k in decoders}
    for p0 in range(0, n_pos, chunk):
        h = resid[:, p0: p0 + chunk]
        lp = _target_logp(norm, h[n], n)
        for name, dec in decoders.items():
            for layer in range(n + 1):
                sums[name][layer] += float(_kl_bits(lp, dec(h[layer], layer)).sum())
    return {k: [s / n_pos for s in v] for k, v in sums.items()}


def heldout_report(kl: dict[str, list[float]], lens_name: str) -> dict[str, Any]:
    """Per-layer figures plus means over layers 0..n-1, and the tuned-lens attribution when a temperature row exists."""
    n = len(kl["norm"]) - 1
    out: dict[str, Any] = {"layers": list(range(n + 1))}
    out.update({f"kl_{k}_bits": v for k, v in kl.items()})
    mean = {f"kl_{k}_bits": sum(v[:n]) / n for k, v in kl.items()}
    if "temperature" in kl:
        tot = [a - b for a, b in zip(kl["norm"], kl[lens_name])]
        temp = [a - b for a, b in zip(kl["norm"], kl["temperature"])]
        rot = [a - b for a, b in zip(kl["temperature"], kl[lens_name])]
        out["delta_kl_bits"] = {"total": tot, "temperature": temp, "rotation": rot}
        mean.update({"delta_total": sum(tot[:n]) / n, "delta_temperature": sum(temp[:n]) / n,
                     "delta_rotation": sum(rot[:n]) / n})
    out["mean_over_layers_0_to_n_minus_1"] = mean
    return out


def run_fit(kind: str, lm: LoadedModel, corpus: str, out: Path, *, tokens: int, heldout_tokens: int,
            steps: int | None, seed: int = 316, max_len: int = 128, temp_positions: int = 128,
            log: Log = _quiet) -> dict[str, Any]:
    """Collect, fit `kind` ("tuned" | "prism"), evaluate on held-out documents, save lens + REPORT_FILE in `out`."""
    t0 = time.perf_counter()
    cor = load_corpus(corpus)
    fit_docs, held_docs = split_documents(cor, seed=seed)
    parts = discover(lm.model)
    dev = lm.device
    unembed = Unembed.from_parts(parts, dev)
    norm = NormLens.from_parts(parts, unembed, dev)
    log(f"corpus {cor.name}: {len(fit_docs)} fit / {len(held_docs)} held-out documents")
    fit_res = collect_residuals(lm, parts, [d.text for d in fit_docs], tokens, dev, max_len, log)
    held_res = collect_residuals(lm, parts, [d.text for d in held_docs], heldout_tokens, dev, max_len, log)
    t_collect = time.perf_counter() - t0
    decoders: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {"norm": norm.decode}
    info: dict[str, Any] = {}
    t1 = time.perf_counter()
    if kind == "tuned":
        lens: TunedLens | Any = fit_tuned(lm, [], steps=steps, seed=seed, residuals=fit_res, log=log)
        taus = fit_temperatures(norm, fit_res.resid, temp_positions)
        decoders["temperature"] = lambda h, layer: norm.decode(h, layer) / taus[layer]
        info = {"recipe": lens.fit_info["recipe"], "temperatures": taus,
                "fit_time_collect_excluded_s": time.perf_counter() - t1,
                "finetune_losses_bits": lens.fit_info["losses_bits"],
                "finetuned_layers": lens.fit_info["finetuned_layers"]}
    elif kind == "prism":
        lens = fit_prism(fit_res.resid, parts, unembed, dev, lm.source.model_id)
        info = {"min_positions": 4 * int(fit_res.resid.shape[2]),
                "fit_time_collect_excluded_s": time.perf_counter() - t1}
    else:
        raise ValueError(f"unknown lens kind {kind!r}; expected tuned or prism")
    decoders[kind] = lens.decode
    log(f"evaluating {', '.join(decoders)} on {held_res.n_positions} held-out positions")
    kl = heldout_kl(decoders, norm, held_res.resid)
    report = {
        "lens": kind, "model": lm.source.model_id, "model_spec": lm.source.spec, "n_layers": parts.n_layers,
        "d_model": int(parts.unembed_weight.shape[1]), "unembed_hash": lens.config["unembed_hash"],
        "corpus": {"name": cor.name, "source": cor.source, "documents_fit_split": len(fit_docs),
                   "documents_heldout_split": len(held_docs), "heldout_fraction": 0.2, "max_len": max_len},
        "tokens": {"fit_positions": fit_res.n_positions, "fit_documents": fit_res.n_documents,
                   "fit_tokens_run": fit_res.n_tokens_run, "heldout_positions": held_res.n_positions,
                   "heldout_documents": held_res.n_documents, "heldout_tokens_run": held_res.n_tokens_run},
        "seed": seed, "steps": info.get("recipe", {}).get("steps", 0), "device": str(dev),
        "kl_direction": "KL(final || lens), bits, mean over held-out positions",
        "fit": info, "time_collect_s": t_collect, "time_total_s": time.perf_counter() - t0,
        "heldout": heldout_report(kl, kind),
    }
    lens.save(out)
    atomic_write_text(out / REPORT_FILE, dumps_json(report))
    return report


def cmd_fit(args: argparse.Namespace) -> int:
    """`probe fit tuned|prism`: fit a lens and write it with its held-out report."""
    from probe.models import load_model

    lm = load_model(args.model, device=args.device)
    on_gpu = lm.device.type == "cuda"
    tokens = args.tokens or (2**18 if on_gpu else 8192)
    report = run_fit(args.kind, lm, args.corpus, Path(args.out), tokens=tokens,
                     heldout_tokens=args.heldout_tokens or (8192 if on_gpu else 512), steps=args.steps,
                     seed=args.seed, max_len=args.max_len, log=lambda m: print(f"probe fit: {m}", file=sys.stderr))
    held = report["heldout"]
    cols = [k for k in held if k.startswith("kl_")]
    print("layer " + " ".join(f"{c[3:-5]:>12s}" for c in cols))
    for i in held["layers"]:
        print(f"{i:5d} " + " ".join(f"{held[c][i]:12.4f}" for c in cols))
    print(f"probe fit: {args.kind} lens -> {args.out} (report {REPORT_FILE})")
    return 0


def add_fit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `fit tuned|prism|jacobian` to the `probe` command's subparsers; returns the `fit` parser."""
    fit = subparsers.add_parser("fit", help="fit a tuned or Prism lens on a corpus", description=cmd_fit.__doc__)
    kinds = fit.add_subparsers(dest="kind", required=True)
    for kind, text in (("tuned", "affine translators per layer (tuned lens)"),
                       ("prism", "diagonal whitening + orthogonal map per layer (Prism)")):
        p = kinds.add_parser(kind, help=text, description=text)
        p.add_argument("--model", required=True, help="bundled alias, local dir, .gguf file or hub id")
        p.add_argument("--corpus", default="auto", help="auto | wiki | pydoc | FILE (.jsonl or blank-line text)")
        p.add_argument("--out", required=True, help="directory for the lens files and fit-report.json")
        p.add_argument("--tokens", type=int, default=None,
                       help="distinct fit positions (default 8192 on cpu, 2**18 on cuda)")
        p.add_argument("--heldout-tokens", type=int, default=None,
                       help="held-out positions evaluated (default 512 on cpu, 8192 on cuda)")
        p.add_argument("--steps", type=int, default=None, help="fine-tune steps (default 30 on cpu, 250 on cuda)")
        p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
        p.add_argument("--seed", type=int, default=316, help="split and sampling seed (default 316)")
        p.add_argument("--max-len", type=int, default=128, help="tokens per document (default 128)")
        p.set_defaults(func=cmd_fit, kind=kind)
    from probe.jacobian_fit import add_jacobian_parser

    add_jacobian_parser(kinds)
    return fit
