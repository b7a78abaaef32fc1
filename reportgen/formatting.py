"""Named formatting filters: every number and token string in a report goes through one of these."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from reportgen.bound import visible
from reportgen.facts import Fact

# Characters with meaning in CommonMark/GFM inline syntax or tables; `&` too, so entities cannot be smuggled.
_MD_SPECIAL = set("\\`*_[]()!<>#|~&")


def fmt_sig(x: float, sig: int = 4) -> str:
    """A number with `sig` significant digits, plain notation in [1e-3, 1e6), scientific outside."""
    if x == 0:
        return "0"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    ax = abs(x)
    # Round the shortest decimal text of the value (what the artifact holds and the audit rounds), half-even:
    # binary rounding would print 2.063e-07 for an artifact's 2.0635e-07, which no decimal rule gives.
    d = Decimal(repr(float(x)))
    if ax < 1e-3 or ax >= 1e6:
        mantissa, exponent = f"{d:.{sig - 1}e}".split("e")
        return f"{mantissa}e{int(exponent):+03d}"
    digits = max(0, sig - 1 - math.floor(math.log10(ax)))
    text = f"{d:.{digits}f}"
    return "0" if float(text) == 0 else text


def fmt_num(f: Fact | float | None, sig: int = 4) -> str:
    """A fact's (or plain) number with `sig` significant digits; 'n/a' for null."""
    v = f.value if isinstance(f, Fact) else f
    return "n/a" if v is None else fmt_sig(float(v), sig)


def fmt_value(v: Any, unit: str | None = None) -> str:
    """Format a fact value by type and unit: bools yes/no, ints as is, floats by unit."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if unit == "layer" and v.is_integer():
            return str(int(v))
        return fmt_sig(v, 3 if unit == "probability" else 4)
    return escape_md(str(v))


def fmt_fact(f: Fact) -> str:
    """A fact's value, formatted by its unit."""
    return fmt_value(f.value, f.unit)


def fmt_bits(f: Fact | float) -> str:
    """Bits with 4 significant digits and the unit."""
    v = f.value if isinstance(f, Fact) else f
    return "n/a" if v is None else f"{fmt_sig(float(v), 4)} bits"


def fmt_prob(f: Fact | float) -> str:
    """A probability with 3 significant digits."""
    v = f.value if isinstance(f, Fact) else f
    return "n/a" if v is None else fmt_sig(float(v), 3)


def fmt_pct(f: Fact | float) -> str:
    """A fraction as a percentage with 1 decimal (0.7568 -> 75.7%)."""
    v = f.value if isinstance(f, Fact) else f
    if v is None:
        return "n/a"
    # Decimal: 100 * float can land an ulp off a rounding boundary, and the audit rounds the decimal value.
    return f"{(Decimal(repr(float(v))) * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)}%"


def fmt_layer(f: Fact | int | None) -> str:
    """A layer index as 'L 12', or 'none' when the milestone was never reached."""
    v = f.value if isinstance(f, Fact) else f
    return "none" if v is None else f"L {int(v)}"


def escape_md(s: str) -> str:
    """Escape a string for markdown text and table cells: newlines become ␤ and invisible or control characters
    U+XXXX (`reportgen.bound.visible`, what the audit compares), then syntax characters get a backslash, so a token
    can never break a table or inject markup."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in visible(s))


def md_token(f: Fact | str) -> str:
    """A model token string for markdown: escaped and wrapped in quotes (visible leading spaces)."""
    v = f.value if isinstance(f, Fact) else f
    return f"'{escape_md(str(v))}'"
