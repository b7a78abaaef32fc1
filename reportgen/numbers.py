"""Find numbers in prose and artifact lines, and match a written number to a data value by the rounding rule.

The matching rule: a number written in a report supports a data value when the value, rounded half-up *or*
half-even to the writer's decimal places, equals what was written (scientific notation: to its printed
significant digits). Truncation is not accepted (``0.45`` is not ``0.4569``), and it is not a relative
tolerance either: ``0.46`` does not support ``0.4539`` although it is within 2 %. A written integer (no
decimal point, no exponent, no ``%``) supports a non-integral value only when the value's magnitude is at
least 100 (``781`` for 780.9), so ``L 3`` never matches 2.76. Percentages match the fraction
(``75.7%`` ↔ ``0.7568``) and a value already in percent.

Tokenisation rules for prose (`extract_numbers`):

- Digits glued to a name are not numbers: ``top5``, ``p50``, ``L_copy_soft_k1``, ``kl_ge_1.0``, ``Qwen3-8B``,
  ``top-5``, ``rank‑1`` (a letter, ``_`` or a letter plus hyphen before the digits, or a letter after them).
- Layer labels are numbers: ``L 31``, ``layer 31`` and the glued ``L31``/``L0–L3`` (but not ``L2 norm``).
- A minus sign (``-``, U+2212, U+2011, U+2010) is a sign only where no word character precedes it, so the
  ``–``/``-`` in ``29–31`` or ``2025-10-04`` separates two positive numbers.
- ``1,234`` is one number; ``[100,200]`` or ``{1,2,3}`` are lists, so grouping is not read after ``[{(,``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = ["NumberToken", "extract_numbers", "is_integer_written", "matches", "numbers_in_line"]

# Sign characters seen in LLM prose: ASCII hyphen, minus U+2212, non-breaking hyphen U+2011, hyphen U+2010.
_MINUS = "-\u2212\u2011\u2010"
_NUMBER = re.compile(
    rf"(?P<sign>[{_MINUS}+])?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
    r"(?P<frac>\.\d+)?"
    rf"(?:[eE](?P<exp>[{_MINUS}+]?\d+))?"
    r"(?P<pct>\s?%)?"
)
# The same number without thousands grouping, for the list contexts where a comma separates items.
_UNGROUPED = re.compile(rf"(?P<int>\d+)(?P<frac>\.\d+)?(?:[eE](?P<exp>[{_MINUS}+]?\d+))?(?P<pct>\s?%)?")
# "L2 norm", "L1 loss" name a norm, not layer 2.
_NORM_AFTER = re.compile(r"\s*[-\u2011 ]?(?:norm|distance|loss|penalty|regulari)", re.IGNORECASE)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')
_JSON_LINE = re.compile(r'^\s*(?:"(?:[^"\\]|\\.)*"\s*:|[\[\]{}])')
_DIGIT = re.compile(r"\d")
_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True)
class NumberToken:
    """One number as written in prose.

    Attributes:
        value: The number as written, as a float; a percentage keeps its written scale (``75.7%`` → 75.7).
        raw: The exact source text, sign and ``%`` included.
        decimals: Decimal places of the value as written; scientific notation counts the exponent
            (``4.59e-4`` → 6).
        sig_figs: Significant figures as written, counting trailing zeros (``38.10`` → 4, ``100`` → 3).
        is_percent: Whether ``%`` followed the number.
        span: ``(start, end)`` character offsets of ``raw`` in the text it came from.

    """

    value: float
    raw: str
    decimals: int
    sig_figs: int
    is_percent: bool
    span: tuple[int, int]

    @property
    def exact(self) -> Decimal:
        """The written value as an exact decimal, so ``38.10`` keeps its trailing zero."""
        return _to_decimal(self.raw)


def _to_decimal(raw: str) -> Decimal:
    """Parse a written number (any minus sign, thousands commas, optional %) into an exact Decimal."""
    text = raw.replace("%", "").replace(",", "").strip()
    for char in _MINUS[1:]:
        text = text.replace(char, "-")
    return Decimal(text)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _layer_label(text: str, start: int, end: int) -> bool:
    """Whether the digits at ``start`` form a glued layer label such as ``L31`` (``L`` starting a word)."""
    if start < 1 or text[start - 1] != "L":
        return False
    if start >= 2 and _is_word_char(text[start - 2]):
        return False
    return not _NORM_AFTER.match(text, end)


def _sign_is_minus(text: str, sign_at: int) -> bool:
    """Tell a minus sign from a hyphen joining words or a range: ``x=-1`` is minus, ``29-31`` is not."""
    return sign_at == 0 or not (_is_word_char(text[sign_at - 1]) or text[sign_at - 1] in ")]}.")


def _token_from_match(text: str, match: re.Match[str], digits_at: int, signed: bool) -> NumberToken:
    start = match.start() if signed else digits_at
    raw = text[start : match.end()]
    frac = match.group("frac") or ""
    exponent = match.group("exp")
    mantissa_decimals = max(len(frac) - 1, 0)
    exp_value = int(_to_decimal(exponent)) if exponent else 0
    digits = (match.group("int") + frac[1:]).replace(",", "").lstrip("0")
    exact = _to_decimal(raw)
    return NumberToken(
        value=float(exact),
        raw=raw,
        decimals=mantissa_decimals - exp_value,
        sig_figs=max(len(digits), 1),
        is_percent=match.group("pct") is not None,
        span=(start, match.end()),
    )


def _glued_after(text: str, end: int) -> bool:
    """Whether a word character or a further ``.digit`` follows, as in ``8B``, ``3rd`` or ``1.2.3``."""
    if end >= len(text):
        return False
    if _is_word_char(text[end]):
        return True
    return text[end] == "." and end + 1 < len(text) and text[end + 1].isdigit()


def _glued_before(text: str, digits_at: int, sign_at: int | None) -> bool:
    """Whether the number is the tail of a name: ``top5``, ``kl_ge_1.0``, ``top-5``, ``v1.2``."""
    if digits_at > 0 and text[digits_at - 1] == "." and digits_at > 1 and _is_word_char(text[digits_at - 2]):
        return True
    if sign_at is not None and not _sign_is_minus(text, sign_at):
        # A hyphen after a letter joins a compound name (top-5); after a digit it separates a range.
        return sign_at > 0 and (text[sign_at - 1].isalpha() or text[sign_at - 1] == "_")
    if digits_at == 0 or sign_at is not None:
        return False
    before = text[digits_at - 1]
    if before in _MINUS and digits_at > 1 and (text[digits_at - 2].isalpha() or text[digits_at - 2] == "_"):
        return True
    return _is_word_char(before)


def extract_numbers(text: str) -> list[NumberToken]:
    """Find the numbers written in a piece of prose, skipping digits that belong to names.

    Args:
        text: Prose, a table cell or a sentence (citations should already be removed by the caller).

    Returns:
        The numbers in order of appearance; see the module docstring for what counts as a number.

    """
    tokens: list[NumberToken] = []
    pos = 0
    while (match := _NUMBER.search(text, pos)) is not None:
        sign_at = match.start("sign") if match.group("sign") else None
        digits_at = match.start("int")
        if "," in match.group("int") and digits_at > 0 and text[digits_at - 1] in "[{(,":
            match = _UNGROUPED.match(text, digits_at) or match
        pos = match.end()
        signed = sign_at is not None and _sign_is_minus(text, sign_at)
        if _glued_after(text, match.end()):
            continue
        if _glued_before(text, digits_at, sign_at) and not _layer_label(text, digits_at, match.end()):
            continue
        tokens.append(_token_from_match(text, match, digits_at, signed))
    return tokens


def _agrees(written: Decimal, actual: Decimal, places: int) -> bool:
    """Whether ``actual`` rounded half-up or half-even to ``places`` decimals equals ``written``."""
    quantum = Decimal(1).scaleb(-places)
    try:
        return any(
            actual.quantize(quantum, rounding=mode) == written for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN)
        )
    except InvalidOperation:  # more digits than the context holds: 1e300 quantized to 6 places
        return False


def _agrees_sig_figs(written: Decimal, actual: Decimal, sig_figs: int) -> bool:
    if actual == 0:
        return written == 0
    return _agrees(written, actual, sig_figs - 1 - actual.adjusted())


def is_integer_written(claimed: NumberToken) -> bool:
    """Whether a number is written as a plain integer: no decimal point, no exponent, no ``%``."""
    raw = claimed.raw.lower()
    return not claimed.is_percent and "." not in raw and "e" not in raw


def _readings(actual: float) -> list[Decimal]:
    # repr gives the shortest decimal that round-trips (what the artifact line shows, so 0.7568 * 100 is 75.68);
    # the exact binary value is what Python's own formatting rounds (f"{2.675:.2f}" prints 2.67).
    shortest = Decimal(repr(actual))
    exact = Decimal(actual)
    return [shortest] if exact == shortest else [shortest, exact]


def matches(claimed: NumberToken, actual: float) -> bool:
    """Whether a written number reports a data value, by the rounding rule of the module docstring.

    ``actual`` supports ``claimed`` when rounding it half-up or half-even to the claimed number's decimal
    places (scientific notation: its significant figures) gives the written value. A written integer matches a
    non-integral value only when ``|actual| >= 100``. A percentage also matches the fraction
    (``75.68%`` ↔ ``0.7568``). Example: ``0.45`` and ``0.454`` match ``0.4539``; ``0.46`` does not, nor does
    ``0.45`` match ``0.4569`` (no truncation), nor ``3`` match ``2.76``.

    Args:
        claimed: A number extracted from prose.
        actual: A value read from an artifact.

    Returns:
        True when one of the accepted renderings of ``actual`` equals ``claimed``.

    """
    if not math.isfinite(actual):
        return False
    written = claimed.exact
    candidates = _readings(actual)
    if claimed.is_percent:
        candidates += [value * 100 for value in candidates]
    if is_integer_written(claimed) and actual != int(actual) and abs(actual) < 100:
        return False
    scientific = "e" in claimed.raw.lower()
    return any(
        _agrees_sig_figs(written, value, claimed.sig_figs) if scientific else _agrees(written, value, claimed.decimals)
        for value in candidates
    )


def _cell_numbers(cell: str) -> list[float]:
    if "_" not in cell:  # float() would read "1_000" as 1000
        try:
            value = float(cell)  # the fast path for the numeric cells that make up most of a CSV
        except ValueError:
            pass
        else:
            return [value] if math.isfinite(value) else []
    text = cell.strip()
    if not _DIGIT.search(text):
        return []  # most text cells: no digit, nothing to tokenise
    return [token.value for token in extract_numbers(text)]


def _json_line_numbers(line: str) -> list[float]:
    values: list[float] = []
    for token in _JSON_TOKEN.findall(line):
        if not token.startswith('"'):
            values.append(float(token))
            continue
        try:
            content = json.loads(token)
        except json.JSONDecodeError:
            content = token[1:-1]
        # Keys count too: a dict keyed by layer ("31": {...}) holds the layer number only in its key.
        values.extend(number.value for number in extract_numbers(content))
    return values


def numbers_in_line(line: str) -> list[float]:
    """Read every numeric value on one artifact line, JSON or CSV.

    A pretty-printed JSON line (``"key": value,``, a bracket, or a bare array element) is read token by token:
    number literals directly, and the strings (keys included) through `extract_numbers`, so ``"2025-10-04"``
    gives 2025, 10 and 4 while ``"first_kl_below_1.0"`` gives nothing. Anything else is read as a CSV row:
    numeric cells directly, text cells (quoted or not) through `extract_numbers`. ``true``/``false``/``null``
    and NaN/inf are not numbers here.

    Args:
        line: One line of an artifact file, without its newline.

    Returns:
        The values in order of appearance.

    """
    if _JSON_LINE.match(line):
        return _json_line_numbers(line)
    try:
        cells = next(csv.reader([line]), [])
    except csv.Error:  # e.g. a NUL byte; fall back to reading the line as prose
        return [token.value for token in extract_numbers(line)]
    return [value for cell in cells for value in _cell_numbers(cell)]
