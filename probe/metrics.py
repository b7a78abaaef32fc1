"""Pure distribution metrics over logits, computed in float32; units in the names (bits)."""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def _check(p: torch.Tensor, q: torch.Tensor) -> None:
    if p.shape != q.shape:
        raise ValueError(f"logits shapes differ: {tuple(p.shape)} vs {tuple(q.shape)} (expected [..., vocab] both)")


def entropy_bits(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Shannon entropy of softmax(logits) in bits; logits [..., vocab] -> [...]."""
    logp = torch.log_softmax(logits.float(), dim=dim)
    return -(logp.exp() * logp).sum(dim) / LN2


def kl_bits(logits_p: torch.Tensor, logits_q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """KL(P || Q) in bits, P = softmax(logits_p); [..., vocab] -> [...]. Exact in log space (no epsilon)."""
    _check(logits_p, logits_q)
    return kl_bits_logp(torch.log_softmax(logits_p.float(), dim=dim), torch.log_softmax(logits_q.float(), dim=dim),
                        dim)


def kl_bits_logp(lp: torch.Tensor, lq: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """KL(P || Q) in bits from log-probabilities (lets callers normalize each distribution once)."""
    _check(lp, lq)
    return (lp.exp() * (lp - lq)).sum(dim).clamp_min(0.0) / LN2


def entropy_bits_logp(lp: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Entropy in bits from log-probabilities."""
    return -(lp.exp() * lp).sum(dim) / LN2


def js_bits(logits_p: torch.Tensor, logits_q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Jensen-Shannon divergence in bits (symmetric, bounded by 1)."""
    _check(logits_p, logits_q)
    p = torch.softmax(logits_p.float(), dim=dim)
    q = torch.softmax(logits_q.float(), dim=dim)
    m = 0.5 * (p + q)
    lm = torch.log(m.clamp_min(1e-45))

    def part(x: torch.Tensor) -> torch.Tensor:
        return (x * (torch.log(x.clamp_min(1e-45)) - lm)).sum(dim)

    return (0.5 * part(p) + 0.5 * part(q)).clamp_min(0.0) / LN2


def l1_prob_diff(logits_p: torch.Tensor, logits_q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sum of |P - Q| over the vocabulary (0..2)."""
    _check(logits_p, logits_q)
    return (torch.softmax(logits_p.float(), dim=dim) - torch.softmax(logits_q.float(), dim=dim)).abs().sum(dim)


def cosine(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Cosine similarity along `dim` (no centering)."""
    _check(a, b)
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=dim, eps=1e-12)


def rank_of(logits: torch.Tensor, token_id: int) -> torch.Tensor:
    """1 + number of tokens with a strictly higher logit than `token_id`; logits [..., vocab] -> [...] int."""
    target = logits[..., token_id : token_id + 1]
    return (logits > target).sum(-1) + 1


def logit_gap(logits: torch.Tensor, token_id: int) -> torch.Tensor:
    """logit(token) minus the best other logit: > 0 iff the token is the strict top-1."""
    other = logits.clone()
    other[..., token_id] = float("-inf")
    return logits[..., token_id] - other.max(-1).values
