"""Bound values: the text rule, the link format, and seeded corruptions of real reports (issue 8)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from reportgen.bound import check_text, forbidden_reason, is_binding, visible
from reportgen.build import build_reports
from reportgen.facts import extract_facts
from reportgen.linkaudit import audit_links
from reportgen.render import bound_value
from reportgen.resolve import Resolver
from tests.conftest import BUNDLED_MODELS
from tests.corrupt import corruptions


@pytest.mark.parametrize("text, value, unit, ok", [
    ("0.625", 0.6252, "probability", True),
    ("0.63", 0.6252, "probability", True),  # half-up and half-even agree here
    ("0.62", 0.6252, "probability", False),  # truncation is not rounding
    ("0.45", 0.4539, None, True),
    ("0.45", 0.4569, None, False),
    ("0.46", 0.4539, None, False),
    ("2.675", 2.675, None, True),
    ("2.67", 2.675, None, True),  # what Python's own formatting prints for the binary value
    ("0.125", 0.125, None, True),
    ("0.12", 0.125, None, True),  # half-even
    ("0.13", 0.125, None, True),  # half-up
    ("3", 2.76, None, False),  # no integer for an unrelated decimal
    ("L 3", 2.76, "layer", False),
    ("781", 780.9, "bits", True),  # an integer for a magnitude of 100 and more
    ("780.9 bits", 780.9, "bits", True),
    ("780.9 nats", 780.9, "bits", False),
    ("75.7%", 0.7568, "fraction", True),
    ("75.6%", 0.7568, "fraction", False),
    ("0.7568%", 0.7568, "fraction", False),
    ("62.5%", 0.625, "layer", False),
    ("7.192e-10", 7.1917e-10, "bits", True),
    ("7.19e-10", 7.1917e-10, "bits", True),
    ("7.18e-10", 7.1917e-10, "bits", False),
    ("L 30", 30, "layer", True),
    ("L 29", 30, "layer", False),
    ("30", 30, None, True),
    ("none", None, "layer", True),
    ("L 0", None, "layer", False),
    ("yes", True, None, True),
    ("no", True, None, False),
    ("\u2713", True, None, True),
    ("\u2717", True, None, False),
    ("n.a.", None, None, True),
    ("rises", 2.62, "bits", True),
    ("falls", -2.62, "bits", True),
    ("rises", -2.62, "bits", False),
    ("high", "high", None, True),
    ("High", "high", None, True),
    ("low", "high", None, False),
    ("LlamaForCausalLM", "LlamaForCausalLM", None, True),
    ("Qwen2ForCausalLM", "LlamaForCausalLM", None, False),
    ("' Berlin'", " Berlin", None, True),
    ("'Berlin'", " Berlin", None, False),
    ("' Germany'", " Berlin", None, False),
    ("about 0.6", 0.6252, "probability", False),
])
def test_check_text(text, value, unit, ok):
    assert (check_text(text, value, unit) is None) is ok


@pytest.mark.parametrize("text, title, expected", [
    ("0.625", None, True), ("L 30", None, True), ("yes", None, True), ("' Berlin'", None, True),
    ("see the gate", None, False), ("see the gate", "headline.x", True), ("", None, False),
])
def test_is_binding(text, title, expected):
    assert is_binding(text, title) is expected


@pytest.mark.parametrize("path, refused", [
    ("artifacts/m-1/probe.json", False), ("derived/m-2.json", False), ("smollm2.md", True),
    ("smollm2.validation.json", True), ("smollm2.build.json", True), (".llm-cache/ab.json", True),
    ("report.html", True),
])
def test_forbidden_targets(path, refused):
    assert (forbidden_reason(path) is not None) is refused


HOSTILE = ["\u202egnp.exe", "a|b", "```", "<b>bold</b>", "line\nbreak", "x]](evil)", "\\", "*_~#&", " 1", "True",
           "\u200b", "[L3](x.md#L1)"]


def _write_artifacts(tmp_path: Path) -> Path:
    """A real manifest-checked artifact dir whose JSON holds hostile token strings."""
    import hashlib

    model = tmp_path / "artifacts" / "m-1"
    model.mkdir(parents=True)
    doc = {"tokens": HOSTILE, "p": 0.6252, "flag": True, "tier": "high", "missing": None}
    text = json.dumps(doc, indent=2, ensure_ascii=True) + "\n"
    (model / "probe.json").write_text(text)
    manifest = {"schema_version": "1.0", "artifacts": [
        {"path": "probe.json", "kind": "json", "sha256": hashlib.sha256(text.encode()).hexdigest()}]}
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


def test_hostile_tokens_render_bound_and_audit_ok(tmp_path):
    model = _write_artifacts(tmp_path)
    facts = extract_facts(model)
    body = "\n".join(f"- value {bound_value(f, 'tok' if isinstance(f.value, str) and f.key.count('[') else 'v', 'artifacts/m-1/')}"
                     for f in facts)
    report = tmp_path / "r.md"
    report.write_text("# r\n\n" + body + "\n")
    verdicts = audit_links(report.read_text(), Resolver(tmp_path))
    assert len(verdicts) == len(list(facts)) and {v.verdict for v in verdicts} == {"ok"}, verdicts
    assert "\u202e" not in body and "<b>" not in body  # shown as U+202E and escaped markup, never raw
    assert visible("a\nb\u202e") == "a\u2424bU+202E"


def test_unbound_number_and_forbidden_link_fail(tmp_path):
    _write_artifacts(tmp_path)
    (tmp_path / "r.md").write_text("x")
    text = ('p is [0.625](artifacts/m-1/probe.json#L16 "p") and 0.7 more.\n\n'
            'See [0.625](r.md#L1).\n')
    verdicts = audit_links(text, Resolver(tmp_path))
    assert [(v.verdict, v.text) for v in verdicts] == [("ok", "0.625"), ("unbound", "0.7"), ("forbidden", "0.625")]


def test_shifted_link_names_where_the_key_is(tmp_path):
    _write_artifacts(tmp_path)
    text = 'p is [0.625](artifacts/m-1/probe.json#L17 "p").\n'
    (verdict,) = audit_links(text, Resolver(tmp_path))
    assert verdict.verdict == "mismatch" and verdict.hint == "p is on line 16"


@pytest.fixture(scope="module")
def built_reports(probe_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    outcomes = build_reports(probe_run, out)
    assert all(o.error is None for o in outcomes), outcomes
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", [*BUNDLED_MODELS, "cross-models"])
def test_real_reports_bind_every_value(built_reports, name):
    text = (built_reports / f"{name}.md").read_text()
    verdicts = audit_links(text, Resolver(built_reports))
    assert len(verdicts) > 30 and Counter(v.verdict for v in verdicts) == {"ok": len(verdicts)}


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_seeded_corruptions_are_detected(built_reports, name):
    """Every single corruption of a bound value is caught on its line; a sample is caught on the whole report."""
    text = (built_reports / f"{name}.md").read_text()
    resolver = Resolver(built_reports)
    caught, total, missed = Counter(), Counter(), []
    sample = []
    for c in corruptions(text, f"{name}.md"):
        total[c.kind] += 1
        bad = [v for v in audit_links(c.after, resolver) if v.verdict != "ok"]
        if bad:
            caught[c.kind] += 1
        else:
            missed.append((c.kind, c.before, c.after))
        if total[c.kind] % 97 == 1:
            sample.append(c)
    rate = sum(caught.values()) / sum(total.values())
    print(f"\n{name}: {sum(caught.values())}/{sum(total.values())} corruptions caught ({rate:.2%}); by kind: "
          + ", ".join(f"{k} {caught[k]}/{total[k]}" for k in sorted(total)))
    assert set(total) == {"number", "swap", "shift", "word", "token", "file"}
    assert rate >= 0.99, missed[:5]
    for c in sample:  # the same corruptions on the whole report: the line number points at the corrupted line
        failing = {v.report_line for v in audit_links(c.text, Resolver(built_reports)) if v.verdict != "ok"}
        assert c.line in failing, (c.kind, c.after)


def test_file_beside_the_manifest_but_not_in_it_is_no_artifact(tmp_path):
    model = _write_artifacts(tmp_path)
    (model / "notes.json").write_text('{\n  "p": 0.625\n}\n')
    text = 'p is [0.625](artifacts/m-1/notes.json#L2 "p").\n'
    (verdict,) = audit_links(text, Resolver(tmp_path))
    assert verdict.verdict == "forbidden" and "not listed in artifacts/m-1/manifest.json" in verdict.reason
