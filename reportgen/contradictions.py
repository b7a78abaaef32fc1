"""What a drafted sentence asserts about a checklist item, as a table a researcher can read and extend.

Each rule id maps to two regexes (asserts the item holds, asserts it does not). Patterns run on the lower-cased
sentence with citations, handles and code spans blanked. The denial is tested first, so "no copy reflex" never
asserts the reflex; n.a. verdicts are never contradicted. The patterns err towards flagging: a flagged sentence
is dropped, never published wrong. Paraphrases they do not list are missed.
"""

from __future__ import annotations

import re

from reportgen.rules import CheckResult, Verdict

# --- What a sentence asserts about a checklist item. Patterns run on the lower-cased sentence with citations,
# handles and code spans blanked. The denial is tested first, so "no copy reflex" never asserts the reflex.
_COPY = r"copy[- ](?:reflex|collapse)(?:es)?"
_PUNCT = r"punctuation(?:\s*/\s*markup)?[- ]anchor\w*|anchor\w* (?:on|to) punctuation"
_FILLER = r"(?:grammatical )?filler(?:[- ]words?)?[- ]anchor\w*|anchor\w* (?:on|to) (?:grammatical )?fillers?"
_DETERMINISM = r"determinism|deterministic(?: algorithms?| mode| kernels?)?"
_GATE = r"(?:last|final)[- ]layer (?:gate|check|consistency check|kl check)"
_NAN = r"(?:nans?|infs?|non-finite)"
_NO_NAN = rf"\b(?:no|without|free of|zero)\s+(?:\w+\s+){{0,2}}?{_NAN}"
_TIED = r"tied (?:input[- ]output )?embeddings?"
_AT_END = r"\b[^.;:]{0,50}\b(?:last|final|unembed\w*)"
# "no/not/without (up to three words) X", or "X (no clause break) absent/not observed/…".
_NOT_BEFORE = r"\b(?:no|not|never|without|lacks?|lacking|absence of)\s+(?:[\w'-]+\s+){0,3}?"
_NOT_AFTER = (r"(?:(?!\b(?:but|while|whereas|although|though|and)\b)[^.;:]){0,40}?\b(?:absent|missing|disabled"
              r"|not (?:[\w'-]+ ){0,2}?(?:observed|detected|present|seen|found|visible|enabled|triggered)"
              r"|never (?:occurs|appears|fires))")


def _presence(subject: str) -> tuple[str, str]:
    """(holds, denied) for an item a sentence asserts by naming it and denies by negating the name."""
    return subject, rf"{_NOT_BEFORE}(?:{subject})|(?:{subject}){_NOT_AFTER}"


CONTRADICTION_PATTERNS: dict[str, tuple[str, str]] = {  # rule id: (asserts it holds, asserts it does not)
    "copy_reflex": _presence(_COPY),
    "punctuation_anchoring": _presence(_PUNCT),
    "filler_anchoring": _presence(_FILLER),
    "determinism": (_DETERMINISM, _presence(_DETERMINISM)[1] + r"|\bnon-?determinis\w*"),
    "confirmed_semantics": (
        r"confirmed semantic|semantic\w*(?: [\w-]+){0,3} confirmed|raw[- ]lens (?:confirm\w*|agree\w*)",
        r"^(?=.*\b(?:semantic|raw[- ]lens))(?:.*\bunconfirmed\b|.*\bnot (?:been |yet )?confirmed"
        r"|.*\b(?:no|lacks?|without) (?:raw[- ]lens )?confirmation|.*\bfails? to confirm"
        r"|.*raw[- ]lens (?:does|did) not (?:confirm|agree))"),
    "last_layer_gate": (
        rf"(?:{_GATE})[^.;:]{{0,30}}\b(?:pass(?:es|ed)?|holds|held|is met|clean)\b|\bpass(?:es|ed)? the (?:{_GATE})"
        r"|norm lens (?:reproduces|matches) the model's",
        rf"(?:{_GATE})[^.;:]{{0,30}}\b(?:fail(?:s|ed)?|not pass\w*|not met)\b|\bfail(?:s|ed)? (?:the )?(?:{_GATE})"
        r"|norm lens (?:does|did) not (?:reproduce|match) the model"),
    "numeric_health": (
        rf"numeric(?:al)? health (?:is |was )?(?:clean|ok|fine|good)|{_NO_NAN}",
        rf"^(?!.*{_NO_NAN})(?:.*\b{_NAN}\b[^.;:]{{0,30}}\b(?:found|detected|present|appear\w*|occur\w*)"
        rf"|.*\b(?:contains?|has|had|shows?)\s+(?:\w+\s+){{0,2}}?{_NAN}"
        r"|.*numeric(?:al)? health (?:is |was )?(?:not clean|flagged|failed)|.*numeric(?:al)? (?:problem|issue))"),
    "entropy_rise_at_unembed": (
        rf"entropy (?:rises|rose|increases|increased|jumps|jumped|goes up|went up){_AT_END}"
        rf"|\b(?:rise|increase|jump) in entropy{_AT_END}|entropy rise at",
        rf"entropy (?:falls|fell|drops|dropped|decreases|decreased|(?:does|did) not rise|stays flat){_AT_END}"
        r"|\bno (?:entropy rise|rise in entropy|increase in entropy)"),
    "tied_embedding_copy": (
        rf"(?:explained|caused|accounted for) by (?:the )?{_TIED}|{_TIED} (?:explain|account for|cause)",
        rf"n[o']t (?:be )?(?:explained|caused|accounted for) by (?:the )?{_TIED}"
        rf"|{_TIED} (?:do|does|did) ?n[o']t (?:explain|account for|cause)"),
}
_COMPILED = {rule: (re.compile(holds), re.compile(denied)) for rule, (holds, denied) in CONTRADICTION_PATTERNS.items()}


def contradictions(prose: str, checks: list[CheckResult]) -> list[str]:
    """Details of every checklist verdict the sentence contradicts (empty when none)."""
    said = " ".join(prose.lower().replace("\u2019", "'").split())
    details = []
    for check in checks:
        if check.rule.id not in _COMPILED or check.verdict is Verdict.NA:
            continue  # n.a. verdicts are never contradicted
        holds, denied = _COMPILED[check.rule.id]
        denies = denied.search(said) is not None
        if check.verdict is Verdict.PASS and denies:
            details.append(f"says {check.rule.id} does not hold, but the checklist has ✓ ({check.rule.title})")
        elif check.verdict is Verdict.FAIL and not denies and holds.search(said):
            details.append(f"says {check.rule.id} holds, but the checklist has ✗ ({check.rule.title})")
    return details
