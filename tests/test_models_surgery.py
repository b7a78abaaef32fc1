"""Model resolution errors, architecture discovery, soft-cap and the next_ln1 option on real and tiny models."""

import json

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertModel,
    Gemma2Config,
    Gemma2ForCausalLM,
    OPTConfig,
    OPTForCausalLM,
)

from probe.batch import run_batch
from probe.errors import ProbeError
from probe.models import estimate_bytes, load_model, resolve_model
from probe.prompts import load_prompt_set
from probe.run import ProbeConfig
from probe.surgery import discover


@pytest.mark.parametrize(("spec", "expected_error"), [
    ("no-such-alias", r"unknown model 'no-such-alias': expected a bundled alias \(gemma3-270m, smollm2\)"),
    ("someorg/not-downloaded-model", r"not available offline"),
    ("/definitely/missing.gguf", r"/definitely/missing.gguf: no such GGUF file"),
    ("./not/a/dir", r"unknown model './not/a/dir'"),
])
def test_resolve_errors(spec, expected_error):
    with pytest.raises(ProbeError, match=expected_error):
        resolve_model(spec)


def test_not_a_causal_lm(tmp_path):
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         vocab_size=100)).save_pretrained(tmp_path)
    with pytest.raises(ProbeError, match=r"\['BertModel'\] are not causal LMs"):
        load_model(str(tmp_path), device="cpu")


def test_directory_without_config(tmp_path):
    with pytest.raises(ProbeError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_memory_estimate_from_checkpoint_header():
    src = resolve_model("smollm2")
    n = estimate_bytes(__import__("pathlib").Path(src.load_dir), torch.float32) / 4
    assert 134e6 < n < 136e6  # SmolLM2-135M with tied embeddings stored once


def test_not_enough_memory_is_refused_before_loading(monkeypatch):
    import probe.models as models

    monkeypatch.setattr(models, "available_bytes", lambda device: 10 * 2**20)  # the machine has 10 MiB free
    with pytest.raises(ProbeError, match=r"needs about 0\.5 GiB at torch.float32 but cpu has 0\.0 GiB free"):
        load_model("smollm2", device="cpu")


def test_unknown_architecture_names_class_and_supported(tmp_path):
    m = OPTForCausalLM(OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                                 vocab_size=64, word_embed_proj_dim=16))
    with pytest.raises(ProbeError, match=r"unsupported architecture OPTForCausalLM \(model_type='opt'\); "
                                         r"supported model types: gemma, gemma2"):
        discover(m)


@pytest.fixture(scope="module")
def tiny_gemma2(tmp_path_factory):
    """A random Gemma-2 with a tiny final-logit soft-cap, saved with the bundled SmolLM2 tokenizer."""
    d = tmp_path_factory.mktemp("gemma2")
    torch.manual_seed(0)
    cfg = Gemma2Config(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=32, final_logit_softcapping=2.0,
                       max_position_embeddings=256)
    model = Gemma2ForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(50)  # big logits, so the cap matters
    model.save_pretrained(d)
    AutoTokenizer.from_pretrained(resolve_model("smollm2").load_dir).save_pretrained(d)
    return d


@pytest.mark.slow
def test_softcap_applied_makes_the_gate_pass(tiny_gemma2, tmp_path):
    res = run_batch([str(tiny_gemma2)], tmp_path, load_prompt_set(), ProbeConfig(records=False), device="cpu",
                    progress=False)
    assert not res.failures, res.failures
    doc = json.loads(next(tmp_path.glob("*/probe.json")).read_text())
    assert doc["model"]["final_logit_softcapping"] == 2.0 and doc["model"]["softcap_applied"] is True
    assert doc["last_layer_gate"]["passed"] is True
    # Independent check that the cap matters: the head without tanh disagrees with the model's logits.
    lm = load_model(str(tiny_gemma2), device="cpu")
    ids = lm.tokenizer("The capital of Germany is", return_tensors="pt").input_ids
    with torch.no_grad():
        out = lm.model(ids, output_hidden_states=True)
        uncapped = lm.model.lm_head(out.hidden_states[-1][0, -1])
    p, q = torch.log_softmax(uncapped, -1), torch.log_softmax(out.logits[0, -1], -1)
    assert float((p.exp() * (p - q)).sum()) > 1e-3


@pytest.mark.slow
def test_next_ln1_strategy_is_recorded_and_gate_still_passes(tmp_path):
    res = run_batch(["smollm2"], tmp_path, load_prompt_set(), ProbeConfig(norm_strategy="next_ln1", records=False),
                    device="cpu", progress=False)
    assert not res.failures
    doc = json.loads((tmp_path / "smollm2" / "probe.json").read_text())
    per = doc["normalization"]["per_layer"]
    assert doc["normalization"]["strategy"] == "next_ln1"
    assert per[0]["module"] == "model.layers.0.input_layernorm"
    assert per[5]["module"] == "model.layers.5.input_layernorm"
    assert per[-1]["module"] == "model.norm"
    assert doc["last_layer_gate"]["passed"] is True
