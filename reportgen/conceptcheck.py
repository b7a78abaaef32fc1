"""What the nouns around a placeholder say it is, and what a sentence says about a row's token or closeness.

Runs on one sentence with its placeholders masked (`reportgen.bindcheck.Placed`). Findings:

- ``unit_mismatch``: the concept noun nearest a value placeholder names another measure. Each slot has a
  concept (vocabulary size, residual width, entropy, KL, probability, rank, temperature, …); the noun right
  after it ("{d_model} wide") decides, else the nearest concept noun before it in its clause, looking past layer
  placeholders ("the KL at {layer[9].layer} is {layer[9].entropy}") but not past another value. A count or rank
  written as a layer ("at layer {final_answer_rank}", "at the last layer, {n_layers}") is one too.
- ``row_mismatch``: a row's value in a sentence that places it at another layer ("at {layer[29].layer} … rank
  {layer[30].answer_rank}") with no comparison to join the two (from … to, between, than, compared with, …).
- ``row_claim``: a token placeholder called punctuation, a word, or the answer when its string is not; a row
  called close to the final head when its KL is more than twice the one-bit threshold, or far from it when the
  KL is under half of it.
- ``typed_token``: a lower-case token string of the run written where a token goes ("the lens favours simply
  over the answer", "the top token is simply"); a plain word elsewhere ("may simply reflect") is prose.
"""

from __future__ import annotations

import re

from reportgen.bindcheck import Placed, clauses
from reportgen.claimcheck import COMMON_WORDS
from reportgen.placeholders import Sheet

_CONCEPTS = (("entropy", re.compile(r"\bentrop\w*")), ("kl", re.compile(r"\bkl\b|\bdivergence\b")),
             ("prob", re.compile(r"\bprobabilit\w*|\bconfidence\b|\bmass\b")),
             ("rank", re.compile(r"\branks?\b|\branked\b")), ("temperature", re.compile(r"\btemperatures?\b")),
             ("vocab", re.compile(r"\bvocab\w*")),
             ("width", re.compile(r"\bwide\b|\bwidth\b|\bhidden (?:size|dim\w*)|\bdimension\w*")))
_AFTER = re.compile(r"\s*(wide|dimensions?|dimensional|entropy|probability|layers|(?:transformer )?blocks)\b")
_AFTER_CONCEPT = {"wide": "width", "dimension": "width", "dimensions": "width", "dimensional": "width",
                  "entropy": "entropy", "probability": "prob", "layers": "layers", "blocks": "layers",
                  "transformer blocks": "layers"}
# noun concept -> slot concepts it may describe
_ACCEPTS = {"entropy": {"entropy", "direction"}, "kl": {"kl"}, "prob": {"prob"}, "rank": {"rank", "threshold"},
            "temperature": {"temperature"}, "vocab": {"vocab"}, "width": {"width"},
            "layers": {"count", "fraction", "threshold"}}  # "{n_layers} layers", "{share} layers", "top {t} layers"
_BY_NAME = {"vocab_size": "vocab", "d_model": "width"}
_CHECKED = {"entropy", "kl", "prob", "rank", "count", "fraction", "temperature", "threshold", "direction", "score",
            "margin", "median"}
_LAYER_BEFORE = re.compile(r"\blayer\s*,?\s*$")
_JOINED = re.compile(r"\bfrom\b|\bbetween\b|\bcompar\w*|\bthan\b|\bversus\b|\bvs\b|\bagainst\b|\bwhile\b"
                     r"|\bwhereas\b|\bbut\b|\bthen\b|\bafter\b|\bbefore\b|\bunlike\b|\brelative to\b|\bearlier\b"
                     r"|\blater\b|\bpreced\w*|\bfollow\w*|\buntil\b|\bsince\b|\bprior\b")
_NEG_NEAR = re.compile(r"(?:\bnot|n't|\brather than|\binstead of|\bno|\bnever|\bthan)\s+(?:\w+\s+){0,2}$")
_PUNCT = re.compile(r"\bpunctuation\b")
_WORD = re.compile(r"\b(?:an? |ordinary |real |content |regular |actual |proper |full )+word\b")
_IS_ANSWER = re.compile(r"\b(?:is|was|equals|matches)\s+(?P<neg>not\s+)?(?:yet\s+|already\s+|now\s+|still\s+)?"
                        r"(?:the\s+)?(?:correct\s+|gold\s+)?answer\b")
_CLOSE = re.compile(r"\bclose to the final\b|\bnear(?:ly)? (?:matches|identical|the final)|\bkl of only\b"
                    r"|\b(?:small|low|tiny|negligible) kl\b|\bconverged (?:on|to|with) the final\b"
                    r"|\balready (?:matches|agrees)")
_FAR = re.compile(r"\bfar from the final\b|\b(?:large|high|big|substantial) kl\b")
# Function words a token may be that a sentence uses as grammar ("the top token and the answer").
_FUNCTION = frozenset("and are was were has have had can may will not but for nor yet out off too via per own its"
                      .split())
_TOKEN_SLOT = (r"\b(?:favou?rs?|favou?ring|prefers?|preferring|predicts?|predicting|promotes?|picks?|chooses?"
               r"|outputs?|emits?)\s+(?:the\s+(?:token|word)\s+)?{w}\b"
               r"|\btop[- ]?(?:1\s+)?(?:token|prediction|candidate|choice)\s+(?:is|was|becomes|remains|stays)\s+"
               r"(?:the\s+(?:token|word)\s+)?{w}\b|\b(?:token|word)\s+{w}\b|\b{w}\s+(?:is|was|becomes|takes|wins"
               r"|stays)\s+(?:the\s+)?top\b")


def _concept(p: Placed) -> str:
    assert p.slot is not None
    return _BY_NAME.get(p.name, p.slot.measure)


def _nearest_noun(text: str, p: Placed, placed: list[Placed], clause: tuple[int, int]) -> str | None:
    after = _AFTER.match(text, p.end)
    if after:
        return _AFTER_CONCEPT[after.group(1)]
    values = [q for q in placed if q.slot and q.end <= p.start and q.slot.measure != "layer"]
    left = max([clause[0], *(q.end for q in values)])
    window = text[left:p.start]
    found = sorted((m.start(), concept) for concept, rx in _CONCEPTS for m in rx.finditer(window))
    return found[-1][1] if found else None


def _concepts(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    out = []
    for clause in clauses(text):
        inside = [p for p in placed if p.slot and clause[0] <= p.start < clause[1]]
        for p in inside:
            if p.slot is None or p.slot.measure not in _CHECKED:
                continue
            if p.slot.measure in ("count", "rank") and _LAYER_BEFORE.search(text[clause[0]:p.start]):
                out.append(("unit_mismatch", f"{{{p.name}}} is a {p.slot.measure}, written as a layer: a layer is "
                            "a {layer[N].layer} or a milestone placeholder"))
                continue
            noun = _nearest_noun(text, p, inside, clause)
            if noun is not None and _concept(p) not in _ACCEPTS[noun]:
                out.append(("unit_mismatch", f"{{{p.name}}} is a {_concept(p)}, but the nearest noun calls it "
                            f"{noun}"))
    return out


def _cross_rows(text: str, placed: list[Placed]) -> list[tuple[str, str]]:
    at = {int(p.slot.fact.value) for p in placed if p.slot and p.slot.measure == "layer"
          and isinstance(p.slot.fact.value, int) and not isinstance(p.slot.fact.value, bool)}
    if not at or _JOINED.search(text):
        return []
    return [("row_mismatch", f"{{{p.name}}} is a value of layer {p.slot.row}, but the sentence places it at layer "
             f"{', '.join(map(str, sorted(at)))}")
            for p in placed if p.slot and p.slot.row is not None and p.slot.measure != "layer"
            and p.slot.row not in at]


def _is_punct(token: str) -> bool | None:
    stripped = token.strip()
    return None if not stripped else not any(ch.isalnum() for ch in stripped)


def _said(text: str, m: re.Match[str]) -> bool:
    return _NEG_NEAR.search(text[max(0, m.start() - 40):m.start()]) is None


def _token_claims(text: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    out = []
    answer = sheet.value("answer_token")
    for start, end in clauses(text):
        tokens = [p for p in placed if p.slot and p.slot.measure == "token" and start <= p.start < end]
        if not tokens:
            continue
        part = text[:end]
        for p in tokens:
            value = str(p.slot.fact.value)  # type: ignore[union-attr]
            punct = _is_punct(value)
            for rx, means_punct in ((_PUNCT, True), (_WORD, False)):
                for m in rx.finditer(part, start):
                    said = _said(part, m) == means_punct  # True: the sentence calls it punctuation
                    if punct is not None and said != punct:
                        out.append(("row_claim", f"calls {{{p.name}}} {'punctuation' if said else 'a word'}, but "
                                    f"it is {value!r}"))
            m = _IS_ANSWER.search(part, p.end)
            if m and answer is not None and p.name.endswith("top1_token") and m.start() - p.end < 30:
                equal = value.strip() == str(answer).strip()
                if equal == bool(m.group("neg")):
                    out.append(("row_claim", f"says {{{p.name}}} is {'not ' if m.group('neg') else ''}the answer, "
                                f"but it is {value!r}"))
    return out


def _closeness(text: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    out = []
    limit = sheet.value("kl_threshold_1")
    limit = limit if isinstance(limit, (int, float)) else 1.0
    for start, end in clauses(text):
        rows = {p.slot.row for p in placed if p.slot and p.slot.row is not None and start <= p.start < end}
        part = text[start:end]
        if len(rows) != 1 or re.search(r"\bnot\b|n't\b|\bnever\b", part):
            continue
        row = rows.pop()
        kl = sheet.value(f"layer[{row}].kl_to_final")
        if not isinstance(kl, (int, float)):
            continue
        if _CLOSE.search(part) and kl > 2 * limit:
            out.append(("row_claim", f"says layer {row} is close to the final head, but its KL is {kl:.4g} bits"))
        if _FAR.search(part) and kl < limit / 2:
            out.append(("row_claim", f"says layer {row} is far from the final head, but its KL is {kl:.4g} bits"))
    return out


def _lower_tokens(text: str, sheet: Sheet) -> list[tuple[str, str]]:
    words = {w for slot in sheet.slots.values() if slot.measure == "token"
             for w in re.findall(r"[a-z][a-z'\-]{2,}", str(slot.fact.value)) if w not in COMMON_WORDS
             and w not in _FUNCTION}
    out = []
    for w in sorted(words):
        if re.search(_TOKEN_SLOT.format(w=re.escape(w)), text):
            out.append(("typed_token", f"{w!r} is a token string of this run: use its {{placeholder}}"))
    return out


def concept_findings(masked: str, placed: list[Placed], sheet: Sheet) -> list[tuple[str, str]]:
    """Every concept, cross-row, token-class and closeness finding of one sentence (module docstring)."""
    text = masked.lower().replace("\u2019", "'")
    known = [p for p in placed if p.slot is not None]
    found = (_concepts(text, known) + _cross_rows(text, known) + _token_claims(text, known, sheet)
             + _closeness(text, known, sheet) + _lower_tokens(text, sheet))
    return list(dict.fromkeys(found))
