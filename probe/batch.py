"""Run several models into one run directory, each isolated: one failure never touches another's artifacts."""

from __future__ import annotations

import gc
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from probe.artifacts import atomic_write_text, dumps_json
from probe.prompts import PromptSet
from probe.run import ProbeConfig, probe_model


@dataclass
class BatchResult:
    """Which models succeeded and why the others failed."""

    succeeded: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def model_dirname(spec: str) -> str:
    """Directory name for a model spec: the alias, or a sanitized path/hub id."""
    base = spec.rstrip("/").rsplit("/", 2)
    name = "--".join(base[-2:]) if "/" in spec and not Path(spec).exists() else Path(spec).stem or spec
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def run_batch(specs: list[str], out: Path, prompts: PromptSet, cfg: ProbeConfig, *, device: str = "auto",
              dtype: str = "float32", device_map: str | None = None, progress: bool = True,
              lens_files: dict[str, Path] | None = None) -> BatchResult:
    """Probe every model; record the outcome of each in RUN/run.json."""
    from probe.models import load_model

    out.mkdir(parents=True, exist_ok=True)
    if not progress:  # --quiet also silences transformers' own "Loading weights" bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    res = BatchResult()
    n_prompts = len(prompts.facts) * len(prompts.templates)
    status: dict[str, dict] = {}
    for spec in specs:
        name = model_dirname(spec)
        t0 = time.perf_counter()
        bar = tqdm(total=n_prompts, desc=f"probe {name}", unit="prompt", disable=not progress, leave=True)
        try:
            lm = load_model(spec, device=device, dtype=dtype, device_map=device_map)
            probe_model(lm, prompts, cfg, out, name, progress=lambda _s, b=bar: b.update(1), lens_files=lens_files)
            res.succeeded.append(name)
            status[name] = {"spec": spec, "status": "ok", "seconds": round(time.perf_counter() - t0, 2)}
        except Exception as e:  # noqa: BLE001 - a truncated GGUF or safetensors file raises anything; isolate it
            res.failures[name] = f"{type(e).__name__}: {e}"
            status[name] = {"spec": spec, "status": "failed", "error": res.failures[name]}
        finally:
            bar.close()
            lm = None  # free the weights before the next model
            gc.collect()
            _merge_run_json(out / "run.json", status)  # after each model: an abort still leaves the record
    return res


def _merge_run_json(path: Path, status: dict[str, dict]) -> None:
    old: dict = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text()).get("models", {})
        except (json.JSONDecodeError, AttributeError):
            old = {}
    old.update(status)
    atomic_write_text(path, dumps_json({"models": dict(sorted(old.items()))}))
