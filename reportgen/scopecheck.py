"""What a sentence claims in words alone, placeholders aside: milestones reached or never, the final head, scope.

Runs on one sentence with its placeholders masked. A sentence may state a fact without naming it ("the strong
semantic gate is never passed"); these checks read such claims and hold them against the sheet's values:

- ``milestone_claim``: a milestone (top-1, top five/ten, strong gate, raw-lens top-1, confirmation, KL below a
  threshold, cosine, copy collapse, every micro-suite fact) said to be never / not reached when the data hold a
  layer for it, or said to be reached when its value is null. Only clauses with no layer placeholder are read
  (a layer bounds the claim: "not yet in the top five at {layer[3].layer}" is a row claim, `reportgen.bindcheck`),
  and a conditional or hedged clause ("if", "whether", "would") is never read as a claim of reaching.
- ``milestone_claim``: the final head ranks the answer first, or not, against ``final_answer_rank`` and
  ``final_top1_token``.
- ``overclaim``: what a lens cannot show, asserted: mechanism and mind words about the model ("reasons", "knows",
  "retrieves from memory", "because the model …"), generalisations beyond this run ("all transformer models",
  "small language models in general"), analyses the run did not make (attention heads, neurons, circuits, MLP
  blocks, logit attribution, patching) unless negated, a mixture-of-experts or encoder-decoder claim the
  architecture class does not bear, and absolute probabilities called trustworthy when the guidance says to
  prefer ranks.
- ``model_claim``: precision words ("reduced precision", "quantized") against the dtype the model ran in.
"""

from __future__ import annotations

import re

from reportgen.bindcheck import Placed, clauses
from reportgen.placeholders import Sheet

_NEG = re.compile(r"\b(?:never|not|no|none|nowhere|neither|nor|without|fails? to|failing to|lacks?)\b|n't\b")
_ORDERING = re.compile(r"\b(?:no|not) (?:later|earlier|sooner|more|less|fewer|higher|lower|greater|smaller) than\b")
# A claim that a milestone is never reached: universal forms only ("not on top at the embedding layer" is not one).
_NEVER = re.compile(r"\bnever\b|\bat no\b|\bno layer\b|\bnowhere\b|\bat any (?:layer|depth|point)\b|\bwithout ever\b"
                    r"|\bnot (?:\w+ ){0,2}?(?:reach\w*|enter\w*|pass\w*|confirm\w*|cross\w*|make it)"
                    r"|(?:does|did|do)(?: not|n't) (?:\w+ ){0,2}?(?:reach|enter|pass|confirm|cross|become|get|make|rise"
                    r"|fall|drop|occur|happen|appear|set in|put|take)\b|\bfails? to\b|\bfailed to\b")
# Words that bound a claim to part of the stack, so "not (yet) on top" there says nothing about the milestone.
_BOUNDED = re.compile(r"\b(?:yet|still|until|before|by the time|embedding layer|first layers?|early layers?"
                      r"|initial layers?|layers? before|up to|prior to)\b")
_REACHING = re.compile(r"\b(?:reach\w*|enters?|entered|pass(?:es|ed)?|confirms|confirmed|crosses|crossed|becomes?"
                       r"|became|gets?|got|climbs?|climbed|tops?|wins?|won|leads?|falls? below|fell below"
                       r"|drops? below|dropped below|(?:drops?|dropped|falls?|fell) to|makes? it|made it|occurs"
                       r"|occurred|sets? in)\b")
_HEDGE = re.compile(r"\b(?:if|whether|would|could|might|may|unless|cannot|can't|should)\b")
# milestone placeholder -> what a clause says to name it (tried in order: the first that matches decides)
_MILESTONES = (
    ("L_semantic_strong", r"\bstrong (?:semantic )?(?:gate|onset|milestone|criterion|collapse)"),
    ("L_semantic_confirmed", r"\bconfirm\w*"),
    ("L_semantic_raw", r"\braw lens\b[^.;]{0,50}\b(?:top|first|on top|wins?|leads?)\b"
                       r"|\b(?:top|first|on top|leads?)\b[^.;]{0,40}\bunder the raw lens"),
    ("first_kl_le_0_5", r"\b(?:kl|divergence)\b[^.;]{0,50}\b(?:below|under|within|less than)\b[^.;]{0,20}half a bit"),
    ("first_kl_le_1", r"\b(?:kl|divergence)\b[^.;]{0,50}\b(?:below|under|within|less than)\b"),
    ("first_cos_ge_0_6", r"\bcosine\b[^.;]{0,50}\b(?:reach\w*|pass\w*|exceed\w*|above|crosses)"),
    ("L_copy", r"\bcopy[- ]collapse\b|\bcopied (?:in)?to the top\b"),
    ("first_rank_le_10", r"\btop[- ]?(?:ten|10)\b"),
    ("first_rank_le_5", r"\btop[- ]?(?:five|5)\b"),
    ("L_semantic", r"\b(?:top[- ]?(?:token|prediction|spot|position|place|slot|one|1)|on top|ranks? first"
                   r"|rank (?:of )?one|semantic (?:onset|collapse|layer|milestone)|leads? the distribution)\b"),
)
_BY_THRESHOLD = {"rank10": "first_rank_le_10", "rank5": "first_rank_le_5", "kl1": "first_kl_le_1",
                 "kl05": "first_kl_le_0_5", "cos": "first_cos_ge_0_6"}
_ANSWER_MILESTONES = {"L_semantic", "L_semantic_raw", "first_rank_le_10", "first_rank_le_5"}
_SUITE = re.compile(r"\b(?:micro-?suite|suite facts?|(?:every|each|all|some|several|other) (?:\w+ )?facts?)\b")
_EVERY = re.compile(r"\b(?:every|each|all)\b")
_FINAL = re.compile(r"\bfinal head\b|\bmodel's (?:own )?(?:head|output|prediction)|\boutput head\b"
                    r"|\bfinal (?:output|prediction)\b")
_FINAL_TOP = re.compile(r"\banswer\b[^.;:]{0,40}\b(?:first|on top|top[- ]?(?:token|1|one|spot)|rank one|leads?)\b"
                        r"|\btop[- ]?(?:token|1|one|prediction)\b[^.;:]{0,25}\b(?:is|was|remains|stays)\s+(?:still\s+)?"
                        r"the (?:correct |gold )?answer\b")
_MIND = re.compile(
    r"\breason(?:s|ed|ing)\b|\bthinks\b|\bthinking\b|\bknows\b|\bknew\b|\bknowledge\b|\bunderstands\b"
    r"|\bdecides?\b|\bdecided\b|\bbelieves\b|\brealis(?:es|ed)\b|\brealiz(?:es|ed)\b|\brecalls\b|\brecalled\b"
    r"|\bremembers\b"
    r"|\b(?:its|from|factual|parametric|associative|model's) memor(?:y|ies)\b|\bmemori[sz]\w*|\bretriev\w*"
    r"|\blooks? (?:\w+ ){0,3}up\b|\blooked (?:\w+ ){0,3}up\b|\bfigures? out\b|\bintends?\b|\bwants?\b"
    r"|\bbecause the (?:model|network) (?:has|had|is|was|does|did|needs?|must|tries|learn\w*|comput\w*|process\w*"
    r"|finish\w*|work\w*|solv\w*)\b")
_GENERAL = re.compile(
    r"\b(?:all|most|many|other|typical) (?:[\w-]+ ){0,3}?(?:models|llms|lms|transformers|networks|architectures)\b"
    r"|\b(?:any|every) (?:[\w-]+ ){0,2}?(?:model|llm|transformer|network) (?:of|with|like|in|that|will)\b"
    r"|\bmodels in general\b|\bin general,? (?:[\w-]+ ){0,2}models\b|\b(?:models|llms"
    r"|transformers) (?:generally|typically|usually|always|tend to)\b")
_ANALYSIS = re.compile(
    r"\battention (?:heads?|patterns?|weights?|scores?|maps?)\b|\bheads attend\w*|\battends? to\b"
    r"|\bneurons?\b|\bcircuits?\b|\bmlps?\b|\bfeed-?forward\b|\bffn\b|\blogit attribution\b"
    r"|\bpatching\b|\bcausal tracing\b|\bsteering vectors?\b|\binduction heads?\b")
_ANALYSIS_NEG = re.compile(r"\b(?:no|not|never|without|cannot|can't|neither|nor|beyond|would need|unknown"
                           r"|outside)\b|n't\b")
_ARCH_CLAIMS = (("mixture-of-experts", re.compile(r"\bmixture[- ]of[- ]experts\b|\bmoe\b|\bsparse experts?\b"),
                 re.compile(r"moe|mixtral|expert", re.IGNORECASE)),
                ("encoder-decoder", re.compile(r"\bencoder[- ]decoder\b|\bencoder-only\b|\bseq2seq\b"),
                 re.compile(r"encoder|seq2seq|t5|bart", re.IGNORECASE)))
_LOW_PRECISION = re.compile(r"\b(?:reduced|low|lower|half|mixed)[- ]precision\b|\bquanti[sz]ed\b|\b(?:8|4)-bit\b")
_LENS_WORDS = re.compile(r"\blens\b|\bunembed\w*|\bhead\b|\bdecod\w*")
_TRUSTED = re.compile(r"\bprobabilit\w*\b(?:(?!\b(?:than|not|no|less|hardly|cannot|can't|never)\b|n't)[^.;]){0,50}"
                      r"\b(?:at face value|reliable|trustworth\w*|be trusted|accurate|literally|well[- ]calibrated"
                      r"|meaningful)")


def _reached(name: str, sheet: Sheet) -> bool | None:
    if name not in sheet.slots:
        return None
    return sheet.value(name) is not None


def _milestone_claims(text: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    # "KL to the final head" names the measure, not a claim about the final head
    if any(p.slot and p.slot.measure == "layer" for p in placed) or _FINAL.search(re.sub(
            r"\b(?:kl|divergence|distance|cosine|away|closer|close)\b[^.;]{0,12}\b(?:to|from|with) the final head\b",
            " ", text)):
        return []  # a layer bounds the claim; the final head has its own check
    # "no later than" / "no earlier than" order two milestones (`reportgen.comparecheck`); they deny nothing.
    negated = _NEG.search(_ORDERING.sub(" ", text)) is not None
    suite = [p for p in placed if p.name.startswith("suite[")]
    if suite:
        name = suite[0].name.rsplit(".", 1)[0] + ".L_semantic"
        if not re.search(_MILESTONES[-1][1], text) and not re.search(r"\bsemantic\b", text):
            return []
    elif _SUITE.search(text):
        missing = sheet.value("suite_n_missing")
        if not isinstance(missing, int) or not re.search(_MILESTONES[-1][1], text):
            return []
        if not negated and _EVERY.search(text) and missing > 0:
            return [("milestone_claim", f"says every micro-suite fact reaches top-1, but {missing} never do")]
        if negated and missing == 0 and not _HEDGE.search(text):
            return [("milestone_claim", "says some micro-suite facts never reach top-1, but every one does")]
        return []
    else:
        # A threshold placeholder names its milestone ("never in the top {rank_threshold_5}"); else the words do,
        # and the answer milestones need the answer as subject ("punctuation never takes the top slot" is not one).
        name = next((_BY_THRESHOLD[p.slot.family] for p in placed if p.slot and p.slot.family in _BY_THRESHOLD
                     and p.slot.measure != "layer"), "") or next(
            (n for n, rx in _MILESTONES if re.search(rx, text)), "")
        if name in _ANSWER_MILESTONES and not re.search(r"\banswer\b", text):
            return []
    reached = _reached(name, sheet) if name else None
    if reached is None or (suite and negated and not reached) or _BOUNDED.search(text):
        return []
    plain = _ORDERING.sub(" ", text)
    if reached and (_NEVER.search(plain) or suite and negated):
        return [("milestone_claim", f"says the {name} milestone is never reached, but it is, at layer "
                 f"{sheet.value(name)}")]
    if not reached and not negated and not _HEDGE.search(text) and _REACHING.search(text):
        return [("milestone_claim", f"says the {name} milestone is reached, but its value is null (never)")]
    return []


def _final_head(text: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    final = _FINAL.search(text)
    # the claim is made of the final head: its top phrase sits in the final head's own comma-delimited segment
    segment = text[text.rfind(",", 0, final.start()) + 1:] if final else ""
    segment = segment.split(",")[0] if final else ""
    if not final or not _FINAL_TOP.search(segment) or any(p.slot and p.slot.row is not None
                                                                          for p in placed):
        return []
    rank, top, answer = (sheet.value(n) for n in ("final_answer_rank", "final_top1_token", "answer_token"))
    if isinstance(rank, int):
        on_top = rank == 1
    elif top is not None and answer is not None:
        on_top = str(top).strip() == str(answer).strip()
    else:
        return []
    said = _NEG.search(text) is None
    if said != on_top:
        return [("milestone_claim", f"says the final head {'ranks' if said else 'does not rank'} the answer "
                 f"first, but its final rank is {rank}")]
    return []


def _scope(text: str, sheet: Sheet, has_placeholder: bool) -> list[tuple[str, str]]:
    out = []
    if (m := _MIND.search(text)) and not _ANALYSIS_NEG.search(text) and not re.search(
            r"\bwhether\b|\bnothing about\b|\blittle about\b|\bunclear\b|\bno evidence\b", text):
        out.append(("overclaim", f"{m.group(0)!r}: a lens shows what is decodable, not what the model does or why"))
    if (m := _GENERAL.search(text)) and not _ANALYSIS_NEG.search(text) and not _HEDGE.search(text):
        out.append(("overclaim", f"{m.group(0)!r}: one probe run says nothing about other models"))
    if (m := _ANALYSIS.search(text)) and not _ANALYSIS_NEG.search(text):
        out.append(("overclaim", f"{m.group(0)!r}: this run made no such analysis; it decodes the residual stream"))
    arch = f"{sheet.value('architecture') or ''} {sheet.value('model_id') or ''}"
    for what, said, allowed in _ARCH_CLAIMS:
        if said.search(text) and not allowed.search(arch) and not _ANALYSIS_NEG.search(text):
            out.append(("model_claim", f"{what}: the architecture is {arch.strip() or 'unknown'}"))
    dtype = str(sheet.value("model_dtype") or "")
    if (m := _LOW_PRECISION.search(text)) and not _LENS_WORDS.search(text) and dtype == "float32" \
            and not _NEG.search(text):
        out.append(("model_claim", f"{m.group(0)!r}: the model ran in {dtype}"))
    if sheet.value("prefer_ranks") is True and (m := _TRUSTED.search(text)):
        out.append(("overclaim", f"{m.group(0)!r}: the guidance says to prefer ranks over absolute probabilities"))
    return out


def scope_claim_findings(masked: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    """Milestone, final-head and scope claims of one sentence that the facts contradict (module docstring)."""
    text = " ".join(masked.lower().replace("\u2019", "'").split())
    found = _scope(text, sheet, bool(placed))
    for start, end in clauses(masked):
        part = masked[start:end].lower().replace("\u2019", "'")
        inside = [p for p in placed if start <= p.start < end and p.slot is not None]
        found += _milestone_claims(part, inside, sheet) + _final_head(part, inside, sheet)
    return list(dict.fromkeys(found))
