"""Samplers on real token cost (text + visual tokens; spec section 5.5: upstream grouped by word counts of the wrong
key, so the 1296-10368 visual tokens that dominate the cost were ignored).

Both take a plain list/array of per-sample costs, so the costs may come from `LlavaOVDataset.token_costs()`, a
cost cache, or an estimate.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import LengthGroupedSampler as _TransformersLengthGroupedSampler

logger = logging.getLogger(__name__)


class LengthGroupedSampler(_TransformersLengthGroupedSampler):
    """transformers' length-grouped sampler on token cost, made deterministic per epoch.

    The ordering is the library's (`get_length_grouped_indices`): random megabatches of `megabatch_size` samples,
    each sorted by descending cost, the costliest sample first (an out-of-memory shows at step 0). Ours differs in
    two ways: the permutation comes from `seed + epoch` (`set_epoch`), not from the global torch RNG, so a resumed
    run and every rank see the same order; and the same algorithm on the same random stream runs in numpy (the
    library sorts each megabatch in Python: ~4.5x slower at 1.54M samples, seconds at every start). A test pins
    the two orders equal.

    Args:
        costs: per-sample token cost, int [N].
        batch_size: samples per batch (per device x devices, as the batches are sharded after sampling).
        megabatch_size: samples per sorted group, a multiple of `batch_size`; default 50 batches.
        seed: base seed; the permutation uses `seed + epoch`.
    """

    def __init__(
        self, costs: Sequence[int] | np.ndarray, *, batch_size: int, megabatch_size: int | None = None, seed: int = 0
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        megabatch_size = megabatch_size or 50 * batch_size
        if megabatch_size < batch_size:
            raise ValueError(f"megabatch_size ({megabatch_size}) must be >= batch_size ({batch_size})")
        self.costs = np.asarray(costs, dtype=np.int64)
        super().__init__(batch_size, lengths=self.costs.tolist())
        self.mega_batch_mult = megabatch_size // batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """A new permutation per epoch (the Trainer and accelerate call this)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        """`get_length_grouped_indices(lengths, batch_size, mega_batch_mult, generator)` of transformers, in numpy."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.costs), generator=generator).numpy()
        size = self.mega_batch_mult * self.batch_size
        # Stable sort on -cost keeps equal costs in permutation order, as Python's sorted(reverse=True) does.
        megabatches = [
            chunk[np.argsort(-self.costs[chunk], kind="stable")]
            for chunk in (order[start : start + size] for start in range(0, len(order), size))
        ]
        if megabatches:
            # The library swaps only the first sample of the first megabatch with the costliest one.
            first = int(np.argmax([self.costs[megabatch[0]] for megabatch in megabatches]))
            megabatches[0][0], megabatches[first][0] = megabatches[first][0], megabatches[0][0]
        return iter(np.concatenate(megabatches).tolist() if megabatches else [])


def _best_fit_rows(order: Sequence[int], costs: np.ndarray, budget: int) -> list[list[int]]:
    """Best-fit decreasing bin packing of `order` (indices sorted by descending cost) into rows of `budget` tokens.

    Each sample goes to the open row whose free space is the smallest that still holds it, else opens a row; a
    sample at or over the budget is a row of its own. Large samples open the rows, small ones fill their gaps.
    """
    rows: list[list[int]] = []
    free: list[int] = []  # free tokens of the open rows, ascending
    owner: list[int] = []  # row number of each entry of `free`
    for index in order:
        cost = int(costs[index])
        if cost >= budget:
            rows.append([index])
            continue
        slot = bisect_left(free, cost)
        if slot == len(free):
            rows.append([index])
            row, remaining = len(rows) - 1, budget - cost
        else:
            row, remaining = owner.pop(slot), free.pop(slot) - cost
            rows[row].append(index)
        if remaining > 0:
            slot = bisect_left(free, remaining)
            free.insert(slot, remaining)
            owner.insert(slot, row)
    return rows


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Batches of whole samples filling a token budget, for packed training (`max_tokens_per_batch`).

    Each epoch: a `seed + epoch` permutation is cut into megabatches of `megabatch_size` samples; each megabatch is
    packed into rows of at most `max_tokens` by best-fit decreasing on cost (so a row is filled to the budget, with
    samples grouped by cost), its rows shuffled; the row with the most tokens goes first (an out-of-memory shows at
    step 0). A sample costlier than the budget is a row of its own. The rows are then dealt to the ranks
    (row i to rank i % num_replicas), the list first extended from its start to a multiple of `num_replicas` so
    every rank runs the same number of steps. Deterministic for (seed, epoch): a resumed run that skips the batches
    already trained sees the same rows.

    Args:
        costs: per-sample token cost, int [N].
        max_tokens: token budget of one batch (= one packed row).
        megabatch_size: samples packed together; larger packs fuller, smaller keeps more randomness.
        seed: base seed; the permutation uses `seed + epoch`.
        num_replicas, rank: data-parallel world size and this process's rank.

    Yields lists of sample indices (one packed row each) for this rank.
    """

    def __init__(
        self,
        costs: Sequence[int] | np.ndarray,
        *,
        max_tokens: int,
        megabatch_size: int = 4096,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
        if megabatch_size <= 0:
            raise ValueError(f"megabatch_size must be > 0, got {megabatch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.costs = np.asarray(costs, dtype=np.int64)
        if (self.costs < 0).any():
            raise ValueError("token costs must be >= 0")
        self.max_tokens = max_tokens
        self.megabatch_size = megabatch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def all_rows(self) -> list[list[int]]:
        """Every rank's rows of the current epoch, in order (row i goes to rank i % num_replicas)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng(self.seed + self.epoch)
        order = rng.permutation(len(self.costs))
        rows: list[list[int]] = []
        for start in range(0, len(order), self.megabatch_size):
            megabatch = order[start : start + self.megabatch_size]
            # Stable sort on -cost: equal costs keep their random order.
            megabatch = megabatch[np.argsort(-self.costs[megabatch], kind="stable")].tolist()
            packed = _best_fit_rows(megabatch, self.costs, self.max_tokens)
            rows.extend(packed[i] for i in rng.permutation(len(packed)))
        if rows:
            heaviest = max(range(len(rows)), key=lambda i: int(self.costs[rows[i]].sum()))
            rows[0], rows[heaviest] = rows[heaviest], rows[0]
            short = -len(rows) % self.num_replicas
            rows.extend(rows[i % len(rows)] for i in range(short))
        self._cache = (self.epoch, rows)
        return rows

    def fill_ratio(self) -> float:
        """Tokens / budget over all rows of the current epoch (by cost)."""
        rows = self.all_rows()
        if not rows:
            return 0.0
        return float(sum(int(self.costs[row].sum()) for row in rows)) / (len(rows) * self.max_tokens)

    def __len__(self) -> int:
        return len(self.all_rows()) // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        rows = self.all_rows()
        yield from rows[self.rank :: self.num_replicas]


__all__ = ["LengthGroupedSampler", "TokenBudgetBatchSampler"]
