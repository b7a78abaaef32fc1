"""Benchmark: Jacobian-lens fit time per (block, token) on a small slice, extrapolated to a full fit; decode cost.

Fit: one prompt of T tokens with source layer L (backward through n_layers - L blocks), all d_model rows. The cost
per (block traversed, token) times n_layers x 128 tokens is the full-fit cost of one 128-token prompt (attention's
T^2 term is small at these lengths on a 135M model). Decode: JacobianLens vs the norm lens on the same residuals
(all layers, all positions of a prompt, and the NEXT position alone), best of --repeats.

    python benchmarks/bench_jacobian.py [--model smollm2] [--from-layer 26] [--tokens 8,16,32] [--dim-batch 32]
"""

from __future__ import annotations

import argparse
import time

import torch


def best(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--from-layer", type=int, default=26, help="lowest source layer of the slice")
    ap.add_argument("--tokens", default="8,16,32")
    ap.add_argument("--dim-batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from probe.capture import capture
    from probe.jacobian import JacobianLens, Jacobians, d_model_of, frozen, prompt_jacobians
    from probe.lenses import NormLens, Unembed
    from probe.models import load_model
    from probe.surgery import discover

    lm = load_model(args.model, device="cpu")
    parts = discover(lm.model)
    n, d, dev = parts.n_layers, d_model_of(parts), lm.device
    text = " ".join(["The capital of France is Paris, and the capital of Germany is Berlin."] * 20)
    base = lm.tokenizer(text)["input_ids"]
    print(f"{args.model}: {n} blocks, d_model {d}, {torch.get_num_threads()} threads, dim_batch {args.dim_batch}")
    depth = n - args.from_layer
    rates = []
    with frozen(lm.model):
        for t in (int(x) for x in args.tokens.split(",")):
            t0 = time.perf_counter()
            prompt_jacobians(lm.model, parts, base[:t], [args.from_layer], dev, 1, args.dim_batch)
            dt = time.perf_counter() - t0
            rates.append(dt / (depth * t))
            print(f"fit T={t:3d} layers {args.from_layer}..{n - 1} ({depth} blocks): {dt:7.1f} s = "
                  f"{rates[-1]:.3f} s per (block, token) for all {d} rows")
    r = rates[-1]
    one = r * n * 128
    print(f"extrapolated full fit (all {n} layers, 128 tokens, rate of the longest slice): {one / 60:.1f} min per "
          f"prompt; 100 prompts {100 * one / 3600:.1f} h; 1000 prompts {1000 * one / 3600:.0f} h")

    un = Unembed.from_parts(parts, dev)
    norm = NormLens.from_parts(parts, un, dev)
    torch.manual_seed(0)
    jac = Jacobians({layer: torch.randn(d, d) / d**0.5 for layer in range(n)}, 1, d)
    jl = JacobianLens(jac, norm.norms[-1], parts.final_norm_info, un, n, dev)
    cap = capture(lm.model, parts, base[:16], dev)
    with torch.no_grad():
        for label, sl in (("all 16 positions", slice(None)), ("NEXT position", -1)):
            tn = best(lambda sl=sl: [norm.decode(cap.resid[i, sl], i) for i in range(n + 1)], args.repeats)
            tj = best(lambda sl=sl: [jl.decode(cap.resid[i, sl], i) for i in range(n + 1)], args.repeats)
            print(f"decode {n + 1} layers x {label}: norm lens {tn * 1e3:.1f} ms, jacobian lens {tj * 1e3:.1f} ms, "
                  f"ratio {tj / tn:.2f}")


if __name__ == "__main__":
    main()
