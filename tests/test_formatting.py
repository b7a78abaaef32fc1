"""Formatting filters: every number and token in a report goes through these."""

import pytest

from reportgen.formatting import escape_md, fmt_layer, fmt_pct, fmt_sig, fmt_value, md_token
from reportgen.numbers import extract_numbers, matches


@pytest.mark.parametrize(("x", "sig", "expected"), [
    (2.763832, 4, "2.764"), (0.6252047, 3, "0.625"), (0.0, 4, "0"), (38.09606, 4, "38.10"),
    (0.000459, 3, "4.59e-04"), (780.9466, 4, "780.9"), (1234567.0, 4, "1.235e+06"), (-0.5, 4, "-0.5000"),
    (1e-9, 4, "1.000e-09"),
])
def test_fmt_sig(x, sig, expected):
    assert fmt_sig(x, sig) == expected


@pytest.mark.parametrize("x", [2.763832, 0.6252047, 38.09606, 0.000459, 780.9466, 1e-9, 0.99999, 12.5, 3.0])
def test_formatted_numbers_match_their_source_under_the_audit_rule(x):
    """Whatever a filter prints must be accepted by the auditor for the value it came from."""
    for sig in (3, 4):
        (tok,) = extract_numbers(fmt_sig(x, sig))
        assert matches(tok, x), (x, sig, tok)


@pytest.mark.parametrize(("v", "unit", "expected"), [
    (None, None, "n/a"), (True, None, "yes"), (3, "layer", "3"), (0.25, "probability", "0.250"),
    ("a|b", None, "a\\|b"),
])
def test_fmt_value(v, unit, expected):
    assert fmt_value(v, unit) == expected


def test_fmt_pct_and_layer():
    assert fmt_pct(0.7568) == "75.7%"
    assert fmt_layer(31) == "L 31" and fmt_layer(None) == "none"


@pytest.mark.parametrize(("token", "expected"), [
    (" Berlin", "' Berlin'"),
    ("|", "'\\|'"),
    ("`", "'\\`'"),
    ("<b>", "'\\<b\\>'"),
    ("a\nb", "'a␤b'"),
    ("![](x)", "'\\!\\[\\]\\(x\\)'"),
    ("\u200b", "'U+200B'"),
    ("tag\U000e0041", "'tagU+E0041'"),
    ("&amp;", "'\\&amp;'"),
])
def test_md_token_escapes_markup(token, expected):
    assert md_token(token) == expected


def test_escaped_token_cannot_break_a_table():
    from markdown_it import MarkdownIt

    row = f"| {escape_md('x|y')} | {escape_md('`code')} |"
    html = MarkdownIt("commonmark").enable("table").render("| a | b |\n|---|---|\n" + row + "\n")
    assert html.count("<td>") == 2 and "<code>" not in html
