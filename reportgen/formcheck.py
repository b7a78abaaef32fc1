"""Claim forms evaluated on the values beyond plain comparisons: milestones named in words, rows, runs, extremes.

Runs on one sentence with its placeholders masked, clause by clause (`reportgen.bindcheck.clauses`). Each form is
read from words, evaluated with the sheet's values, and returned as an `reportgen.residualcheck.Evaluated` (true or
false, with the spans of the words it read), so the words count as verified (`reportgen.residualcheck`):

- order against a milestone named in words ("well before the answer takes the top slot", "the copy milestone
  coincides with the semantic layer", "earlier than the primary answer", "after the answer enters the top
  {rank_threshold_10}");
- comparatives of two rows ("closer to the final head at A than at B", "ranked better", "flatter", "more
  certain") and a value against a row ("{final_entropy} sits below that of {layer[N].layer}");
- superlatives over the per-layer table ("the flattest distribution of any intermediate layer is at …",
  "closest to the final head", "{final_entropy} is the lowest of any layer");
- "the first layer where …" / "first enters …" with a row, against the milestone's layer;
- the top token, or the answer's rank, staying the same (or on top) or changing over a range of rows;
- temperature rows: a value rising or falling against another temperature, a rank that stays or moves.

Words that qualify a single fact (certainty, risk, sign, ablation direction) are `reportgen.wordcheck`'s.
"""

from __future__ import annotations

import re

from reportgen.bindcheck import Placed, clause_placed, clauses
from reportgen.comparecheck import OPS, ORDER_CUES
from reportgen.placeholders import Sheet
from reportgen.residualcheck import Evaluated, shifted

NEGATED = re.compile(r"\b(?:not|never|no)\b|n't\b")
# words -> the milestone placeholder they name, tried in order (a threshold placeholder names its own milestone)
_IMPLICIT = (
    (r"\bconfirm\w*|\bboth lenses\b", "L_semantic_confirmed"),
    (r"\braw lens\b", "L_semantic_raw"),
    (r"\bstrong\b", "L_semantic_strong"),
    (r"\bcop(?:y|ying)\b", "L_copy"),
    (r"\bmicro-?suite\b|\bsuite\b|\bmedian\b", "suite_L_semantic_median"),
    (r"\btop[- ]?(?:ten|10)\b", "first_rank_le_10"),
    (r"\btop[- ]?(?:five|5)\b", "first_rank_le_5"),
    (r"\b(?:kl|divergence)\b", "first_kl_le_1"),
    (r"\bcosine\b", "first_cos_ge_0_6"),
    (r"\bsemantic\w*|\bprimary (?:answer|prompt|fact)\b|\btop (?:slot|token|spot|position|place)\b|\bon top\b"
     r"|\branked first\b|\branks first\b|\bleads?\b|\bresolves?\b|\btakes over\b", "L_semantic"),
)
_BY_THRESHOLD = {"rank10": "first_rank_le_10", "rank5": "first_rank_le_5", "kl1": "first_kl_le_1",
                 "kl05": "first_kl_le_0_5", "cos": "first_cos_ge_0_6", "semantic": "L_semantic"}
# comparative words -> (row field, True when the left row's value is the larger)
_COMPARATIVES = (
    (r"\b(?:closer|nearer) to the (?:final|output|model)", "kl_to_final", False),
    (r"\b(?:farther|further) (?:away )?from the (?:final|output|model)", "kl_to_final", True),
    (r"\branked (?:\w+ )?(?:better|higher)\b", "answer_rank", False),
    (r"\branked (?:\w+ )?(?:worse|lower)\b", "answer_rank", True),
    (r"\bmore (?:certain|confident|peaked|concentrated)\b|\bsharper\b", "entropy", False),
    (r"\bless (?:certain|confident|peaked|concentrated)\b|\bflatter\b|\bmore (?:uncertain|spread|diffuse)\b",
     "entropy", True),
)
# superlative words -> (row field, max or min)
_SUPERLATIVES = (
    (r"\bflattest\b|\bmost (?:uncertain|spread|diffuse|uniform)\b|\bhighest entropy\b|\bentropy peaks?\b"
     r"|\bmaxim\w+ entropy\b|\bleast (?:certain|confident|peaked)\b", "entropy", max),
    (r"\bmost (?:peaked|certain|confident|concentrated)\b|\bsharpest distribution\b|\blowest entropy\b"
     r"|\bminim\w+ entropy\b", "entropy", min),
    (r"\bclosest to the (?:final|output|model)|\b(?:smallest|lowest|minimum) kl\b", "kl_to_final", min),
    (r"\bf(?:ar|ur)thest(?: away)? from the (?:final|output|model)|\b(?:largest|highest|maximum) kl\b",
     "kl_to_final", max),
    (r"\bbest rank\b|\bhighest[- ]ranked\b", "answer_rank", min),
)
_TOP_TOKEN = re.compile(r"\btop(?:[- ]?1)? (?:token|prediction|candidate|choice)\b")
_SAME = re.compile(r"\b(?:stays?|remains?|stayed|remained|keeps?|kept) (?:\w+ )?(?:the same|unchanged|constant|fixed)"
                   r"|\bunchanged\b|\bthe same\b|\bdoes(?: not|n't) change\b|\bnever changes?\b")
_CHANGES = re.compile(r"\bflips?\b|\bflipping\b|\bchanges?\b|\bswitch\w*|\bdiffers?\b")
_MOST_STEPS = re.compile(r"\b(?:nearly|almost|virtually) (?:every|each|all)\b")
_EVERY_STEP = re.compile(r"\b(?:every|each|all)\b")
_UP = re.compile(r"\b(?:climb\w*|ris(?:e|es|ing|en)|rose|increas\w*|grow\w*|grew|goes up|go up|above|higher"
                 r"|raises?|raising)\b")
_DOWN = re.compile(r"\b(?:drop\w*|fall\w*|fell|decreas\w*|declin\w*|shrink\w*|goes down|go down|below|lower\w*)\b")


def num(value: object) -> float | None:
    """A fact's value as a number; None for null, booleans and text."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def layer_of(p: Placed) -> float | None:
    """The layer a placeholder stands for (a milestone or a row's layer), None for any other value."""
    return num(p.slot.fact.value) if p.slot and p.slot.measure == "layer" else None


def table_rows(sheet: Sheet) -> list[int]:
    """The layers of the per-layer table on the sheet, in order."""
    return sorted(int(m.group(1)) for name in sheet.slots if (m := re.fullmatch(r"layer\[(\d+)\]\.layer", name)))


def row_value(sheet: Sheet, layer: float | None, fld: str) -> object:
    """One field of a layer's row (None when the sheet has no such row)."""
    return None if layer is None else sheet.value(f"layer[{int(layer)}].{fld}")


def _implicit(phrase: str, placed: list[Placed]) -> str | None:
    """The milestone a phrase names in words (or by a threshold or suite placeholder); None when it names none."""
    suite = next((p.name for p in placed if p.name.startswith("suite[")), None)
    if suite:
        return suite.rsplit(".", 1)[0] + ".L_semantic"
    threshold = next((p.slot.family for p in placed if p.slot and p.slot.measure in ("threshold", "kl")
                      and p.slot.family in _BY_THRESHOLD), None)
    if threshold:
        return _BY_THRESHOLD[threshold]
    return next((name for rx, name in _IMPLICIT if re.search(rx, phrase)), None)


def _within(placed: list[Placed], start: int, end: int) -> list[Placed]:
    return [p for p in placed if start <= p.start and p.end <= end]


def _order(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """Before/after/coincides where one side is a milestone named in words."""
    out, taken = [], []
    for pattern, rel in ORDER_CUES:
        for m in re.finditer(pattern, text):
            if any(a <= m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            layers = [p for p in placed if layer_of(p) is not None]
            stop = re.search(r",", text[m.end():])
            right_end = min([m.end() + (stop.start() if stop else len(text) - m.end()),
                             *(p.start for p in layers if p.start >= m.end())])
            left_start = max([0, *(c.end() for c in re.finditer(r",", text[:m.start()]))])
            left_ph = [p for p in layers if p.end <= m.start()]
            right_ph = [p for p in layers if p.start >= m.end()]
            right_name = _implicit(text[m.end():right_end], _within(placed, m.end(), right_end))
            if right_name is not None:
                left = left_ph[-1].name if left_ph else _implicit(text[left_start:m.start()], _within(
                    placed, left_start, m.start())) or (right_ph[0].name if right_ph else None)
                right = right_name
            elif right_ph and not left_ph:
                left, right = _implicit(text[left_start:m.start()], _within(placed, left_start, m.start())), \
                    right_ph[0].name
            else:
                continue  # both sides are placeholders (`reportgen.comparecheck`) or no side is named
            va, vb = (None if n is None else num(sheet.value(n)) for n in (left, right))
            if va is None or vb is None:
                continue
            negated = rel in ("<", ">") and NEGATED.search(text[left_start:m.start()]) is not None
            op = {"<": ">=", ">": "<="}[rel] if negated else rel
            out.append(Evaluated((m.span(),), OPS[op](va, vb), f"{m.group(0)!r}: {left} is layer {va:g} and "
                                 f"{right} layer {vb:g}"))
    return out


def _comparatives(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    out = []
    layers = [p for p in placed if layer_of(p) is not None]
    for pattern, fld, left_larger in _COMPARATIVES:
        for m in re.finditer(pattern, text):
            than = re.search(r"\bthan\b", text[m.end():])
            if than is None:
                continue
            than_at = m.end() + than.start()
            left = [p for p in layers if p.end <= than_at]
            right = [p for p in layers if p.start >= than_at]
            if not left or not right:
                continue
            va, vb = (num(row_value(sheet, layer_of(p), fld)) for p in (left[-1], right[0]))
            if va is None or vb is None:
                continue
            out.append(Evaluated((m.span(), (than_at, than_at + 4)), (va > vb) == left_larger and va != vb,
                                 f"{m.group(0)!r}: {fld} is {va:.4g} at layer {layer_of(left[-1]):g} and {vb:.4g} at "
                                 f"layer {layer_of(right[0]):g}"))
    return out


def _value_vs_row(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """"{final_entropy} sits below that of {layer[N].layer}": a value against the same measure of a row."""
    out = []
    fields = {"entropy": "entropy", "kl": "kl_to_final", "rank": "answer_rank"}
    for m in re.finditer(r"\b(?P<up>above|higher than|greater than|more than)\b|\b(?P<down>below|under|lower than"
                         r"|less than)\b", text):
        after = [p for p in placed if p.start >= m.end()]
        before = [p for p in placed if p.end <= m.start() and p.slot and p.slot.measure in fields]
        before = [p for p in before if p.slot.family == "" and p.slot.measure != "threshold"]
        if not after or layer_of(after[0]) is None or after[0].slot.family != "row" or not before:
            continue
        if not re.fullmatch(r"\s*(?:(?:that|the one|the value|the entropy|the kl|the rank) (?:of|at|in)|at|in)\s+"
                            r"(?:the\s+)?(?:layer\s+)?", text[m.end():after[0].start]):
            continue
        value = before[-1]
        va, vb = num(value.slot.fact.value), num(row_value(sheet, layer_of(after[0]), fields[value.slot.measure]))
        if va is None or vb is None:
            continue
        up = m.group("up") is not None
        out.append(Evaluated((m.span(),), va > vb if up else va < vb, f"{m.group(0)!r}: {{{value.name}}} is "
                             f"{va:.4g} and layer {layer_of(after[0]):g} has {vb:.4g}"))
    return out


def _scope_rows(text: str, rows: list[int]) -> list[int]:
    if re.search(r"\bintermediate\b|\binner\b|\bhidden layers?\b", text):
        return rows[1:-1]
    if re.search(r"\bbefore the (?:output|final|last)\b|\bearlier layers?\b", text):
        return rows[:-1]
    return rows


def _superlatives(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    rows = table_rows(sheet)
    out = []
    for pattern, fld, pick in _SUPERLATIVES:
        for m in re.finditer(pattern, text):
            at = [p for p in placed if layer_of(p) is not None and p.slot.family in ("", "row")]
            finals = [p for p in placed if p.name.startswith("final_")]
            where = layer_of(at[0]) if at else (float(rows[-1]) if rows and (finals or re.search(
                r"\bfinal head\b|\bat the output\b", text)) else None)
            scope = _scope_rows(text, rows)
            series = {n: num(row_value(sheet, n, fld)) for n in scope}
            if where is None or not series or any(v is None for v in series.values()):
                continue
            said = num(row_value(sheet, where, fld))
            best = pick(series.values())  # type: ignore[type-var]
            out.append(Evaluated((m.span(),), said is not None and said == best and int(where) in scope,
                                 f"{m.group(0)!r}: {fld} at layer {where:g} is {said}, the extreme over the layers "
                                 f"meant is {best:.4g}"))
    return out


_UNIVERSAL = re.compile(r"\b(?:of|among|in|across) (?:any|all|every|the)(?: other)? (?:intermediate |decoded )?"
                        r"(?:layers?|stack|network)\b|\bof the stack\b")
_EXTREME_WORD = re.compile(r"\b(?P<min>lowest|smallest|minimum)\b|\b(?P<max>highest|largest|maximum|greatest)\b")
_FIELD_NOUNS = (("entropy", r"\bentrop\w*"), ("kl_to_final", r"\bkl\b|\bdivergence\b"))


def _universal_extreme(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """"{final_entropy} is the lowest of any layer": a value said to be the extreme of the whole table."""
    m, scope = _EXTREME_WORD.search(text), _UNIVERSAL.search(text)
    fld = next((f for f, rx in _FIELD_NOUNS if re.search(rx, text)), None)
    rows = table_rows(sheet)
    if m is None or scope is None or fld is None or not rows:
        return []
    at = [p for p in placed if layer_of(p) is not None and p.slot.family == "row"]
    where = layer_of(at[0]) if at else float(rows[-1]) if any(p.name.startswith("final_") for p in placed) else None
    series = {n: num(row_value(sheet, n, fld)) for n in _scope_rows(text, rows)}
    if where is None or any(v is None for v in series.values()):
        return []
    said, best = num(row_value(sheet, where, fld)), (min if m.group("min") else max)(series.values())  # type: ignore[type-var]
    return [Evaluated((m.span(),), said == best, f"{m.group(0)!r}: {fld} at layer {where:g} is {said}, the extreme is "
                      f"{best}")]


def _first(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """"the first layer where it is ranked first", "first enters the top {rank_threshold_10} at {layer[N].layer}"."""
    m = re.search(r"\bfirst\b(?! (?:decoded )?layer\b(?!\s+(?:where|at which|in which|that|to)))", text)
    rows = {p.slot.row for p in placed if p.slot and p.slot.row is not None}
    if m is None or len(rows) != 1 or any(p.slot and p.slot.family not in ("", "row") and p.slot.measure == "layer"
                                          for p in placed):
        return []
    name = _implicit(text, [p for p in placed if p.slot and p.slot.measure in ("threshold", "kl")])
    if name is None or name.startswith(("suite", "L_copy")) or name not in sheet.slots:
        return []
    row, value = rows.pop(), num(sheet.value(name))
    return [Evaluated((m.span(),), value is not None and value == row, f"says layer {row} is the first for "
                      f"{name}, which is {sheet.value(name)}", "row_claim")]


def _run(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """The top token staying the same, or changing, over a range of rows."""
    layers = sorted(int(v) for p in placed if (v := layer_of(p)) is not None)
    if not _TOP_TOKEN.search(text) or not layers:
        return []
    rows = table_rows(sheet)
    hi = layers[-1] if len(layers) >= 2 else rows[-1] if re.search(
        r"\b(?:final|output|end|last|after|from|since|onwards?|beyond)\b", text) else None
    if hi is None:
        return []
    tokens = [str(row_value(sheet, n, "top1_token")) for n in rows if layers[0] <= n <= hi]
    changes = sum(a != b for a, b in zip(tokens, tokens[1:]))
    out = []
    if (m := _SAME.search(text)) is not None:
        out.append(Evaluated((m.span(),), changes == 0, f"{m.group(0)!r}: the top token changes {changes} times "
                             f"between layers {layers[0]} and {hi}"))
    elif (m := _CHANGES.search(text)) is not None and len(tokens) > 1:
        need = len(tokens) - 1 if _EVERY_STEP.search(text) and not _MOST_STEPS.search(text) else \
            (len(tokens) - 1) * 2 / 3 if _MOST_STEPS.search(text) else 1
        out.append(Evaluated((m.span(),), changes >= need, f"{m.group(0)!r}: the top token changes {changes} of "
                             f"{len(tokens) - 1} steps between layers {layers[0]} and {hi}"))
    return out


_HOLD = re.compile(r"\b(?:keeps?|kept|stays?|stayed|remains?|remained|holds?|held|stable|unchanged|the same)\b")
_ON_TOP = re.compile(r"\btop\b|\bfirst\b|\blead\w*|\bposition\b|\bplace\b")


def _rank_run(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """"keeps that position through the final head", "the rank is stable from A to B": ranks over a range."""
    hold = _HOLD.search(text)
    rows_named = sorted(int(v) for p in placed if (v := layer_of(p)) is not None and p.slot.family == "row")
    layers = rows_named if len(rows_named) >= 2 else sorted(int(v) for p in placed if (v := layer_of(p)) is not None)
    if hold is None or not layers or not re.search(r"\brank\w*|\banswer\b", text) or _TOP_TOKEN.search(text) \
            or re.search(r"\boutside\b|\bout of\b|\buntil\b|\bbefore\b", text):
        return []
    rows = table_rows(sheet)
    hi = layers[-1] if len(rows_named) >= 2 else rows[-1] if len(layers) == 1 and re.search(
        r"\b(?:final|output|end|last|onwards?|through|thereafter|from then on)\b", text) else None
    if hi is None:
        return []
    ranks = [num(row_value(sheet, n, "answer_rank")) for n in rows if layers[0] <= n <= hi]
    if hi == rows[-1] and re.search(r"\bfinal head\b|\boutput\b", text):
        ranks.append(num(sheet.value("final_answer_rank")))
    if any(r is None for r in ranks):
        return []
    top = _ON_TOP.search(text) is not None
    holds = all(r == 1 for r in ranks) if top else len(set(ranks)) == 1
    return [Evaluated(tuple(m.span() for m in _HOLD.finditer(text)), holds != bool(NEGATED.search(text)),
                      f"{hold.group(0)!r}: the answer's rank goes {ranks[0]:g} … {ranks[-1]:g} between layers "
                      f"{layers[0]} and {hi} ({len(set(ranks))} distinct ranks)")]


def _temperature_rows(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    temps = {p.name.split("]")[0] + "]" for p in placed if p.name.startswith("temperature[")}
    if len(temps) < 2:
        return []
    values = [p for p in placed if p.name.startswith("temperature[") and not p.name.endswith(".temperature")]
    out = _temperature_than(text, placed, sheet) if not values else []
    fields = {p.name.rsplit(".", 1)[1] for p in values} | ({"answer_rank"} if re.search(r"\brank\b", text) else set())
    for fld in fields:
        keys = sorted(temps, key=lambda k: num(sheet.value(f"{k}.temperature")) or 0.0)
        lo, hi = (num(sheet.value(f"{k}.{fld}")) for k in (keys[0], keys[-1]))
        if lo is None or hi is None:
            continue
        if (m := re.search(r"\b(?:stays?|remains?|unchanged|the same|holds?)\b", text)) and fld == "answer_rank":
            out.append(Evaluated((m.span(),), lo == hi, f"{m.group(0)!r}: the rank is {lo:g} and {hi:g}"))
        elif (m := re.search(r"\b(?:moves?|changes?|shifts?)\b", text)):
            out.append(Evaluated((m.span(),), lo != hi, f"{m.group(0)!r}: {fld} is {lo:g} and {hi:g}"))
        of_field = [p for p in values if p.name.endswith("." + fld)]
        direction = _UP.search(text) or _DOWN.search(text)
        if len(of_field) == 1 and direction and not re.search(r"\b(?:rais\w*|lower\w*|cool\w*|heat\w*)\b[^.;]{0,15}"
                                                              r"\btemperature", text):
            key = of_field[0].name.split("]")[0] + "]"
            other = next(k for k in keys if k != key)
            mine, theirs = num(sheet.value(of_field[0].name)), num(sheet.value(f"{other}.{fld}"))
            if mine is not None and theirs is not None:
                up = _UP.search(text) is not None and (not _DOWN.search(text) or _UP.search(text).start()
                                                       < _DOWN.search(text).start())
                out.append(Evaluated((direction.span(),), mine > theirs if up else mine < theirs,
                                     f"{direction.group(0)!r}: {fld} is {mine:.4g} here and {theirs:.4g} at the other "
                                     "temperature"))
    return out


def _temperature_than(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """"the answer's probability is higher at {temperature[a].temperature} than at {temperature[b].temperature}"."""
    m = re.search(r"\b(?P<up>higher|greater|larger|more)\b|\b(?P<down>lower|smaller|less)\b", text)
    than = re.search(r"\bthan\b", text)
    fld = "p_answer" if re.search(r"\bprobabilit", text) else "entropy" if re.search(r"\bentrop", text) else None
    temps = [p.name.split("]")[0] + "]" for p in placed if p.name.startswith("temperature[")]
    if m is None or than is None or fld is None or len(temps) < 2 or temps[0] == temps[-1]:
        return []
    a, b = (num(sheet.value(f"{k}.{fld}")) for k in (temps[0], temps[-1]))
    if a is None or b is None:
        return []
    return [Evaluated((m.span(), than.span()), a > b if m.group("up") else a < b, f"{m.group(0)!r}: {fld} is {a:.4g} "
                      f"and {b:.4g} at the two temperatures")]


def form_claims(masked: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """Every claim form of one sentence this module evaluates, true or false (module docstring).

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
        found += shifted(_order(part, inside, sheet) + _comparatives(part, inside, sheet)
                         + _value_vs_row(part, inside, sheet) + _superlatives(part, inside, sheet)
                         + _universal_extreme(part, inside, sheet)
                         + _first(part, inside, sheet)
                         + _temperature_rows(part, inside, sheet), start)
    # a run's subject may sit in another clause: "the top token at A is {…}, and it stays unchanged through B"
    return found + _run(text, known, sheet) + _rank_run(text, known, sheet)
