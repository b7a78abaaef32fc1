"""What a drafted sentence asserts about a checklist item, as a table a researcher can read and extend.

Each rule id maps to two regexes (asserts the item holds, asserts it does not). Patterns run on the lower-cased
sentence with placeholders, citations and code spans blanked. The denial is tested first, so "no copy reflex" never
asserts the reflex and "the raw lens confirms no layer" never asserts confirmation. An n.a. verdict means the item
does not apply (no soft-cap, untied embeddings, no LayerNorm): denying it passes, asserting it holds ("the lens
applies the soft-cap") contradicts it. An item is asserted by its name ("punctuation anchoring") or by its subject
doing it ("punctuation takes the top slot"), and denied by either negated. All 21 checklist items have patterns;
``tuned_attribution`` is n.a. for every run this probe makes (it trains no tuned lens), and claims of a tuned lens
are caught by `reportgen.claimcheck` (``invented_lens``) instead. The patterns err towards flagging: a flagged
sentence is dropped, never published wrong.

Paraphrases the patterns do not list are read by polarity (`STANCE_TOPICS`): a sentence that names an item's
subject ("the normalizer that decoded each layer", "the unembedding bias", "residuals overflowed to infinity")
asserts the item holds or fails by the subject named, flipped by a negation in its clause ("was never audited",
"fails to reproduce", "only for a subset of the layers", "cannot be put down to"). A negation bounded to part of
the stack ("never tops the late layers") takes no stance on an anchoring or copy item.
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
_DUAL = (r"raw[- ]vs\.?[- ]norm|dual[- ]lens|both lenses"
         r"|raw (?:lens )?(?:and|vs\.?|versus|with) (?:the )?norm(?: lens)?|raw lens\b[^.;]{0,40}\bnorm lens")
_TIED = r"tied (?:input[- ]output )?embeddings?"
_AT_END = r"\b[^.;:]{0,50}\b(?:last|final|unembed\w*)"
# "no/not/without (up to three words) X", or "X (no clause break) absent/not observed/…".
_NOT_BEFORE = r"\b(?:no|not|never|without|lacks?|lacking|absence of)\s+(?:[\w'-]+\s+){0,3}?"
_NOT_AFTER = (r"(?:(?!\b(?:but|while|whereas|although|though|and)\b)[^.;:]){0,40}?\b(?:absent|missing|disabled"
              r"|incomplete|partial|not (?:[\w'-]+ ){0,2}?(?:observed|detected|present|seen|found|visible|enabled"
              r"|triggered|recorded|computed|measured|reported|audited|kept|applied|occur\w*|appear\w*|happen\w*"
              r"|show\w*)|never (?:occurs|appears|fires|happens|shows))")
# "X (a few words, no clause break) verb": a subject that asserts the item through what it does.
_GAP = r"(?:(?!\b(?:but|while|whereas|although|though|rather|instead)\b)[^.;:]){0,60}?"
_GAP_NEG = r"[^.;:]{0,40}?(?:\bnot|n't|\bnever)\b[^.;:]{0,25}?"


def _presence(subject: str) -> tuple[str, str]:
    """(holds, denied) for an item a sentence asserts by naming it and denies by negating the name."""
    return subject, rf"{_NOT_BEFORE}(?:{subject})|(?:{subject}){_NOT_AFTER}"


def _acting(compound: str, noun: str, verbs: str) -> tuple[str, str]:
    """(holds, denied) for an item named as a compound ("punctuation anchoring") or as a noun doing something
    ("punctuation takes the top slot"); denied by a negated name or a negated verb after the noun."""
    holds, denied = _presence(rf"{compound}|{noun}")
    return (rf"{compound}|\b(?:{noun}){_GAP}\b(?:{verbs})",
            rf"{denied}|\b(?:{noun}){_GAP_NEG}\b(?:{verbs})")


_TOP_VERBS = (r"anchor\w*|top (?:slot|token|position|spot|place)|(?:tak|occup|becom|hold|win|claim)\w* the top"
              r"|wins?|tops?")
CONTRADICTION_PATTERNS: dict[str, tuple[str, str]] = {  # rule id: (asserts it holds, asserts it does not)
    "copy_reflex": (rf"{_COPY}|\b(?:early|first|initial|earliest) layers?\b[^.;]{{0,30}}\bcop(?:y|ies|ied|ying)\b",
                    _presence(_COPY)[1] + r"|\b(?:none|no one|not one) of the (?:early|earliest|first|initial) layers?"
                    r"\b[^.;]{0,20}\b(?:cop(?:y|ies)|echo(?:es)?|repeats?)\b"),
    "punctuation_anchoring": _acting(_PUNCT, r"punctuation(?: marks?| tokens?)?|commas?", _TOP_VERBS),
    "filler_anchoring": _acting(_FILLER, r"(?:grammatical |function )?(?:fillers?|filler words?|function words?)",
                                _TOP_VERBS),
    "determinism": (_DETERMINISM, _presence(_DETERMINISM)[1] + r"|\bnon-?determinis\w*"),
    "confirmed_semantics": (
        r"confirmed semantic|semantic\w*(?: [\w-]+){0,3} confirmed|raw[- ]lens (?:confirm\w*|agree\w*)",
        r"^(?=.*\b(?:semantic|raw[- ]lens))(?:.*\bunconfirmed\b|.*\bnot (?:been |yet )?confirmed"
        r"|.*\b(?:no|lacks?|without) (?:raw[- ]lens )?confirmation|.*\bfails? to confirm"
        r"|.*raw[- ]lens (?:disagrees|does not agree|doesn't agree)"
        r"|.*raw[- ]lens (?:does|did) not (?:confirm|agree)|.*\bconfirm\w* (?:no|none|nothing)\b"
        r"|.*\bno (?:layer|onset|milestone) (?:is |was )?confirmed|.*\bnever confirm)"),
    "last_layer_gate": (
        rf"(?:{_GATE})[^.;:]{{0,30}}\b(?:pass(?:es|ed)?|holds|held|is met|clean)\b|\bpass(?:es|ed)? the (?:{_GATE})"
        r"|norm lens (?:reproduces|matches) the model's",
        rf"(?:{_GATE})[^.;:]{{0,30}}\b(?:fail(?:s|ed)?|not pass\w*|not met)\b|\bfail(?:s|ed)? (?:the )?(?:{_GATE})"
        r"|norm lens (?:does|did) not (?:reproduce|match) the model"),
    "numeric_health": (
        rf"numeric(?:s|al)?(?: health)? (?:is |are |was |were )?(?:\w+ )?(?:clean|ok|fine|good|healthy)|{_NO_NAN}",
        rf"^(?!.*{_NO_NAN})(?:.*\b{_NAN}\b[^.;:]{{0,30}}\b(?:found|detected|present|appear\w*|occur\w*"
        r"|show(?:s|ed)? up|turn(?:s|ed)? up|arose|emerged|observed|seen)|.*\b(?:some|several|a few|many) (?:\w+ )?"
        rf"{_NAN}\b"
        rf"|.*\b(?:contains?|has|had|shows?)\s+(?:\w+\s+){{0,2}}?{_NAN}"
        r"|.*numeric(?:al)? health (?:is |was )?(?:not clean|flagged|failed)|.*numeric(?:al)? (?:problem|issue))"),
    "entropy_rise_at_unembed": (
        rf"entropy (?:rises|rose|increases|increased|jumps|jumped|goes up|went up){_AT_END}"
        rf"|\b(?:rise|increase|jump) in entropy{_AT_END}|entropy rise at",
        rf"entropy (?:falls|fell|drops|dropped|decreases|decreased|declines|shrinks|goes down|went down"
        rf"|(?:does|did) not rise|stays flat){_AT_END}"
        r"|\bno (?:entropy rise|rise in entropy|increase in entropy)"),
    "tied_embedding_copy": (
        rf"(?:explained|caused|accounted for) by (?:the )?{_TIED}|{_TIED} (?:explain|account for|cause)",
        rf"n[o']t (?:be )?(?:explained|caused|accounted for) by (?:the )?{_TIED}"
        r"|\bembedding (?:layer|output)\b[^.;]{0,40}\b(?:nothing to do with|unrelated to|differs? from|does not match"
        r"|doesn't match)\b[^.;]{0,30}\b(?:prompt|input)"
        rf"|{_TIED} (?:do|does|did) ?n[o']t (?:explain|account for|cause)"),
    "rms_lens": (r"\brms ?norm",
                 r"\b(?:final )?norm\w*[^.;]{0,30}\bis (?:a |an )?layer ?norm\b|\bnot (?:an? )?rms ?norm"
                 r"|\bsubtract\w* (?:its |the |their )?(?:\w+ )?mean\b|\bmean[- ](?:subtract|cent(?:er|re))\w*"
                 r"|\bre-?cent(?:er|re)\w*"),
    "layernorm_bias": (r"layer ?norm bias (?:is |was )?(?:kept|handled|applied)",
                       r"layer ?norm bias (?:is |was )?(?:dropped|ignored|removed|not (?:kept|handled|applied))"),
    # Claimed only as applied (a bare mention may just say the config has none): an n.a. is contradicted by it.
    "softcap_applied": (r"soft-?cap(?:ping)?\b[^.;]{0,30}\b(?:is |was )?(?:applied|used|active|honou?red)"
                        r"|\b(?:appl\w*|uses?|honou?rs?) (?:the |a |its )?(?:final[- ]logit )?soft-?cap",
                        _presence(r"(?:final[- ]logit )?soft-?cap(?:ping)?")[1]),
    "fp32_unembed": (
        r"(?:float32|fp32|full[- ]precision) (?:unembed\w*|lens head|head)|unembed\w*[^.;]{0,30}\b(?:float32|fp32|full "
        r"precision)",
        r"(?:unembed\w*|lens head|decod\w* head|\bhead\b)[^.;]{0,30}\b(?:float16|bfloat16|fp16|bf16"
        r"|(?:half|reduced|low|lower|mixed)[- ]precision|int8|quanti[sz]ed)"
        r"|(?:unembed\w*|lens head)[^.;]{0,30}\bnot (?:in )?(?:float32|fp32|full precision)"),
    "preferred_lens_honored": (
        r"(?:preferred|recommended) lens (?:is |was )?(?:honou?red|used|followed)",
        r"(?:preferred|recommended) lens (?:is |was )?(?:not|ignored)|ignor\w* the (?:preferred|recommended) lens"
        r"|milestones?\b[^.;]{0,30}\b(?:read|taken|computed|derived|based|come|comes)\w* (?:off|from|with|under|on)"
        r" the raw lens"),
    "dual_lens_metrics": (
        rf"(?:{_DUAL})[^.;]{{0,50}}\b(?:every|each|all) (?:decoded )?layers?",
        rf"(?:{_DUAL})[^.;]{{0,60}}\b(?:(?:only|just)\b[^.;]{{0,20}}\b(?:some|a few|few|a handful|handful|several"
        r"|subset|sampled|selected|part)\b|not (?:\w+ ){0,2}(?:every|each|all))"
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
    "layer_map": (r"layer map (?:is |was )?(?:present|complete)"
                  r"|(?:every|each|all) (?:decoded )?layers? (?:is |are |was |were )?mapped",
                  _presence(r"layer map")[1] + r"|layers? (?:are |is |were )?(?:not |un)mapped|missing from the "
                  r"layer map"),
}
_COMPILED = {rule: (re.compile(holds), re.compile(denied)) for rule, (holds, denied) in CONTRADICTION_PATTERNS.items()}

# --- Paraphrases: when no pattern above decides, a sentence that names an item's subject takes a stance by its
# polarity. rule id: (subject whose plain mention asserts the item holds, subject whose plain mention asserts it
# fails); a negation in the subject's clause ("no", "never", "fails to", "cannot", "only for a subset") flips it.
_FINAL_STEP = r"(?:\b(?:final|last) (?:step|layer|block)\b|\bunembed\w*|\boutput\b|\bat the end\b)"
_TOP = r"\b(?:top|slot|anchor\w*|wins?|leads?|first place)\b"
STANCE_TOPICS: dict[str, tuple[str, str]] = {
    "last_layer_gate": (r"\blens\b[^.;]{0,40}\b(?:reproduc\w*|match\w*|recover\w*|agrees? with)\b[^.;]{0,30}"
                        r"\bmodel'?s?\b", ""),
    "layernorm_bias": (r"\b(?:keeps?|kept|preserv\w*|appl\w*|retain\w*|honou?r\w*|uses?)\b[^.;]{0,20}"
                       r"\blayer[- ]?norm bias|\blayer[- ]?norm bias\b[^.;]{0,20}\b(?:kept|preserved|applied|retained"
                       r"|used|honou?red|handled)\b", ""),
    "fp32_unembed": (r"\bunembed\w*[^.;]{0,30}\b(?:float32|fp32|full[- ]precision)"
                     r"|\b(?:float32|fp32|full[- ]precision)[^.;]{0,30}\bunembed\w*",
                     r"\bunembed\w*[^.;]{0,30}\b(?:float16|bfloat16|fp16|bf16|half[- ]precision|reduced precision)"),
    "entropy_rise_at_unembed": (
        rf"^(?!.*\btemperature).*(?:\bflatter\b|\bflatten\w*|\bspreads? out\b|\bbroaden\w*|\bless peaked\b"
        rf"|\bmore uniform\b).*{_FINAL_STEP}|^(?!.*\btemperature).*{_FINAL_STEP}.*(?:\bflatter\b|\bflatten\w*"
        r"|\bspreads? out\b|\bbroaden\w*|\bless peaked\b|\bmore uniform\b)",
        rf"^(?!.*\btemperature).*(?:\bsharpen\w*|\bmore peaked\b|\bnarrow\w*).*{_FINAL_STEP}"
        rf"|^(?!.*\btemperature).*{_FINAL_STEP}.*(?:\bsharpen\w*|\bmore peaked\b|\bnarrow\w*)"),
    "punctuation_anchoring": (rf"\bpunctuation\b.*{_TOP}|{_TOP}.*\bpunctuation\b", ""),
    "filler_anchoring": (rf"\b(?:fillers?|function words?|articles|grammatical words?)\b.*{_TOP}", ""),
    "copy_reflex": (r"\b(?:early|earliest|first|initial)\b[^.;]{0,40}\bcop(?:y|ies|ying|ied)\b"
                    r"|\bcop(?:y|ies|ying|ied)\b[^.;]{0,30}\b(?:input|prompt)\b", ""),
    "tied_embedding_copy": (r"^(?=.*\bcop(?:y|ies|ying|ied)\b).*\btied\b[^.;]{0,30}\bembeddings?\b", ""),
    "confirmed_semantics": (r"\braw lens\b[^.;]{0,30}\b(?:corroborat\w*|validat\w*|confirm\w*|backs? up|supports?"
                            r"|agrees?)\b|\b(?:both|the two) lenses agree\b|\blenses agree\b", ""),
    "dual_lens_metrics": (r"\b(?:raw[- ](?:vs\.?|versus|and|to)[- ]norm|dual[- ]lens)\b[^.;]{0,40}\b(?:metric\w*"
                          r"|comparison\w*|computed|cover\w*|measured)", ""),
    "normalization_provenance": (r"\bnormali[sz]er\b[^.;]{0,40}\b(?:decod\w*|record\w*|logged|provenance)"
                                 r"|\bwhich normali[sz]er\b|\bnormali[sz]ation provenance\b", ""),
    "normalizer_effect": (r"\beffect of the normali[sz]er\b|\bnormali[sz]er'?s? effect\b|\bnorm ratios?\b", ""),
    "unembed_bias": (r"\bunembed\w* bias\b", ""),
    "numeric_health": (r"\bstay\w* finite\b|\bnumerically (?:clean|healthy|stable)\b",
                       r"\boverflow\w*|\bunderflow\w*|\binfinit\w*|\bnans?\b|\binfs?\b|\bnon-?finite\b"),
    "layer_map": (r"\bmapped\b|\blayer map\b|\bmaps? (?:back )?to (?:a |the )?(?:block|layer)", ""),
}
_STANCE = {rule: (re.compile(holds), re.compile(fails) if fails else None)
           for rule, (holds, fails) in STANCE_TOPICS.items()}
_POLARITY_NEG = re.compile(r"\b(?:no|not|never|none|without|cannot|fails? to|failed to|unable to|neither|nor|lacks?"
                           r"|missing|absent|ignor\w*|unrecorded|unmapped|unaudited|unmeasured|unchecked|subset"
                           r"|only (?:for |in |at |on )?(?:a |some )?(?:few|some|part|handful))\b|n't\b"
                           r"|\bput down to\b")


_BOUNDED = re.compile(r"\b(?:late|later|latter|final|last|upper|middle|mid-?stack|deep|deeper|after|beyond|until"
                      r"|once)\b|#")


_LAYERED = frozenset({"punctuation_anchoring", "filler_anchoring", "copy_reflex"})  # items seen at some layers


def _stance(rule: str, said: str) -> bool | None:
    """True when the sentence asserts the item holds, False when it asserts it fails, None when it says nothing."""
    holds, fails = _STANCE[rule]
    # "sharpens rather than broadening it": the alternative set aside is no stance
    said = re.sub(r"\b(?:rather than|instead of)\b[^.;,]*", "", said)
    for rx, sign in ((holds, True), (fails, False)):
        if rx is None:
            continue
        for part in re.split(r";|,\s+(?=(?:but|while|whereas|although|though)\b)", said):
            if rx.search(part):
                if rule in _LAYERED:  # "at only a few layers" still says the item is seen
                    part = re.sub(r"\bonly (?:at |in |on )?(?:a |some )?(?:few|some|handful)\b", "", part)
                negated = _POLARITY_NEG.search(part) is not None and not re.search(r"\bput down to\b", part) \
                    or re.search(r"\bcannot be put down to\b|\bnot (?:be )?put down to\b", part) is not None
                if negated and rule in _LAYERED and _BOUNDED.search(part):
                    return None  # "never tops the late layers" denies nothing about the item as a whole
                return sign != negated
    return None


def contradictions(prose: str, checks: list[CheckResult]) -> list[str]:
    """Details of every checklist verdict the sentence contradicts (empty when none)."""
    said = " ".join(prose.lower().replace("\u2019", "'").split())
    details = []
    for check in checks:
        if check.rule.id not in _COMPILED:
            continue
        holds, denied = _COMPILED[check.rule.id]
        denies = denied.search(said) is not None
        if not denies and check.rule.id in _STANCE:
            stance = _stance(check.rule.id, said)  # a paraphrase the patterns do not list, or a negation of one
            if stance is None and not holds.search(said):
                continue
            if stance is not None:
                holds, denies = re.compile("" if stance else r"(?!)"), not stance
        if check.verdict is Verdict.NA:
            # n.a. means the item does not apply (no soft-cap, no tied embeddings, no LayerNorm, no tuned lens):
            # denying it is true, asserting it holds is not.
            if not denies and holds.search(said):
                details.append(f"says {check.rule.id} holds, but it does not apply to this run (n.a.: "
                               f"{check.rule.title})")
        elif check.verdict is Verdict.PASS and denies:
            details.append(f"says {check.rule.id} does not hold, but the checklist has ✓ ({check.rule.title})")
        elif check.verdict is Verdict.FAIL and not denies and holds.search(said):
            details.append(f"says {check.rule.id} holds, but the checklist has ✗ ({check.rule.title})")
    return details
