"""What a drafted sentence asserts about a checklist item, as a table a researcher can read and extend.

Each rule id maps to two regexes (asserts the item holds, asserts it does not). Patterns run on the lower-cased
sentence with placeholders, citations and code spans blanked. The denial is tested first, so "no copy reflex"
never asserts the reflex and "the raw lens confirms no layer" never asserts confirmation; n.a. verdicts are never
contradicted. All 21 checklist items have patterns; ``tuned_attribution`` is n.a. for every run this probe makes
(it trains no tuned lens), so it can never be contradicted, and claims of a tuned lens are caught by
`reportgen.claimcheck` (``invented_lens``) instead. The patterns err towards flagging: a flagged sentence is
dropped, never published wrong. Paraphrases they do not list are missed.
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
              r"|not (?:[\w'-]+ ){0,2}?(?:observed|detected|present|seen|found|visible|enabled|triggered"
              r"|recorded|computed|measured|reported|audited|kept|applied)"
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
        r"|.*raw[- ]lens (?:does|did) not (?:confirm|agree)|.*\bconfirm\w* (?:no|none|nothing)\b"
        r"|.*\bno (?:layer|onset|milestone) (?:is |was )?confirmed|.*\bnever confirm)"),
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
    "rms_lens": (r"\brms ?norm",
                 r"\b(?:final )?norm\w*[^.;]{0,30}\bis (?:a |an )?layer ?norm\b|\bnot (?:an? )?rms ?norm"),
    "layernorm_bias": (r"layer ?norm bias (?:is |was )?(?:kept|handled|applied)",
                       r"layer ?norm bias (?:is |was )?(?:dropped|ignored|removed|not (?:kept|handled|applied))"),
    "softcap_applied": _presence(r"(?:final[- ]logit )?soft-?cap(?:ping)?"),
    "fp32_unembed": (
        r"(?:float32|fp32|full[- ]precision) (?:unembed\w*|lens head|head)|unembed\w*[^.;]{0,30}\b(?:float32|fp32|full "
        r"precision)",
        r"(?:unembed\w*|lens head)[^.;]{0,30}\b(?:float16|bfloat16|fp16|bf16|half[- ]precision|int8|reduced precision)"
        r"|(?:unembed\w*|lens head)[^.;]{0,30}\bnot (?:in )?(?:float32|fp32|full precision)"),
    "preferred_lens_honored": (
        r"(?:preferred|recommended) lens (?:is |was )?(?:honou?red|used|followed)",
        r"(?:preferred|recommended) lens (?:is |was )?(?:not|ignored)|ignor\w* the (?:preferred|recommended) lens"
        r"|milestones (?:are |were )?(?:read|taken|computed) (?:from|with|under) the raw lens"),
    "dual_lens_metrics": (
        r"(?:raw[- ]vs\.?[- ]norm|dual[- ]lens)[^.;]{0,40}\b(?:every|each|all) (?:decoded )?layers?",
        r"(?:raw[- ]vs\.?[- ]norm|dual[- ]lens)[^.;]{0,40}\b"
        r"(?:only (?:some|a few|sampled)|not (?:\w+ ){0,2}(?:every|each|all))"
        r"|\bno (?:raw[- ]vs\.?[- ]norm|dual[- ]lens) (?:metrics|comparison)"),
    "tuned_attribution": (r"tuned[- ]lens attribution (?:is |was )?(?:done|measured|reported)",
                          r"\bno tuned[- ]lens attribution"),
    "normalization_provenance": _presence(r"normali[sz]\w* provenance"),
    "normalizer_effect": _presence(r"normali[sz]er effect|norm ratios?"),
    "unembed_bias": (r"unembed\w* bias (?:is |was )?(?:audited|checked|recorded)",
                     r"unembed\w* bias (?:is |was )?(?:not (?:audited|checked|recorded)|unaudited|ignored)"),
    "copy_mask": (r"copy mask (?:is |was )?(?:present|plausible|non-?empty)",
                  r"\b(?:no|empty|missing) copy mask"
                  r"|copy mask (?:is |was )?(?:empty|missing|absent|implausible|too large)"),
    "layer_map": (r"layer map (?:is |was )?(?:present|complete)|every (?:decoded )?layer (?:is |was )?mapped",
                  _presence(r"layer map")[1] + r"|layers? (?:are |is |were )?(?:not |un)mapped"),
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
