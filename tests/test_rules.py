"""The checklist rule engine: data-defined rules, verdicts with cited evidence, errors naming the rule."""


import pytest

from reportgen.errors import ReportError
from reportgen.rules import DEFAULT_RULES, Verdict, evaluate, load_rules
from tests.test_facts_fixture import make_run


@pytest.fixture
def facts(tmp_path):
    from reportgen.facts import extract_facts

    return extract_facts(make_run(tmp_path, {"gate": {"passed": True, "kl": 0.0}, "tied": False, "n": 30,
                                             "missing": None}))


def write_rules(tmp_path, body):
    p = tmp_path / "rules.toml"
    p.write_text(body)
    return p


@pytest.mark.parametrize(("check", "na", "expected"), [
    ("passed and kl < 0.001", None, Verdict.PASS),
    ("kl > 1", None, Verdict.FAIL),
    ("passed", "not tied", Verdict.NA),
    ("missing is None", None, Verdict.PASS),
    ("n + 1 == 31 and abs(kl) <= 0", None, Verdict.PASS),
])
def test_verdicts(tmp_path, facts, check, na, expected):
    na_line = f'na = "{na}"\n' if na else ""
    p = write_rules(tmp_path, f'''[[rules]]
id = "r"
title = "t"
uses = {{ passed = "probe.json:gate.passed", kl = "probe.json:gate.kl", tied = "probe.json:tied", n = "probe.json:n", missing = "probe.json:missing" }}
check = "{check}"
{na_line}''')
    (result,) = evaluate([r for r in load_rules([p]) if r.id == "r"], facts)
    assert result.verdict is expected
    assert [name for name, _ in result.evidence] == ["passed", "kl", "tied", "n", "missing"]
    assert result.evidence[0][1].cite().startswith("probe.json:")


def test_unknown_fact_key_names_the_rule(tmp_path, facts):
    p = write_rules(tmp_path, '[[rules]]\nid = "my_rule"\ntitle = "t"\nuses = { x = "probe.json:nope" }\ncheck = "x"\n')
    with pytest.raises(ReportError, match=r"rules.toml:2 rule 'my_rule': unknown fact key 'probe.json:nope'"):
        evaluate([r for r in load_rules([p]) if r.id == "my_rule"], facts)


@pytest.mark.parametrize(("check", "expected_error"), [
    ("__import__('os')", "not allowed"),
    ("x.y", "not allowed"),
    ("undeclared", "unknown name 'undeclared'"),
    ("1 +", "invalid expression"),
])
def test_unsafe_or_broken_expressions_are_rejected(tmp_path, facts, check, expected_error):
    p = write_rules(tmp_path, f'[[rules]]\nid = "bad"\ntitle = "t"\nuses = {{ x = "probe.json:n" }}\ncheck = "{check}"\n')
    with pytest.raises(ReportError, match=expected_error):
        evaluate([r for r in load_rules([p]) if r.id == "bad"], facts)


def test_user_file_overrides_by_id_and_adds(tmp_path):
    builtin = load_rules()
    p = write_rules(tmp_path, '[[rules]]\nid = "determinism"\ntitle = "mine"\nuses = {}\ncheck = "True"\n'
                              '[[rules]]\nid = "extra"\ntitle = "new"\nuses = {}\ncheck = "False"\n')
    merged = load_rules([p])
    assert len(merged) == len(builtin) + 1
    assert next(r for r in merged if r.id == "determinism").title == "mine"


def test_builtin_rules_cover_the_checklist():
    ids = {r.id for r in load_rules()}
    assert ids >= {"rms_lens", "layernorm_bias", "entropy_rise_at_unembed", "fp32_unembed", "punctuation_anchoring",
                   "copy_reflex", "filler_anchoring", "preferred_lens_honored", "confirmed_semantics",
                   "dual_lens_metrics", "tuned_attribution", "normalization_provenance", "normalizer_effect",
                   "unembed_bias", "determinism", "numeric_health", "copy_mask", "layer_map", "last_layer_gate",
                   "softcap_applied", "tied_embedding_copy"}
    assert DEFAULT_RULES.read_text().count("[[rules]]") == len(ids)


def test_unknown_rule_field_is_an_error(tmp_path):
    p = write_rules(tmp_path, '[[rules]]\nid = "x"\ntitle = "t"\ncheck = "True"\nwhen = "1"\n')
    with pytest.raises(ReportError, match=r"rule 'x': unknown fields \['when'\]"):
        load_rules([p])
