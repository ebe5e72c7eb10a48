"""A resumable batch sampler: a seeded shuffle per epoch that can start at any batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from c2kd.errors import ConfigError


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Shuffles ``n`` items with a generator seeded by ``(seed, epoch)`` and yields batches of indices.

    ``set_epoch(epoch, start_batch)`` makes the next iteration resume inside an epoch without loading the
    skipped batches, so a run killed mid-epoch continues on exactly the batches it had not seen.
    With ``num_replicas > 1`` each replica takes every ``num_replicas``-th batch of the same order.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, drop_last: bool = True, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0):
        if n < batch_size and drop_last:
            raise ConfigError(f"{n} training items are fewer than one batch of {batch_size}: lower batch_size "
                              "(`batch_size=N` in train, `--batch-size N` in the quickstart) or use more items")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.drop_last, self.shuffle = drop_last, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _all_batches(self) -> list[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank:usable:self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._all_batches()[self.start_batch:]

    def __len__(self) -> int:
        return len(self._all_batches()) - self.start_batch
