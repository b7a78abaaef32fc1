"""Jacobian lens: the fitted J_l against torch.autograd.functional.jacobian, decode, file format, a real fit."""

import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from probe.capture import capture
from probe.errors import ProbeError
from probe.jacobian import (
    LENS_FACTORIES,
    JacobianLens,
    Jacobians,
    fit_jacobians,
    load_jacobians,
    save_jacobians,
)
from probe.lenses import Unembed
from probe.surgery import discover

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    """A random 3-layer Llama (d_model 16) with weights big enough that J_l is far from the identity."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=64, initializer_range=0.3,
                      attn_implementation="eager")
    model = LlamaForCausalLM(cfg).eval()
    return model, discover(model)


def run_from(model, layer, h):
    """The last block's output [T, d] as a function of the residual h [T, d] entering block `layer`.

    Independent of the probe: calls the blocks directly with an explicit causal mask and rotary embeddings.
    """
    t = h.shape[0]
    x, pos = h[None], torch.arange(t)[None]
    pe = model.model.rotary_emb(x, pos)
    mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
    for block in model.model.layers[layer:]:
        out = block(x, attention_mask=mask, position_embeddings=pe, position_ids=pos)
        x = out[0] if isinstance(out, tuple) else out
    return x[0]


def reference_jacobian(model, parts, ids, layer, skip_first):
    """mean over valid sources s of sum over valid targets t of d out_t / d h_s, by autograd.functional.jacobian."""
    cap = capture(model, parts, ids, CPU)
    h = cap.resid[layer].clone()
    assert torch.allclose(run_from(model, layer, h), cap.resid[-1], atol=1e-5)  # the function is the model's
    full = torch.autograd.functional.jacobian(lambda z: run_from(model, layer, z), h)  # [T, d, T, d]
    v = list(range(skip_first, len(ids) - 1))
    return full[v][:, :, v].sum(0).mean(1)  # sum over targets t, mean over sources s -> [d, d]


@pytest.mark.parametrize(("skip_first", "dim_batch"), [(1, 8), (0, 5), (2, 16)])
def test_fit_equals_autograd_jacobian(tiny, skip_first, dim_batch):
    model, parts = tiny
    prompts = [[1, 5, 9, 13, 2, 7, 30], [3, 44, 12, 8, 61]]
    jac = fit_jacobians(model, parts, prompts, [0, 1, 2], CPU, skip_first=skip_first, dim_batch=dim_batch)
    assert jac.source_layers == [0, 1, 2] and jac.n_prompts == 2 and jac.d_model == 16
    for layer in (0, 1, 2):
        want = sum(reference_jacobian(model, parts, p, layer, skip_first) for p in prompts) / len(prompts)
        assert torch.allclose(jac.J[layer], want, atol=1e-5), (layer, (jac.J[layer] - want).abs().max())
        assert not torch.allclose(want, torch.eye(16), atol=0.1)  # the test would not notice a plain identity
    assert all(p.requires_grad for p in model.parameters())  # restored


def test_fit_of_a_layer_subset_matches_the_full_fit(tiny):
    model, parts = tiny
    prompts = [[1, 5, 9, 13, 2, 7, 30]]
    full = fit_jacobians(model, parts, prompts, None, CPU)
    part = fit_jacobians(model, parts, prompts, [2], CPU, dim_batch=3)
    assert list(full.J) == [0, 1, 2] and list(part.J) == [2]
    assert torch.allclose(full.J[2], part.J[2], atol=1e-6)


def test_fit_errors(tiny):
    model, parts = tiny
    with pytest.raises(ProbeError, match=r"layers \[3\]: fit source layers must lie in 0\.\.2"):
        fit_jacobians(model, parts, [[1, 2, 3, 4]], [1, 3], CPU)
    with pytest.raises(ProbeError, match=r"prompt\(s\) of 3 tokens .* skip_first=2: each needs at least 4 tokens"):
        fit_jacobians(model, parts, [[1, 2, 3, 4, 5], [1, 2, 3]], [1], CPU, skip_first=2)
    with pytest.raises(ProbeError, match="no prompts"):
        fit_jacobians(model, parts, [], [1], CPU)


def test_decode_is_lm_head_of_norm_of_jh(tiny):
    model, parts = tiny
    torch.manual_seed(1)
    mats = {0: torch.randn(16, 16), 2: torch.randn(16, 16)}
    lens = JacobianLens(Jacobians(mats, 1, 16), model.model.norm, parts.final_norm_info,
                        Unembed.from_parts(parts, CPU), parts.n_layers, CPU)
    h = torch.randn(4, 16)
    with torch.no_grad():
        for layer in (0, 2):
            want = model.lm_head(model.model.norm(h @ mats[layer].T))
            assert torch.allclose(lens.decode(h, layer), want, atol=1e-5)
        assert torch.allclose(lens.decode(h, 3), model.lm_head(model.model.norm(h)), atol=1e-5)  # identity
    assert lens.has_layer(3) and not lens.has_layer(1)
    assert lens.normalizer(0) == parts.final_norm_info
    with pytest.raises(ProbeError, match=r"layer 1 was not fitted; fitted layers \[0, 2\]"):
        lens.decode(h, 1)


def test_file_round_trip_fp16_and_factory(tiny, tmp_path):
    model, parts = tiny
    jac = fit_jacobians(model, parts, [[1, 5, 9, 13, 2, 7, 30]], [0, 2], CPU, meta={"model": "tiny"})
    path = save_jacobians(tmp_path / "j.pt", jac)
    raw = torch.load(path, weights_only=True)
    assert raw["J"][0].dtype == torch.float16 and raw["source_layers"] == [0, 2] and raw["d_model"] == 16
    assert raw["n_prompts"] == 1 and raw["layer_index"] == "probe"
    back = load_jacobians(path, parts)
    assert back.source_layers == [0, 2] and back.meta["model"] == "tiny"
    for layer in (0, 2):
        assert torch.equal(back.J[layer], jac.J[layer].half().float())
        assert torch.allclose(back.J[layer], jac.J[layer], rtol=1e-3, atol=1e-3)
    lens = LENS_FACTORIES["jacobian"](parts, Unembed.from_parts(parts, CPU), CPU, "final_norm", path=path)
    h = torch.randn(3, 16)
    with torch.no_grad():
        assert torch.allclose(lens.decode(h, 2), model.lm_head(model.model.norm(h @ back.J[2].T)), atol=1e-5)
    with pytest.raises(ProbeError, match="needs a fitted file"):
        LENS_FACTORIES["jacobian"](parts, Unembed.from_parts(parts, CPU), CPU, "final_norm", path=None)


def test_reference_convention_files_are_shifted(tiny, tmp_path):
    _, parts = tiny
    m = torch.randn(16, 16).half()
    torch.save({"J": {1: m}, "n_prompts": 5, "source_layers": [1], "d_model": 16}, tmp_path / "ref.pt")
    back = load_jacobians(tmp_path / "ref.pt", parts)
    assert back.source_layers == [2] and torch.equal(back.J[2], m.float())  # output of block 1 = probe layer 2


@pytest.mark.parametrize(("doc", "expected"), [
    ({"J": {0: torch.zeros(8, 8)}, "n_prompts": 1, "source_layers": [0], "d_model": 8, "layer_index": "probe"},
     r"j\.pt: d_model 8 but this model \(LlamaForCausalLM\) has d_model 16"),
    ({"J": {4: torch.zeros(16, 16)}, "n_prompts": 1, "source_layers": [4], "d_model": 16, "layer_index": "probe"},
     r"j\.pt: layer 4 is outside this model's layers 0\.\.3"),
    ({"J": {3: torch.zeros(16, 16)}, "n_prompts": 1, "source_layers": [3], "d_model": 16},
     r"j\.pt: layer 3 is outside .* keys are block indices"),
    ({"J": {1: torch.zeros(16, 8)}, "n_prompts": 1, "source_layers": [1], "d_model": 16, "layer_index": "probe"},
     r"j\.pt: J\[1\] has shape \(16, 8\), expected \(16, 16\)"),
    ({"J": {1: torch.zeros(16, 16)}, "n_prompts": 1, "source_layers": [0], "d_model": 16, "layer_index": "probe"},
     r"j\.pt: source_layers \[0\] do not match the keys of J \[1\]"),
    ({"weights": 1}, r"j\.pt: expected a dict with 'J'"),
])
def test_mismatch_errors_name_the_file(tiny, tmp_path, doc, expected):
    _, parts = tiny
    torch.save(doc, tmp_path / "j.pt")
    with pytest.raises(ProbeError, match=expected):
        load_jacobians(tmp_path / "j.pt", parts)


def test_missing_and_unreadable_files(tiny, tmp_path):
    _, parts = tiny
    with pytest.raises(ProbeError, match=r"nope\.pt: no such Jacobian-lens file"):
        load_jacobians(tmp_path / "nope.pt", parts)
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(ProbeError, match=r"bad\.pt: not a readable torch.save file"):
        load_jacobians(tmp_path / "bad.pt", parts)


@pytest.mark.slow
def test_real_fit_on_smollm2(tmp_path):
    from probe.models import load_model

    lm = load_model("smollm2", device="cpu")
    parts = discover(lm.model)
    ids = lm.tokenizer("The capital of France is")["input_ids"][:8]
    assert len(ids) <= 8
    t0 = time.perf_counter()
    jac = fit_jacobians(lm.model, parts, [ids], [22, 29], CPU)
    print(f"\nSmolLM2 Jacobian fit, layers 22 and 29, {len(ids)} tokens: {time.perf_counter() - t0:.1f} s")
    path = save_jacobians(tmp_path / "smollm2.pt", jac)
    lens = LENS_FACTORIES["jacobian"](parts, Unembed.from_parts(parts, CPU), CPU, path=path)
    cap = capture(lm.model, parts, ids, CPU)
    n = parts.n_layers
    assert torch.allclose(lens.decode(cap.resid[n], n), cap.logits, atol=1e-3)  # the model's own logits
    for layer in (22, 29):
        z = lens.decode(cap.resid[layer], layer)
        assert z.shape == cap.logits.shape and torch.isfinite(z).all()
    # One block before the end, J is close to (but not) the identity; the lens agrees with the head on NEXT.
    assert lens.decode(cap.resid[29], 29)[-1].argmax() == cap.logits[-1].argmax()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny Llama with the bundled SmolLM2 vocabulary, saved with its tokenizer (a loadable model dir)."""
    from transformers import AutoTokenizer

    from probe.models import resolve_model

    d = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    LlamaForCausalLM(cfg).save_pretrained(d)
    AutoTokenizer.from_pretrained(resolve_model("smollm2").load_dir).save_pretrained(d)
    return d


def fit_cli(argv):
    import argparse

    from probe.fit import add_fit_parser  # the real `probe fit` command, with its jacobian kind

    p = argparse.ArgumentParser(prog="probe")
    add_fit_parser(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_fit_writes_a_loadable_file_and_prints_the_estimate_first(tiny_dir, tmp_path, capsys):
    from probe.corpus import load_file
    from probe.models import load_model

    out = tmp_path / "lens" / "tiny.pt"
    corpus = tmp_path / "corpus.txt"
    docs = ["The capital of France is Paris.", "Berlin is the capital of Germany.", "Hi", "Rome is in Italy, a country.",
            "Madrid lies in the middle of Spain.", "Lisbon is by the sea in Portugal.", "Vienna is on the Danube.",
            "Oslo sits at the end of a fjord.", "Athens is old.", "Prague has a castle on a hill."]
    corpus.write_text("\n\n".join(docs) + "\n")
    rc = fit_cli(["fit", "jacobian", "--model", str(tiny_dir), "--out", str(out), "--corpus", str(corpus),
                  "--prompts", "2", "--max-tokens", "6", "--layers", "0,2", "--device", "cpu", "--quiet",
                  "--dim-batch", "5", "--skip-first", "2"])
    assert rc == 0
    cap = capsys.readouterr()
    assert "2 prompt(s), 12 tokens" in cap.err and "4 backward passes of batch 5" in cap.err
    assert "estimated" in cap.err and "per 128-token prompt" in cap.err
    assert f"wrote {out}" in cap.out
    lm = load_model(str(tiny_dir), device="cpu")
    parts = discover(lm.model)
    jac = load_jacobians(out, parts)
    assert jac.source_layers == [0, 2] and jac.n_prompts == 2 and jac.meta["skip_first"] == 2
    assert jac.meta["corpus_source"] == str(corpus) and len(jac.meta["documents"]) == 2
    texts = {d.id: d.text for d in load_file(corpus).documents}
    ids = [lm.tokenizer(texts[i])["input_ids"][:6] for i in jac.meta["documents"]]
    want = fit_jacobians(lm.model, parts, ids, [0, 2], CPU, skip_first=2)
    assert torch.allclose(jac.J[2], want.J[2], atol=2e-3)  # fp16 storage


@pytest.mark.parametrize(("argv", "expected"), [
    (["--layers", "1,x"], r"--layers 1,x: 'x' is not a layer or a range"),
    (["--layers", "2-3"], r"layers \[3\]: fit source layers must lie in 0\.\.2"),
    (["--prompts", "0"], r"--prompts and --dim-batch must be >= 1"),
])
def test_cli_errors(tiny_dir, tmp_path, argv, expected):
    with pytest.raises(ProbeError, match=expected):
        fit_cli(["fit", "jacobian", "--model", str(tiny_dir), "--out", str(tmp_path / "x.pt"), "--device", "cpu",
                 "--quiet", *argv])


def test_parse_layers_ranges():
    from probe.jacobian_fit import parse_layers

    assert parse_layers("0, 10,20-22") == [0, 10, 20, 21, 22] and parse_layers(None) is None
