"""Shared fixtures: offline hub, isolated paths."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


BUNDLED_MODELS = ("smollm2", "gemma3-270m")


@pytest.fixture(scope="session")
def probe_run(tmp_path_factory):
    """One real probe run of both bundled models (session-scoped: the expensive part of the suite).

    For quick iteration on reportgen only, LENSREPORT_TEST_RUN=DIR reuses an existing run of the current probe
    (read-only; CI never sets it).
    """
    reuse = os.environ.get("LENSREPORT_TEST_RUN")
    if reuse and all((Path(reuse) / alias / "manifest.json").is_file() for alias in BUNDLED_MODELS):
        return Path(reuse)
    from probe.batch import run_batch
    from probe.prompts import load_prompt_set
    from probe.run import ProbeConfig

    out = tmp_path_factory.mktemp("run")
    res = run_batch(list(BUNDLED_MODELS), out, load_prompt_set(), ProbeConfig(), device="cpu", progress=False)
    assert not res.failures, res.failures
    return out
