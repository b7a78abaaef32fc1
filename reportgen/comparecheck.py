"""Comparisons, trends and quantifiers a drafted sentence states, evaluated with the facts' values.

Runs on one sentence with its placeholders masked (`reportgen.bindcheck.Placed` gives each one's slot and span).
Every claim is read from words and evaluated with the values the placeholders stand for; a claim whose operands
cannot be told (no placeholder on one side, operands of different measures, no per-layer table) passes, so a
correct sentence is never dropped for being hard to read. Findings are ``("comparison", detail)``:

- order of two layers: before/after/earlier/later/precedes/"no earlier than"/"only after"/"the same layer as"
  between the nearest layer placeholder on each side (milestones and ``{layer[N].layer}``);
- size of two values: above/below/exceeds/higher than/at least/… between the nearest value placeholders of one
  measure on each side (a KL against a KL threshold, an entropy against an entropy), or, when both sides are
  layers, between the named measure of those two rows ("entropy at {layer[0].layer} is higher than at …");
- trends over the primary prompt's per-layer table: "falls steadily", "at every layer", "monotonically",
  "improves at each layer" (a rank improves when it falls), and "rises/falls from A to B" between two rows;
  "peaks at"/"is lowest at" a row against the table's extreme;
- depth words ("early", "late", "mid-stack") against the depth fraction of the layer they qualify: early is
  contradicted above half the depth, late below half, the middle outside a fifth to nine tenths (tolerant
  bands: the words are vague, a sentence is only dropped when the data plainly disagree);
- quantifiers of a share ("a small minority", "few", "most", "almost all") against a fraction placeholder;
- the direction of a temperature effect ("raising the temperature lowers the entropy") against the temperature
  rows of the sheet.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reportgen.bindcheck import Placed, clause_placed, clauses
from reportgen.placeholders import Sheet
from reportgen.residualcheck import Evaluated, shifted

_NOT = re.compile(r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+){0,2}$")
# cue -> relation of the left operand to the right one; the longer (negated) phrases are tried first.
_ORDER = (
    (r"\bno (?:earlier|sooner) than\b|\bnot (?:earlier|sooner) than\b|\bnot before\b", ">="),
    (r"\bno later than\b|\bnot later than\b|\bnot after\b|\bby the time\b", "<="),
    (r"\bsame layer\b(?=\s*(?:as|at|where|in|which|\(|,|#|$))|\bcoincides? with\b|\bsimultaneously with\b", "=="),
    (r"\bpreceded by\b", ">"),
    (r"\bfollowed by\b", "<"),
    (r"\bbefore\b|\bearlier than\b|\bsooner than\b|\bahead of\b|\bprior to\b|\bprecede[sd]?\b", "<"),
    (r"\bafter\b|\blater than\b|\bfollows\b|\blags? behind\b|\btrails?\b", ">"),
)
ORDER_CUES = _ORDER  # public: `reportgen.formcheck` reads the same order words against milestones named in words
_SIZE = (
    (r"\bno (?:higher|more|greater|larger) than\b|\bat most\b|\bnot (?:above|higher than|more than|greater than"
     r"|larger than|exceed\w*)", "<="),
    (r"\bno (?:lower|less|smaller) than\b|\bat least\b|\bnot (?:below|lower than|less than|smaller than)", ">="),
    (r"\babove\b|\bexceed\w*|\bsurpass\w*|\bhigher than\b|\bgreater than\b|\blarger than\b|\bmore than\b"
     r"|\bbigger than\b", ">"),
    (r"\bbelow\b|\blower than\b|\bless than\b|\bsmaller than\b|\bshort of\b", "<"),
)
_COMPARATIVE = re.compile(r"\b(?:higher|lower|greater|larger|smaller|more|less)\b(?P<gap>[^.;]{0,40}?)\bthan\b")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b}
OPS = _OPS
# measure noun -> the per-layer field it names
_ROW_NOUNS = (("entropy", re.compile(r"\bentrop\w*")), ("kl_to_final", re.compile(r"\bkl\b|\bdivergence")),
              ("answer_rank", re.compile(r"\branks?\b|\branking\b")))
_UP = r"ris(?:e|es|ing)|rose|increas\w*|grow(?:s|ing)?|climb\w*|worsen\w*|goes up|go up"
_DOWN = r"fall(?:s|ing)?|drop(?:s|ping)?|decreas\w*|declin\w*|shrink\w*|improv\w*|goes down|go down|sharpen\w*"
_TREND_DIR = re.compile(rf"\b(?P<up>{_UP})\b|\b(?P<down>{_DOWN})\b")
_EVERY = re.compile(r"\bsteadily\b|\bmonoton\w*|\bconsistently\b|\bstrictly\b|\bwithout exception\b|\bsmoothly\b"
                    r"|\b(?:at|with|in) (?:every|each)(?: single)? (?:layer|step)\b|\bfrom one layer to the next\b"
                    r"|\blayer (?:after|by) layer\b|\bevery single layer\b|\bcontinuously\b")
_PEAK = re.compile(r"\bpeaks?\b|\bis (?:at its )?(?:highest|largest|maximal)\b|\bmaxim(?:um|al)\b")
_TROUGH = re.compile(r"\bis (?:at its )?(?:lowest|smallest|minimal)\b|\bminim(?:um|al)\b|\bbottoms? out\b")
_DEPTH = (("early", re.compile(r"\bearly\b"), lambda f: f <= 0.5),
          ("late", re.compile(r"\blate\b"), lambda f: f >= 0.5),
          ("mid-depth", re.compile(r"\bmid-?(?:stack|depth|network|way)\b|\bmiddle\b|\bhalfway\b|\bmidway\b"),
           lambda f: 0.2 <= f <= 0.9))
_BETWEEN = re.compile(r"\b(?:before|after|earlier|later|than|while|whereas|but|unlike|then)\b")
_SHARE = (("few", re.compile(r"\b(?:small minority|few|handful|rarely|seldom)\b"), lambda s: s <= 1 / 3),
          ("a minority", re.compile(r"\bminority\b"), lambda s: s < 0.5),
          ("most", re.compile(r"\b(?:(?<!at )most|majority|bulk|nearly all|almost all|virtually all|the vast)\b"),
           lambda s: s > 0.5))
_TEMP_UP = re.compile(r"\b(?:rais\w*|increas\w*|higher|hotter)\b[^.;]{0,20}\btemperature|\btemperature\b[^.;]{0,12}"
                      r"\b(?:rises|goes up|increases)")
_TEMP_DOWN = re.compile(r"\b(?:lower\w*|decreas\w*|reduc\w*|cool\w*|colder)\b[^.;]{0,30}\btemperature")
_SPREAD = re.compile(r"\b(?P<up>rais\w*|increas\w*|spread\w*|flat\w*|widen\w*|wider|broad\w*|higher|soft\w*"
                     r"|more uniform|less (?:peaked|confident|concentrated))\b|\b(?P<down>lower\w*|reduc\w*|decreas\w*"
                     r"|sharp\w*|narrow\w*|concentrat\w*|collaps\w*|peak\w*|more confident)\b")


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _layer(p: Placed) -> float | None:
    """The layer a placeholder stands for (a milestone or a row's layer), None for any other value."""
    return _num(p.slot.fact.value) if p.slot and p.slot.measure == "layer" else None


def _rows(sheet: Sheet) -> list[int]:
    return sorted(int(m.group(1)) for name in sheet.slots if (m := re.fullmatch(r"layer\[(\d+)\]\.layer", name)))


def _row_value(sheet: Sheet, layer: float | None, fld: str) -> float | None:
    return None if layer is None else _num(sheet.value(f"layer[{int(layer)}].{fld}"))


def _kind(p: Placed) -> str:
    """What a value placeholder can be compared with: its measure, thresholds with the measure they bound."""
    slot = p.slot
    assert slot is not None
    if slot.measure == "threshold":
        return "rank" if slot.family.startswith("rank") or slot.family == "semantic" else slot.family
    return slot.measure


def _negated(text: str, start: int) -> bool:
    return _NOT.search(text[max(0, start - 30):start]) is not None


def _order(text: str, placed: list[Placed]) -> list[Evaluated]:
    out = []
    layers = [p for p in placed if _layer(p) is not None]
    taken: list[tuple[int, int]] = []
    for pattern, rel in _ORDER:
        for m in re.finditer(pattern, text):
            if any(a <= m.start() < b for a, b in taken):
                continue  # "no earlier than" is not also "earlier than"
            taken.append(m.span())
            left = [p for p in layers if p.end <= m.start()]
            right = [p for p in layers if p.start >= m.end()]
            if not left or not right:
                continue
            a, b = left[-1], right[0]
            va, vb = _layer(a), _layer(b)
            flip = {"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "=="}
            op = flip[rel] if _negated(text, m.start()) and rel != "==" else rel
            if va is not None and vb is not None:
                out.append(Evaluated((m.span(),), _OPS[op](va, vb),
                                     f"{m.group(0)!r}: {{{a.name}}} is layer {va:g} and {{{b.name}}} layer {vb:g}"))
    return out


def _size(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    out = []
    values = [p for p in placed if p.slot and _layer(p) is None and _num(p.slot.fact.value) is not None]
    taken: list[tuple[int, int]] = []
    for pattern, rel in _SIZE:
        for m in re.finditer(pattern, text):
            if any(a <= m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            left = [p for p in values if p.end <= m.start()]
            right = [p for p in values if p.start >= m.end()]
            both_thresholds = left and right and all(p.slot.family and p.slot.measure != "layer"
                                                     for p in (left[-1], right[0]))  # two thresholds: no claim
            if left and right and not both_thresholds and _kind(left[-1]) == _kind(right[0]) and _kind(left[-1]) in (
                    "kl", "entropy", "prob", "rank", "fraction", "temperature"):
                a, b = left[-1], right[0]
                va, vb = _num(a.slot.fact.value), _num(b.slot.fact.value)
                if va is not None and vb is not None:
                    out.append(Evaluated((m.span(),), _OPS[rel](va, vb),
                                         f"{m.group(0)!r}: {{{a.name}}} is {va:.4g} and {{{b.name}}} {vb:.4g}"))
    for m in _COMPARATIVE.finditer(text):  # "entropy is higher at {layer[0].layer} than at {layer[1].layer}"
        lay = [p for p in placed if _layer(p) is not None]
        than = m.start("gap") + len(m.group("gap"))
        left = [p for p in lay if p.end <= than]
        right = [p for p in lay if p.start >= m.end()]
        noun = next((fld for fld, rx in _ROW_NOUNS[:2] if rx.search(text[:than])), None)
        if not left or not right or noun is None:
            continue
        va, vb = _row_value(sheet, _layer(left[-1]), noun), _row_value(sheet, _layer(right[0]), noun)
        up = m.group(0).split()[0] in ("higher", "greater", "larger", "more")
        if va is not None and vb is not None:
            out.append(Evaluated((m.span(),), (va > vb) == up,
                                 f"{m.group(0)!r}: {noun} is {va:.4g} at layer {_layer(left[-1]):g} and {vb:.4g} "
                                 f"at layer {_layer(right[0]):g}"))
    return out


def _trend(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    rows = _rows(sheet)
    field = next((fld for fld, rx in _ROW_NOUNS if rx.search(text)), None)
    direction = _TREND_DIR.search(text)
    if field is None or direction is None or len(rows) < 2:
        return []
    up = direction.group("up") is not None
    if field == "answer_rank" and re.search(r"improv|worsen|climb", direction.group(0)):
        up = "worsen" in direction.group(0)  # a better rank is a smaller number: the answer climbs as it falls
    negated = _negated(text, direction.start())
    if re.search(r"\bnever\s+(?:\w+\s+)?$", text[:direction.start()]):
        up, negated = not up, False  # "never rises from one layer to the next" = falls (or holds) at every step
    lay = [p for p in placed if _layer(p) is not None]
    span = re.search(r"\b(?:from|between)\b", text)
    if span and len([p for p in lay if p.start > span.end()]) >= 2:
        a, b = [p for p in lay if p.start > span.end()][:2]
        lo, hi = sorted((_layer(a), _layer(b)))  # type: ignore[type-var]
        rows = [n for n in rows if lo <= n <= hi]
    elif lay:  # one layer bounds the stretch the claim is about: "after {L_semantic}", "until {first_kl_le_1}"
        bound = _layer(lay[0])
        if re.search(r"\b(?:after|since|beyond|from|past|onwards?|later)\b", text):
            rows = [n for n in rows if n >= bound]  # type: ignore[operator]
        elif re.search(r"\b(?:before|until|up to|prior to|earlier|by)\b", text):
            rows = [n for n in rows if n <= bound]  # type: ignore[operator]
        else:
            return []  # a claim at one layer is no trend
    series = [_row_value(sheet, n, field) for n in rows]
    if any(v is None for v in series) or len(series) < 2:
        return []
    steps = [b - a for a, b in zip(series, series[1:])]  # type: ignore[operator]
    out = []
    every = _EVERY.search(text)
    if every and max(every.start(), direction.start()) - min(every.end(), direction.end()) <= 40:  # qualifies it
        against = [s for s in steps if (s < 0 if up else s > 0)]
        verb = "rise" if up else "fall"
        said = f"does not {verb}" if negated else f"{verb}s"
        out.append(Evaluated((direction.span(), *(e.span() for e in _EVERY.finditer(text))), bool(against) == negated,
                             f"says {field} {said} at every layer ({direction.group(0)!r}), but {len(against)} of "
                             f"{len(steps)} steps go the other way"))
    elif span and not negated and len(lay) >= 2:
        out.append(Evaluated((direction.span(),), series[0] == series[-1] or (series[-1] > series[0]) == up,
                             f"{direction.group(0)!r}: {field} goes from {series[0]:.4g} to {series[-1]:.4g}"))
    return out


def _extreme(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    field = next((fld for fld, rx in _ROW_NOUNS[:2] if rx.search(text)), None)
    rows = _rows(sheet)
    out = []
    for rx, pick in ((_PEAK, max), (_TROUGH, min)):
        m = rx.search(text)
        at = [p for p in placed if _layer(p) is not None and m is not None and p.start > m.start()]
        if m is None or field is None or not at or not rows or _negated(text, m.start()):
            continue
        series = {n: _row_value(sheet, n, field) for n in rows}
        if any(v is None for v in series.values()):
            continue
        best = pick(series.values())  # type: ignore[type-var]
        said = _row_value(sheet, _layer(at[0]), field)
        if said is not None:
            out.append(Evaluated((m.span(),), said == best, f"{m.group(0)!r}: {field} at layer {_layer(at[0]):g} is "
                                 f"{said:.4g}, the extreme is {best:.4g}"))
    return out


def _depth(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    n = _num(sheet.value("n_layers"))
    out = []
    for word, rx, holds in _DEPTH:
        for m in rx.finditer(text):
            if _negated(text, m.start()) or re.match(r"\s+(?:layers?|blocks?)\b", text[m.end():]):
                continue  # "the early layers" names a region, it places nothing
            near = [p for p in placed if p.slot and (_layer(p) is not None or p.slot.measure == "fraction"
                                                     and "depth" in p.name)]
            if not near:
                continue
            p = min(near, key=lambda q: min(abs(q.start - m.end()), abs(m.start() - q.end)))
            between = text[min(p.end, m.end()):max(p.start, m.start())]
            if len(between) > 50 or _BETWEEN.search(between):
                continue  # "early, well before … at {L_semantic}": the word qualifies something else
            frac = _num(p.slot.fact.value) if p.slot.measure == "fraction" else (
                None if not n else _layer(p) / n)  # type: ignore[operator]
            if frac is not None:
                out.append(Evaluated((m.span(),), holds(frac), f"{word!r}, but {{{p.name}}} sits at {frac:.0%} of "
                                     "the depth"))
    return out


def _share(text: str, placed: list[Placed]) -> list[Evaluated]:
    shares = [p for p in placed if p.slot and p.slot.measure == "fraction" and "depth" not in p.name]
    out = []
    for word, rx, holds in _SHARE:
        m = rx.search(text)
        if m is None or not shares or _negated(text, m.start()):
            continue
        value = _num(shares[0].slot.fact.value)
        if value is not None:
            out.append(Evaluated((m.span(),), holds(value), f"{word!r}, but {{{shares[0].name}}} is {value:.0%}"))
    return out


def _temperature(text: str, sheet: Sheet) -> list[Evaluated]:
    raised, lowered = _TEMP_UP.search(text), _TEMP_DOWN.search(text)
    if not (raised or lowered) or (raised and lowered):
        return []
    # the entropy (or the spread of the distribution), else the answer's probability, at the two extreme temperatures
    field = "entropy" if re.search(r"\bentrop\w*|\bdistribution\b", text) else \
        "p_answer" if re.search(r"\bprobabilit\w*", text) else ""
    if not field:
        return []
    temps = sorted((v, m.group(1)) for name in sheet.slots
                   if (m := re.fullmatch(r"temperature\[(.+)\]\.temperature", name))
                   and (v := _num(sheet.value(name))) is not None)
    if len(temps) < 2:
        return []
    low, high = (_num(sheet.value(f"temperature[{k}].{field}")) for _, k in (temps[0], temps[-1]))
    cue = raised or lowered
    effect = _SPREAD.search(text, cue.end())  # type: ignore[union-attr]
    if low is None or high is None or low == high or effect is None or (
            field == "p_answer" and not re.match(r"rais|increas|higher|lower|reduc|decreas", effect.group(0))):
        return []
    said_up = (effect.group("up") is not None) == bool(raised)  # "lowering T sharpens" = raising T spreads
    return [Evaluated((cue.span(), effect.span()), said_up == (high > low),  # type: ignore[union-attr]
                      f"{effect.group(0)!r}: {field} is {low:.4g} at the lowest temperature and {high:.4g} at the "
                      "highest")]


def comparison_claims(masked: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """Every comparison, trend or quantifier of one sentence the values decide, true or false (module docstring)."""
    text = masked.lower()
    found = _temperature(text, sheet)
    cuts = [0, *(m.end() for m in re.finditer(r";", text)), len(text)]
    for start, end in zip(cuts, cuts[1:]):  # a comparison joins two operands of one main clause, never across ";"
        inside = clause_placed(placed, start, end)
        found += shifted(_order(text[start:end], inside) + _size(text[start:end], inside, sheet), start)
    for start, end in clauses(masked):
        inside = clause_placed(placed, start, end)
        part = text[start:end]
        found += shifted(_trend(part, inside, sheet) + _extreme(part, inside, sheet) + _depth(part, inside, sheet)
                         + _share(part, inside), start)
    return found


def comparison_findings(masked: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    """Every comparison, trend or quantifier of one sentence that the facts contradict (module docstring)."""
    claims = comparison_claims(masked, placed, sheet)
    return [("comparison", detail) for detail in dict.fromkeys(e.detail for e in claims if not e.holds)]
