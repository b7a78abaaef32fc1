"""Check that each placeholder sits in a phrase that says what its fact is (`reportgen.placeholders`).

A sentence is cut into clauses (at ``;``, dashes, and commas before but/while/whereas/although/and/so/which). A
placeholder's *left window* runs from the previous placeholder of its clause (threshold placeholders excepted:
they are part of the phrase) to the placeholder, its *right window* to the next one. Findings:

- ``wrong_milestone``: a layer milestone where the window does not speak of that milestone. The words of the
  nearest window decide (left first, then right, then the whole clause); confirmed / raw / strong / filler /
  control wording overrides generic "top token"/"semantic" wording, and a negated "confirm" is no confirmation
  claim. ``{first_rank_le_5}`` needs top-5 wording, ``{L_semantic_confirmed}`` needs "confirm", a KL milestone
  must not sit with the other KL threshold.
- ``unit_mismatch``: a unit word after a value of another unit (``{final_p_top1}%``, ``{final_entropy} layers``),
  or a measure noun before it that is another measure ("entropy of {final_p_top1}", "rank {gate_kl}").
- ``row_claim``: a clause with a ``layer[N]`` placeholder claims top-k, answer-on-top or KL-below that row N's own
  facts do not bear out ("already in the top five at {layer[29].layer}" where its rank is 39); negation flips it.
- ``row_mismatch``: a row value joined to another row's layer ("{layer[30].entropy} at {layer[0].layer}").
- ``null_value``: a null fact (a milestone never reached) used as if it held a value ("confirmed at {…}").
- ``direction``: rises/falls words against the sign of the signed change the clause speaks about (through a
  placeholder, or entropy at the last layer / from first to last), and a signed value after "by" next to a
  direction word (its ``_size`` placeholder says the magnitude).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reportgen.placeholders import Sheet, Slot

_CLAUSE = re.compile(r";|\s[\u2014\u2013-]\s|\u2014|,\s+(?=(?:but|while|whereas|although|though|and|so|yet|which|"
                     r"whereas)\b)|\s(?=(?:but|while|whereas|although)\s)")
_TOPK = r"(?:at most\s+|<=\s*|below\s+|under\s+|within\s+)?"
CUES = {
    "confirmed": r"\bconfirm\w*",
    "raw": r"\braw\b",
    "strong": r"\bstrong\w*",
    "ablation": r"\bfillers?\b|\bablat\w*",
    "control": r"\bcontrol\b",
    "copy": r"\bcop(?:y|ies|ying|ied)\b",
    "rank10": rf"\btop[- ]?(?:ten|10)\b|\brank\w*\s+(?:of\s+)?{_TOPK}ten\b|\bten or (?:better|fewer)",
    "rank5": rf"\btop[- ]?(?:five|5)\b|\brank\w*\s+(?:of\s+)?{_TOPK}five\b|\bfive or (?:better|fewer)",
    "semantic": r"\btop[- ]?(?:one|1)\b|\btop[- ](?:token|prediction|candidate|choice|spot|position|place)"
                r"|\bsemantic\w*"
                r"|\branks? first\b|\brank (?:of )?one\b|(?<!copy )(?<!copy-)\bcollaps\w*|\bmost likely|\bwins?\b"
                r"|\btakes? over|\barriv\w*|\blead(?:s|ing)?\b(?! to\b)|\branked first\b|\bovertak\w*"
                r"|\bemerges?\b|\bon top\b|\btop\b(?![- ]?(?:ten|five|10|5)\b)|\bargmax",
    "kl": r"\bkl\b|\bdivergence",
    "cos": r"\bcos\w*",
}
_CUES = {family: re.compile(pattern) for family, pattern in CUES.items()}
MODIFIERS = ("confirmed", "raw", "strong", "ablation", "control")
_NOT_CONFIRM = re.compile(r"(?:\bnot|n't|\bnever|\bno|\bun|\bwithout|\bfails? to)\s*(?:\w+\s+){0,2}?confirm")
_NEGATION = re.compile(r"\b(?:not|never|outside|no longer|yet to|fails? to)\b|n't\b")
_UNIT_AFTER = re.compile(r"\s*((?:bits?|nats?|percent|layers?|tokens?|probability)\b|%)", re.IGNORECASE)
_ALLOWED_AFTER = {"entropy": {"bit", "bits"}, "kl": {"bit", "bits"}, "fraction": {"%", "percent"},
                  "count": {"layer", "layers", "tokens", "token"}}
_NOUNS = (("entropy", re.compile(r"\bentrop\w*")), ("kl", re.compile(r"\bkl\b|\bdivergence")),
          ("prob", re.compile(r"\bprobabilit\w*|\bconfidence\b|\bmass\b")), ("rank", re.compile(r"\branks?\b")))
_NOUN_OK = {"entropy": {"entropy", "direction"}, "kl": {"kl"}, "prob": {"prob"}, "rank": {"rank", "threshold"}}
_VALUE_MEASURES = {"entropy", "kl", "prob", "rank", "count", "fraction", "temperature", "threshold"}
_UP = r"ris(?:e|es|ing|en)|rose|increas\w*|grow(?:s|n|ing)?|grew|climb\w*|jump\w*|goes up|went up"
_DOWN = r"fall(?:s|ing|en)?|fell|drop\w*|decreas\w*|declin\w*|shrink\w*|shrank|goes down|went down|sharpen\w*"
_DIRECTION = re.compile(rf"\b(?P<up>{_UP})\b|\b(?P<down>{_DOWN})\b(?!\s+(?:below|under))")
_ANSWER_TOP = re.compile(r"\banswer\b[^.;,]{0,40}?\b(?:is|becomes|ranks?|sits|reaches|already|gets)\b[^.;,]{0,25}?"
                         r"(?:\btop[- ]?one\b|\btop (?:token|prediction)|\bfirst\b|\bon top\b)")
_KL_BELOW = re.compile(r"\b(?:kl|divergence)\b[^.;]{0,50}?\b(?:below|under|less than|within|at most)\b")


@dataclass(frozen=True)
class Placed:
    """One placeholder in a sentence: its slot (None when unknown) and character span."""

    name: str
    slot: Slot | None
    start: int
    end: int


def clauses(masked: str) -> list[tuple[int, int]]:
    """(start, end) of each clause of a masked sentence (cut as the module docstring says)."""
    cuts = [0, *(m.end() for m in _CLAUSE.finditer(masked)), len(masked)]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def clause_placed(placed: list[Placed], start: int, end: int) -> list[Placed]:
    """The known placeholders of the clause ``[start, end)``, their offsets relative to ``start`` (so checks can
    read the clause on its own and `residualcheck.shifted` maps their spans back)."""
    return [Placed(p.name, p.slot, p.start - start, p.end - start) for p in placed
            if start <= p.start < end and p.slot is not None]


def _families(text: str, placed: list[Placed], offset: int) -> list[tuple[int, str]]:
    """(position, family) of every milestone cue in a window starting at ``offset``, thresholds included."""
    found = [(m.start(), family) for family, rx in _CUES.items() for m in rx.finditer(text)
             # "top {rank_threshold_5}": the threshold names the milestone, the bare "top" is not top-1
             if not (family == "semantic" and re.match(r"top[- ]?\s*#", text[m.start():]))]
    found += [(p.start - offset, _family_of(p.slot)) for p in placed if p.slot and p.slot.measure in ("threshold", "kl")
              and p.slot.family]
    if _NOT_CONFIRM.search(text):
        found = [(pos, fam) for pos, fam in found if fam != "confirmed"]
    return sorted(found)


def _claimed(cues: list[tuple[int, str]], last: bool) -> set[str]:
    if not cues:
        return set()
    mods = {fam for _, fam in cues if fam in MODIFIERS}
    if mods:
        return mods
    return {(cues[-1] if last else cues[0])[1]}


def _family_of(slot: Slot) -> str:
    return "kl" if slot.family in ("kl1", "kl05") else "semantic" if slot.family == "rank1" else slot.family


def _milestone(p: Placed, masked: str, placed: list[Placed], clause: tuple[int, int], left: int, right: int
               ) -> list[tuple[str, str]]:
    slot = p.slot
    assert slot is not None
    inside = [q for q in placed if clause[0] <= q.start < clause[1] and q is not p]
    lower = masked.lower()
    claimed = (_claimed(_families(lower[left:p.start], [q for q in inside if left <= q.start < p.start], left), True)
               or _claimed(_families(lower[p.end:right], [q for q in inside if p.end <= q.start < right], p.end),
                           False)
               or _claimed(_families(lower[clause[0]:clause[1]], inside, clause[0]), True))
    want = _family_of(slot)
    if want not in claimed:
        said = ", ".join(sorted(claimed)) or "no milestone"
        return [("wrong_milestone", f"{{{p.name}}} is the {slot.family} milestone, but the phrase speaks of {said}")]
    other = {"kl1": ("kl05", r"\bhalf a bit"), "kl05": ("kl1", r"\bone bit")}.get(slot.family)
    # the threshold named on the milestone's left ("below {kl_threshold_1} at {first_kl_le_1}") is its own; only
    # when the left names none does the right decide ("at {first_kl_le_1}, below one bit")
    kl_cue = r"\bhalf a bit|\bone bit"
    near = [q for q in inside if q.slot and q.slot.family in ("kl1", "kl05") and q.slot.measure != "layer"]
    left_says = re.search(kl_cue, lower[left:p.start]) or any(left <= q.start < p.start for q in near)
    span = (left, p.start) if left_says else (p.end, right) if re.search(kl_cue, lower[p.end:right]) or any(
        p.end <= q.start < right for q in near) else clause
    text = lower[span[0]:span[1]]
    inside = [q for q in inside if span[0] <= q.start < span[1]]
    if other and (re.search(other[1], text) or any(q.slot and q.slot.family == other[0] for q in inside)):
        return [("wrong_milestone", f"{{{p.name}}} is the {slot.family} milestone, but the clause names the "
                 f"{other[0]} threshold")]
    return []


def _units(p: Placed, masked: str, left: int) -> list[tuple[str, str]]:
    slot = p.slot
    assert slot is not None
    out = []
    after = _UNIT_AFTER.match(masked, p.end)
    if after and after.group(1).lower() not in _ALLOWED_AFTER.get(slot.measure, set()):
        out.append(("unit_mismatch", f"{{{p.name}}} is a {slot.measure}, not followed by {after.group(1)!r}"))
    if slot.measure in _VALUE_MEASURES:
        window = masked[max(left, p.start - 40):p.start].lower()
        nouns = sorted((m.start(), noun) for noun, rx in _NOUNS for m in rx.finditer(window))
        if nouns and slot.measure not in _NOUN_OK[nouns[-1][1]]:
            out.append(("unit_mismatch", f"{{{p.name}}} is a {slot.measure}, but the phrase calls it {nouns[-1][1]}"))
    return out


def _null(p: Placed, masked: str, left: int, clause: tuple[int, int]) -> list[tuple[str, str]]:
    if p.slot is None or p.slot.fact.value is not None:
        return []
    if re.search(r"(?:[:=]|\b(?:is|was|are|remains?|stays?|reads?|shows?))\s*$", masked[left:p.start].lower()):
        return []
    if _NEGATION.search(masked[clause[0]:clause[1]].lower()):
        return []
    return [("null_value", f"{{{p.name}}} is null (never reached); say so in words instead of using it as a value")]


def _rows(masked: str, placed: list[Placed], clause: tuple[int, int], sheet: Sheet) -> list[tuple[str, str]]:
    rows = {q.slot.row for q in placed if q.slot and q.slot.row is not None and clause[0] <= q.start < clause[1]}
    text = masked[clause[0]:clause[1]].lower()
    negated = _NEGATION.search(text) is not None
    out = []
    for row in sorted(r for r in rows if r is not None):
        rank = sheet.value(f"layer[{row}].answer_rank")
        kl = sheet.value(f"layer[{row}].kl_to_final")
        claims = []
        thresholds = {q.slot.family for q in placed if q.slot and q.slot.measure == "threshold"
                      and clause[0] <= q.start < clause[1]}
        for k, family in ((10, "rank10"), (5, "rank5")):
            if (_CUES[family].search(text) or family in thresholds) and isinstance(rank, int):
                claims.append((f"the answer within the top {k}", rank <= k))
        if _ANSWER_TOP.search(text) and not claims and isinstance(rank, int):
            claims.append(("the answer on top", rank == 1))
        names = {q.name for q in placed if clause[0] <= q.start < clause[1]}
        thr = 0.5 if ("half a bit" in text or "kl_threshold_0_5" in names) else \
            1.0 if ("one bit" in text or "kl_threshold_1" in names) else None
        if thr is not None and _KL_BELOW.search(text) and isinstance(kl, (int, float)):
            claims.append((f"KL below {thr:g} bit", kl <= thr))
        for what, holds in claims:
            if holds == negated:
                out.append(("row_claim", f"says {'not ' if negated else ''}{what} at layer {row}, but its rank is "
                            f"{rank} and its KL {kl}"))
    return out


_V_TO_L = re.compile(r"^\s*(?:at|in|on|for|by|of|from)\s+(?:the\s+)?(?:layer\s+)?$", re.IGNORECASE)
_L_TO_V = re.compile(r"^\s*[,:]?\s*(?:(?!to\b|and\b|then\b)\w+\s+){0,5}?(?:is|was|of|at|reaches|equals|has|sits at|"
                     r"=|:)\s*(?:a|an|the|only|just|still|already)?\s*$", re.IGNORECASE)


def _pairs(masked: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    out = []
    # "At {layer[6].layer} and {layer[7].layer} the entropy is {layer[6].entropy} and {layer[7].entropy}" pairs
    # values with layers respectively, not with the layer just before them.
    listed = any(a.slot and b.slot and a.slot.measure == b.slot.measure == "layer"
                 and re.fullmatch(r"\s*(?:,|and|,\s*and)\s*", masked[a.end:b.start])
                 for a, b in zip(placed, placed[1:], strict=False))
    # "closer at {layer[28].layer} than at {layer[7].layer}, with KL of {layer[28].kl_to_final} against
    # {layer[7].kl_to_final}": values listed after their layers in the same order pair respectively.
    layers = [int(p.slot.fact.value) for p in placed if p.slot and p.slot.measure == "layer" and p.slot.family == "row"]
    rows = [p.slot.row for p in placed if p.slot and p.slot.row is not None and p.slot.measure != "layer"]
    listed = listed or (len(layers) >= 2 and rows == layers)
    for a, b in zip(placed, placed[1:], strict=False):
        if a.slot is None or b.slot is None:
            continue
        gap = masked[a.end:b.start]
        for value, layer, rx in ((a, b, _V_TO_L), (b, a, _L_TO_V)):
            if value.slot.row is None or value.slot.measure == "layer" or layer.slot.measure != "layer":
                continue
            if listed and rx is _L_TO_V:
                continue
            if rx.match(gap) and layer.slot.fact.value != value.slot.row:
                out.append(("row_mismatch", f"{{{value.name}}} is a value of layer {value.slot.row}, but sits with "
                            f"{{{layer.name}}} (layer {layer.slot.fact.value})"))
    return out


def _directions(masked: str, placed: list[Placed], clause: tuple[int, int], sheet: Sheet) -> list[tuple[str, str]]:
    text = masked[clause[0]:clause[1]].lower()
    inside = [q for q in placed if q.slot and clause[0] <= q.start < clause[1]]
    subject = next((q.slot.signed for q in inside if q.slot.signed), "")
    if not subject and "entrop" in text:
        if re.search(r"\bfrom\b|\bfirst\b|\bacross\b|\boverall\b|\bwhole\b|\bover the depth", text):
            subject = "entropy_change_first_to_last"
        elif re.search(r"\blast\b|\bfinal\b|\bunembed\w*|\boutput\b", text):
            subject = "entropy_change_at_unembed"
    value = sheet.value(subject) if subject else None
    out = []
    for m in _DIRECTION.finditer(text):
        if not isinstance(value, (int, float)):
            break
        said_up = m.group("up") is not None
        if re.search(r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?$", text[:m.start()]):
            said_up = not said_up
        if (value > 0) != said_up or value == 0:
            out.append(("direction", f"{m.group(0)!r}, but {subject} is {'+' if value > 0 else ''}{value:.4g}"))
    for q in inside:
        if q.slot.signed == q.name and _DIRECTION.search(text) and re.search(r"\bby\s*$", masked[:q.start].lower()):
            out.append(("direction", f"a direction word with the signed {{{q.name}}}: write {{{q.name}_size}}"))
    return out


def placeholder_findings(masked: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    """Every phrase-binding finding of one sentence (see the module docstring)."""
    out: list[tuple[str, str]] = []
    for clause in clauses(masked):
        inside = [p for p in placed if clause[0] <= p.start < clause[1]]
        # A threshold (rank, KL or cosine, with its milestone family) is part of its milestone's phrase, so it
        # bounds no window: "drops below {kl_threshold_1} only at {first_kl_le_1}" reads the KL words on the left.
        anchors = [p for p in inside if not (p.slot and (p.slot.measure == "threshold" or p.slot.family
                                                          and p.slot.measure != "layer"))]
        for p in inside:
            if p.slot is None:
                continue
            left = max([clause[0], *(q.end for q in anchors if q.end <= p.start)])
            right = min([clause[1], *(q.start for q in anchors if q.start >= p.end)])
            if p.slot.measure == "layer" and p.slot.family not in ("", "row"):
                out += _milestone(p, masked, placed, clause, left, right)
            out += _units(p, masked, left) + _null(p, masked, left, clause)
        out += _rows(masked, placed, clause, sheet) + _directions(masked, placed, clause, sheet)
    out += _pairs(masked, placed, sheet)
    return list(dict.fromkeys(out))
