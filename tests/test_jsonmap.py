"""reportgen.jsonmap: values equal json.loads, lines match the text, errors say where."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from reportgen.errors import ReportError
from reportgen.jsonmap import JsonMap, format_path, parse_json_map

DOC = {
    "schema_version": "1.0",
    "diagnostics": {"milestones": {"L_semantic": 12, "L_copy": None}, "ok": True},
    "per_prompt": [{"prompt_id": "pos", "entropy_bits": [3.5, 0.25]}, {}],
    "empty": [],
}
# json.dumps(DOC, indent=2), numbered (the expected lines below are read off this listing):
#  1 {                              12       "prompt_id": "pos",
#  2   "schema_version": "1.0",     13       "entropy_bits": [
#  3   "diagnostics": {             14         3.5,
#  4     "milestones": {            15         0.25
#  5       "L_semantic": 12,        16       ]
#  6       "L_copy": null           17     },
#  7     },                         18     {}
#  8     "ok": true                 19   ],
#  9   },                           20   "empty": []
# 10   "per_prompt": [              21 }
# 11     {


def _walk(value: Any, path: tuple = ()) -> dict[tuple, Any]:
    """Every node's path -> value, computed from json.loads output (the independent reference)."""
    nodes = {path: value}
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        nodes.update(_walk(child, (*path, key)))
    return nodes


def _assert_matches_json_loads(text: str) -> JsonMap:
    parsed = parse_json_map(text)
    expected = json.loads(text)
    assert parsed.value == expected
    assert {node.path: node.value for node in parsed.nodes} == _walk(expected)
    assert len(parsed.nodes) == len(_walk(expected))  # no path twice
    return parsed


@pytest.mark.parametrize(
    ("path", "expected_line", "expected_end_line"),
    [
        ((), 1, 21),
        (("schema_version",), 2, 2),
        (("diagnostics",), 3, 9),
        (("diagnostics", "milestones"), 4, 7),
        (("diagnostics", "milestones", "L_semantic"), 5, 5),
        (("diagnostics", "milestones", "L_copy"), 6, 6),
        (("diagnostics", "ok"), 8, 8),
        (("per_prompt",), 10, 19),
        (("per_prompt", 0), 11, 17),
        (("per_prompt", 0, "prompt_id"), 12, 12),
        (("per_prompt", 0, "entropy_bits"), 13, 16),
        (("per_prompt", 0, "entropy_bits", 0), 14, 14),
        (("per_prompt", 0, "entropy_bits", 1), 15, 15),
        (("per_prompt", 1), 18, 18),
        (("empty",), 20, 20),
    ],
)
def test_node_lines_in_indent_2(path, expected_line, expected_end_line):
    text = json.dumps(DOC, indent=2)
    node = parse_json_map(text).node(path)
    assert (node.line, node.end_line) == (expected_line, expected_end_line)
    # Independent check on the text itself: the line of a member holds its key.
    if path and isinstance(path[-1], str):
        assert json.dumps(path[-1]) in text.split("\n")[expected_line - 1]


@pytest.mark.parametrize(
    "text",
    [
        "0", "-0", "-12", "3.25", "1e5", "1E-2", "-1.5e+3", "123456789012345678901234567890", "1e400",
        '""', '"plain"', "true", "false", "null", "[]", "{}", "[[[]]]", '{"a": {"b": {"c": [1, [2, [3]]]}}}',
        ' \t\r\n {"a" : [ 1 ,2 ] }\n\n', '{"":1, " ":2, "a.b":3, "[0]":4}', '[1, "two", 3.0, false, null]',
    ],
)
def test_values_equal_json_loads(text):
    _assert_matches_json_loads(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r'"\u00e9"', "é"),
        (r'"\ud83d\ude00"', "😀"),  # surrogate pair -> one astral character
        (r'"\ud800"', "\ud800"),  # lone high surrogate kept, as json.loads does
        (r'"\udc00\ud800"', "\udc00\ud800"),  # low then high: two lone surrogates
        (r'"\ud800\u0041"', "\ud800A"),  # high followed by a non-surrogate escape
        (r'"\/\b\f\n\r\t\"\\"', '/\b\f\n\r\t"\\'),
        ('"é 😀 ✓"', "é 😀 ✓"),  # raw non-ASCII
        (r'"a\u0000b"', "a\x00b"),
        (r'"\u2028"', "\u2028"),  # a line separator inside a string is no physical line break
    ],
)
def test_string_escapes(text, expected):
    assert parse_json_map(text).value == expected
    assert json.loads(text) == expected  # the table itself agrees with the reference


@pytest.mark.parametrize(("text", "expected"), [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")])
def test_non_finite_numbers_as_json_dumps_writes_them(text, expected):
    value = parse_json_map(f'{{"x": {text}}}').value["x"]
    assert str(value) == expected and str(json.loads(f'{{"x": {text}}}')["x"]) == expected


@pytest.mark.parametrize(
    ("dumps_kwargs"),
    [
        {"indent": 4},
        {"indent": "\t"},
        {"indent": 0},
        {"separators": (",", ":")},
        {"indent": 2, "sort_keys": True},
        {"indent": 2, "ensure_ascii": False},
        {},
    ],
    ids=["indent4", "tabs", "indent0", "compact", "sort_keys", "utf8", "one-line"],
)
def test_foreign_pretty_printing(dumps_kwargs):
    text = json.dumps(DOC, **dumps_kwargs)
    parsed = _assert_matches_json_loads(text)
    lines = text.split("\n")
    for leaf in parsed.leaves():
        line = lines[leaf.line - 1]
        assert json.dumps(leaf.value, ensure_ascii=dumps_kwargs.get("ensure_ascii", True)) in line
        if isinstance(leaf.path[-1], str):
            assert json.dumps(leaf.path[-1]) in line


def test_several_scalars_on_one_line_and_multi_line_containers():
    parsed = parse_json_map('{"a": 1, "b": [true,\n null, "x"],\n "c": {"d": 2}}')
    found = {format_path(node.path): (node.line, node.end_line, node.column) for node in parsed.nodes}
    assert found == {
        "$": (1, 3, 1), "a": (1, 1, 7), "b": (1, 2, 15), "b[0]": (1, 1, 16), "b[1]": (2, 2, 2),
        "b[2]": (2, 2, 8), "c": (3, 3, 7), "c.d": (3, 3, 13),
    }


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_windows_and_old_mac_newlines_count_as_lines(newline):
    text = json.dumps(DOC, indent=2)
    lf = {node.path: (node.line, node.end_line) for node in parse_json_map(text).nodes}
    converted = parse_json_map(text.replace("\n", newline))
    other = {node.path: (node.line, node.end_line) for node in converted.nodes}
    assert other == lf


def test_byte_order_mark_is_skipped():
    assert parse_json_map('\ufeff{"a": 1}').value == {"a": 1}


@pytest.mark.parametrize(
    ("text", "expected_error"),
    [
        ("", r"<string>:1:1: invalid JSON: expected a JSON value .* found end of file"),
        ('{"a": 1,}', r":1:9: invalid JSON: expected a string key in double quotes, found '\}'"),
        ("[1 2]", r":1:4: invalid JSON: expected ',' or '\]' after array element, found '2'"),
        ('{"a": 1\n "b": 2}', r":2:2: invalid JSON: expected ',' or '\}' after object member, found '\"'"),
        ('{"a" 1}', r":1:6: invalid JSON: expected ':' after the object key, found '1'"),
        ('{\n  "a": tru\n}', r":2:8: invalid JSON: expected a JSON value"),
        ("[1,]", r":1:4: invalid JSON: expected a JSON value .* found '\]'"),
        ('"abc', r":1:5: invalid JSON: expected '\"' to close the string opened at column 1, found end of f"),
        ('"a\tb"', r":1:3: invalid JSON: expected an escaped control character .* found '\\t'"),
        (r'"\x"', r":1:3: invalid JSON: expected an escape: .* found 'x'"),
        (r'"\u12G4"', r":1:4: invalid JSON: expected 4 hex digits after \\u"),
        ("01", r":1:2: invalid JSON: expected no leading zeros in a number, found '1'"),
        ("1.", r":1:3: invalid JSON: expected a digit after '\.' in a number, found end of file"),
        ("1e+", r":1:3: invalid JSON: expected a digit after 'e' in a number"),
        ("-", r":1:2: invalid JSON: expected a digit after '-', found end of file"),
        ("[1] x", r":1:5: invalid JSON: expected end of document after the top-level value, found 'x'"),
        ('{"a": 1, "a": 2}', r":1:10: duplicate key 'a' in one object \(first at line 1\)"),
        ("\u00a0[]", r":1:1: invalid JSON: expected a JSON value"),  # only JSON's four whitespace characters
    ],
)
def test_invalid_json_errors_name_line_and_column(text, expected_error):
    with pytest.raises(ReportError, match=expected_error):
        parse_json_map(text)
    if "duplicate" not in expected_error:
        with pytest.raises(ValueError):
            json.loads(text)  # the reference agrees these are invalid


def test_error_names_the_source_file():
    with pytest.raises(ReportError, match=r"^probe\.json:3:1: invalid JSON"):
        parse_json_map('{\n"a": 1\n', source="probe.json")


def test_deep_nesting_is_a_clear_error_not_a_crash():
    with pytest.raises(ReportError, match=r"nesting at most 200 levels"):
        parse_json_map("[" * 1000 + "]" * 1000)
    _assert_matches_json_loads("[" * 150 + "]" * 150)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), "$"),
        (("diagnostics", "milestones", "L_semantic"), "diagnostics.milestones.L_semantic"),
        (("per_prompt", 0, "prompt_id"), "per_prompt[0].prompt_id"),
        ((0, "x"), "[0].x"),
        (("a.b",), '["a.b"]'),
        (("",), '[""]'),
        (("1st",), '["1st"]'),
        (("top 1", "p"), '["top 1"].p'),
        (("pure-next-token",), "pure-next-token"),
        (("é",), '["é"]'),
        (('say "hi"',), r'["say \"hi\""]'),
    ],
)
def test_format_path(path, expected):
    assert format_path(path) == expected


def test_node_lookup_error():
    with pytest.raises(ReportError, match=r"no JSON node at a\.b"):
        parse_json_map('{"a": {}}').node(("a", "b"))


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.choice(["int", "float", "str", "bool", "null"] + (["list", "dict"] * 2 if depth < 4 else []))
    if kind == "int":
        return rng.choice([0, -1, 7, 2**70, -(2**40)]) + rng.randint(-1000, 1000)
    if kind == "float":
        return rng.choice([0.1, -2.5e-8, 1e300, 3.0, rng.random()])
    if kind == "str":
        alphabet = ["a", "Z", " ", '"', "\\", "/", "\n", "\t", "\x01", "é", "😀", "\u2028", "{", "]", ","]
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_value_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_value_key(rng: random.Random) -> str:
    return rng.choice(["a", "b_bits", "L_x", "", "a.b", "é", "k\"q", "[0]", "x y"]) + str(rng.randint(0, 99))


def test_random_round_trips_match_json_loads_and_lines():
    rng = random.Random(20240611)
    styles = [{}, {"indent": 2}, {"indent": 4, "sort_keys": True}, {"indent": "\t", "ensure_ascii": False},
              {"separators": (",", ":")}, {"indent": 0}]
    for _ in range(300):
        doc = _random_value(rng, 0)
        style = rng.choice(styles)
        text = json.dumps(doc, **style)
        parsed = _assert_matches_json_loads(text)
        if style.get("indent") is None:
            continue
        # Pretty-printed by the stdlib: every scalar leaf is alone on its line, as `"key": value` or `value`.
        lines = text.split("\n")
        ascii_only = style.get("ensure_ascii", True)
        for node in parsed.nodes:
            line = lines[node.line - 1].strip().rstrip(",")
            head = (json.dumps(node.path[-1], ensure_ascii=ascii_only) + ": "
                    if node.path and isinstance(node.path[-1], str) else "")
            if not node.is_container:
                assert line == head + json.dumps(node.value, ensure_ascii=ascii_only)
            elif node.value:
                assert line == head + ("{" if isinstance(node.value, dict) else "[")
                assert lines[node.end_line - 1].strip().rstrip(",") in ("}", "]")


def test_nan_round_trip_keeps_lines():
    text = json.dumps({"a": [float("nan"), float("inf")]}, indent=2)
    parsed = parse_json_map(text)
    assert math.isnan(parsed.node(("a", 0)).value) and parsed.node(("a", 1)).value == math.inf
    assert [parsed.node(("a", i)).line for i in (0, 1)] == [3, 4]
