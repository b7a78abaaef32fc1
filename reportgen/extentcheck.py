"""Quantifier, depth, trend-shape and sameness words evaluated over the per-layer rows (or left unverified).

A quantifier ("at most layers", "only a few layers", "about as numerous as"), a relative depth ("up to the
midpoint", "past the midpoint", "near mid-depth"), a trend shape ("flat", "levels off", "zigzags") or sameness
("the same at A and B") is a claim about the rows. Each is evaluated here when the clause names what it counts or
compares in a form read below: a layer predicate (the answer on top, the answer within / outside the top
``{rank_threshold_k}``, KL within / further than ``{kl_threshold_x}``, punctuation on top), a milestone (a layer
placeholder, a threshold placeholder or a milestone word), or a row field over a range of ``{layer[N].layer}``
placeholders. The words themselves are in `reportgen.residualcheck.LEXICON`, so one that no claim here consumed
makes the sentence ``unverified``: the forms are kept narrow on purpose (an unread form is dropped, never passed).
A few direct readings of the run's facts sit here too (final-head preference, norm-only counts, tied embeddings,
the decoded embedding row), each an `Evaluated`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reportgen.bindcheck import Placed, clauses
from reportgen.formcheck import layer_of, num, row_value, table_rows
from reportgen.placeholders import Sheet
from reportgen.residualcheck import DEPTH, QUANTIFIER, SAME, SHAPE, Evaluated

_QUANT = re.compile(QUANTIFIER)
_DEPTH = re.compile(DEPTH)
_SHAPE = re.compile(SHAPE)
_SAME = re.compile(SAME)

_FIELDS = (("entropy", r"\bentrop\w*"), ("kl_to_final", r"\bkl\b|\bdivergence\b|\bfinal head\b"),
           ("answer_rank", r"\brank\w*"))
_ANSWER_TOP = re.compile(r"\banswer\b[^.;]{0,40}\b(?:top token|on top|top slot|first|leads?|leading)\b"
                         r"|\b(?:put|puts|place|places|has|have) the answer (?:at |on )?(?:the )?top\b")
_IN_TOP = re.compile(r"\b(?:within|inside|among|in) the top #")
_OUT_TOP = re.compile(r"\b(?:outside|beyond) (?:of )?the top #|\bnot (?:\w+ )?(?:in|among|within) the top #")
_KL_NEAR = re.compile(r"\b(?:within|below|under|at most) #|# or (?:below|less|lower)")
_KL_FAR = re.compile(r"\b(?:more than|above|over|beyond|at least) #|\bfurther away\b|\bfarther away\b")
_FAR_ANSWER = re.compile(r"\bfar from the answer\b")


def _field(text: str) -> str | None:
    return next((fld for fld, rx in _FIELDS if re.search(rx, text)), None)


def _thresholds(placed: list[Placed], start: int, end: int, prefix: str) -> list[float]:
    return [v for p in placed if start <= p.start < end and p.slot is not None and "threshold" in p.name
            and (p.slot.family or "").startswith(prefix) and (v := num(p.slot.fact.value)) is not None]


def _predicate(part: str, placed: list[Placed], start: int, end: int, sheet: Sheet
               ) -> tuple[str, Callable[[int], bool] | None, int | None] | None:
    """What a clause counts layers by: (name, per-row test, or the run's own count); None when it names nothing."""
    rank = lambda n: num(row_value(sheet, n, "answer_rank"))  # noqa: E731
    kl = lambda n: num(row_value(sheet, n, "kl_to_final"))  # noqa: E731
    if re.search(r"\bpunctuation\b", part) and re.search(r"\btop\b|\blead\w*|\bfirst\b", part):
        count = num(sheet.value("n_punctuation_top1_layers"))
        return ("punctuation on top", None, int(count)) if count is not None else None
    if (ranks := _thresholds(placed, start, end, "rank")):
        k = ranks[0]
        if _OUT_TOP.search(part):
            return f"answer outside the top {k:g}", lambda n: (rank(n) or 0) > k, None
        if _IN_TOP.search(part):
            return f"answer within the top {k:g}", lambda n: (rank(n) or 1e9) <= k, None
        return None
    if (kls := _thresholds(placed, start, end, "kl")):
        t = kls[0]
        if _KL_FAR.search(part):
            return f"KL above {t:g}", lambda n: (kl(n) or 0) > t, None
        if _KL_NEAR.search(part):
            return f"KL at most {t:g}", lambda n: (kl(n) or 1e9) <= t, None
        return None
    if _FAR_ANSWER.search(part):
        return "answer outside the top ten", lambda n: (rank(n) or 0) > 10, None
    if _ANSWER_TOP.search(part) and not re.search(r"\braw\b", part):
        return "answer on top", lambda n: rank(n) == 1, None
    return None


_AMOUNTS: tuple[tuple[str, Callable[[int, int], bool]], ...] = (
    (r"most|majority", lambda c, n: c > n / 2),
    (r"minority", lambda c, n: 0 < c < n / 2),
    (r"few|handful", lambda c, n: 0 < c <= n / 4),
    (r"numerous|half", lambda c, n: abs(c - (n - c)) <= n / 4),
    (r"several", lambda c, n: 3 <= c < n),
    (r"many", lambda c, n: c >= n / 3),
)


def _quantifiers(text: str, placed: list[Placed], sheet: Sheet, rows: list[int]) -> list[Evaluated]:
    out = []
    for start, end in clauses(text):
        part = text[start:end]
        for m in _QUANT.finditer(text, start, end):
            if not re.search(r"\blayers?\b|\brows?\b", part) or re.search(r"\bthe (?:last|final|first) few\b",
                                                                      text[max(0, m.start() - 10):m.end()]):
                continue  # counts of something else, or a vague stretch of the stack: left to the lexicon
            pred = _predicate(part, placed, start, end, sheet)
            if pred is None:
                continue
            name, test, count = pred
            c = count if count is not None else sum(1 for n in rows if test is not None and test(n))
            word = m.group(0)
            rule = next((ok for rx, ok in _AMOUNTS if re.search(rx, word)), None)
            if rule is not None:
                out.append(Evaluated((m.span(),), rule(c, len(rows)),
                                     f"{word!r}: {name} at {c} of {len(rows)} layers"))
    return out


_MILESTONE_WORDS = ((r"\bcop(?:y|ies|ying|ied)\b", "L_copy"), (r"\bcosine\b", "first_cos_ge_0_6"),
                    (r"\bsemantic\w*|\btop slot\b|\bleads?\b|\bon top\b|\btop token\b", "L_semantic"))
_BY_FAMILY = {"rank10": "first_rank_le_10", "rank5": "first_rank_le_5", "kl1": "first_kl_le_1",
              "kl05": "first_kl_le_0_5", "cos": "first_cos_ge_0_6"}


def _milestone(part: str, placed: list[Placed], start: int, end: int, sheet: Sheet) -> tuple[str, float] | None:
    inside = [p for p in placed if start <= p.start < end and p.slot is not None]
    for p in inside:
        if (v := layer_of(p)) is not None:
            return p.name, v
    for p in inside:
        if p.slot.measure == "threshold" and (name := _BY_FAMILY.get(p.slot.family)):
            v = num(sheet.value(name))
            return (name, v) if v is not None else None
    for rx, name in _MILESTONE_WORDS:
        if re.search(rx, part) and (v := num(sheet.value(name))) is not None:
            return name, v
    return None


def _depths(text: str, placed: list[Placed], sheet: Sheet, rows: list[int]) -> list[Evaluated]:
    out = []
    if not rows:
        return out
    last = rows[-1]
    half = last / 2
    for start, end in clauses(text):
        part = text[start:end]
        for m in _DEPTH.finditer(text, start, end):
            if not re.search(r"mid|half", m.group(0)):
                continue  # thirds: left unverified
            before = text[max(start, m.start() - 25):m.start()]
            if re.search(r"\b(?:up to|until|through|before|in) (?:the )?$", before) and not re.search(
                    r"\bsecond\b", m.group(0)):
                pred = _predicate(part, placed, start, end, sheet)
                if pred is None or pred[1] is None:
                    continue
                name, test, _ = pred
                bad = [n for n in rows if n <= half and not test(n)]
                neg = re.search(r"\b(?:no|none|never|not)\b", text[start:m.start()]) is not None
                holds = (not bad) != neg
                out.append(Evaluated((m.span(),), holds, f"{m.group(0)!r}: {name} up to layer {half:g} "
                                     f"{'fails at ' + str(bad[:3]) if bad else 'holds throughout'}"))
                continue
            late = re.search(r"\b(?:past|after|beyond|behind|second half|latter half)\b", before + m.group(0))
            near = re.search(r"\b(?:near|around|about|at|close to|by)\b(?: the)?\s*$", before)
            if re.search(r"\bno layer\b|\bnone\b|\bevery layer\b|\ball layers\b", text[start:m.start()]):
                pred = _predicate(part, placed, start, end, sheet)
                if late and pred is not None and pred[1] is not None:
                    name, test, _ = pred
                    hits = [n for n in rows if n > half and test(n)]
                    every = re.search(r"\bevery layer\b|\ball layers\b", text[start:m.start()]) is not None
                    holds = len(hits) == len([n for n in rows if n > half]) if every else not hits
                    out.append(Evaluated((m.span(),), holds, f"{m.group(0)!r}: {name} past layer {half:g} at "
                                         f"{hits[:4]}"))
                continue
            ms = _milestone(part, placed, start, end, sheet)
            if ms is None or not (late or near):
                continue
            name, at = ms
            holds = at > half if late else abs(at - half) <= last / 6
            out.append(Evaluated((m.span(),), holds, f"{m.group(0)!r}: {name} is layer {at:g} of {last}"))
    return out


def _range(part: str, placed: list[Placed], start: int, end: int, rows: list[int]) -> list[int] | None:
    at = sorted({int(v) for p in placed if start <= p.start < end and p.slot is not None and p.slot.family == "row"
                 and p.name.endswith(".layer") and (v := layer_of(p)) is not None})
    if len(at) >= 2:
        return [n for n in rows if at[0] <= n <= at[-1]]
    if len(at) == 1 and re.search(r"\b(?:after|from|beyond|past)\b", part):
        return [n for n in rows if n >= at[0]]
    return None


def _shapes(text: str, placed: list[Placed], sheet: Sheet, rows: list[int]) -> list[Evaluated]:
    out = []
    for start, end in clauses(text):
        part = text[start:end]
        for m in _SHAPE.finditer(text, start, end):
            word = m.group(0)
            fld, span = _field(part), _range(part, placed, start, end, rows)
            if fld is None or span is None or len(span) < 2 or re.search(r"[uv][- ]shape|middle|bottom", word):
                continue  # no range or no field: the lexicon leaves it unverified
            series = [num(row_value(sheet, n, fld)) for n in span]
            every = [num(row_value(sheet, n, fld)) for n in rows]
            if any(v is None for v in series + every):
                continue
            steps = [b - a for a, b in zip(series, series[1:]) if b != a]
            if re.search(r"flat|plateau|level|settl", word):
                spread, whole = max(series) - min(series), max(every) - min(every)
                holds = spread <= 0.05 * whole
                detail = f"{fld} spans {min(series):.3g}..{max(series):.3g} over layers {span[0]}-{span[-1]}"
            else:
                turns = sum(1 for a, b in zip(steps, steps[1:]) if (a > 0) != (b > 0))
                holds = turns >= 2
                detail = f"{fld} changes direction {turns} times over layers {span[0]}-{span[-1]}"
            out.append(Evaluated((m.span(),), holds, f"{word!r}: {detail}", "row_claim"))
    return out


def _sameness(text: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    out = []
    for start, end in clauses(text):
        for m in _SAME.finditer(text, start, end):
            fld = _field(text[start:end])
            at = sorted({int(v) for p in placed if start <= p.start < end and p.slot is not None
                         and p.name.endswith(".layer") and (v := layer_of(p)) is not None})
            if fld is None or len(at) < 2:
                continue
            vals = [num(row_value(sheet, n, fld)) for n in at]
            if any(v is None for v in vals):
                continue
            holds = max(vals) - min(vals) <= 1e-3 * max(abs(v) for v in vals) + 1e-12  # type: ignore[arg-type]
            out.append(Evaluated((m.span(),), holds, f"{m.group(0)!r}: {fld} at layers {at} is {vals}", "row_claim"))
    return out


_OTHER_TOKEN = re.compile(r"\b(?:prefers?|picks?|chooses?|favou?rs?|puts?) (?:another|a different|some other|other)"
                          r" token\b|\b(?:another|a different|some other) token (?:wins|leads|takes|is on top)\b")
_ANSWER_AT = re.compile(r"\b(?:puts?|places?) the answer (?:on top|first)\b"
                        r"|\bthe answer (?:is |sits |ranks )?(?:already )?(?:on top|the top token)\b")
_NORM_ONLY_NONE = re.compile(r"\b(?:no|not a single|not one|none of the) layers?\b[^.;]{0,30}\bsemantic\b[^.;]{0,30}"
                             r"\bnorm(?:[- ]lens)? (?:lens )?(?:alone|only)\b")
_BEATS_ALL = re.compile(r"\b(?:ahead of|above|over|beats?|outranks?) (?:every|all|any) other (?:token|candidate)s?\b")
_UNTIED = re.compile(r"\buntied\b|\bnot tied\b|\bseparate (?:input and output )?embeddings\b")
_NOT_DECODED = re.compile(r"\bembedding\w*(?: layer| output)?\b[^.;]{0,30}\b(?:is|are) (?:not|never) decoded\b"
                          r"|\bundecoded\b")


def _readings(text: str, placed: list[Placed], sheet: Sheet, rows: list[int]) -> list[Evaluated]:
    """Direct readings of the run's facts (module docstring)."""
    out = []
    final_rank = num(sheet.value("final_answer_rank"))
    if (m := _OTHER_TOKEN.search(text)) and final_rank is not None and not re.search(r"\bnot\b|n't\b", text):
        out.append(Evaluated((m.span(),), final_rank != 1, f"{m.group(0)!r}: the final answer rank is "
                             f"{final_rank:g}", "milestone_claim"))
    for start, end in clauses(text):
        if (m := _ANSWER_AT.search(text, start, end)) and not re.search(r"\braw\b|\bnot\b|n't\b", text[start:end]):
            at = [v for p in placed if start <= p.start < end and p.slot is not None
                  and (v := layer_of(p)) is not None]
            if at:
                rank = num(row_value(sheet, at[0], "answer_rank"))
                out.append(Evaluated((m.span(),), rank == 1, f"{m.group(0)!r}: the answer's rank at layer "
                                     f"{at[0]:g} is {rank}", "row_claim"))
    margin = num(sheet.value("control_final_margin"))  # p(control answer) - p(primary answer) at the output
    if margin is not None and re.search(r"\bcontrol\b", text):
        for who, wins in ((r"(?:primary|gold|original|real) answer|the answer", margin < 0),
                          (r"control (?:answer|token)", margin > 0)):
            if m := re.search(rf"\b(?:{who})\b[^.;]{{0,40}}?\b(?:wins?|leads?|outscores?|beats?|ahead|prevails?"
                              r"|on top|comes? first|finish\w* first)\b", text):
                if not re.search(r"\bnot\b|n't\b|\bno longer\b", m.group(0)):
                    out.append(Evaluated((m.span(),), wins, f"{m.group(0)!r}: the control margin "
                                         f"p(control) - p(primary) is {margin:.3g}"))
                break
    if (m := _BEATS_ALL.search(text)) and final_rank is not None:
        at = [v for p in placed if p.slot is not None and (v := layer_of(p)) is not None]
        rank = num(row_value(sheet, at[0], "answer_rank")) if at else final_rank
        out.append(Evaluated((m.span(),), rank == 1, f"{m.group(0)!r}: the answer's rank there is {rank}",
                             "milestone_claim"))
    n_only = num(sheet.value("n_norm_only_semantic_layers"))
    if (m := _NORM_ONLY_NONE.search(text)) and n_only is not None:
        out.append(Evaluated((m.span(),), n_only == 0, f"{m.group(0)!r}: {n_only:g} layers are semantic under "
                             "the norm lens only"))
    tied = sheet.value("tied_embeddings")
    if (m := _UNTIED.search(text)) and isinstance(tied, bool):
        out.append(Evaluated((m.span(),), not tied, f"{m.group(0)!r}: tied_embeddings is {tied}", "model_claim"))
    if (m := _NOT_DECODED.search(text)) and rows:
        out.append(Evaluated((m.span(),), rows[0] != 0, f"{m.group(0)!r}: layer 0 (the embeddings) is decoded",
                             "row_claim"))
    return out


def extent_claims(masked: str, placed: list[Placed], sheet: Sheet) -> list[Evaluated]:
    """Quantifier, depth, trend-shape, sameness and direct-reading claims of one sentence (module docstring).

    Args:
        masked: The sentence with placeholders masked (``#``).
        placed: Its placeholders.
        sheet: The fact sheet.

    Returns:
        The claims read, each true or false on the values, with the spans of its words.
    """
    text = masked.lower().replace("\u2019", "'")
    rows = table_rows(sheet)
    return (_quantifiers(text, placed, sheet, rows) + _depths(text, placed, sheet, rows)
            + _shapes(text, placed, sheet, rows) + _sameness(text, placed, sheet)
            + _readings(text, placed, sheet, rows))
