"""The probe on both real bundled models, checked against an independent plain-torch computation."""

import csv
import json
import math
from pathlib import Path

import jsonschema
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from probe.models import resolve_model
from probe.prompts import load_prompt_set
from tests.conftest import BUNDLED_MODELS

pytestmark = pytest.mark.slow
SCHEMA = Path(__file__).parents[1] / "probe" / "schema" / "probe.schema.json"


def load_json(run: Path, alias: str) -> dict:
    return json.loads((run / alias / "probe.json").read_text())


def pure_rows(run: Path, alias: str, prompt_id="germany", variant="orig") -> list[dict]:
    with open(run / alias / "pure-next-token.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["prompt_id"] == prompt_id and r["variant"] == variant]


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_last_layer_gate_passes(probe_run, alias):
    gate = load_json(probe_run, alias)["last_layer_gate"]
    assert gate["passed"] is True
    assert gate["max_kl_bits"] < 1e-3
    assert all(g["top1_agree"] for g in gate["per_prompt"])


def test_smollm2_answers_berlin(probe_run):
    final = load_json(probe_run, "smollm2")["headline"]["final"]
    assert final["top1_token"] == " Berlin"
    assert final["answer_rank"] == 1
    assert 0.55 < final["p_top1"] < 0.7


def independent_layers(alias: str, text: str, answer_id: int) -> list[dict]:
    """Entropy, answer rank and KL to final per layer with plain torch and the model's own modules."""
    src = resolve_model(alias)
    model = AutoModelForCausalLM.from_pretrained(src.load_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(src.load_dir)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        hs = out.hidden_states
        # hs[-1] is already final-normed by HF; every earlier entry still needs the final norm.
        logits = [model.lm_head(model.model.norm(h[0, -1])) for h in hs[:-1]] + [model.lm_head(hs[-1][0, -1])]
    assert torch.allclose(logits[-1], out.logits[0, -1], atol=1e-4)
    final = torch.distributions.Categorical(logits=logits[-1].double())
    rows = []
    for z in logits:
        dist = torch.distributions.Categorical(logits=z.double())
        rows.append({
            "entropy_bits": float(dist.entropy()) / math.log(2),
            "answer_rank": int((z > z[answer_id]).sum()) + 1,
            "kl_to_final_bits": float(torch.distributions.kl_divergence(dist, final)) / math.log(2),
        })
    return rows


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_layers_match_independent_computation(probe_run, alias):
    doc = load_json(probe_run, alias)
    ps = load_prompt_set()
    expected = independent_layers(alias, ps.text("germany", "orig"), doc["gold"]["germany/orig"]["first_id"])
    got = pure_rows(probe_run, alias)
    assert len(got) == len(expected) == doc["model"]["n_layers"] + 1
    for layer, (g, e) in enumerate(zip(got, expected)):
        assert int(g["answer_rank"]) == e["answer_rank"], layer
        for key in ("entropy_bits", "kl_to_final_bits"):
            # 1e-4 absolute, relative for values above 1 bit (the CSV keeps 7 significant digits).
            assert abs(float(g[key]) - e[key]) <= 1e-4 * max(1.0, abs(e[key])), (layer, key, g[key], e[key])


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_csv_records_are_physical_lines(probe_run, alias):
    manifest = json.loads((probe_run / alias / "manifest.json").read_text())
    csvs = [a for a in manifest["artifacts"] if a["kind"] == "csv"]
    assert {a["path"] for a in csvs} >= {"pure-next-token.csv", "records.csv", "raw-vs-norm.csv",
                                        "raw-vs-norm-window.csv", "milestones.csv"}
    for art in csvs:
        path = probe_run / alias / art["path"]
        physical = path.read_bytes().count(b"\n")
        with open(path, newline="") as f:
            records = list(csv.reader(f))
        assert len(records) == physical == art["rows"] + 1, art["path"]


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_json_validates_against_schema_and_one_scalar_per_line(probe_run, alias):
    doc = load_json(probe_run, alias)
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    for n, line in enumerate((probe_run / alias / "probe.json").read_text().splitlines(), 1):
        body = line.strip().rstrip(",")
        if body and body[-1] not in "{}[" and not body.endswith("[]") and not body.endswith("{}"):
            assert body.count('": ') <= 1 and not body.startswith("["), f"probe.json:{n}: {line!r}"


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_manifest_validates_and_hashes_match(probe_run, alias):
    import hashlib

    manifest = json.loads((probe_run / alias / "manifest.json").read_text())
    jsonschema.validate(manifest, json.loads((SCHEMA.parent / "manifest.schema.json").read_text()))
    for art in manifest["artifacts"]:
        data = (probe_run / alias / art["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == art["sha256"] and len(data) == art["bytes"]
        assert data.count(b"\n") == art["lines"]


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_milestones_never_null_by_accident(probe_run, alias):
    """Regression for the seed's always-null top-2/strong gates: every milestone the data supports is set."""
    doc = load_json(probe_run, alias)
    for key, m in doc["milestones"].items():
        rows = pure_rows(probe_run, alias, *key.split("/"))
        rank1 = [int(r["answer_rank"]) == 1 for r in rows]
        gaps = [float(r["answer_logit_gap"]) for r in rows]
        assert (m["L_semantic"] is None) == (not any(rank1)), key
        if any(rank1):
            assert m["first_rank_le"]["1"] == m["L_semantic"] == rank1.index(True)
        top2 = [a and g >= 0.5 for a, g in zip(rank1, gaps)]
        assert (m["gates"]["L_semantic_top2_ok"] is None) == (not any(top2)), key
        # KL to final is 0 at the last layer, so KL milestones always exist.
        assert m["first_kl_le"]["1p0"] is not None and m["first_kl_le"]["0p5"] is not None


def test_smollm2_copy_collapse_at_layer0_is_flagged_as_tied(probe_run):
    doc = load_json(probe_run, "smollm2")
    assert doc["model"]["tied_embeddings"] is True
    assert doc["headline"]["milestones"]["L_copy"] == 0
    assert doc["surface"]["layer0_copy_is_tied_embedding_artifact"] is True
    assert "layer0_copy_from_tied_embeddings" in doc["measurement_guidance"]["reasons"]


def test_gemma_architecture_quirks_recorded(probe_run):
    doc = load_json(probe_run, "gemma3-270m")
    assert doc["model"]["final_norm"]["gamma_offset"] == 1.0
    assert doc["model"]["embed_scale"] == pytest.approx(640 ** 0.5, rel=1e-3)
    assert doc["model"]["final_logit_softcapping"] is None and doc["model"]["softcap_applied"] is False


def test_second_run_is_byte_identical(probe_run, tmp_path):
    from probe.batch import run_batch
    from probe.run import ProbeConfig

    res = run_batch(["smollm2"], tmp_path, load_prompt_set(), ProbeConfig(), device="cpu", progress=False)
    assert not res.failures
    names = sorted(p.name for p in (probe_run / "smollm2").iterdir() if p.name != "manifest.json")
    assert len(names) >= 6
    for name in names:
        assert (tmp_path / "smollm2" / name).read_bytes() == (probe_run / "smollm2" / name).read_bytes(), name
    m1 = json.loads((probe_run / "smollm2" / "manifest.json").read_text())
    m2 = json.loads((tmp_path / "smollm2" / "manifest.json").read_text())
    assert m1["artifacts"] == m2["artifacts"]


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_control_margin_is_p_control_minus_p_primary(probe_run, alias):
    """Issue 8: the margin's sign, checked against the model's own final head on the control prompt."""
    doc = load_json(probe_run, alias)
    ps = load_prompt_set()
    control, primary = doc["gold"][f"{ps.control}/orig"]["first_id"], doc["gold"][f"{ps.primary}/orig"]["first_id"]
    src = resolve_model(alias)
    model = AutoModelForCausalLM.from_pretrained(src.load_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(src.load_dir)
    with torch.no_grad():
        p = torch.softmax(model(tok(ps.text(ps.control, "orig"), return_tensors="pt").input_ids).logits[0, -1], -1)
    expected = float(p[control] - p[primary])
    assert abs(doc["control"]["final_control_margin"] - expected) < 1e-5
    rows = pure_rows(probe_run, alias, prompt_id=ps.control)
    strong = [int(r["layer"]) for r in rows if float(r["control_margin"]) > 0 and r["is_answer"] == "True"
              and float(r["answer_logit_gap"]) >= 0.5]
    assert doc["control"]["first_control_strong_pos"] == (strong[0] if strong else None)


def test_strong_control_onset_is_attainable(probe_run):
    """With the sign fixed, a control answer on top with a clear gap is a strong onset (Gemma-3: layer 16)."""
    assert load_json(probe_run, "gemma3-270m")["control"]["first_control_strong_pos"] is not None


@pytest.mark.parametrize("alias", BUNDLED_MODELS)
def test_host_facts_stay_out_of_the_hashed_artifacts(probe_run, alias):
    """A rerun on another machine must give byte-identical artifacts: the kernel and thread count vary by host."""
    env = load_json(probe_run, alias)["environment"]
    assert "platform" not in env and "num_threads" not in env
    host = json.loads((probe_run / alias / "manifest.json").read_text())["host"]
    assert host["platform"] and host["num_threads"] >= 1
