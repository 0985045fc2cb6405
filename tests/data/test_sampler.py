"""Samplers group by real token cost (text + visual), cover every index, and token-budget rows pack full."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler as TransformersLengthGroupedSampler
from transformers.trainer_pt_utils import get_length_grouped_indices

from llava.data import LengthGroupedSampler, TokenBudgetBatchSampler


def _mixture(images: int, videos: int, *, seed: int = 0) -> np.ndarray:
    """Costs shaped like the SFT mixture: anyres images (1296-7000 visual + 30-800 text tokens) and 8-mosaic codec
    videos (10368 visual + 60-400 text tokens)."""
    rng = np.random.default_rng(seed)
    image_costs = rng.integers(1296, 7000, images) + rng.integers(30, 800, images)
    return np.concatenate([image_costs, 10368 + rng.integers(60, 400, videos)])


def test_length_grouped_sampler_is_the_transformers_one_on_cost():
    rng = np.random.default_rng(0)
    # Text-only (~50 tokens), images (~1300-6400) and videos (10368): the visual tokens dominate the cost.
    costs = np.concatenate([rng.integers(20, 80, 300), rng.integers(1300, 6400, 300), np.full(200, 10400)])
    sampler = LengthGroupedSampler(costs, batch_size=8, megabatch_size=200, seed=1)
    assert isinstance(sampler, TransformersLengthGroupedSampler)
    order = list(sampler)
    assert sorted(order) == list(range(len(costs)))
    assert costs[order[0]] == costs.max()  # the costliest sample first
    batches = [costs[order[i : i + 8]] for i in range(0, len(order), 8)]
    grouped_spread = np.mean([b.max() - b.min() for b in batches])
    shuffled = costs[np.random.default_rng(1).permutation(len(costs))]
    random_spread = np.mean([shuffled[i : i + 8].max() - shuffled[i : i + 8].min() for i in range(0, len(costs), 8)])
    assert grouped_spread < 0.2 * random_spread
    for start in range(0, len(order), 200):  # sorted (descending) inside each megabatch, but the swapped first item
        chunk = costs[order[start + 1 : start + 200]]
        assert (np.diff(chunk) <= 0).all()


def test_length_grouped_sampler_order_is_the_transformers_order():
    """Ours runs the library's algorithm in numpy (faster at 1.54M samples): same random stream, same order."""
    costs = np.random.default_rng(2).integers(0, 30, 997)  # many ties: the sort must be stable like the library's
    for seed, batch_size, megabatch_size in ((5, 4, 40), (0, 8, 8), (3, 7, 700)):
        ours = list(LengthGroupedSampler(costs, batch_size=batch_size, megabatch_size=megabatch_size, seed=seed))
        library = get_length_grouped_indices(
            costs.tolist(), batch_size, megabatch_size // batch_size, generator=torch.Generator().manual_seed(seed)
        )
        assert ours == library


def test_length_grouped_sampler_is_deterministic_per_epoch():
    costs = np.arange(100)
    sampler = LengthGroupedSampler(costs, batch_size=4, megabatch_size=8, seed=3)
    first = list(sampler)
    assert first == list(LengthGroupedSampler(costs, batch_size=4, megabatch_size=8, seed=3))
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(100))


def test_token_budget_rows_stay_within_budget_and_cover_every_sample():
    costs = np.array([10, 300, 40, 50, 1000, 20, 60, 5])
    rows = list(TokenBudgetBatchSampler(costs, max_tokens=100, megabatch_size=8))
    assert sorted(i for row in rows for i in row) == list(range(8))
    for row in rows:
        assert costs[row].sum() <= 100 or len(row) == 1
    assert rows[0] == [4]  # the costliest row first: an out-of-memory shows at step 0


def test_token_budget_rows_pack_the_sft_mixture_full():
    """The real-size budget (32768) on the LLaVA-OV image + LLaVA-Video codec mixture: rows >= 90 % full."""
    costs = _mixture(7400, 8000)
    sampler = TokenBudgetBatchSampler(costs, max_tokens=32768, seed=0)
    rows = list(sampler)
    fills = np.array([costs[row].sum() for row in rows]) / 32768
    assert sampler.fill_ratio() == pytest.approx(fills.mean())
    assert sampler.fill_ratio() >= 0.95
    assert (fills <= 1).all() and np.quantile(fills, 0.05) >= 0.85


def test_token_budget_rows_per_rank_are_disjoint_equal_and_deterministic():
    costs = _mixture(500, 500, seed=1)
    ranks = [TokenBudgetBatchSampler(costs, max_tokens=32768, seed=7, num_replicas=3, rank=r) for r in range(3)]
    per_rank = [list(sampler) for sampler in ranks]
    assert len({len(rows) for rows in per_rank}) == 1 and all(len(s) == len(per_rank[0]) for s in ranks)
    indices = [i for rows in per_rank for row in rows for i in row]
    assert set(indices) == set(range(len(costs)))
    # Only the rows repeated to even out the ranks appear twice.
    assert len(indices) - len(costs) <= 2 * max(len(row) for rows in per_rank for row in rows)
    again = TokenBudgetBatchSampler(costs, max_tokens=32768, seed=7, num_replicas=3, rank=1)
    assert list(again) == per_rank[1]  # a resumed run sees the same rows
    again.set_epoch(1)
    assert list(again) != per_rank[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be > 0"),
        ({"max_tokens": 10, "num_replicas": 2, "rank": 2}, "rank must be in"),
        ({"max_tokens": 10, "megabatch_size": 0}, "megabatch_size must be > 0"),
    ],
)
def test_token_budget_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TokenBudgetBatchSampler([1, 2, 3], **kwargs)
