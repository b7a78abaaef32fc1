r"""Bound values: every number, word and token of a report is a link to the one artifact line it comes from.

The format (written by `reportgen.render`, checked by `audit_links`) is a CommonMark link whose text is the value
as printed, whose destination is the artifact file with a GitHub line anchor, and whose title is the fact key::

    [0.625](artifacts/smollm2-2b1fa5b595fd/probe.json#L255 "headline.final.p_top1")
    [2.764](artifacts/smollm2-2b1fa5b595fd/pure-next-token.csv#L32 "[prompt_id=pos,variant=orig,layer=30].entropy_bits")

The key is a JSON path (`reportgen.jsonmap.format_path`) for JSON files and ``[k=v,…].column`` (the fact key of
`reportgen.facts` without its file name) for CSV files, so the binding survives as data: the auditor checks that
the cited line holds *that* key (a citation shifted by one line fails even when the neighbour holds the same
number) and compares the text with that one value, never with whatever else sits on the line or the sentence.

Text rules (`check_text`): a number must equal the value rounded half-up or half-even to the printed decimals
(scientific notation: to its printed significant digits); no truncation; a printed integer matches a non-integer
only when the value's magnitude is at least 100 (``781`` for 780.9, never ``3`` for 2.76). ``75.7%`` matches the
fraction 0.7568. ``L 30`` is layer 30. Words are compared with the value: yes/no/true/false/✓/✗ with booleans,
none/n.a./never with null, rises/falls (and synonyms) with the sign of a number, any other text with a string
value (case-insensitive, whitespace collapsed); a quoted ``'…'`` text must equal the token exactly as the report
shows tokens (`visible`). A text that fits no rule is a mismatch, never "uncheckable".

Only artifact data may be bound: a link into a report or a record (``.md``, ``.html``, ``*.build.json``,
``*.validation.json``, ``.llm-cache/``) is forbidden. `reportgen.linkaudit` checks the links of a report.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from reportgen.numbers import NumberToken, extract_numbers

__all__ = ["Binding", "check_text", "forbidden_reason", "is_binding", "link", "show", "visible"]

TRUE_WORDS = frozenset({"yes", "true", "\u2713", "passed", "pass"})
FALSE_WORDS = frozenset({"no", "false", "\u2717", "failed", "fail"})
NONE_WORDS = frozenset({"none", "n/a", "n.a.", "null", "never", "\u2014"})
UP_WORDS = frozenset({"rises", "rise", "rose", "increases", "increase", "increased", "grows", "up", "higher",
                      "positive", "gains", "climbs"})
DOWN_WORDS = frozenset({"falls", "fall", "fell", "drops", "drop", "dropped", "decreases", "decrease", "decreased",
                        "shrinks", "down", "lower", "negative", "loses", "declines"})
FLAT_WORDS = frozenset({"unchanged", "flat", "stays", "zero"})
_WORDS = TRUE_WORDS | FALSE_WORDS | NONE_WORDS | UP_WORDS | DOWN_WORDS | FLAT_WORDS
_UNIT_WORDS = {"bits": "bits", "bit": "bits", "nats": "nats", "nat": "nats"}
_FORBIDDEN_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".build.json", ".validation.json")
_LAYER = re.compile(r"^(?:L|layer)\s*(?P<n>[-\u2212]?\d+)$", re.IGNORECASE)
_NUMBER_TEXT = re.compile(r"^(?P<num>\S+?)(?:\s*(?P<unit>bits?|nats?))?$")


@dataclass(frozen=True)
class Binding:
    """Where one printed value comes from: a file under the reports dir, its 1-based line, and the fact key."""

    path: str
    line: int
    key: str

    def href(self) -> str:
        """The link destination: the path, percent-encoded where needed, with a GitHub line anchor."""
        return f"{quote(self.path, safe='/._-~')}#L{self.line}"


def link(text: str, binding: Binding) -> str:
    """A markdown link binding already-escaped ``text`` to ``binding`` (the key goes in the link title)."""
    title = binding.key.replace("\\", "\\\\").replace('"', '\\"')
    return f'[{text}]({binding.href()} "{title}")'


def visible(text: str) -> str:
    """A token or string as reports show it: line breaks as ␤, invisible and control characters as U+XXXX.

    The markdown escaping of `reportgen.formatting.escape_md` is applied on top of this when rendering, and undone
    by the markdown parser when auditing, so the auditor compares a link's text with ``visible(value)``.
    """
    out = []
    for ch in text:
        if ch in "\r\n":
            out.append("\u2424")
        elif unicodedata.category(ch) in {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"} or 0xE0000 <= ord(ch) <= 0xE007F:
            out.append(f"U+{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def forbidden_reason(path: str) -> str | None:
    """Why a cited path may not be cited (a report or a record, not artifact data), or None when it may."""
    lowered = path.lower()
    if lowered.endswith(_FORBIDDEN_SUFFIXES):
        return f"{path} is a report or a record, not artifact data; cite the artifact line the value comes from"
    if ".llm-cache" in lowered.split("/"):
        return f"{path} is the LLM response cache, not artifact data"
    return None


# --- checking a printed text against one value ---------------------------------------------------------------


def _agrees(written: Decimal, actual: Decimal, places: int) -> bool:
    quantum = Decimal(1).scaleb(-places)
    try:
        return any(actual.quantize(quantum, rounding=mode) == written for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN))
    except InvalidOperation:
        return False


def _number_matches(token: NumberToken, value: float, unit: str | None) -> bool:
    # The shortest decimal that round-trips (what the artifact line shows) and the float's exact binary value
    # (what Python's own formatting rounds): 2.675 is printed 2.67 by f"{x:.2f}" and 2.68 by decimal rounding.
    readings = {Decimal(value)} if isinstance(value, int) else {Decimal(repr(float(value))), Decimal(float(value))}
    if token.is_percent and unit != "percent":
        readings = {reading * 100 for reading in readings}
    integral = "." not in token.raw and "e" not in token.raw.lower()
    for actual in readings:
        if integral and actual != actual.to_integral_value() and abs(actual) < 100:
            continue  # "3" is never 2.76: an integer is printed for integers or for magnitudes of 100 and more
        if _agrees(token.exact, actual, token.decimals):
            return True
    return False


def _word(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


def check_text(text: str, value: Any, unit: str | None = None) -> str | None:
    """Check a printed text against the value it is bound to.

    Args:
        text: The link text after markdown parsing (escapes undone).
        value: The value on the bound line (JSON scalar, or a typed CSV cell).
        unit: The fact's unit (`reportgen.facts.infer_unit`), for percentages and unit words.

    Returns:
        None when the text states the value; otherwise why not.

    """
    shown = text.strip()
    word = _word(shown)
    if len(shown) >= 2 and shown[0] == shown[-1] == "'":
        inner = shown[1:-1]
        return None if isinstance(value, str) and inner == visible(value) else \
            f"quotes {inner!r}, the line holds {show(value)}"
    if value is None:
        return None if word in NONE_WORDS else f"states {shown!r}, the line holds null"
    if isinstance(value, bool):
        if word in (TRUE_WORDS if value else FALSE_WORDS):
            return None
        return f"states {shown!r}, the line holds {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return _check_number(shown, word, value, unit)
    if word == _word(visible(str(value))):
        return None
    return f"states {shown!r}, the line holds {show(value)}"


def _check_number(shown: str, word: str, value: float, unit: str | None) -> str | None:
    if word in UP_WORDS | DOWN_WORDS | FLAT_WORDS:
        sign = "up" if value > 0 else "down" if value < 0 else "flat"
        said = "up" if word in UP_WORDS else "down" if word in DOWN_WORDS else "flat"
        return None if sign == said else f"says {shown!r}, but the bound change is {value:g}"
    if (layer := _LAYER.match(shown)) is not None:
        n = int(layer.group("n").replace("\u2212", "-"))
        return None if float(value) == n else f"states layer {n}, the line holds {value!r}"
    match = _NUMBER_TEXT.match(shown)
    tokens = extract_numbers(match.group("num")) if match else []
    if not match or len(tokens) != 1 or tokens[0].raw != match.group("num"):
        return f"states {shown!r}, which is not the number {value!r} the line holds"
    said_unit = _UNIT_WORDS.get((match.group("unit") or "").lower())
    if said_unit is not None and unit is not None and said_unit != unit:
        return f"states {said_unit}, the value is in {unit}"
    if tokens[0].is_percent and unit not in (None, "fraction", "probability", "percent"):
        return f"states a percentage, the value is in {unit}"
    if _number_matches(tokens[0], value, unit):
        return None
    return f"states {shown}, the line holds {value!r}"


def show(value: Any) -> str:
    """A value as the audit quotes it (JSON)."""
    return json.dumps(value, ensure_ascii=False)


def is_binding(text: str, title: str | None) -> bool:
    """Whether a link binds its text to one value: it has a key title, or its text reads as a value."""
    if title:
        return True
    shown = text.strip()
    if not shown:
        return False
    if _word(shown) in _WORDS or _LAYER.match(shown) or (len(shown) >= 2 and shown[0] == shown[-1] == "'"):
        return True
    match = _NUMBER_TEXT.match(shown)
    tokens = extract_numbers(match.group("num")) if match else []
    return len(tokens) == 1 and tokens[0].raw == match.group("num")
