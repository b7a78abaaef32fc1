"""Prompt-file validation (errors name the line) and artifact serialization rules."""

import csv
import io

import pytest

from probe.artifacts import Table, dumps_json, escape_token
from probe.errors import ProbeError
from probe.prompts import load_prompt_set


def test_default_prompt_set():
    ps = load_prompt_set()
    assert ps.primary == "germany" and ps.control == "france"
    assert ps.text("germany", "orig") == "Give the city name only, plain text. The capital of Germany is called simply"
    assert ps.text("germany", "no_filler").endswith("is called")
    assert [f.answer for f in ps.facts] == ["Berlin", "Paris", "Rome", "Tokyo", "Ottawa"]
    assert ps.temperatures == (0.1, 2.0) and "Berlin is the capital of" in ps.test_prompts


GOOD = '''name = "x"
primary = "a"
control = "a"
[templates]
orig = "Capital of {country} is"
[[facts]]
id = "a"
country = "A"
answer = "B"
'''


@pytest.mark.parametrize(("text", "expected_error"), [
    (GOOD.replace('orig = "Capital of {country} is"', 'orig = "Capital of is"'), r":5: template 'orig'"),
    (GOOD.replace('answer = "B"', 'answer = ""'), r":9: \[\[facts\]\] entry 1 needs a non-empty string 'answer'"),
    (GOOD.replace('primary = "a"', 'primary = "zz"'), r":2: primary = 'zz' is not a fact id"),
    ("bogus = 1\n" + GOOD, r":1: unknown key 'bogus'"),
    (GOOD + "extra = 1\n", r":10: \[\[facts\]\] entry 1: unknown key 'extra'"),
    (GOOD.replace('name = "x"', 'name = "x'), r":1: invalid TOML"),
])
def test_bad_prompt_file_names_the_line(tmp_path, text, expected_error):
    p = tmp_path / "prompts.toml"
    p.write_text(text)
    with pytest.raises(ProbeError, match=expected_error):
        load_prompt_set(p)


def test_good_prompt_file_loads(tmp_path):
    p = tmp_path / "prompts.toml"
    p.write_text(GOOD)
    assert load_prompt_set(p).text("a", "orig") == "Capital of A is"


@pytest.mark.parametrize(("token", "expected"), [
    ("plain", "plain"), ("a\nb", "a\\nb"), ("back\\slash", "back\\\\slash"), ("\u200bzw", "\\u200bzw"),
    ("tag\U000e0041", "tag\\U000e0041"), (" Berlin", " Berlin"), ("日本", "日本"),
])
def test_escape_token(token, expected):
    assert escape_token(token) == expected


def test_csv_one_record_per_line_with_hostile_tokens():
    rows = [{"k": i, "token": t} for i, t in enumerate(["a\nb", 'q"uote', "com,ma", "\r\n", "|pipe|", "x\u2028y"])]
    text = Table("t.csv", ("k", "token"), ("k",), rows).render()
    assert text.count("\n") == len(rows) + 1
    assert len(list(csv.reader(io.StringIO(text)))) == len(rows) + 1


def test_json_one_scalar_per_line_and_rounding():
    text = dumps_json({"a": [1.23456789123, 2], "b": {"c": None, "d": "x"}, "e": float("nan")})
    assert "1.234568" in text and "NaN" not in text
    assert '"e": null' in text
    assert all(line.count(":") <= 1 for line in text.splitlines())
