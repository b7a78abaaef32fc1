"""Which of several near-synonym facts a phrase names: a placeholder must be the quantity its words describe.

Runs on one sentence with its placeholders masked, clause by clause (`reportgen.bindcheck.clauses`). Several facts
share a measure and differ only in what they are of (the final head's top token or the answer; the lens against
the model head or raw against norm; a threshold or a measured value; a score or a share). `ROLES` lists, per
placeholder, the words that name it and the words that name its rivals; the cue nearest the placeholder on its
left (else right after it) decides. Findings:

- ``unit_mismatch``: the nearest cue names a rival quantity ("the gold answer a probability of {final_p_top1}",
  "the gate's threshold is {gate_kl}", "a share of {lens_artifact_score}"), or a count is followed by another
  count's noun ("the copy mask holds {n_punctuation_top1_layers} tokens", "{d_model} transformer layers");
- ``row_mismatch``: two micro-suite facts of different answers joined in one clause with nothing comparing them
  ("{suite[Berlin].answer} finishes at rank {suite[Paris].final_rank}");
- ``direction``: a signed change's direction and size placeholders of two different changes in one clause, or
  the words place the change elsewhere ("from the first layer to the last … {entropy_change_at_unembed_size}").
"""

from __future__ import annotations

import re

from reportgen.bindcheck import Placed, clauses
from reportgen.placeholders import Sheet

# placeholder -> (words that name it, words that name a rival quantity)
ROLES: dict[str, tuple[str, str]] = {
    "final_p_top1": (r"\btop\b|\bfavou?rite\b|\bleading token\b|\bits (?:top|first) choice\b",
                     r"\b(?:gold |correct )?answer\b"),
    "final_p_answer": (r"\banswer\b", r"\btop[- ]?(?:1 )?token\b|\bits top\b|\bfavou?rite\b"),
    "gate_kl": (r"\bgate\w*\b(?!'s threshold)|\bmodel'?s?(?: own)? (?:head|output|logits|distribution)\b"
                r"|\bmeasured\b|\b(?:largest|maximum|max)\b",
                r"\bthreshold\b|\braw\b|\bnorm lens(?:es)?\b|\blenses\b|\bdisagree\w*"),
    "gate_threshold": (r"\bthreshold\b|\blimit\b|\bcut-?off\b|\bbound\b",
                       r"\bmeasured\b|\bmaximum\b|\blargest\b|\bmax\b|\bactual\b"),
    "max_kl_raw_vs_norm": (r"\braw\b|\bnorm\b|\blenses\b", r"\bgate\b|\bmodel'?s?(?: own)? head\b"),
    "lens_artifact_score": (r"\bscore\b", r"\bshare\b|\bfraction\b|\bproportion\b|\bpercentage\b"),
    "share_layers_raw_norm_kl_ge_1": (r"\bshare\b|\bfraction\b|\bproportion\b|\blayers\b", r"\bscore\b"),
    "n_norm_only_semantic_layers": (r"\bnorm(?:[- ]lens)? (?:lens )?(?:only|alone)\b|\bonly (?:under )?the norm\b",
                                    r"\bboth (?:lenses|the)\b|\braw\b"),
    "n_layers": (r"\bmodel\b|\bstack\b|\bnetwork\b|\bdeep\b|\bdepth\b|\btransformer\b",
                 r"\bwindow\b|\bradius\b|\bside\b"),
    "confirm_window_radius": (r"\bwindow\b|\bradius\b|\bside\b", r"\bmodel has\b|\bstack of\b"),
    "vocab_size": (r"\bvocab\w*", r"\bmask\b"),
    "copy_mask_size": (r"\bmask\b", r"\bvocab\w*"),
}
_COMPILED = {name: (re.compile(own), re.compile(rival)) for name, (own, rival) in ROLES.items()}
# counts and the noun each counts
_COUNTED = {"n_layers": "layers", "n_punctuation_top1_layers": "layers", "n_norm_only_semantic_layers": "layers",
            "confirm_window_radius": "layers", "copy_mask_size": "tokens", "vocab_size": "tokens",
            "suite_n_missing": "facts", "d_model": "dimensions"}
_COUNT_NOUN = re.compile(r"\s*(?:(?:transformer|decoded|residual|vocabulary|distinct) )?(layers|blocks|tokens|facts"
                         r"|dimensions|prompts)\b")
_NOUNS = {"blocks": "layers"}
_JOINED = re.compile(r"\bthan\b|\bcompar\w*|\bwhile\b|\bwhereas\b|\bbut\b|\bunlike\b|\bversus\b|\bvs\b|\bagainst\b"
                     r"|\bboth\b|\brespectively\b")
_FIRST_TO_LAST = re.compile(r"\bfirst\b|\bwhole\b|\bacross\b|\boverall\b|\bfirst (?:decoded )?layer\b"
                            r"|\bover the (?:full |entire )?(?:stack|depth|network)\b")
_AT_END = re.compile(r"\b(?:final|last) (?:layer|step|block)\b|\bunembed\w*|\boutput head\b")


def _nearest(text: str, p: Placed, left: int, right: int, own: re.Pattern[str], rival: re.Pattern[str]) -> str:
    """"own", "rival" or "" for the cue nearest the placeholder: left of it first, else right after it."""
    for window, pick in ((text[left:p.start], max), (text[p.end:min(right, p.end + 30)], min)):
        cues = [(m.start(), "own") for m in own.finditer(window)]
        cues += [(m.start(), "rival") for m in rival.finditer(window)]
        if cues:
            return pick(cues)[1]
    return ""


def _roles(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    out = []
    for start, end in clauses(text):
        inside = [p for p in placed if start <= p.start < end]
        for i, p in enumerate(inside):
            if p.name in _COMPILED:
                left = inside[i - 1].end if i else start
                right = inside[i + 1].start if i + 1 < len(inside) else end
                if _nearest(text, p, left, right, *_COMPILED[p.name]) == "rival":
                    out.append(("unit_mismatch", f"{{{p.name}}} is the {p.slot.description if p.slot else p.name}, "
                                "but the words around it name another quantity"))
            noun = _COUNT_NOUN.match(text, p.end)
            if p.name in _COUNTED and noun and _NOUNS.get(noun.group(1), noun.group(1)) != _COUNTED[p.name]:
                out.append(("unit_mismatch", f"{{{p.name}}} counts {_COUNTED[p.name]}, not {noun.group(1)}"))
    return out


def _suite_keys(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    out = []
    for start, end in clauses(text):
        keys = {p.name.split("]")[0] + "]" for p in placed if start <= p.start < end and p.name.startswith("suite[")}
        if len(keys) > 1 and not _JOINED.search(text[start:end]):
            out.append(("row_mismatch", f"{' and '.join(sorted(keys))} are different micro-suite facts, joined in "
                        "one clause"))
    return out


def _signed(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    out = []
    for start, end in clauses(text):
        subjects = {p.slot.signed for p in placed if p.slot and p.slot.signed and start <= p.start < end}
        part = text[start:end]
        said = "entropy_change_first_to_last" if _FIRST_TO_LAST.search(part) else \
            "entropy_change_at_unembed" if _AT_END.search(part) else ""
        if len(subjects) > 1:
            out.append(("direction", f"placeholders of two different changes ({', '.join(sorted(subjects))}) in "
                                     "one phrase"))
        elif subjects and said and said not in subjects:
            out.append(("direction", f"the words speak of {said}, but the placeholders are of {subjects.pop()}"))
    return out


# A measured value named before a copula ("the largest KL … is {x}"): a threshold is never one.
_MEASURED = re.compile(r"\b(?:largest|smallest|highest|lowest|maximum|minimum|max|min|peak|mean|median|average"
                       r"|measured|actual|observed)\b")
_COPULA = re.compile(r"\b(?:is|was|are|were|equals?|reaches|reached|comes to|amounts to)\s*$")
_THRESHOLD_NOUN = re.compile(r"\bthreshold\b|\bcut-?off\b|\blimit\b|\bbound\b|\bcriterion\b")
# A distance after a value ("{x} apart", "{x} of KL"): only a KL (or a KL threshold) is one.
_DISTANCE_AFTER = re.compile(r"\s*(?:apart|away)\b|\s*(?:of|in) (?:kl|divergence|entropy)\b")
# A layer named before a copula ("the median semantic layer is {x}"): only a layer value fits.
_LAYER_BEFORE = re.compile(r"\b(?:layer|depth|onset|milestone)\s+(?:is|was|lies at|sits at|comes at|falls at)\s*$")


def _kinds(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    """A placeholder whose kind (threshold, share, count, layer) does not fit the role its phrase gives it."""
    out = []
    for start, end in clauses(text):
        inside = [p for p in placed if start <= p.start < end]
        for i, p in enumerate(inside):
            left = text[inside[i - 1].end if i else start:p.start]
            measure = p.slot.measure if p.slot else ""
            if (measure == "threshold" or "threshold" in p.name) and _COPULA.search(left) and _MEASURED.search(left) \
                    and not _THRESHOLD_NOUN.search(left):
                out.append(("unit_mismatch", f"{{{p.name}}} is a threshold, but the phrase reads it as a measured "
                                             "value"))
            if measure in ("fraction", "count", "prob", "rank") and _DISTANCE_AFTER.match(text, p.end):
                out.append(("unit_mismatch", f"{{{p.name}}} is a {measure}, but the phrase reads it as a distance"))
            if measure in ("count", "fraction", "prob", "rank", "kl", "entropy", "threshold") \
                    and _LAYER_BEFORE.search(left):
                out.append(("unit_mismatch", f"{{{p.name}}} is a {measure}, but the phrase reads it as a layer"))
    return out


def _temperature_rows(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    """A temperature row's value beside another row's temperature, its own temperature unnamed."""
    named = {p.name.split("]")[0] for p in placed
             if p.name.startswith("temperature[") and p.name.endswith(".temperature")}
    out = []
    for p in placed:
        key = p.name.split("]")[0]
        if p.name.startswith("temperature[") and not p.name.endswith(".temperature") and named and key not in named:
            out.append(("row_mismatch", f"{{{p.name}}} belongs to {key}], but the sentence names only "
                        f"{', '.join(sorted(k + ']' for k in named))}"))
    return out


def role_findings(masked: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    """Every near-synonym, count-noun, suite-key and signed-change finding of one sentence (module docstring)."""
    del sheet  # the roles are read from words and placeholder names alone
    text = masked.lower().replace("\u2019", "'")
    known = [p for p in placed if p.slot is not None]
    return list(dict.fromkeys(_roles(text, known) + _suite_keys(text, known) + _signed(text, known)
                              + _kinds(text, known) + _temperature_rows(text, known)))
