"""Benchmark: full probe wall time and peak memory vs the floor, measured in the same run.

Floor = one forward pass with hidden states per prompt the probe runs (traced, test and temperature prompts)
plus the fp32 unembedding of every residual the probe decodes (all positions of all layers of the traced
prompts through the final norm, and the NEXT position through the raw lens). Each side runs in its own
subprocess after the model is loaded, so peak RSS is measured separately. Target: time ratio <= 1.3.

    python benchmarks/bench_probe.py [--model smollm2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, model: str) -> dict:
    import torch

    from probe.capture import capture
    from probe.lenses import NormLens, RawLens, Unembed
    from probe.models import load_model
    from probe.prompts import load_prompt_set
    from probe.run import ProbeConfig, probe_model
    from probe.surgery import discover

    lm = load_model(model, device="cpu")
    ps = load_prompt_set()
    rss_loaded = peak_rss_mb()
    t0 = time.perf_counter()
    if mode == "probe":
        with tempfile.TemporaryDirectory() as d:
            probe_model(lm, ps, ProbeConfig(), Path(d), model)
    else:
        parts = discover(lm.model)
        un = Unembed.from_parts(parts, lm.device)
        norm, raw = NormLens.from_parts(parts, un, lm.device), RawLens.from_parts(parts, un, lm.device)
        traced = [ps.text(f.id, v) for f in ps.facts for v in ps.templates]
        others = list(ps.test_prompts) + [ps.text(ps.primary, "orig")] * len(ps.temperatures)
        with torch.no_grad():
            for text in traced:
                cap = capture(lm.model, parts, lm.tokenizer(text)["input_ids"], lm.device)
                for layer in range(cap.resid.shape[0]):
                    norm.decode(cap.resid[layer], layer)
                raw.decode(cap.resid[:, -1], 0)
            for text in others:
                cap = capture(lm.model, parts, lm.tokenizer(text)["input_ids"], lm.device)
                norm.decode(cap.resid[-1, -1], cap.resid.shape[0] - 1)
    return {"mode": mode, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
            "rss_after_load_mb": rss_loaded}


def run(mode: str, model: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--model", model], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=["floor", "probe"])
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.model)))
        return
    floors = [run("floor", a.model) for _ in range(a.repeats)]
    probes = [run("probe", a.model) for _ in range(a.repeats)]
    f = min(x["seconds"] for x in floors)
    p = min(x["seconds"] for x in probes)
    fm = max(x["peak_rss_mb"] for x in floors)
    pm = max(x["peak_rss_mb"] for x in probes)
    print(f"model {a.model}, best of {a.repeats}")
    print(f"floor  (forwards + fp32 unembeddings): {f:7.2f} s   peak RSS {fm:7.0f} MB")
    print(f"probe  (full run, artifacts written):  {p:7.2f} s   peak RSS {pm:7.0f} MB")
    print(f"ratio  time {p / f:.2f} (target <= 1.3)   memory {pm / fm:.2f}")


if __name__ == "__main__":
    main()
