"""The LLM prompt: a fact sheet of named placeholders (`reportgen.placeholders`) rendered through Jinja2 templates.

The sheet is JSON lines ``[name, description, value, unit]`` inside a fence, ensure_ascii, marked as untrusted
data. The LLM writes ``{name}`` where a value goes and never types a number, quote or token; the system template
documents the grammar. The full sheet (headline facts, layer rows, suite, temperatures) stays under
`TOKEN_BUDGET`; ``compact`` keeps the headline facts only, for small local models whose CPU prefill is the cost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reportgen.bound import Binding
from reportgen.claimcheck import token_words
from reportgen.facts import Fact
from reportgen.placeholders import Sheet, Slot, build_slots, run_tokens, sheet_line
from reportgen.render import FORMATS, fill_finding, render
from reportgen.rules import CheckResult
from reportgen.structure import ReportData

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
    """Messages for the chat API plus the sheet of placeholders the draft may use."""

    messages: list[dict[str, str]]
    sheet: Sheet
    n_tokens: int


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


def defuse_markup(text: str) -> str:
    """Findings quote drafted text, which may echo token strings: angle brackets become their JSON escapes, so no
    control-token spelling (<|im_end|>, <start_of_turn>) reaches the chat template."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def build_prompt(data: ReportData, checks: list[CheckResult], prefix: str, derived: Mapping[str, Binding],
                 findings: str = "", sections: tuple[str, ...] = tuple(SECTION_ASKS), compact: bool = False) -> Prompt:
    """Render the system and user messages for one model's narrative."""
    slots = build_slots(data, compact)
    sheet = Sheet(slots, prefix, dict(derived), token_words(run_tokens(data)))
    g = data.F
    guidance = (f"prefer ranks: {'yes' if g['prefer_ranks'].value else 'no'}; suppress absolute probabilities: "
                f"{'yes' if g['suppress_probs'].value else 'no'}; lens-artifact tier: {g['tier'].value}")
    system = render("prompt_system.md.j2", prefix, dict(derived), prefer_ranks=bool(g["prefer_ranks"].value),
                    compact=compact)
    user = render("prompt_user.md.j2", prefix, dict(derived), alias_json=json.dumps(data.alias, ensure_ascii=True),
                  sections=[{"name": s, "ask": SECTION_ASKS[s]} for s in sections], guidance=guidance,
                  checks=[{"id": c.rule.id, "verdict": c.verdict.value, "title": c.rule.title} for c in checks],
                  sheet=[sheet_line(slot) for slot in slots.values()], findings=defuse_markup(findings),
                  interpretation=interpretation_lines(data, slots, compact))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return Prompt(messages, sheet, count_tokens(system) + count_tokens(user))


def interpretation_lines(data: ReportData, slots: Mapping[str, Slot], compact: bool = False) -> list[str]:
    """The report's interpretation findings as fact-sheet-style data lines ``[rule id, status, sentence]``.

    A value the sheet has a placeholder for is written ``{placeholder}``, so the draft can state it; any other value
    is written as the report prints it, context the draft may describe but not type. Lines are JSON with
    ensure_ascii and escaped angle brackets, like `reportgen.placeholders.sheet_line`: token strings are data.
    Compact prompts keep only the findings that hold.
    """
    by_key: dict[str, str] = {}
    for name, slot in slots.items():
        by_key.setdefault(slot.fact.key, name)

    def show(fact: Fact, fmt: str) -> str:
        return "{" + by_key[fact.key] + "}" if fact.key in by_key else FORMATS[fmt](fact)

    lines = []
    for finding in data.findings:
        if compact and finding.status.value != "fires":
            continue
        line = json.dumps([finding.rule.id, finding.status.label, fill_finding(finding, show)], ensure_ascii=True)
        lines.append(line.replace("<", "\\u003c").replace(">", "\\u003e"))
    return lines


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
