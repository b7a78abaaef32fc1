"""Distribution metrics against torch.distributions and closed forms."""

import math

import pytest
import torch

from probe.metrics import cosine, entropy_bits, js_bits, kl_bits, l1_prob_diff, logit_gap, rank_of


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 50, generator=g) * 3, torch.randn(4, 50, generator=g) * 3


def test_entropy_matches_torch_distributions(logits):
    p, _ = logits
    expected = torch.distributions.Categorical(logits=p.double()).entropy() / math.log(2)
    assert torch.allclose(entropy_bits(p).double(), expected, atol=1e-5)


def test_entropy_of_uniform_is_log2_vocab():
    assert float(entropy_bits(torch.zeros(1024))) == pytest.approx(10.0, abs=1e-5)


def test_kl_matches_torch_distributions_and_is_asymmetric(logits):
    p, q = logits
    dp, dq = torch.distributions.Categorical(logits=p.double()), torch.distributions.Categorical(logits=q.double())
    expected = torch.distributions.kl_divergence(dp, dq) / math.log(2)
    assert torch.allclose(kl_bits(p, q).double(), expected, atol=1e-4)
    assert not torch.allclose(kl_bits(p, q), kl_bits(q, p), atol=1e-3)
    assert torch.allclose(kl_bits(p, p), torch.zeros(4), atol=1e-6)


def test_js_is_symmetric_and_bounded(logits):
    p, q = logits
    assert torch.allclose(js_bits(p, q), js_bits(q, p), atol=1e-6)
    assert bool((js_bits(p, q) <= 1.0 + 1e-6).all())
    far = torch.tensor([[100.0, 0.0]]), torch.tensor([[0.0, 100.0]])
    assert float(js_bits(*far)) == pytest.approx(1.0, abs=1e-4)
    assert float(l1_prob_diff(*far)) == pytest.approx(2.0, abs=1e-4)


@pytest.mark.parametrize(("row", "token", "expected_rank", "expected_gap"), [
    ([3.0, 1.0, 2.0], 0, 1, 1.0),
    ([3.0, 1.0, 2.0], 2, 2, -1.0),
    ([3.0, 1.0, 2.0], 1, 3, -2.0),
    ([2.0, 2.0, 0.0], 1, 1, 0.0),  # ties do not push the rank down; the gap is 0
])
def test_rank_and_gap(row, token, expected_rank, expected_gap):
    z = torch.tensor(row)
    assert int(rank_of(z, token)) == expected_rank
    assert float(logit_gap(z, token)) == pytest.approx(expected_gap)


def test_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) vs \(2, 4\)"):
        kl_bits(torch.zeros(2, 3), torch.zeros(2, 4))


def test_cosine_scale_invariant(logits):
    p, q = logits
    assert torch.allclose(cosine(p, q), cosine(3 * p, q), atol=1e-6)
