"""Offline narrator: llama-server on the `make narrator` model, and a report drafted with it that audits clean.

The real-server tests run only where `make narrator` was run (they skip, saying so, elsewhere: the setup builds
llama.cpp for 25-40 min and is never part of `make setup` or CI).
"""

import json
import os
import re
import shutil
import time

import pytest

from reportgen.audit import Verdict, audit_report
from reportgen.cli import main as reportgen_main
from reportgen.llm import LLMClient, LLMConfig, LLMError
from reportgen.narratorserver import MODEL_ID, LlamaServer, narrator_files

try:
    narrator_files()
    NOT_SET_UP = ""
except LLMError as e:
    NOT_SET_UP = str(e)

needs_narrator = pytest.mark.skipif(bool(NOT_SET_UP), reason=f"offline narrator not set up: {NOT_SET_UP}")


def assert_gone(pid):
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"server pid {pid} still alive")


def test_narrator_not_set_up_names_make_narrator(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LENSREPORT_NARRATOR_DIR", str(tmp_path / "nowhere"))
    assert reportgen_main(["build", str(tmp_path), "--out", str(tmp_path / "out"), "--llm", "narrator"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"reportgen: error: --llm narrator needs the offline narrator, which is not set up: missing "
                     r".*nowhere/bin/llama-server, .*nowhere/qwen2\.5-coder-1\.5b-instruct-q4_k_m\.gguf; run "
                     r"`make narrator` once", err), err
    with pytest.raises(LLMError, match="run `make narrator` once"):
        LlamaServer().start()


def test_narrator_refuses_base_url(tmp_path, capsys):
    assert reportgen_main(["build", str(tmp_path), "--out", str(tmp_path / "out"), "--llm", "narrator",
                           "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "--base-url does not apply to --llm narrator" in capsys.readouterr().err


@pytest.mark.slow
@needs_narrator
def test_llama_server_starts_answers_and_stops():
    with LlamaServer() as server:
        assert server.model == MODEL_ID
        assert server.base_url.startswith("http://127.0.0.1:")
        config = LLMConfig(provider="narrator", model=MODEL_ID, max_tokens=8, timeout_s=300.0, max_retries=0)
        reply = LLMClient(config.with_endpoint(server.base_url, MODEL_ID)).chat(
            [{"role": "user", "content": "Reply with the single word: Paris"}])
        assert "paris" in reply.text.lower(), reply
        assert reply.completion_tokens and reply.prompt_tokens
    assert_gone(server.pid)


@pytest.mark.slow
@needs_narrator
def test_report_drafted_by_the_narrator_audits_clean(probe_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(probe_run / "smollm2", run / "smollm2")
    out = tmp_path / "reports"
    assert reportgen_main(["build", str(run), "--out", str(out), "--llm", "narrator", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"smollm2: .* \(LLM {MODEL_ID}: [12] calls, 0 cached;", printed), printed
    record = json.loads((out / "smollm2.validation.json").read_text())
    assert "error" not in record, record["error"]
    assert record["rounds"] and record["rounds"][0]["draft"].strip()
    assert [(v.report_line, v.verdict.value) for v in audit_report(out / "smollm2.md").verdicts
            if v.verdict is not Verdict.OK] == []
