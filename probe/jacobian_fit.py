r"""`probe fit jacobian`: fit the Jacobian lens of a model on a small corpus and write the reference file format.

Cost: every prompt takes d_model one-hot backward passes (in batches of --dim-batch) through the blocks above the
lowest fitted layer, so time grows as prompts x tokens x (n_layers - lowest layer) x d_model. On 2 CPU cores a
full fit of SmolLM2-135M (30 layers, d 576) costs roughly 15-40 minutes per 128-token prompt; the offline default
(3 documents of the corpus cut to 16 tokens, all layers) takes about 5-10 minutes. On a GPU, fit fully:

    probe fit jacobian --model smollm2 --out lenses/smollm2-jacobian.pt                       # offline, CPU
    probe fit jacobian --model M --out FILE --device cuda --corpus wiki --prompts 500 --max-tokens 128 \
        --skip-first 16                                                                        # the reference fit
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from probe.errors import ProbeError
from probe.jacobian import DEFAULT_DIM_BATCH, DEFAULT_SKIP_FIRST

CALIBRATION_PASSES = 3  # the first pass includes the forward; the faster of the next two is the per-pass cost


class _Calibrated(Exception):
    """Stops a fit after the passes the estimate needs."""


def parse_layers(text: str | None) -> list[int] | None:
    """`--layers` value: comma-separated layers or ranges, e.g. `0,10,20-29` (None: every layer).

    Raises:
        ProbeError: a part that is not an integer or a range a-b.
    """
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            out.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
        except ValueError:
            raise ProbeError(f"--layers {text}: {part!r} is not a layer or a range a-b (e.g. 0,10,20-29)") from None
    return out


def corpus_prompts(tokenizer: Any, spec: str, n: int, max_tokens: int, min_tokens: int,
                   seed: int) -> tuple[str, list[str], list[list[int]]]:
    """The first `n` documents of the corpus's fit split, tokenized and cut to `max_tokens`.

    The corpus and split are `probe.corpus`'s (the tuned and Prism fits use the same), so held-out documents are
    never fitted on. Documents shorter than `min_tokens` are skipped (they have no position to average).

    Returns:
        (corpus source, document ids, token ids of each prompt).

    Raises:
        ProbeError: unknown corpus, or no document long enough.
    """
    from probe.corpus import load_corpus, split_documents

    corpus = load_corpus(spec)
    fit, _ = split_documents(corpus, seed=seed)
    ids: list[str] = []
    prompts: list[list[int]] = []
    for doc in fit:
        if len(prompts) >= n:
            break
        toks = list(tokenizer(doc.text, add_special_tokens=True)["input_ids"])[:max_tokens]
        if len(toks) >= min_tokens:
            ids.append(doc.id)
            prompts.append(toks)
    if not prompts:
        raise ProbeError(f"corpus {corpus.name} ({corpus.source}): no fit document has {min_tokens} tokens")
    return corpus.source, ids, prompts


def calibrate_pass_seconds(model: Any, parts: Any, ids: list[int], layers: list[int], device: torch.device,
                           skip_first: int, dim_batch: int) -> float:
    """Seconds of one backward pass on `ids`, measured by running the first passes of a real fit."""
    from probe.jacobian import frozen, prompt_jacobians

    stamps: list[float] = []

    def tick(_n: int) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) >= CALIBRATION_PASSES:
            raise _Calibrated

    t0 = time.perf_counter()
    with frozen(model):
        try:
            prompt_jacobians(model, parts, ids, layers, device, skip_first, dim_batch, tick)
        except _Calibrated:
            pass
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    return min(steps) if steps else stamps[-1] - t0


def human(seconds: float) -> str:
    """3.2 s, 4.1 min, 2.5 h."""
    return f"{seconds:.1f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


def cmd_fit_jacobian(args: argparse.Namespace) -> int:
    """Fit J_l for the chosen layers on the corpus, printing the cost estimate first, and write --out."""
    from tqdm import tqdm

    from probe.jacobian import POSITIONS, check_layers, d_model_of, fit_jacobians, save_jacobians
    from probe.models import load_model
    from probe.surgery import discover

    if args.prompts < 1 or args.max_tokens < 2 or args.dim_batch < 1 or args.skip_first < 0:
        raise ProbeError("--prompts and --dim-batch must be >= 1, --max-tokens >= 2, --skip-first >= 0")
    lm = load_model(args.model, device=args.device, dtype="float32")
    parts = discover(lm.model)
    layers = check_layers(parse_layers(args.layers), parts.n_layers)
    source, doc_ids, prompts = corpus_prompts(lm.tokenizer, args.corpus, args.prompts, args.max_tokens,
                                              args.skip_first + 2, args.seed)
    n, d = parts.n_layers, d_model_of(parts)
    batch = min(args.dim_batch, d)
    passes = math.ceil(d / batch)
    depth = n - layers[0]
    tokens = sum(len(p) for p in prompts)
    per_pass = calibrate_pass_seconds(lm.model, parts, prompts[0], layers, lm.device, args.skip_first, batch)
    est = per_pass * passes * tokens / len(prompts[0])
    full = per_pass / (len(prompts[0]) * depth) * passes * 128 * n
    print(f"probe fit jacobian: {args.model} ({n} blocks, d_model {d}), {len(prompts)} prompt(s), {tokens} tokens "
          f"(<= {args.max_tokens} each), source layers {layers[0]}..{layers[-1]} ({len(layers)}; backward through "
          f"{depth} blocks), {passes} backward passes of batch {batch} per prompt, on {lm.device} "
          f"({torch.get_num_threads()} threads)", file=sys.stderr)
    print(f"probe fit jacobian: one pass measured {per_pass:.2f} s -> estimated {human(est)} for this fit (a shared "
          f"CPU can be 2x off; the bar's ETA follows); a full fit costs about {human(full)} per 128-token prompt "
          f"and all {n} layers here", file=sys.stderr)
    bar = tqdm(total=len(prompts) * passes, desc=f"fit jacobian {args.model}", unit="pass", disable=args.quiet)
    t0 = time.perf_counter()
    try:
        jac = fit_jacobians(lm.model, parts, prompts, layers, lm.device, bar.update, skip_first=args.skip_first,
                            dim_batch=batch, meta={"model": args.model, "model_id": lm.source.model_id,
                                                   "weights_sha256": lm.weights_sha256,
                                                   "corpus": args.corpus, "corpus_source": source,
                                                   "documents": doc_ids, "seed": args.seed,
                                                   "max_tokens": args.max_tokens, "positions": POSITIONS})
    finally:
        bar.close()
    jac.meta["seconds"] = round(time.perf_counter() - t0, 3)
    out = save_jacobians(Path(args.out), jac)
    print(f"probe fit jacobian: wrote {out} ({len(layers)} layers, {jac.n_prompts} prompts, "
          f"{human(jac.meta['seconds'])})")
    return 0


def add_jacobian_parser(fit_subparsers: Any) -> argparse.ArgumentParser:
    """Add `jacobian` to the subparsers of an existing `probe fit` command."""
    j = fit_subparsers.add_parser("jacobian", help="fit the Jacobian lens (corpus-averaged d out / d h_l)",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    j.add_argument("--model", required=True, help="bundled alias, local dir, .gguf file or hub id")
    j.add_argument("--out", required=True, type=Path, help="file to write (torch.save, fp16 matrices)")
    j.add_argument("--corpus", default="auto", help="auto | wiki | pydoc | FILE (.jsonl or blank-line text), as "
                                                    "`probe fit tuned`; only its fit split is used (default auto)")
    j.add_argument("--prompts", type=int, default=3, help="number of documents (default 3)")
    j.add_argument("--max-tokens", type=int, default=16, help="tokens kept per prompt (default 16)")
    j.add_argument("--layers", help="probe layers to fit, e.g. 0,10,20-29 (default: all; the last is the identity)")
    j.add_argument("--skip-first", type=int, default=DEFAULT_SKIP_FIRST,
                   help=f"leading positions left out of the average (default {DEFAULT_SKIP_FIRST}; the reference "
                        "uses 16 on 128-token passages)")
    j.add_argument("--dim-batch", type=int, default=DEFAULT_DIM_BATCH,
                   help=f"one-hot cotangents per backward pass (default {DEFAULT_DIM_BATCH}; more is faster per "
                        "row and holds a bigger graph)")
    j.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    j.add_argument("--seed", type=int, default=316, help="corpus split seed (default 316, as `probe fit tuned`)")
    j.add_argument("--quiet", action="store_true", help="no progress bar")
    j.set_defaults(func=cmd_fit_jacobian, kind="jacobian")
    return j
