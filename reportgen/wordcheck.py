"""Words that qualify one fact, evaluated on its value: certainty, risk, sign, ablation, copy stability, tokens.

Runs on one sentence with its placeholders masked, clause by clause, like `reportgen.formcheck`, and returns
`reportgen.residualcheck.Evaluated` claims (the words count as verified, `reportgen.residualcheck`):

- the filler ablation moving the semantic layer earlier, later, or leaving it; the copy milestone's stability;
- "behind {token}", "over the answer", "is also the final head's top choice" against the tokens;
- "negative"/"positive" next to a signed value; risk words against the lens-artifact tier;
- certainty and near-zero words against the probability, entropy or KL they qualify (bands: "certain" at a
  probability of at least 0.9 or an entropy of at most half a bit, "confident" at 0.5 or 1.5 bits, "near zero"
  at 0.1 bit); "by orders of magnitude" between two rows (a ratio of at least 100, 10 for one order).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reportgen.bindcheck import Placed, clause_placed, clauses
from reportgen.formcheck import NEGATED, layer_of, num, row_value
from reportgen.placeholders import Sheet
from reportgen.residualcheck import Evaluated, shifted

_ABLATION = re.compile(r"\b(?:remov\w*|ablat\w*|dropping|stripp?\w*|without)\b[^.;]{0,30}\bfillers?\b")
_LATER = re.compile(r"\bdelay\w*|\blater\b|\bpush\w* (?:\w+ )?back\b|\bpostpone\w*")
_EARLIER = re.compile(r"\bearlier\b|\bforward\b|\badvanc\w*|\bsooner\b|\bspeeds? up\b")
_UNMOVED = re.compile(r"\bunchanged\b|\bleaves?\b|\bsame\b|\bdoes(?: not|n't) (?:move|change|shift)\b")
_SIGN = re.compile(r"\b(?P<neg>negative|below zero)\b|\b(?P<pos>positive|above zero)\b")
_LOW_RISK = re.compile(r"\b(?:low|minor|small|little|negligible|modest|limited|mild)\b[^.;]{0,20}\b(?:risk|concern"
                       r"|worry|problem|issue)s?\b|\bhardly a concern\b|\bnot a (?:real |serious )?concern\b")
_HIGH_RISK = re.compile(r"\b(?:high|real|serious|major|significant|considerable|substantial|elevated|severe)\b"
                        r"[^.;]{0,20}\b(?:risk|concern|worry|problem)s?\b")
_CERTAIN = re.compile(r"\b(?:all but|almost|nearly|virtually|near-?)\s*certain\w*|\bcertain(?:ty)?\b|\bsure\b")
_CONFIDENT = re.compile(r"\bconfident(?:ly)?\b")
_NEAR_ZERO = re.compile(r"\bnear(?:ly)?[- ]zero\b|\b(?:nearly|almost|next to) nothing\b|\bnegligible\b|\bvanish\w*")
_MAGNITUDE = re.compile(r"\b(?P<many>orders) of magnitude\b|\ban order of magnitude\b")
_BEHIND = re.compile(r"\bbehind\b|\bahead of\b|\bover the (?:gold |correct )?answer\b"
                     r"|\brather than the (?:gold |correct )?answer\b")


def _copy_stability(text: str, sheet: Sheet) -> list[Evaluated]:
    m = re.search(r"\b(?P<un>unstable|instabilit\w*|moves? around|shifts? around)\b|\bstable\b", text)
    value = sheet.value("copy_stability")
    if m is None or not re.search(r"\bcopy\b", text) or not isinstance(value, str):
        return []
    said_stable = m.group("un") is None and not NEGATED.search(text)
    return [Evaluated((m.span(),), said_stable == (value == "stable"), f"{m.group(0)!r}: copy_stability is "
                      f"{value!r}")]


def _ablation(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    if not _ABLATION.search(text) and not any(p.name == "ablation_L_semantic_no_filler" for p in placed):
        return []
    abl, sem = num(sheet.value("ablation_L_semantic_no_filler")), num(sheet.value("L_semantic"))
    if abl is None or sem is None:
        return []
    for rx, holds in ((_UNMOVED, abl == sem), (_LATER, abl > sem), (_EARLIER, abl < sem)):
        if spans := tuple(m.span() for m in rx.finditer(text)):
            return [Evaluated(spans, holds, f"{text[spans[0][0]:spans[0][1]]!r}: without fillers the semantic layer "
                              f"is {abl:g}, {sem:g} with them")]
    return []


def _behind(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """"behind {final_top1_token}", "prefers {token} over the answer": the token is not the answer."""
    m = _BEHIND.search(text)
    if m is None:
        return []
    answer = str(sheet.value("answer_token") or "").strip()
    tokens = [p for p in placed if p.slot and p.slot.measure == "token" and p.name != "answer_token"]
    ranks = [p for p in placed if p.slot and p.slot.measure == "rank" and not p.name.startswith("temperature")]
    if tokens:
        value = str(tokens[0].slot.fact.value).strip()
        return [Evaluated((m.span(),), value != answer, f"{m.group(0)!r}: {{{tokens[0].name}}} is the answer")]
    if ranks and re.search(r"\bbehind\b", m.group(0)):
        rank = num(ranks[-1].slot.fact.value)
        return [Evaluated((m.span(),), rank is not None and rank > 1, f"{m.group(0)!r}: the rank is {rank}")]
    return []


_FINAL_CHOICE = re.compile(r"\b(?:is|was|remains|stays|becomes|as) (?:also |still )?(?:the )?(?:final head's|model's"
                           r"|output's) (?:own )?(?:top|first|favou?rite|preferred) (?:choice|token|prediction|pick)\b"
                           r"|\balso (?:tops|leads|wins) (?:at )?the (?:final head|output)\b")


def _final_choice(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """Whether "the token that leads at {L_semantic} is also the final head's top choice" holds."""
    m = _FINAL_CHOICE.search(text)
    final = sheet.value("final_top1_token")
    if m is None or final is None:
        return []
    tokens = [p for p in placed if p.slot and p.slot.measure == "token" and p.end <= m.start()
              and p.name != "final_top1_token"]
    if tokens:
        said = str(tokens[-1].slot.fact.value)
    elif re.search(r"\banswer\b|\bsemantic\b|\bleads?\b", text[:m.start()]) or any(
            p.slot and p.slot.family == "semantic" for p in placed if p.end <= m.start()):
        said = str(sheet.value("answer_token") or "")
    else:
        return []
    holds = (said.strip() == str(final).strip()) != bool(NEGATED.search(text[:m.end()]))
    return [Evaluated((m.span(),), holds, f"{m.group(0)!r}: the final head's top token is {str(final)!r}")]


def _sign(text: str, placed: list[Placed]) -> list[Evaluated]:
    out = []
    for m in _SIGN.finditer(text):
        near = [p for p in placed if p.slot and p.slot.measure in ("margin", "entropy", "score") and abs(
            p.start - m.end()) < 40 and num(p.slot.fact.value) is not None]
        if near:
            value = num(near[0].slot.fact.value) or 0.0
            holds = value < 0 if m.group("neg") else value > 0
            out.append(Evaluated((m.span(),), holds, f"{m.group(0)!r}: {{{near[0].name}}} is {value:.4g}"))
    return out


def _risk(text: str, sheet: Sheet) -> list[Evaluated]:
    tier = sheet.value("lens_artifact_tier")
    if not isinstance(tier, str) or not re.search(r"\bartifact\w*|\blens\w*|\btier\b", text):
        return []
    out = []
    for rx, holds in ((_LOW_RISK, tier == "low"), (_HIGH_RISK, tier != "low")):
        if (m := rx.search(text)) is not None:
            out.append(Evaluated((m.span(),), holds, f"{m.group(0)!r}: the lens-artifact tier is {tier!r}"))
    return out


def _banded(rx: re.Pattern[str], text: str, placed: list[Placed], bands: dict[str, Callable[[float], bool]],
            sheet: Sheet) -> list[Evaluated]:
    m = rx.search(text)
    if m is None:
        return []
    for p in placed:
        measure = p.slot.measure if p.slot else ""
        value = num(p.slot.fact.value) if p.slot else None
        if measure == "layer" and re.search(r"\bkl\b|\bdivergence\b", text):
            measure, value = "kl", num(row_value(sheet, layer_of(p), "kl_to_final"))
        if measure in bands and value is not None:
            holds = bands[measure](value) != bool(NEGATED.search(text[:m.start()]))
            return [Evaluated((m.span(),), holds, f"{m.group(0)!r}: {{{p.name}}} is {value:.4g}")]
    return []


def _certainty(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    return (_banded(_CERTAIN, text, placed, {"prob": lambda v: v >= 0.9, "entropy": lambda v: v <= 0.5}, sheet)
            + _banded(_CONFIDENT, text, placed, {"prob": lambda v: v >= 0.5, "entropy": lambda v: v <= 1.5}, sheet)
            + _banded(_NEAR_ZERO, text, placed, {"kl": lambda v: v <= 0.1, "entropy": lambda v: v <= 0.1,
                                                 "prob": lambda v: v <= 0.01}, sheet))


def _magnitude(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    m = _MAGNITUDE.search(text)
    layers = [layer_of(p) for p in placed if layer_of(p) is not None]
    fld = "answer_rank" if re.search(r"\brank", text) else "kl_to_final" if re.search(r"\bkl\b", text) else None
    if m is None or len(layers) < 2 or fld is None:
        return []
    a, b = (num(row_value(sheet, n, fld)) for n in layers[:2])
    if not a or not b:
        return []
    ratio = max(a, b) / min(a, b)
    return [Evaluated((m.span(),), ratio >= (100 if m.group("many") else 10), f"{m.group(0)!r}: {fld} goes from "
                      f"{a:g} to {b:g}")]


def word_claims(masked: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """Every qualifying word of one sentence this module evaluates, true or false (module docstring).

    Args:
        masked: The sentence with placeholders masked.
        placed: Its placeholders (unknown ones are ignored).
        sheet: The fact sheet, for the values.

    Returns:
        The evaluated claims, with spans in ``masked``.
    """
    text = masked.lower().replace("\u2019", "'")
    known = [p for p in placed if p.slot is not None]
    found: list[Evaluated] = []
    for start, end in clauses(text):
        part = text[start:end]
        inside = clause_placed(known, start, end)
        found += shifted(_copy_stability(part, sheet) + _ablation(part, inside, sheet) + _behind(part, inside, sheet)
                         + _sign(part, inside) + _risk(part, sheet) + _certainty(part, inside, sheet)
                         + _magnitude(part, inside, sheet), start)
    return found + _final_choice(text, known, sheet)
