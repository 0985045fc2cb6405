"""Samplers group by real token cost (text + visual) and cover every index exactly once."""

from __future__ import annotations

import numpy as np

from llava.data import LengthGroupedSampler, TokenBudgetBatchSampler


def test_length_grouped_sampler_groups_by_cost():
    rng = np.random.default_rng(0)
    # Text-only (~50 tokens), images (~1300-6400) and videos (10368): the visual tokens dominate the cost.
    costs = np.concatenate([rng.integers(20, 80, 300), rng.integers(1300, 6400, 300), np.full(200, 10400)])
    sampler = LengthGroupedSampler(costs, batch_size=8, megabatch_size=200, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(len(costs)))
    assert costs[order[0]] == costs.max()  # the costliest megabatch first
    batches = [costs[order[i : i + 8]] for i in range(0, len(order), 8)]
    grouped_spread = np.mean([b.max() - b.min() for b in batches])
    shuffled = costs[np.random.default_rng(1).permutation(len(costs))]
    random_spread = np.mean([shuffled[i : i + 8].max() - shuffled[i : i + 8].min() for i in range(0, len(costs), 8)])
    assert grouped_spread < 0.2 * random_spread
    for start in range(0, len(order), 200):  # sorted (descending) inside each megabatch, except the swapped first
        chunk = costs[order[start : start + 200]]
        assert (np.diff(chunk) <= 0).all()


def test_length_grouped_sampler_is_deterministic_per_epoch():
    costs = np.arange(100)
    sampler = LengthGroupedSampler(costs, batch_size=4, megabatch_size=8, seed=3)
    first = list(sampler)
    assert first == list(LengthGroupedSampler(costs, batch_size=4, megabatch_size=8, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(100))


def test_token_budget_batches():
    costs = np.array([10, 300, 40, 50, 1000, 20, 60, 5])
    batches = list(TokenBudgetBatchSampler(costs, max_tokens=100, megabatch_size=8))
    assert sorted(i for b in batches for i in b) == list(range(8))
    for batch in batches:
        assert costs[batch].sum() <= 100 or len(batch) == 1
