"""Lenses as data (issue 10, part 1): per-lens columns, milestones, the preferred-lens rule, CLI parsing."""

import csv
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from probe.cli import parse_lenses
from probe.errors import ProbeError
from probe.lensdata import lens_columns, lens_milestones, lens_summary, preferred_lens
from probe.models import resolve_model
from probe.prompts import load_prompt_set


def test_lens_columns_match_torch_distributions():
    torch.manual_seed(0)
    z, final = torch.randn(4, 50) * 3, torch.randn(50) * 3
    cols = lens_columns(z, final, gold_id=7)
    ref = torch.distributions.Categorical(logits=final.double())
    for i in range(4):
        dist = torch.distributions.Categorical(logits=z[i].double())
        assert cols["entropy_bits"][i] == pytest.approx(float(dist.entropy()) / math.log(2), rel=1e-5)
        assert cols["kl_to_final_bits"][i] == pytest.approx(
            float(torch.distributions.kl_divergence(dist, ref)) / math.log(2), rel=1e-4, abs=1e-6)
        assert cols["kl_final_to_layer_bits"][i] == pytest.approx(
            float(torch.distributions.kl_divergence(ref, dist)) / math.log(2), rel=1e-4, abs=1e-6)
        assert cols["answer_rank"][i] == int((z[i] > z[i, 7]).sum()) + 1
        assert cols["top1_id"][i] == int(z[i].argmax())


def test_lens_columns_check_shapes():
    with pytest.raises(ValueError, match=r"expected \[n_layers \+ 1, vocab\] and \[vocab\]"):
        lens_columns(torch.zeros(3, 5), torch.zeros(4), 0)


def test_lens_milestones():
    cols = {"answer_rank": [40, 9, 4, 1, 2], "kl_to_final_bits": [5.0, 2.0, 0.9, 0.4, 0.0]}
    assert lens_milestones(cols, (10, 5, 1), (1.0, 0.5)) == {
        "L_semantic": 3, "first_rank_le": {"10": 1, "5": 2, "1": 3}, "first_kl_le": {"1p0": 2, "0p5": 3}}


def test_lens_summary_leaves_out_the_final_layer():
    per_prompt = [{"kl_final_to_layer_bits": [4.0, 2.0, 0.0], "kl_to_final_bits": [7.0, 7.0, 0.0], "top1_id": [1, 9, 9]}]
    assert lens_summary(per_prompt, [9]) == {"mean_kl_final_to_lens_bits": 3.0, "top1_agreement": 0.5,
                                             "n_layer_prompts": 2}


@pytest.mark.parametrize("summaries, expected", [
    ({"norm": (9.0, 0.30), "raw": (35.0, 0.0)}, "norm"),
    ({"norm": (9.0, 0.30), "raw": (35.0, 0.0), "tuned": (2.0, 0.50)}, "tuned"),
    ({"norm": (9.0, 0.30), "tuned": (2.0, 0.10)}, "norm"),  # lower KL but it disagrees with the final head
    ({"norm": (9.0, 0.30), "tuned": (2.0, 0.26)}, "tuned"),  # within the slack of 0.05
    ({"norm": (9.0, 0.30), "a": (2.0, 0.4), "b": (2.0, 0.9)}, "a"),  # a tie keeps the run's order
])
def test_preferred_lens_rule(summaries, expected):
    data = {k: {"mean_kl_final_to_lens_bits": kl, "top1_agreement": agree} for k, (kl, agree) in summaries.items()}
    assert preferred_lens(data)["lens"] == expected


@pytest.mark.parametrize("spec, files, expected", [
    ("norm,raw", [], (("norm", "raw"), {})),
    ("raw", [], (("norm", "raw"), {})),  # the norm lens is always the reference
    ("raw,norm,raw", [], (("norm", "raw"), {})),
])
def test_parse_lenses(spec, files, expected):
    assert parse_lenses(spec, files) == expected


@pytest.mark.parametrize("spec, files, error", [
    ("norm,magic", [], r"unknown lens 'magic'"),
    ("norm,raw", ["raw"], r"expected NAME=PATH"),
    ("norm,raw", ["tuned=/nope"], r"lens 'tuned' is not in --lens norm,raw"),
    ("norm,raw", ["raw=/nope/x"], r"/nope/x does not exist"),
])
def test_parse_lenses_errors(spec, files, error):
    with pytest.raises(ProbeError, match=error):
        parse_lenses(spec, files)


@pytest.mark.slow
def test_raw_lens_table_matches_an_independent_unembedding(probe_run):
    """lens-raw.csv against the model's own lm_head applied to HF's hidden states (no norm), layers 0..n-1."""
    src = resolve_model("smollm2")
    model = AutoModelForCausalLM.from_pretrained(src.load_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(src.load_dir)
    ps = load_prompt_set()
    with torch.no_grad():
        out = model(tok(ps.text("germany", "orig"), return_tensors="pt").input_ids, output_hidden_states=True)
    final = torch.distributions.Categorical(logits=out.logits[0, -1].double())
    with open(probe_run / "smollm2" / "lens-raw.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["prompt_id"] == "germany" and r["variant"] == "orig"]
    assert len(rows) == model.config.num_hidden_layers + 1
    for layer in (0, 5, 15, 29):  # HF's last hidden state is already normed; the probe hooks the raw one
        with torch.no_grad():
            z = model.lm_head(out.hidden_states[layer][0, -1]).double()
        dist = torch.distributions.Categorical(logits=z)
        # fp32 lens vs float64 reference: 1e-4 relative, or 1e-5 bits near zero (layer 0 is almost one-hot)
        assert float(rows[layer]["entropy_bits"]) == pytest.approx(float(dist.entropy()) / math.log(2), rel=1e-4,
                                                                   abs=1e-5)
        kl = float(torch.distributions.kl_divergence(dist, final)) / math.log(2)
        assert float(rows[layer]["kl_to_final_bits"]) == pytest.approx(kl, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_run_with_a_tuned_lens_writes_its_table_and_report_section(tmp_path):
    """probe run --lens norm,raw,tuned: lens-tuned.csv against plain torch lm_head(norm(h + W h + b)) of HF's
    hidden states, the lens in probe.json, the preferred lens named by the rule, and a report that audits ok."""
    import json

    from probe.batch import run_batch
    from probe.lenses import Unembed
    from probe.models import load_model
    from probe.run import ProbeConfig
    from probe.surgery import discover
    from probe.tuned import TunedLens
    from reportgen.audit import audit_report
    from reportgen.build import build_reports

    lm = load_model("smollm2", device="cpu")
    parts = discover(lm.model)
    lens = TunedLens.identity(parts, Unembed.from_parts(parts, torch.device("cpu")), torch.device("cpu"), "smollm2")
    gen = torch.Generator().manual_seed(0)
    lens.weight = torch.randn(lens.weight.shape, generator=gen) * 0.01
    lens.bias = torch.randn(lens.bias.shape, generator=gen) * 0.01
    lens.save(tmp_path / "tuned")
    res = run_batch(["smollm2"], tmp_path / "run", load_prompt_set(), ProbeConfig(records=False,
                    lenses=("norm", "raw", "tuned")), device="cpu", progress=False,
                    lens_files={"tuned": tmp_path / "tuned"})
    assert not res.failures, res.failures
    model_dir = tmp_path / "run" / "smollm2"
    doc = json.loads((model_dir / "probe.json").read_text())
    assert doc["lenses"]["order"] == ["norm", "raw", "tuned"] and doc["lenses"]["by_lens"]["tuned"]["file"] == "tuned"
    assert doc["measurement_guidance"]["preferred_lens"] == doc["lenses"]["preferred"]["lens"]

    model, tok = lm.model, lm.tokenizer
    with torch.no_grad():
        out = model(tok(load_prompt_set().text("germany", "orig"), return_tensors="pt").input_ids,
                    output_hidden_states=True)
        final = torch.distributions.Categorical(logits=out.logits[0, -1].double())
        with open(model_dir / "lens-tuned.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["prompt_id"] == "germany" and r["variant"] == "orig"]
        for layer in (0, 12, 29):
            h = out.hidden_states[layer][0, -1]
            z = model.lm_head(model.model.norm(h + h @ lens.weight[layer].T + lens.bias[layer])).double()
            dist = torch.distributions.Categorical(logits=z)
            assert float(rows[layer]["entropy_bits"]) == pytest.approx(float(dist.entropy()) / math.log(2), rel=1e-4,
                                                                       abs=1e-5)
            kl = float(torch.distributions.kl_divergence(dist, final)) / math.log(2)
            assert float(rows[layer]["kl_to_final_bits"]) == pytest.approx(kl, rel=1e-4, abs=1e-5)
    out_dir = tmp_path / "reports"
    assert [o.error for o in build_reports(tmp_path / "run", out_dir)] == [None]
    text = (out_dir / "smollm2.md").read_text()
    assert "| [tuned](" in text and "Preferred lens by rule: [" in text
    assert not audit_report(out_dir / "smollm2.md").failed


@pytest.mark.slow
def test_every_lens_has_its_own_records(probe_run):
    """records-raw.csv: the raw lens's top-1 at the last position of each layer is lens-raw.csv's top-1 there."""
    with open(probe_run / "smollm2" / "records-raw.csv", newline="") as f:
        records = [r for r in csv.DictReader(f) if r["prompt_id"] == "germany" and r["variant"] == "orig"]
    with open(probe_run / "smollm2" / "lens-raw.csv", newline="") as f:
        table = [r for r in csv.DictReader(f) if r["prompt_id"] == "germany" and r["variant"] == "orig"]
    last_pos = max(int(r["pos"]) for r in records)
    at_next = {int(r["layer"]): r for r in records if int(r["pos"]) == last_pos}
    assert len(at_next) == len(table) == 31
    for row in table:
        assert at_next[int(row["layer"])]["top1_token"] == row["top1_token"]
        assert float(at_next[int(row["layer"])]["entropy_bits"]) == pytest.approx(float(row["entropy_bits"]),
                                                                                rel=1e-5, abs=1e-6)
