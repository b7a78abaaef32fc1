"""Draft the narrative with an LLM, validate it against the facts, re-ask, and fall back section by section.

The LLM writes ``{placeholder}`` names and never a value; nothing it writes reaches a report unless every
placeholder sits in a phrase that says what it is and the words check out (`reportgen.validate`). Sentences that
still fail after the re-ask are dropped, and an empty section falls back to the deterministic text. Every round's
full draft and findings, and what was removed, are recorded beside the report (`<model>.validation.json`).
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from reportgen.bound import Binding
from reportgen.errors import ReportError
from reportgen.facts import FactSet
from reportgen.llm import LLMClient, LLMConfig, LLMError, ResponseCache
from reportgen.prompt import SECTION_ASKS, TOKEN_BUDGET, build_prompt, parse_sections
from reportgen.rules import CheckResult
from reportgen.structure import ReportData
from reportgen.validate import drop_unsupported, findings_for_reask, round_record, to_record, validate_section

MAX_ROUNDS = 2  # the first draft plus one re-ask with the findings


class Narrator:
    """Callable used by the build: (data, facts, checks, prefix, derived, fallback) -> (sections, source, info)."""

    def __init__(self, config: LLMConfig, root: Path, cache_dir: Path | None = None,
                 server_factory: Callable[[], Any] | None = None, compact: bool = False):
        self.config, self.root, self.compact = config, root, compact
        self.cache = ResponseCache(cache_dir or root / ".llm-cache")
        self._server_factory = server_factory
        self._server: Any = None
        self._client: LLMClient | None = None
        self._lock = threading.RLock()

    def client(self) -> LLMClient:
        """The shared client. A local server starts on the first cache miss, never when every draft is cached."""
        with self._lock:
            if self._client is None:
                connect = None
                if self._server_factory is not None:
                    def connect() -> str:
                        with self._lock:
                            if self._server is None:
                                self._server = self._server_factory().start()
                            return self._server.base_url
                self._client = LLMClient(self.config, self.cache, connect=connect)
            return self._client

    def settings(self) -> dict[str, Any]:
        """What a refresh needs to draft the same way again (never the API key)."""
        return {"provider": self.config.provider, "model": self.config.model, "base_url": self.config.base_url}

    def close(self) -> None:
        """Stop the local server if one was started."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _prompt(self, data: ReportData, checks: list[CheckResult], prefix: str, derived: dict[str, Binding],
                findings: str) -> Any:
        """The prompt, with the re-ask findings cut (last first) until it fits the token budget."""
        lines = findings.splitlines()
        keep = len(lines)
        while True:
            shown = "\n".join(lines[:keep] + ([f"(and {len(lines) - keep} more sentences with problems)"]
                                               if keep < len(lines) else []))
            prompt = build_prompt(data, checks, prefix, derived, shown, compact=self.compact)
            if prompt.n_tokens <= TOKEN_BUDGET or keep == 0:
                return prompt
            keep //= 2

    def __call__(self, data: ReportData, facts: FactSet, checks: list[CheckResult], prefix: str,
                 derived: dict[str, Binding], fallback: dict[str, str]) -> tuple[dict[str, str], str, dict[str, Any]]:
        """Draft, validate, re-ask, and assemble the narrative sections of one report."""
        info: dict[str, Any] = {"provider": self.config.provider, "model": self.config.model or "local model",
                                "calls": 0, "cache_hits": 0, "rounds": 0,
                                "usage": {"prompt_tokens": 0, "completion_tokens": 0}}
        findings_text, results, reply_sections, rounds = "", [], {}, []
        try:
            for _round in range(MAX_ROUNDS):
                prompt = self._prompt(data, checks, prefix, derived, findings_text)
                info["prompt_tokens_counted"] = prompt.n_tokens
                if prompt.n_tokens > TOKEN_BUDGET:
                    raise _OverBudget(f"the prompt is {prompt.n_tokens} tokens, over the {TOKEN_BUDGET}-token "
                                      "budget")
                res = self.client().chat(prompt.messages)
                info["rounds"] += 1
                info["calls" if not res.cached else "cache_hits"] += 1
                info["model"] = res.model or info["model"]
                info["usage"]["prompt_tokens"] += res.prompt_tokens or 0
                info["usage"]["completion_tokens"] += res.completion_tokens or 0
                reply_sections = parse_sections(res.text)
                results = [validate_section(s, reply_sections.get(s, ""), prompt.sheet, checks) for s in SECTION_ASKS]
                rounds.append(round_record(res.text, results))
                if not any(r.findings for r in results):
                    break
                findings_text = findings_for_reask(results)
        except (LLMError, _OverBudget) as e:
            # Nothing drafted can be published, but the report still can: deterministic text, said so.
            info["error"] = str(e)
            record = {"error": str(e), "fallback_sections": list(SECTION_ASKS), "rounds": rounds}
            _write_record(self.root, data.alias, record)
            why = "the prompt was over the token budget" if isinstance(e, _OverBudget) else "the LLM was unavailable"
            return fallback, "deterministic", {**info, "fallback": why}
        sections, removed, fell_back = {}, [], []
        for r in results:
            text, dropped = drop_unsupported(r)
            removed.extend(dropped)
            if text.strip():
                sections[r.section] = text
            else:
                sections[r.section] = fallback[r.section]
                fell_back.append(r.section)
        record = to_record(results, tuple(removed), tuple(fell_back), rounds)
        record["llm"] = {k: v for k, v in info.items() if k != "error"}
        _write_record(self.root, data.alias, record)
        info.update({"removed_sentences": len(removed), "fallback_sections": fell_back})
        if removed or fell_back:
            sections = _with_notes(sections, removed, fell_back)
        if len(fell_back) == len(SECTION_ASKS):
            return sections, "deterministic", {**info, "fallback": "every drafted section failed validation"}
        return sections, "llm", info


class _OverBudget(Exception):
    """The prompt does not fit the token budget even without re-ask findings."""


def _with_notes(sections: dict[str, str], removed: list[str], fell_back: list[str]) -> dict[str, str]:
    """Say in the report what validation removed, so a reader knows the narrative was filtered."""
    note = []
    if removed:
        # No count: a number outside a bound link is "unbound" to the audit.
        note.append("drafted sentence(s) failed validation and were removed")
    if fell_back:
        note.append("deterministic text replaces the drafted " + ", ".join(fell_back))
    out = dict(sections)
    out["limitations"] = out["limitations"].rstrip() + "\n- Narrative validation: " + "; ".join(note) + \
        " (details in the validation record beside this report)."
    return out


def _write_record(root: Path, alias: str, record: dict[str, Any]) -> None:
    from reportgen.build import atomic_write

    atomic_write(root / f"{alias}.validation.json", json.dumps(record, indent=2, sort_keys=True) + "\n")


def make_narrator(args: argparse.Namespace, out: Path | None = None) -> tuple[Narrator | None, Callable[[], None]]:
    """Build the narrator the CLI flags ask for; (None, no-op) means the deterministic narrative."""
    cfg = LLMConfig.from_env_and_flags(getattr(args, "llm", None), getattr(args, "llm_model", None),
                                       getattr(args, "base_url", None))
    if cfg.provider == "none":
        return None, lambda: None
    if (timeout := getattr(args, "llm_timeout", None)) is not None:
        if not timeout > 0:
            raise ReportError(f"--llm-timeout {timeout}: expected a positive number of seconds")
        cfg = replace(cfg, timeout_s=float(timeout))
    root = Path(out or getattr(args, "out", None) or args.reports_dir)
    factory = None
    if cfg.provider == "local":
        from probe.models import resolve_model
        from reportgen.localserver import LocalServer

        # The served directory is the model name the server expects, known before any server starts.
        model_dir = cfg.model or resolve_model("smollm2").load_dir
        # The bundled 135M model drafts slowly on CPU and rambles: a short budget keeps a build in minutes.
        cfg = replace(cfg, model=str(model_dir), max_tokens=min(cfg.max_tokens, 256),
                      timeout_s=cfg.timeout_s if getattr(args, "llm_timeout", None) else max(cfg.timeout_s, 300.0))

        def factory() -> Any:
            return LocalServer(model_dir)
    elif cfg.provider == "narrator":
        from reportgen.narratorserver import MODEL_ID, NARRATOR_TIMEOUT_S, LlamaServer, narrator_files

        narrator_files()  # say now, not after the first report, that `make narrator` was not run
        # CPU decode takes minutes per draft: a long timeout, and one retry (a retried timeout costs as much again).
        cfg = replace(cfg, model=MODEL_ID, max_retries=min(cfg.max_retries, 1),
                      timeout_s=cfg.timeout_s if getattr(args, "llm_timeout", None) else NARRATOR_TIMEOUT_S)

        def factory() -> Any:
            return LlamaServer()

    narrator = Narrator(cfg, root, server_factory=factory, compact=cfg.provider in ("local", "narrator"))
    return narrator, narrator.close
