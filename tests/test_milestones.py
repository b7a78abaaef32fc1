"""Milestone rules on hand-made per-layer sequences."""

import pytest

from probe import milestones as ms


@pytest.mark.parametrize(("flags", "expected"), [([False, True, True], 1), ([False, False], None), ([], None)])
def test_first_layer(flags, expected):
    assert ms.first_layer(flags) == expected


@pytest.mark.parametrize(("top1", "p1", "p2", "expected"), [
    ([7, 7], [0.96, 0.96], [0.01, 0.01], [True, True]),   # prompt token, confident, clear margin
    ([7, 9], [0.96, 0.99], [0.90, 0.0], [False, False]),  # margin too small; 9 not in prompt
    ([5], [0.99], [0.0], [False]),                         # 5 is in the copy mask (punctuation)
    ([7], [0.95], [0.0], [False]),                         # p1 must exceed tau strictly
])
def test_copy_strict(top1, p1, p2, expected):
    assert ms.copy_strict_flags(top1, p1, p2, prompt_ids=[1, 7, 5], mask={5}, tau=0.95, margin=0.10) == expected


def test_copy_soft_window_must_be_contiguous_prompt_run():
    prompt = [10, 11, 12]
    top1, p1 = [11, 12, 12], [0.5, 0.5, 0.5]
    assert ms.copy_soft_flags(top1, p1, prompt, set(), tau=0.33, k=2) == [False, True, False]
    assert ms.copy_soft_flags(top1, p1, prompt, set(), tau=0.33, k=1) == [True, True, True]
    assert ms.copy_soft_flags(top1, [0.2] * 3, prompt, set(), tau=0.33, k=1) == [False] * 3


@pytest.mark.parametrize(("rank_norm", "rank_raw", "expected"), [
    ([5, 1, 1, 1], [9, 9, 9, 1], 1),        # raw rank-1 at layer 3 is within +-2 of layer 1
    ([1, 2, 2, 2, 1, 1], [9, 9, 9, 9, 9, 1], 4),  # first norm rank-1 uncorroborated; a later one is confirmed
    ([1, 1], [3, 3], None),
])
def test_confirmed_semantics_searches_all_rank1_layers(rank_norm, rank_raw, expected):
    assert ms.confirmed_semantics(rank_norm, rank_raw, window=2)["L_semantic_confirmed"] == expected


def test_semantic_gates_use_logit_gap():
    """Regression (seed bug): the top-2 gap gate must read the gap that is actually measured."""
    g = ms.semantic_gates(rank=[3, 1, 1, 1], p_answer=[0.1, 0.4, 0.5, 0.6], gap=[-1, 0.2, 0.7, 0.9], vocab=100,
                          margin_abs=0.002, top2_gap=0.5)
    assert g["L_semantic_margin_ok"] == 1
    assert g["L_semantic_top2_ok"] == 2
    assert g["L_semantic_strong"] == 2
    assert g["L_semantic_run2"] == 1
    assert g["L_semantic_strong_run2"] == 2


@pytest.mark.parametrize(("pct", "n_only", "max_kl", "expected_tier"), [
    (0.0, 0, 0.1, "low"), (0.3, 0, 2.0, "medium"), (0.9, 1, 30.0, "high"), (0.0, 1, 0.0, "medium"),
])
def test_artifact_tier(pct, n_only, max_kl, expected_tier):
    score, tier = ms.artifact_score(pct, n_only, max_kl)
    assert tier == expected_tier
    assert 0.0 <= score <= 1.0


def test_window_layers_clips_and_merges():
    assert ms.window_layers([1, None, 9], radius=2, n_layers=10) == [0, 1, 2, 3, 7, 8, 9, 10]


@pytest.mark.parametrize(("by_tau", "expected"), [
    ({"0.7": None, "0.95": None}, "none"), ({"0.7": 3, "0.95": 4}, "stable"),
    ({"0.7": 3, "0.95": None}, "fragile"), ({"0.7": 0, "0.95": 12}, "fragile"),
])
def test_copy_stability(by_tau, expected):
    assert ms.copy_stability(by_tau, n_layers=30) == expected


def test_median_iqr_counts_missing():
    assert ms.median_iqr([1, None, 3, 5]) == {"median": 3, "q1": 2.0, "q3": 4.0, "n": 3, "n_missing": 1}
