"""Tests for reportgen.numbers: prose tokenisation, the rounding rule, artifact-line parsing."""

import random

import pytest

from reportgen.numbers import NumberToken, extract_numbers, matches, numbers_in_line


def _one(text: str) -> NumberToken:
    tokens = extract_numbers(text)
    assert len(tokens) == 1, tokens
    return tokens[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max ≈ 38.10 bits", [38.10]),
        ("L_semantic_frac ≈ 0.861", [0.861]),
        ("p≈4.59e-4 and 4.59e\u20114 and 4.59e\u22124", [4.59e-4, 4.59e-4, 4.59e-4]),
        ("size 1,234 and 1,234,567.5", [1234, 1234567.5]),
        ("ΔKL_temp ≈ {−0.52, −0.08, -1.25}", [-0.52, -0.08, -1.25]),
        ("x=-3 and y = \u22122", [-3, -2]),
        ("pct 75.7% of layers", [75.7]),
        ("rest_mass≈0.175", [0.175]),
        ("collapse at L 31 and layer 31", [31, 31]),
        ("copy reflex at L0–L3", [0, 3]),
        ("layers 0–3 and 7206-7209", [0, 3, 7206, 7209]),
        ("L_copy_soft_k1 top5 Qwen3-8B Qwen3\u20118B p50 Δp25", []),
        ("kl_ge_1.0=0.7568; first_rank_le_5_frac", [0.7568]),
        ("top\u20115 and rank-1 and GPT-4", []),
        ("the L2 norm and L1 loss", []),
        ("8B params, 3rd place, version v1.2.3, 1.2.3", []),
        ("τ∈{0.70,0.95}; k∈{1,2,3}", [0.70, 0.95, 1, 2, 3]),
        ("layers [100,200,300]", [100, 200, 300]),
        ("rank deltas: le_10 +1, le_5 +2", [1, 2]),
        ("started 2025-10-04 18:04:23", [2025, 10, 4, 18, 4, 23]),
        ("ends at 36. Then 1.0.", [36, 1.0]),
        ("", []),
    ],
)
def test_extract_numbers_values(text, expected):
    assert [token.value for token in extract_numbers(text)] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected_raw", "expected_decimals", "expected_sig_figs", "expected_percent"),
    [
        ("38.10", "38.10", 2, 4, False),
        ("0.861", "0.861", 3, 3, False),
        ("0.0100", "0.0100", 4, 3, False),
        ("100", "100", 0, 3, False),
        ("4.59e-4", "4.59e-4", 6, 3, False),
        ("1e5", "1e5", -5, 1, False),
        ("75.7%", "75.7%", 1, 3, True),
        ("1,234", "1,234", 0, 4, False),
        ("x=\u22120.36", "\u22120.36", 2, 2, False),
    ],
)
def test_token_fields(text, expected_raw, expected_decimals, expected_sig_figs, expected_percent):
    token = _one(text)
    assert (token.raw, token.decimals, token.sig_figs, token.is_percent) == (
        expected_raw,
        expected_decimals,
        expected_sig_figs,
        expected_percent,
    )
    assert text[token.span[0] : token.span[1]] == token.raw


@pytest.mark.parametrize(
    ("claimed", "actual", "expected"),
    [
        ("38.10", 38.09606, True),
        ("0.861", 0.8611, True),
        ("0.45", 0.4539, True),  # rounding
        ("0.45", 0.4569, False),  # truncation is not accepted
        ("0.46", 0.4539, False),  # within 2 % but not a rounding
        ("0.12", 0.125, True),  # half-even
        ("0.13", 0.125, True),  # half-up
        ("2.67", 2.675, True),  # the float's exact binary value, as Python's format() rounds it
        ("2.68", 2.675, True),  # the shortest repr, as the artifact line shows it
        ("4.5e-4", 0.000459, False),  # scientific: no truncation either
        ("781", 780.9, True),  # an integer for a magnitude of at least 100
        ("3", 2.76, False),  # never an integer for a small non-integral value
        ("1", 0.8611, False),
        ("100", 99.6, False),
        ("31", 31.0, True),
        ("0.454", 0.4539, True),
        ("31", 31, True),
        ("31", 30, False),
        ("1.0", 0.99999, True),
        ("0.0", -0.00001, True),
        ("75.68%", 0.7568, True),
        ("75.7%", 0.7568, True),
        ("75.7%", 75.68, True),  # the artifact already stores a percentage
        ("76%", 0.7568, True),
        ("7.6%", 0.7568, False),
        ("4.59e-4", 0.000459, True),
        ("4.59e\u20114", 0.00045912, True),
        ("4.6e-4", 0.000459, True),
        ("4.58e-4", 0.000459, False),
        ("0.000459", 4.59e-4, True),
        ("−0.36", -0.3612, True),
        ("−0.36", 0.3612, False),
        ("1,234", 1234.4, True),
        ("6112", 6112, True),
        ("6112", 6113, False),
        ("0.5", float("nan"), False),
        ("1e5", 1e300, False),
    ],
)
def test_matches_rounding_rule(claimed, actual, expected):
    assert matches(_one(claimed), actual) is expected


@pytest.mark.parametrize("decimals", [0, 1, 2, 3, 4, 6])
def test_matches_accepts_python_formatting(decimals):
    """Oracle: format(x, '.Nf') matches x (integers only from 100 up); two units off in the last place do not."""
    rng = random.Random(decimals)
    for _ in range(300):
        actual = rng.uniform(-50, 50) * 10 ** rng.randint(-3, 2)
        written = format(actual, f".{decimals}f")
        expected = decimals > 0 or abs(actual) >= 100
        assert matches(_one(f"v={written}"), actual) is expected, (written, actual)
        step = 2 * 10 ** (-decimals)
        bumped = format(float(written) + step, f".{decimals}f")
        assert not matches(_one(f"v={bumped}"), actual), (bumped, actual)


@pytest.mark.parametrize(
    "text", ["38.10", "0.861", "4.59e-4", "75.7%", "-0.52", "1,234", "0.0", "31", "1e5", "0.000459"]
)
def test_every_token_matches_its_own_value(text):
    token = _one(text)
    actual = token.value / 100 if token.is_percent else token.value
    assert matches(token, actual)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('    "max_kl_norm_vs_raw_bits_window": 38.09606,', [38.09606]),
        ('    "first_kl_below_1.0": 36,', [36]),
        ('    "center_layers": [29, 31, 36],', [29, 31, 36]),
        ('    "use_norm_lens": true,', []),
        ('    "L_copy": null,', []),
        ('    "p": 4.59e-04,', [4.59e-4]),
        ('  "31": {', [31]),
        ('    "started": "2025-10-04",', [2025, 10, 4]),
        ("      -0.5,", [-0.5]),
        ("31,0.4539, Berlin,0.93612,1,1.0612", [31, 0.4539, 0.93612, 1, 1.0612]),
        ('29,1.7777,"Berlin,0.02649",4', [29, 1.7777, 0.02649, 4]),
        ('30,2.2030,"say ""hi"" 7",nan,inf,True', [30, 2.2030, 7]),
        ("layer,entropy_bits,top1_token", []),
        ("", []),
    ],
)
def test_numbers_in_line(line, expected):
    assert numbers_in_line(line) == pytest.approx(expected)


def test_number_token_is_frozen():
    token = _one("0.861")
    with pytest.raises(AttributeError):
        token.value = 1.0  # type: ignore[misc]
