"""What a sentence claims that no check verified: the claim-word lexicon, and what consumes each word.

The validator's standard is that nothing unverified is published. The other checks evaluate the claims they can
read (`reportgen.comparecheck`, `reportgen.formcheck`: comparisons, trends, extremes, runs, directions, each an
`Evaluated` with the spans of the words it read); this module looks at the words left over. Each entry of `LEXICON`
is a class of claim-bearing words (monotonicity, stability, certainty, magnitude, generalisation, causal
attribution, advice, lens fidelity and calibration, KL direction, lens agreement, comparison, and the quantifier,
relative-depth, trend-shape and sameness words `reportgen.extentcheck` evaluates) with what accounts for it:

- ``evaluated``: a check read the word and evaluated it on the values (its span lies in an `Evaluated` span);
- ``evaluated_clause``: a modifier ("sharply", "by far") of a claim that a check evaluated in the same clause;
- ``hedged``: a limitation form, negated or hedged in its clause ("may not carry over to other prompts",
  "cannot tell whether …"), which claims no result;
- nothing: the word is never verifiable (a reverse KL, "the choice of lens hardly matters").

A word that nothing accounts for makes the sentence ``unverified``: it is dropped, and the re-ask names the word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reportgen.bindcheck import Placed, clauses

Span = tuple[int, int]


@dataclass(frozen=True)
class Evaluated:
    """A claim a check read and evaluated on the values: the spans of its words, whether the data bear it out."""

    spans: tuple[Span, ...]
    holds: bool
    detail: str
    kind: str = "comparison"


def shifted(claims: Sequence[Evaluated], offset: int) -> list[Evaluated]:
    """``claims`` read on a slice starting at ``offset``, with spans in the whole sentence."""
    return [Evaluated(tuple((a + offset, b + offset) for a, b in c.spans), c.holds, c.detail, c.kind) for c in claims]


@dataclass(frozen=True)
class ClaimWords:
    """One class of claim-bearing words: its pattern and what may account for it (`LEXICON`)."""

    name: str
    pattern: re.Pattern[str]
    consumers: frozenset[str]
    needs_data: bool = False  # only a claim when the clause names a value (a placeholder)
    needs_trend: bool = False  # only a claim when the clause has a trend verb ("at each layer" alone places)


def _words(name: str, pattern: str, *consumers: str, needs_data: bool = False, needs_trend: bool = False
           ) -> ClaimWords:
    return ClaimWords(name, re.compile(pattern), frozenset(consumers), needs_data, needs_trend)


_TREND = re.compile(r"\b(?:ris(?:e|es|ing)|rose|increas\w*|grow\w*|climb\w*|fall(?:s|ing)?|fell|drop\w*|decreas\w*"
                    r"|declin\w*|shrink\w*|improv\w*|worsen\w*|sharpen\w*|flatten\w*|converg\w*|narrow\w*|widen\w*"
                    r"|moves? (?:up|down|closer)|gets? (?:closer|better|worse|sharper|flatter))\b")


# Quantifier, relative-depth, trend-shape and sameness words (`reportgen.extentcheck` evaluates what it reads).
QUANTIFIER = (r"\bmost (?:of (?:the )?)?(?:\w+ )?(?:layers|rows|steps|depths?|stack|network|vocabulary)\b"
              r"|\bmajority\b|\bminority\b|\bseveral\b|\b(?:a |only a |very )?few\b|\bhandful\b|\bnumerous\b"
              r"|\bmany\b|\b(?:about |roughly |around )?half (?:of )?the (?:layers|stack|rows)\b")
DEPTH = (r"\bmid-?(?:point|depth|stack|way|dle)\b|\bmidpoint\b|\bhalfway\b|\b(?:first|second|latter|former) half\b"
         r"|\b(?:early|middle|late|first|last|final) third\b")
SHAPE = (r"\bflat\b|\bplateau\w*|\blevel(?:s|led|ling)? off\b|\bsettl\w*|\bzig-?zag\w*|\bswings?\b|\bswung\b"
         r"|\bback and forth\b|\bup and down\b|\b[uv][- ]shaped?\b|\bnon-?monoton\w*|\bbottoms? out\b"
         r"|\bpeaks? (?:in|at|around) the middle\b")
SAME = r"\b(?:is|are|was|were|stays?|remains?) (?:the same|identical|equal) (?:at|in|for|across)\b|\bidentical\b"

# A limitation denies or bounds a claim; a positive hedge ("would likely hold for any model") still makes it.
_HEDGE = re.compile(r"\b(?:cannot|can't|whether|unclear|unknown|not|no|never|little|nothing|neither|nor|without"
                    r"|beyond|(?<!-)only|limit\w*|untested|unmeasured|differ\w*|vary|varies|caution\w*)\b|n't\b")
LEXICON: tuple[ClaimWords, ...] = (
    _words("monotonicity", r"\bsteadily\b|\bmonoton\w*|\bconsistently\b|\bsmoothly\b|\bcontinuously\b"
           r"|\bwithout exception\b|\bno reversals?\b|\bnever (?:slipping|slips|slipped|falls?|goes) back\b"
           r"|\bstrictly\b", "evaluated"),
    _words("every_layer", r"\b(?:at|with|in|on) (?:every|each)(?: single)? (?:layer|step)\b"
           r"|\blayer (?:after|by) layer\b|\bfrom one layer to the next\b", "evaluated", needs_trend=True),
    _words("stability", r"\bstable\b|\bunstable\b|\binstabilit\w*|\bstabili[sz]\w*|\bconstant\b|\bfluctuat\w*"
           r"|\boscillat\w*|\bflips?\b|\bflipping\b|\b(?:moves?|jumps?|bounces?|wanders?) around\b|\bvolatile\b"
           r"|\b(?:stays?|remains?|stayed|remained|keeps?|kept) (?:the same|unchanged|constant|fixed|put)\b"
           r"|\bunchanged\b|\bkeeps? (?:that|its|this|the same) (?:position|rank|place|slot|lead)\b"
           r"|\bholds? (?:on to )?(?:that|its|this) (?:position|place|slot|lead)\b"
           r"|\b(?:stays?|remains?|keeps?) (?:on top|in (?:first|the lead)|at the top|ranked first|at rank)\b",
           "evaluated"),
    _words("certainty", r"\b(?:all but|almost|nearly|virtually|near-?)\s*certain\w*|\bcertain(?:ty)?\b"
           r"|\bconfident(?:ly)?\b|\bsure\b|\bnear(?:ly)?[- ]zero\b|\b(?:nearly|almost|next to) nothing\b"
           r"|\bnegligible\b|\bvanish\w*|\boverwhelming\w*|\bdecisive\w*", "evaluated", "hedged"),
    _words("magnitude", r"\borders? of magnitude\b|\bdramatic\w*|\bmassive\w*|\bhuge\w*|\benormous\w*"
           r"|\bdrastic\w*|\bsharply\b|\bsteep\w*|\bby far\b|\bsubstantially\b|\bmarkedly\b|\bmeasurabl\w*"
           r"|\bnoticeabl\w*|\bappreciabl\w*", "evaluated",
           "evaluated_clause"),
    _words("generalisation",
           r"\b(?:larger|smaller|bigger|other|all|most|many|every|similar) (?:[\w-]+ ){0,2}?(?:models|llms|lms"
           r"|transformers|networks|architectures|prompts|languages|tasks|families|model families)\b"
           r"|\b(?:any|every) (?:[\w-]+ ){0,2}?(?:model|llm|transformer|network|architecture)\b"
           r"|\barchitectural(?:ly)?\b|\bin general\b|\bgenerali[sz]\w*|\buniversal\w*|\brobust(?:ly)? (?:to|across)\b"
           r"|\btypical(?:ly)?\b|\baverag\w* (?:over|across)\b|\bacross (?:prompts|models|phrasings?)\b"
           r"|\bthe same family\b|\bscales?\b(?= with)|\bany (?:[\w-]+ ){0,2}?(?:questions?|prompts?|inputs?|facts?"
           r"|languages?|phrasings?|query|queries)\b|\bother languages?\b|\bmultilingual\b"
           r"|\b(?:french|japanese|german|chinese|spanish|russian|korean|italian|arabic|hindi|portuguese)\b"
           r"|\bwould (?:\w+ )?(?:hold|apply|carry over|transfer|generali\w+|resolve|behave)\b", "hedged"),
    _words("causal", r"\bdriven by\b|\bresponsible for\b|\b(?:is|are|was|were) due to\b|\bmechanis\w*"
           r"|\bproduced by\b|\bthe (?:model|network) (?:uses|computes|builds|stores|writes)\b"
           r"|\bwhat (?:\w+ )?(?:pushes|drives|causes|delays|triggers|produces|makes)\b|\bcaus(?:e|es|ed|ing)\b"
           r"|\btriggers?\b|\bleads? to\b|\bresults? in\b|\bpush(?:es|ed)? (?:the answer|it)\b", "hedged"),
    # advice: the run measures, it recommends nothing
    _words("advice", r"\bshould (?:\w+ )?(?:be )?(?:fine-?tuned|trained|retrained|re-?run|used|adopted|replaced"
           r"|deployed|switched)\b|\bfine-?tun\w*|\bretrain\w*|\brecommend\w*|\bwe (?:suggest|advise)\b"
           r"|\bto fix\b|\bought to\b"),
    # calibration and lens fidelity are not measured beyond the last-layer gate
    _words("fidelity", r"\bcalibrat\w*|\bexact\b|\bperfect\w*|\bfaithful\w*|\blossless\b|\bdrift\w*", "hedged"),
    # quantifiers, relative depth, trend shapes and sameness: `reportgen.extentcheck` evaluates the forms it reads
    _words("quantifier", QUANTIFIER, "evaluated"),
    _words("depth", DEPTH, "evaluated"),
    _words("trend_shape", SHAPE, "evaluated"),
    _words("sameness", SAME + r"|\bcorrespond\w* to\b|\bequivalent to\b|\bamounts? to\b", "evaluated"),
    _words("kl_direction", r"\bkl\s*\(\s*(?:the\s+)?(?:final|head|output|model|p_?final|target)\b"
           r"|\breverse (?:kl|divergence)\b|\b(?:final|output|head)\w*(?:'s)? (?:distribution )?diverges? from\b"
           r"|\b(?:kl|divergence)\b[^.;]{0,15}\bfrom the (?:final|output|model)\w*\b[^.;]{0,40}\bto\b",
           "hedged"),
    _words("lens_agreement", r"\btracks?\b[^.;]{0,30}\bclosely\b|\b(?:hardly|barely|scarcely) matters?\b"
           r"|\bmatters? little\b|\bmakes? (?:little|no) difference\b|\binterchangeabl\w*", "hedged"),
    _words("comparison", r"\b(?:earlier|later|sooner|higher|lower|greater|larger|smaller|better|worse|closer"
           r"|nearer|farther|further|flatter|sharper|more certain|less certain|more confident|less confident"
           r"|more peaked|less peaked)\b(?=[^.;]{0,40}\bthan\b)|\b(?:before|after|ahead of|behind|prior to"
           r"|coincides? with|same layer as|precedes?|follows)\b", "evaluated", needs_data=True),
)
# Scope phrases that use a comparison word to name a stretch of the stack, not to compare two values.
_SCOPE = re.compile(r"\bthe (?:layers?|step|one|block) (?:just |right |immediately )?(?:before|after)\b"
                    r"|\b(?:before|after) (?:the )?(?:final|last|output|unembed\w*|first)\b"
                    r"|\b(?:layers?|readings?|steps?) (?:before|after)\b|\bbefore (?:it|that|this|anything)\b"
                    r"|\bafter (?:that|this|it)\b|\bfrom \S+ (?:on|onward|onwards)\b"
                    r"|\b(?:before|after) (?:the )?(?:norm|unembedding|softmax)\b")
FIX_HINT = ("state only what the values show: a trend, stability or comparison over explicit {layer[N].layer} "
            "placeholders or between two cited values, a milestone by its placeholder; leave out certainty, "
            "magnitude, generalisation and mechanism words, or hedge them as a limitation")


def _overlaps(span: Span, spans: Sequence[Span]) -> bool:
    return any(a < span[1] and span[0] < b for a, b in spans)


def _accounted(words: ClaimWords, span: Span, clause: Span, text: str, evaluated: Sequence[Evaluated]) -> bool:
    spans = [s for e in evaluated for s in e.spans]
    if "evaluated" in words.consumers and _overlaps(span, spans):
        return True
    if "evaluated_clause" in words.consumers and any(clause[0] <= s[0] < clause[1] for s in spans):
        return True
    return "hedged" in words.consumers and _HEDGE.search(text[clause[0]:clause[1]]) is not None


def residual_findings(masked: str, placed: list[Placed], evaluated: Sequence[Evaluated]) -> list[tuple[str, str]]:
    """``unverified`` for every claim word of one sentence that no check accounted for (module docstring).

    Args:
        masked: The sentence with placeholders masked (``#``), as the other checks read it.
        placed: Its placeholders.
        evaluated: The claims the checks evaluated on this sentence, with the spans of their words.

    Returns:
        ``("unverified", detail)`` pairs naming each unaccounted word and its class.
    """
    text = masked.lower().replace("\u2019", "'")
    out: list[tuple[str, str]] = []
    for clause in clauses(text):
        has_data = any(clause[0] <= p.start < clause[1] for p in placed if p.slot is not None)
        for words in LEXICON:
            if words.needs_data and not has_data or words.needs_trend and not _TREND.search(
                    text, clause[0], clause[1]):
                continue
            for m in words.pattern.finditer(text, clause[0], clause[1]):
                if words.name == "comparison" and (_in_scope(text, m.span()) or not _two_sided(text, m, clause,
                                                                                               placed)):
                    continue
                if not _accounted(words, m.span(), clause, text, evaluated):
                    out.append(("unverified", f"{m.group(0)!r} ({words.name}) is a claim no check could verify "
                                              "on the values"))
    return list(dict.fromkeys(out))


def _in_scope(text: str, span: Span) -> bool:
    return any(a <= span[0] < b for a, b in (m.span() for m in _SCOPE.finditer(text)))


_MILESTONE_WORDS = re.compile(r"\bsemantic\w*|\bcop(?:y|ying)\b|\btop[- ]?(?:ten|five|10|5|slot|token|spot|position)\b"
                              r"|\bconfirm\w*|\bmilestone\b|\bonset\b|\bprimary (?:answer|prompt)\b|\bmedian\b"
                              r"|\branked first\b|\bon top\b")


def _two_sided(text: str, m: re.Match[str], clause: Span, placed: list[Placed]) -> bool:
    """Whether a comparison word has an operand on each side: a layer or value placeholder, or a milestone word."""
    stop = re.search(r"[,;]", text[m.end():clause[1]])
    right = (m.end(), m.end() + stop.start() if stop else clause[1])
    comma = text.rfind(",", clause[0], m.start())
    left = (max(clause[0], comma + 1), m.start())

    order = "than" not in m.group(0) and not re.search(r"\bthan\b", text[m.end():m.end() + 45])

    def named(side: Span) -> bool:  # an order word compares layers (or thresholds naming their milestone)
        return (any(side[0] <= p.start < side[1] and p.slot is not None and (
            p.slot.measure in ("layer", "threshold") or p.slot.family if order else p.slot.measure != "text")
            for p in placed) or _MILESTONE_WORDS.search(text, side[0], side[1]) is not None)
    return named(right) and (named(left) or any(clause[0] <= p.start < m.start() for p in placed))
