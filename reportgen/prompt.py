"""The LLM prompt: a compact fact sheet with handles (F1, F2, ...) rendered through Jinja2 templates."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reportgen.facts import Fact
from reportgen.render import citation, render
from reportgen.rules import CheckResult
from reportgen.structure import ReportData
from reportgen.validate import Handle

TOKEN_BUDGET = 8000

SECTION_ASKS = {
    "overview": "two or three sentences: the model, where the answer first becomes the top token, and how "
                "far the lenses can be trusted.",
    "qualitative": "three to five bullet points on patterns across layers (copying, entropy, rank before "
                   "probability, raw vs norm lens, control prompt).",
    "limitations": "two to four bullet points on what these measurements cannot show.",
    "fingerprint": "one sentence that characterises this model's layer profile.",
}


@dataclass(frozen=True)
class Prompt:
    """Messages for the chat API plus the handles the draft may cite."""

    messages: list[dict[str, str]]
    handles: dict[str, Handle]
    n_tokens: int


def select_facts(data: ReportData, compact: bool = False) -> list[tuple[str, Fact]]:
    """The facts worth a handle: headline facts, then (unless compact) the primary prompt's layer rows, the
    suite and the temperatures. Compact sheets are for small local models, whose CPU prefill is the cost."""
    out: list[tuple[str, Fact]] = [(name, f) for name, f in data.F.items()
                                   if name not in {"weights_sha", "torch", "prompt_text"}]
    if compact:
        return out
    # Per layer only what ranks-first reading needs; probabilities and KL per layer stay in the report table.
    for r in data.table:
        lay = r.layer.value
        out += [(f"L{lay} entropy", r.entropy), (f"L{lay} top token", r.top1), (f"L{lay} answer rank", r.rank)]
    for s in data.suite:
        out += [(f"suite {s['answer'].value} semantic layer", s["fact"]),
                (f"suite {s['answer'].value} final rank", s["final_rank"])]
    for t in data.temps:
        out += [(f"temperature {t['t'].value} entropy", t["entropy"]),
                (f"temperature {t['t'].value} p_answer", t["p_answer"])]
    return out


def sheet_line(handle: str, name: str, f: Fact) -> str:
    """One fact-sheet line; json.dumps with ensure_ascii, so token strings arrive escaped, never as markup."""
    unit = {"layer": "layer index"}.get(f.unit or "", f.unit)
    return json.dumps([handle, name, f.value, unit], ensure_ascii=True)


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """The bundled SmolLM2 tokenizer, to count prompt tokens (None when unavailable)."""
    try:
        from transformers import AutoTokenizer

        from probe.models import resolve_model

        return AutoTokenizer.from_pretrained(resolve_model("smollm2").load_dir)
    except Exception:  # noqa: BLE001 - counting falls back to a character estimate
        return None


def count_tokens(text: str) -> int:
    """Tokens of `text` under the bundled tokenizer, or a 4-characters-per-token estimate."""
    tok = _tokenizer()
    return len(tok(text, add_special_tokens=False)["input_ids"]) if tok is not None else len(text) // 4 + 1


def build_prompt(data: ReportData, checks: list[CheckResult], prefix: str, derived: dict[str, str],
                 findings: str = "", sections: tuple[str, ...] = tuple(SECTION_ASKS), compact: bool = False) -> Prompt:
    """Render the system and user messages for one model's narrative."""
    handles: dict[str, Handle] = {}
    lines = []
    for i, (name, f) in enumerate(select_facts(data, compact), 1):
        h = f"F{i}"
        handles[h] = Handle(h, f, citation([f], prefix, derived))
        lines.append(sheet_line(h, name, f))
    g = data.F
    guidance = (f"prefer ranks: {'yes' if g['prefer_ranks'].value else 'no'}; suppress absolute probabilities: "
                f"{'yes' if g['suppress_probs'].value else 'no'}; lens-artifact tier: {g['tier'].value}")
    system = render("prompt_system.md.j2", prefix, derived, prefer_ranks=bool(g["prefer_ranks"].value))
    user = render("prompt_user.md.j2", prefix, derived, alias_json=json.dumps(data.alias, ensure_ascii=True),
                  sections=[{"name": s, "ask": SECTION_ASKS[s]} for s in sections], guidance=guidance,
                  checks=[{"id": c.rule.id, "verdict": c.verdict.value, "title": c.rule.title} for c in checks],
                  sheet=lines, findings=findings)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return Prompt(messages, handles, count_tokens(system) + count_tokens(user))


_HEADING = re.compile(r"^\s*(?:#+\s*|\*\*|\[)?\s*([A-Za-z ]+?)\s*(?:\*\*|\])?\s*:?\s*(?:\*\*)?\s*$")


def parse_sections(text: str, wanted: tuple[str, ...] = tuple(SECTION_ASKS)) -> dict[str, str]:
    """Split a reply into sections at heading lines (`## name`, `**Name**`, `[name]`, `Name:`); unknown
    headings and text before the first are ignored."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = _HEADING.match(line)
        head = m.group(1).strip().lower() if m and m.group(1).strip().lower() in wanted else (
            line.strip().lstrip("#").strip().lower() if line.lstrip().startswith("#") else None)
        if head is not None:
            current = head if head in wanted else None
            if current is not None:
                out[current] = []
            continue
        if current is not None:
            out[current].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items() if "\n".join(v).strip()}
