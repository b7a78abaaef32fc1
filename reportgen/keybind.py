"""Judge the values of one claim against its cited lines: keyed values by their key, the others pooled.

A value written beside a key (`reportgen.claims.KeyedValue`: ``tier=high``, ``first_rank_le_10: 24``) is bound:
among the claim's cited lines, the lines holding that key (a JSON ``"key": scalar`` line, or a CSV column of
that name on a cited row) are its *holders*, and the value is compared with what the holders hold, nothing
else. A number agrees when one holder's value matches it by the rounding rule (a range of rows may hold the
key on every row); a word (``true``, ``high``, ``null``, ``float32``) must agree with every holder of one of
the claim's citations, since ``copy_collapse=False (rows 2–5)`` states it of every row of that citation, while
another citation of the same sentence may cite a row where it differs. When no cited line holds the key, the
key is prose (``L_sem_nf``, ``Determinism``) and the value falls back to the pooled rule: a number or quoted
string needs to be on any cited line, and a bare word is not checked; but when the cited *file* has that key
on other lines, the citation missed it (drifted line numbers), and the value is unsupported whatever the cited
lines hold.

In a sentence with several citations (``A=1 (a.json:3) and B=2 (b.csv:4)``), a keyed value is judged first
against the citations written right after it (one bracket: ``(a.json:3; a.json:9)``), its *scope*, and
against all the claim's cited lines only when the scope does not hold the key. Only a key written as data
(``key=value``, ``"key": value``) marks a citation that missed it; ``n = 24`` or ``layer: L 30`` may be prose.

A number bound to a difference key (``ΔL_sem=0``, ``delta_kl=…``) that no cited line holds may also be the
difference of two other numbers of the same claim that the cited lines support (``L_sem_nf=31`` and
``L_sem_orig=31`` give ``ΔL_sem=0``).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from reportgen.claims import Claim
from reportgen.numbers import NumberToken, matches
from reportgen.resolve import NO_VALUE, SourceFile

__all__ = ["CitedLine", "Item", "Outcome", "claim_items", "judge_items", "show_value"]

TRUE_WORDS = frozenset({"true", "yes", "\u2713", "passed", "pass"})
FALSE_WORDS = frozenset({"false", "no", "\u2717", "failed", "fail"})
NONE_WORDS = frozenset({"none", "null", "n/a", "n.a.", "na", "never", "\u2014", "nan"})
_SHORT_STRING = 40  # a longer string value is a prompt or a path: a bare word beside its key is prose
_SEPARATORS = re.compile(r"[\s;,()\[\]]*(?:and|&)?[\s;,()\[\]]*")
_DELTA_PREFIXES = ("\u0394", "\u03b4", "delta")  # str.lower() turns "Δ" into "δ"


@dataclass(frozen=True)
class Item:
    """One value a claim asserts.

    Attributes:
        label: How the value is shown in verdicts (the number as written, ``key=word``, or the quote).
        number: A number, matched by the rounding rule.
        quote: A quoted string or code span, matched as text (for a keyed word, its text when the key is absent).
        key: The key the value is written beside, if any.
        word: A word or quoted string bound to ``key``.
        derived: The key names a difference (``ΔL_sem``).
        scope: Indexes of the claim's citations written right after a keyed value (empty: all of them).

    """

    label: str
    number: NumberToken | None = None
    quote: str | None = None
    key: str | None = None
    word: str | None = None
    derived: bool = False
    scope: frozenset[int] = frozenset()
    tight: bool = False


@dataclass(frozen=True)
class CitedLine:
    """One cited line: the index of its citation in the claim, the file, and the 1-based line."""

    citation: int
    source: SourceFile
    line: int


@dataclass(frozen=True)
class Outcome:
    """How one item fared.

    Attributes:
        item: The item.
        status: ``found``, ``missing`` (on no cited line), ``contradicted`` (its key holds another value) or
            ``skipped`` (a bare word whose key no cited line holds: nothing to compare).
        support: Indexes of the citations whose lines support the item.
        lines: ``(citation index, line)`` of the supporting lines, or of the conflicting holders.
        conflicts: ``"file:line holds VALUE"`` for each holder that contradicts the item.

    """

    item: Item
    status: str
    support: frozenset[int] = frozenset()
    lines: tuple[tuple[int, int], ...] = ()
    conflicts: tuple[str, ...] = ()


def _is_delta(key: str) -> bool:
    return key.lower().startswith(_DELTA_PREFIXES) and len(key) > 1


def _scope(claim: Claim, span: tuple[int, int]) -> frozenset[int]:
    """The citations written right after a value (one group, only separators between them)."""
    if len(claim.citations) < 2:
        return frozenset()
    after = [i for i, citation in enumerate(claim.citations) if citation.span[0] >= span[1]]
    group = after[:1]
    for index in after[1:]:
        between = claim_text_between(claim, claim.citations[group[-1]].span[1], claim.citations[index].span[0])
        if _SEPARATORS.fullmatch(between) is None:
            break
        group.append(index)
    return frozenset(group)


def claim_text_between(claim: Claim, start: int, end: int) -> str:
    """The claim text between two offsets of its (unstripped) text, which citation spans refer to."""
    return claim.raw_text[start:end] if claim.raw_text else ""


def claim_items(claim: Claim) -> list[Item]:
    """The claim's checkable values: numbers (keyed or not), keyed words, then quotes not bound to a key."""
    keyed_numbers = {value.number.span: value for value in claim.keyed if value.number is not None}
    items = []
    for number in claim.numbers:
        keyed = keyed_numbers.get(number.span)
        key = keyed.key if keyed is not None else None
        items.append(Item(number.raw, number=number, key=key, derived=key is not None and _is_delta(key),
                          scope=_scope(claim, number.span) if key is not None else frozenset(),
                          tight=keyed is not None and keyed.tight))
    quotes = list(claim.quotes)
    for keyed in claim.keyed:
        if keyed.word is None:
            continue
        as_text = keyed.word if keyed.quoted or keyed.word in quotes else None
        if keyed.word in quotes:
            quotes.remove(keyed.word)  # checked through its key, and as text when no cited line holds the key
        items.append(Item(f"{keyed.key}={keyed.raw}", quote=as_text, key=keyed.key, word=keyed.word,
                          scope=_scope(claim, keyed.span), tight=keyed.tight))
    return items + [Item(repr(quote), quote=quote) for quote in quotes]


def show_value(value: object) -> str:
    """A cited value as JSON text (``true``, ``"high"``, ``0.5``)."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _number_agrees(token: NumberToken, value: object) -> bool | None:
    """Whether a number states a cited value; None when the value is text that is no number."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return matches(token, float(value))
    try:
        return matches(token, float(str(value)))
    except ValueError:
        return None


def _word_agrees(word: str, value: object, quoted: bool) -> bool | None:
    """Whether a word states a cited value; None when the comparison says nothing (prose beside a key)."""
    said = " ".join(word.lower().split())
    if isinstance(value, bool):
        return said in (TRUE_WORDS if value else FALSE_WORDS)
    if value is None:
        return said in NONE_WORDS
    if isinstance(value, (int, float)):
        # Only a flag or null word can be said of a number ("L_copy=null" when it holds 5); other words are prose.
        return False if said in TRUE_WORDS | FALSE_WORDS | NONE_WORDS else None
    text = " ".join(str(value).lower().split())
    if said == text or text.endswith("." + said) or said.endswith("." + text):
        return True
    if len(text) > _SHORT_STRING:
        return (said in text) if quoted else None
    return False


def _holders(item: Item, cited: list[CitedLine]) -> list[tuple[CitedLine, object]]:
    assert item.key is not None
    names = [item.key] + ([item.key.rsplit(".", 1)[-1]] if "." in item.key else [])
    holders = []
    for cited_line in cited:
        for name in names:
            held = cited_line.source.value_of(cited_line.line, name)
            if held is not None and held[1] is not NO_VALUE:
                holders.append((cited_line, held[1]))
                break
    return holders


def _conflict(cited_line: CitedLine, key: str, value: object) -> str:
    return f"{cited_line.source.name}:{cited_line.line} holds {key}={show_value(value)}"


def _misplaced(item: Item, cited: list[CitedLine]) -> Outcome | None:
    """An item whose key the cited files hold, but on none of the cited lines: the citation missed it."""
    assert item.key is not None
    if not item.tight:
        return None  # "n = 24", "layer: L 30": possibly prose, whatever keys the file has
    elsewhere = []
    for source in {id(c.source): c.source for c in cited}.values():
        lines = source.key_lines(item.key)
        if lines:
            shown = ", ".join(str(line) for line in lines[:3]) + (", \u2026" if len(lines) > 3 else "")
            elsewhere.append(f"{item.key} is on line {shown} of {source.name}, not on the cited lines")
    return Outcome(item, "missing", conflicts=tuple(elsewhere)) if elsewhere else None


def _keyed_outcome(item: Item, cited: list[CitedLine]) -> Outcome | None:
    """Judge an item by its key; None when the cited files lack the key (or the comparison says nothing)."""
    holders = _holders(item, [c for c in cited if c.citation in item.scope]) if item.scope else []
    if not holders:
        holders = _holders(item, cited)
    if not holders:
        return _misplaced(item, cited)
    judged = []
    for cited_line, value in holders:
        if item.number is not None:
            agrees = _number_agrees(item.number, value)
        else:
            agrees = _word_agrees(item.word or "", value, item.quote is not None)
        if agrees is not None:
            judged.append((cited_line, value, agrees))
    if not judged:
        return None
    if item.number is not None:
        agreeing = [cited_line for cited_line, _, agrees in judged if agrees]
    else:  # a word: every holder of one citation must agree
        wrong_citations = {cited_line.citation for cited_line, _, agrees in judged if not agrees}
        agreeing = [cited_line for cited_line, _, _ in judged if cited_line.citation not in wrong_citations]
    if agreeing:
        return Outcome(item, "found", frozenset(c.citation for c in agreeing),
                       tuple((c.citation, c.line) for c in agreeing))
    wrong = [(cited_line, value) for cited_line, value, agrees in judged if not agrees]
    return Outcome(item, "contradicted", frozenset(), tuple((c.citation, c.line) for c, _ in wrong),
                   tuple(_conflict(c, item.key or "", value) for c, value in wrong))


def _pooled_outcome(item: Item, cited: list[CitedLine]) -> Outcome:
    if item.number is not None:
        holding = [c for c in cited if c.source.has_number(c.line, item.number)]
    elif item.quote is not None:
        holding = [c for c in cited if c.source.has_text(c.line, item.quote)]
    else:
        return Outcome(item, "skipped")
    if not holding:
        return Outcome(item, "missing")
    return Outcome(item, "found", frozenset(c.citation for c in holding), tuple((c.citation, c.line) for c in holding))


def _difference_outcome(item: Item, others: list[Outcome]) -> Outcome | None:
    """A difference the claim derives from two of its other supported numbers (``ΔL_sem=0`` from 31 and 31)."""
    assert item.number is not None
    supported = [o for o in others if o.status == "found" and o.item.number is not None and o.item is not item]
    for first, second in itertools.permutations(supported, 2):
        assert first.item.number is not None and second.item.number is not None
        difference = float(Decimal(first.item.number.exact) - Decimal(second.item.number.exact))
        if math.isfinite(difference) and matches(item.number, difference):
            return Outcome(item, "found", first.support | second.support, first.lines + second.lines)
    return None


def judge_items(items: list[Item], cited: list[CitedLine]) -> list[Outcome]:
    """Judge every item of a claim against all its cited lines (see the module docstring).

    Args:
        items: The claim's values (`claim_items`).
        cited: Every line of every resolvable citation of the claim.

    Returns:
        One outcome per item, in the order of ``items``.

    """
    outcomes: list[Outcome | None] = []
    for item in items:
        keyed = _keyed_outcome(item, cited) if item.key is not None else None
        if keyed is not None:
            outcomes.append(keyed)
        elif item.derived:
            outcomes.append(None)  # judged once the numbers it may be derived from are
        else:
            outcomes.append(_pooled_outcome(item, cited))
    done = [outcome for outcome in outcomes if outcome is not None]
    result = []
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome is None:
            pooled = _pooled_outcome(item, cited)
            outcome = pooled if pooled.status == "found" else (_difference_outcome(item, done) or pooled)
        result.append(outcome)
    return result
