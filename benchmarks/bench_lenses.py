"""Fit time of the tuned and Prism lenses, and per-lens decode cost as a ratio to the norm lens.

    .venv/bin/python benchmarks/bench_lenses.py --model smollm2 [--positions 2304] [--steps 4] [--repeats 3]

Residuals come from the pydoc corpus (fit split). Decode cost: best of `repeats` over all layers of `--decode-pos`
positions each, for every lens on the same residuals; the ratio divides by the norm lens's time.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from probe.corpus import collect_residuals, load_corpus, split_documents  # noqa: E402
from probe.fit import fit_temperatures, fit_tuned  # noqa: E402
from probe.lenses import NormLens, RawLens, Unembed  # noqa: E402
from probe.models import load_model  # noqa: E402
from probe.prism import fit_prism  # noqa: E402
from probe.surgery import discover  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@torch.no_grad()
def decode_all(decode, resid: torch.Tensor) -> None:
    for layer in range(resid.shape[0]):
        decode(resid[layer], layer)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--positions", type=int, default=None, help="fit positions (default 4 * d_model)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--decode-pos", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device("cpu")
    lm = load_model(args.model, device="cpu")
    parts = discover(lm.model)
    d = int(parts.unembed_weight.shape[1])
    n_pos = args.positions or 4 * d
    unembed = Unembed.from_parts(parts, dev)
    norm = NormLens.from_parts(parts, unembed, dev)
    fit_docs, _ = split_documents(load_corpus("pydoc"))
    t = time.perf_counter()
    res = collect_residuals(lm, parts, [x.text for x in fit_docs], n_pos, dev)
    t_collect = time.perf_counter() - t
    t = time.perf_counter()
    tuned = fit_tuned(lm, [], steps=args.steps, residuals=res)
    t_tuned = time.perf_counter() - t
    t = time.perf_counter()
    prism = fit_prism(res.resid, parts, unembed, dev, lm.source.model_id)
    t_prism = time.perf_counter() - t
    t = time.perf_counter()
    fit_temperatures(norm, res.resid)
    t_temp = time.perf_counter() - t
    print(f"model {args.model}: {parts.n_layers} layers, d_model {d}, vocab {unembed.weight.shape[0]}, "
          f"{torch.get_num_threads()} threads")
    print(f"collect {res.n_positions} positions ({res.n_tokens_run} tokens run): {t_collect:.1f} s")
    print(f"fit tuned (closed form + {args.steps} steps + guard): {t_tuned:.1f} s "
          f"[closed form {tuned.fit_info['time_init_s']:.1f} s, fine-tune {tuned.fit_info['time_finetune_s']:.1f} s]")
    print(f"fit prism: {t_prism:.1f} s")
    print(f"fit temperatures (baseline): {t_temp:.1f} s")
    sub = res.resid[:, : args.decode_pos].contiguous()
    lenses = {"norm": norm.decode, "raw": RawLens(unembed).decode, "tuned": tuned.decode, "prism": prism.decode}
    times = {k: best_of(lambda f=f: decode_all(f, sub), args.repeats) for k, f in lenses.items()}
    print(f"decode {sub.shape[0]} layers x {sub.shape[1]} positions, best of {args.repeats}:")
    for k, v in times.items():
        print(f"  {k:6s} {v * 1e3:8.1f} ms  ratio to norm {v / times['norm']:.3f}")


if __name__ == "__main__":
    main()
