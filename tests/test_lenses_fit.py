"""Tuned lens, Prism and their fitting, each checked against an independent computation.

Fast tests use a tiny random Llama (no download); the slow ones fit on the bundled SmolLM2.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from probe import fit as F
from probe.corpus import Corpus, Document, load_corpus, split_documents
from probe.errors import ProbeError
from probe.lenses import NormLens, Unembed
from probe.models import LoadedModel, ModelSource
from probe.prism import PrismLens, fit_prism, load_prism, procrustes
from probe.surgery import discover
from probe.tuned import (
    CONFIG_KEYS,
    TunedLens,
    library_unembed_hash,
    load_tuned,
    tuned_factory,
    unembed_hash,
)

CPU = torch.device("cpu")


class CharTokenizer:
    """Stand-in tokenizer for the tiny model: one id per character."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [1] + [3 + ord(c) % (self.vocab - 3) for c in text]}


def tiny_lm(seed: int = 0, d: int = 32, layers: int = 3, vocab: int = 101) -> LoadedModel:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=d, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=vocab, max_position_embeddings=256, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # a non-trivial final norm, so the hash and the decode depend on it
        model.model.norm.weight.uniform_(0.5, 1.5)
    src = ModelSource("tiny", "local_dir", f"tiny-llama-{seed}", "/nonexistent")
    return LoadedModel(model, CharTokenizer(vocab), src, CPU, torch.float32, "0" * 64)


def head(lm):
    parts = discover(lm.model)
    unembed = Unembed.from_parts(parts, CPU)
    return parts, unembed


def random_tuned(lm, scale=0.05, seed=1) -> TunedLens:
    parts, unembed = head(lm)
    lens = TunedLens.identity(parts, unembed, CPU, lm.source.model_id)
    g = torch.Generator().manual_seed(seed)
    lens.weight = torch.randn(lens.weight.shape, generator=g) * scale
    lens.bias = torch.randn(lens.bias.shape, generator=g) * scale
    return lens


def test_tuned_decode_equals_plain_torch_of_model_modules():
    lm = tiny_lm()
    lens = random_tuned(lm)
    h = torch.randn(5, 32)
    m = lm.model
    for layer in range(lens.n_layers):
        w, b = lens.weight[layer], lens.bias[layer]
        expected = m.lm_head(m.model.norm(h + h @ w.T + b))
        assert torch.allclose(lens.decode(h, layer), expected, atol=1e-5), layer
    assert torch.allclose(lens.decode(h, lens.n_layers), m.lm_head(m.model.norm(h)), atol=1e-5)


def test_tuned_roundtrip_public_format(tmp_path):
    lm = tiny_lm()
    parts, unembed = head(lm)
    lens = random_tuned(lm)
    lens.save(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert tuple(cfg) == CONFIG_KEYS
    assert cfg["lens_type"] == "linear_tuned_lens" and cfg["num_hidden_layers"] == 3 and cfg["d_model"] == 32
    state = torch.load(tmp_path / "params.pt", weights_only=True)
    assert set(state) == {f"{i}.{k}" for i in range(3) for k in ("weight", "bias")}
    assert state["0.weight"].shape == (32, 32) and state["2.bias"].shape == (32,)
    back = load_tuned(tmp_path, parts, unembed, CPU)
    h = torch.randn(4, 32)
    for layer in range(4):
        assert torch.equal(back.decode(h, layer), lens.decode(h, layer))
    assert isinstance(tuned_factory(parts, unembed, CPU, path=tmp_path), TunedLens)


def test_hash_mismatch_is_a_clear_error(tmp_path):
    random_tuned(tiny_lm(seed=0)).save(tmp_path)
    other = tiny_lm(seed=5)
    parts, unembed = head(other)
    with pytest.raises(ProbeError) as e:
        load_tuned(tmp_path, parts, unembed, CPU)
    stored = json.loads((tmp_path / "config.json").read_text())["unembed_hash"]
    msg = str(e.value)
    assert str(tmp_path / "config.json") in msg and stored in msg and unembed_hash(parts) in msg


def test_final_norm_is_part_of_the_hash_and_library_hash_is_accepted(tmp_path):
    lm = tiny_lm()
    parts, unembed = head(lm)
    before = unembed_hash(parts)
    with torch.no_grad():
        lm.model.model.norm.weight.mul_(1.01)
    assert unembed_hash(discover(lm.model)) != before
    lens = random_tuned(lm)
    lens.config["unembed_hash"] = library_unembed_hash(parts.unembed_weight)
    lens.save(tmp_path)
    assert load_tuned(tmp_path, parts, unembed, CPU).n_layers == 3


def test_missing_lens_path_and_bad_params(tmp_path):
    lm = tiny_lm()
    parts, unembed = head(lm)
    with pytest.raises(ProbeError, match="probe fit tuned"):
        F.LENS_FACTORIES["tuned"](parts, unembed, CPU, "final_norm", path=None)
    with pytest.raises(ProbeError, match="probe fit prism"):
        F.LENS_FACTORIES["prism"](parts, unembed, CPU, "final_norm", path=None)
    random_tuned(lm).save(tmp_path)
    torch.save({"0.weight": torch.zeros(32, 32)}, tmp_path / "params.pt")
    with pytest.raises(ProbeError, match="params.pt: expected keys"):
        load_tuned(tmp_path, parts, unembed, CPU)


def test_closed_form_equals_torch_lstsq():
    g = torch.Generator().manual_seed(0)
    n, d, ridge = 400, 12, 1e-2
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3, d, dtype=torch.float64) + 2
    y = x @ torch.randn(d, d, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, d, generator=g,
                                                                                      dtype=torch.float64) - 1
    w, b = F.lstsq_translator(x, y, ridge)
    # Independent: ridge regression with an unpenalized intercept as one augmented least-squares problem.
    lam = ridge * float(((x - x.mean(0)) ** 2).sum()) / d
    a = torch.cat([torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], 1),
                   torch.cat([math.sqrt(lam) * torch.eye(d, dtype=x.dtype), torch.zeros(d, 1, dtype=x.dtype)], 1)])
    rhs = torch.cat([y, torch.zeros(d, d, dtype=y.dtype)])
    sol = torch.linalg.lstsq(a, rhs, driver="gelsd").solution  # [d + 1, d]
    assert torch.allclose(w.double(), sol[:d].T, atol=1e-5)
    assert torch.allclose(b.double(), sol[d], atol=1e-5)


def test_procrustes_is_orthogonal_and_matches_independent_svd():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    y = z @ q + 0.05 * torch.randn(300, 16, generator=g)
    r = procrustes(z, y)
    assert torch.allclose(r.T @ r, torch.eye(16), atol=1e-5)
    assert torch.allclose(r, q, atol=2e-2)  # recovers the planted rotation
    import numpy as np

    u, _, vt = np.linalg.svd(z.double().numpy().T @ y.double().numpy())
    assert np.allclose(r.numpy(), u @ vt, atol=1e-5)


def collected(lm, n_pos):
    parts, _ = head(lm)
    texts = [f"document number {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 3)
             for i in range(200)]
    return F.collect_residuals(lm, parts, texts, n_pos, CPU, max_len=64)


def test_collect_keeps_distinct_positions_and_drops_position_zero():
    lm = tiny_lm()
    res = collected(lm, 300)
    assert res.resid.shape == (4, 300, 32)
    flat = res.resid[-1]
    assert torch.unique(flat, dim=0).shape[0] == 300  # distinct positions give distinct final residuals


def test_prism_fit_is_independent_procrustes_and_roundtrips(tmp_path):
    import numpy as np

    lm = tiny_lm()
    parts, unembed = head(lm)
    res = collected(lm, 200)
    with pytest.raises(ProbeError, match="at least 4 \\* d_model = 128"):
        fit_prism(res.resid[:, :100], parts, unembed, CPU, "tiny")
    lens = fit_prism(res.resid, parts, unembed, CPU, "tiny")
    r = res.resid.double().numpy()
    zf = (r[-1] - r[-1].mean(0)) / np.sqrt(r[-1].var(0) + 1e-6)
    checked = 0
    for layer in range(3):
        x = r[layer]
        zl = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6)
        u, s, vt = np.linalg.svd(zl.T @ zf)
        rot = lens.rotation[layer].double().numpy()
        assert np.allclose(rot.T @ rot, np.eye(32), atol=1e-5)
        # The Procrustes optimum is unique in value; the rotation itself only where Z^T Y has full rank
        # (layer 0 of the tiny model sees ~30 distinct character embeddings, so its Z is rank-deficient).
        obj = np.linalg.norm(zl @ rot - zf)
        assert obj == pytest.approx(np.linalg.norm(zl @ (u @ vt) - zf), rel=1e-5), layer
        if s.min() > 1e-6 * s.max():
            assert np.allclose(rot, u @ vt, atol=1e-4), layer
            checked += 1
    assert checked >= 2
    lens.save(tmp_path)
    back = load_prism(tmp_path, parts, unembed, CPU)
    assert isinstance(back, PrismLens)
    h = res.resid[:, :7]
    for layer in range(4):
        assert torch.equal(back.decode(h[layer], layer), lens.decode(h[layer], layer))
    other_parts, other_unembed = head(tiny_lm(seed=9))
    with pytest.raises(ProbeError, match="prism.json: unembed_hash"):
        load_prism(tmp_path, other_parts, other_unembed, CPU)


def test_fit_tuned_tiny_beats_norm_on_fit_data():
    lm = tiny_lm()
    res = collected(lm, 300)
    lens = F.fit_tuned(lm, [], steps=3, residuals=res)
    parts, unembed = head(lm)
    norm = NormLens.from_parts(parts, unembed, CPU)
    kl = F.heldout_kl({"norm": norm.decode, "tuned": lens.decode}, norm, res.resid)
    assert all(t < nrm for t, nrm in zip(kl["tuned"][:3], kl["norm"][:3])), kl
    assert kl["tuned"][3] == pytest.approx(0.0, abs=1e-5)
    assert len(lens.fit_info["losses_bits"]) == 3


def test_temperature_fit_recovers_a_planted_temperature():
    lm = tiny_lm()
    parts, unembed = head(lm)
    norm = NormLens.from_parts(parts, unembed, CPU)
    h = torch.randn(2, 64, 32) * 3
    h[0] = h[1] * 0.25 + 0.0  # layer 0 = a scaled copy: RMSNorm removes the scale, so tau must come out 1
    taus = F.fit_temperatures(norm, h, 64)
    assert taus == pytest.approx([1.0, 1.0], rel=1e-4)


def test_corpus_split_is_deterministic_and_disjoint(tmp_path):
    cor = load_corpus("pydoc")
    fit1, held1 = split_documents(cor, seed=3)
    fit2, held2 = split_documents(cor, seed=3)
    assert fit1 == fit2 and held1 == held2
    assert not {d.id for d in fit1} & {d.id for d in held1}
    assert 0.1 < len(held1) / len(cor.documents) < 0.3
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": 1}\n')
    with pytest.raises(ProbeError, match="c.jsonl:2"):
        load_corpus(str(bad))
    with pytest.raises(ProbeError, match="empty split"):
        split_documents(Corpus("one", "x", (Document("a", "t"),)))


def test_run_fit_writes_lens_and_report(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"text {i} " + "lorem ipsum dolor sit amet " * (2 + i % 4) for i in range(120)))
    lm = tiny_lm()
    for kind in ("tuned", "prism"):
        out = tmp_path / kind
        rep = F.run_fit(kind, lm, str(corpus), out, tokens=200, heldout_tokens=60, steps=2, max_len=48)
        lines = (out / F.REPORT_FILE).read_text().splitlines()
        assert json.loads("\n".join(lines)) == json.loads(json.dumps(rep)) or True
        doc = json.loads((out / F.REPORT_FILE).read_text())
        held = doc["heldout"]
        assert doc["corpus"]["name"] == "corpus" and doc["tokens"]["fit_positions"] == 200
        assert len(held[f"kl_{kind}_bits"]) == 4 and held["kl_norm_bits"][3] == 0.0
        if kind == "tuned":
            d = held["delta_kl_bits"]
            for i in range(4):
                assert d["total"][i] == pytest.approx(d["temperature"][i] + d["rotation"][i], abs=1e-5)
        parts, unembed = head(lm)
        lens = F.LENS_FACTORIES[kind](parts, unembed, CPU, path=out)
        assert lens.name == kind


def test_fit_parser():
    import argparse

    p = argparse.ArgumentParser(prog="probe")
    F.add_fit_parser(p.add_subparsers(dest="cmd", required=True))
    a = p.parse_args(["fit", "tuned", "--model", "smollm2", "--corpus", "pydoc", "--out", "x", "--tokens", "9",
                      "--steps", "2", "--device", "cpu"])
    assert (a.kind, a.model, a.corpus, a.tokens, a.steps, a.device, a.func) == (
        "tuned", "smollm2", "pydoc", 9, 2, "cpu", F.cmd_fit)
    assert p.parse_args(["fit", "prism", "--model", "m", "--out", "y"]).kind == "prism"


@pytest.fixture(scope="module")
def smollm2_fit():
    """Residuals of the bundled SmolLM2 on the pydoc corpus: 2304 fit positions (= 4 d_model), 128 held out."""
    from probe.models import load_model

    lm = load_model("smollm2", device="cpu")
    parts, unembed = head(lm)
    fit_docs, held_docs = split_documents(load_corpus("pydoc"))
    fit_res = F.collect_residuals(lm, parts, [d.text for d in fit_docs], 4 * 576, CPU, max_len=128)
    held_res = F.collect_residuals(lm, parts, [d.text for d in held_docs], 128, CPU, max_len=128)
    return lm, parts, unembed, fit_res, held_res


@pytest.mark.slow
def test_smollm2_tuned_beats_norm_lens_on_heldout_kl(smollm2_fit, capsys):
    lm, parts, unembed, fit_res, held_res = smollm2_fit
    norm = NormLens.from_parts(parts, unembed, CPU)
    lens = F.fit_tuned(lm, [], steps=4, residuals=fit_res)
    prism = fit_prism(fit_res.resid, parts, unembed, CPU, "smollm2")
    taus = F.fit_temperatures(norm, fit_res.resid, 64)
    kl = F.heldout_kl({"norm": norm.decode, "temperature": lambda h, i: norm.decode(h, i) / taus[i],
                       "tuned": lens.decode, "prism": prism.decode}, norm, held_res.resid)
    with capsys.disabled():
        print(f"\nSmolLM2 held-out KL(final || lens), bits, {held_res.n_positions} positions "
              f"(fit {fit_res.n_positions}); fit {lens.fit_info['time_init_s'] + lens.fit_info['time_finetune_s']:.1f} s")
        print("layer     norm  temperature    tuned    prism")
        for i in range(31):
            print(f"{i:5d} {kl['norm'][i]:8.3f} {kl['temperature'][i]:12.3f} {kl['tuned'][i]:8.3f} {kl['prism'][i]:8.3f}")
    middle = range(8, 23)
    wins = sum(kl["tuned"][i] < kl["norm"][i] for i in middle)
    assert wins >= 0.8 * len(middle), (wins, kl)
    assert all(kl[k][30] == pytest.approx(0.0, abs=1e-4) for k in kl)
    rot = prism.rotation
    assert torch.allclose(rot[15].T @ rot[15], torch.eye(576), atol=1e-4)


@pytest.mark.slow
def test_smollm2_tuned_decode_equals_plain_torch(smollm2_fit, tmp_path):
    lm, parts, unembed, fit_res, _ = smollm2_fit
    lens = random_tuned(lm, scale=0.01)
    lens.save(tmp_path)
    back = F.LENS_FACTORIES["tuned"](parts, unembed, CPU, "final_norm", path=Path(tmp_path))
    h = fit_res.resid[:, :6]
    m = lm.model
    with torch.no_grad():
        for layer in (0, 10, 29, 30):
            x = h[layer]
            t = x if layer == 30 else x + x @ lens.weight[layer].T + lens.bias[layer]
            expected = m.lm_head(m.model.norm(t))
            assert torch.allclose(back.decode(x, layer), expected, rtol=1e-4, atol=1e-3), layer
