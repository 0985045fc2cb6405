"""Length-grouped sampling on real token cost (text + visual tokens; spec section 5.5: upstream grouped by word
counts of the wrong key, so the 1296-10368 visual tokens that dominate the cost were ignored)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class LengthGroupedSampler(Sampler[int]):
    """Random megabatches of `megabatch_size` samples, each sorted by descending cost, so consecutive batches of
    `batch_size` hold samples of similar cost (less padding; with packing, rows fill evenly).

    The megabatch holding the costliest sample comes first, so an out-of-memory shows at step 0, not hours later.
    Deterministic for a given `seed` and epoch (`set_epoch`); every index appears exactly once per epoch.

    Args:
        costs: per-sample token cost (`LlavaOVDataset.token_costs()`), int [N].
        batch_size: samples per batch (per device x devices, as the batches are sharded after sampling).
        megabatch_size: samples per sorted group; default 50 batches.
        seed: base seed; the permutation uses `seed + epoch`.
    """

    def __init__(
        self, costs: Sequence[int] | np.ndarray, *, batch_size: int, megabatch_size: int | None = None, seed: int = 0
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.costs = np.asarray(costs, dtype=np.int64)
        self.batch_size = batch_size
        self.megabatch_size = megabatch_size or 50 * batch_size
        if self.megabatch_size < batch_size:
            raise ValueError(f"megabatch_size ({self.megabatch_size}) must be >= batch_size ({batch_size})")
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """A new permutation per epoch (the Trainer and accelerate call this)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.costs)

    def __iter__(self) -> Iterator[int]:
        order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.costs))
        megabatches = [order[i : i + self.megabatch_size] for i in range(0, len(order), self.megabatch_size)]
        # Stable sort on -cost: equal costs keep their random order.
        megabatches = [mb[np.argsort(-self.costs[mb], kind="stable")] for mb in megabatches]
        if megabatches:
            first = max(range(len(megabatches)), key=lambda i: int(self.costs[megabatches[i][0]]))
            megabatches[0], megabatches[first] = megabatches[first], megabatches[0]
        for megabatch in megabatches:
            yield from (int(i) for i in megabatch)


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Batches whose summed cost stays within `max_tokens` (for packing): indices from `LengthGroupedSampler` order
    are taken greedily, so a batch holds samples of similar cost. A sample costlier than the budget is a batch of
    its own."""

    def __init__(
        self, costs: Sequence[int] | np.ndarray, *, max_tokens: int, megabatch_size: int = 512, seed: int = 0
    ):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be > 0, got {max_tokens}")
        self.costs = np.asarray(costs, dtype=np.int64)
        self.max_tokens = max_tokens
        self.order = LengthGroupedSampler(self.costs, batch_size=1, megabatch_size=megabatch_size, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        batches: list[list[int]] = []
        used = 0
        for index in self.order:
            cost = int(self.costs[index])
            if batches and used + cost <= self.max_tokens:
                batches[-1].append(index)
                used += cost
            else:
                batches.append([index])
                used = cost
        return batches

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()


__all__ = ["LengthGroupedSampler", "TokenBudgetBatchSampler"]
