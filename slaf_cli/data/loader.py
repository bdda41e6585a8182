"""In-memory batch iteration over a preloaded split, with DDP sharding."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from slaf_cli.data.augment import CROP_PADDING, get_augmentation
from slaf_cli.data.bundle import Split
from slaf_cli.errors import ConfigError

_ORDER_STREAM = 0
_AUGMENT_STREAM = 1


def derive_seed(*values: int) -> int:
    """Mix integers into one 63-bit seed with NumPy's SeedSequence."""
    entropy = [value % 2**64 for value in values]
    high, low = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return ((int(high) << 32) | int(low)) & (2**63 - 1)


class BatchLoader:
    """Iterate ``(x, y)`` batches of a split that lives entirely on ``device``.

    The split is copied to ``device`` once, in the constructor. Each epoch's order is
    a permutation drawn from a ``torch.Generator`` seeded with ``(seed, epoch)``, so a
    resumed run that calls :meth:`set_epoch` gets the same batches. Call
    ``set_epoch`` before each epoch, as with ``DistributedSampler``; the epoch does
    not advance by itself.

    With ``world_size > 1`` every rank draws the same permutation, pads it by
    wrapping to a multiple of ``world_size`` and takes every ``world_size``-th index
    starting at ``rank``. The ranks' shards are disjoint apart from the padding and
    have equal sizes, so every rank runs the same number of batches.

    ``augment`` (for example ``"crop_flip"``, with ``crop_padding`` pixels of
    padding) transforms training batches on the device with a generator seeded by
    ``(seed, epoch, rank)``.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool,
        seed: int,
        device: torch.device | str,
        augment: str | None = None,
        crop_padding: int = CROP_PADDING,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(
                f"batch_size={batch_size} is invalid; set it to a positive integer"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} is invalid for world_size={world_size}")
        self.device = torch.device(device)
        self.x: Tensor = split.x.to(self.device)
        self.y: Tensor = split.y.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augment = augment
        self._augment_fn = get_augmentation(
            augment, tuple(split.x.shape[1:]), crop_padding
        )
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration uses."""
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Samples this rank visits per epoch, padding included."""
        return math.ceil(self.x.shape[0] / self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def epoch_indices(self) -> Tensor:
        """Return this rank's sample indices for the current epoch, (num_samples,)."""
        n = self.x.shape[0]
        if self.shuffle:
            generator = torch.Generator().manual_seed(
                derive_seed(self.seed, self.epoch, _ORDER_STREAM)
            )
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:
            # Wrap around like DistributedSampler, repeating when the padding exceeds n.
            repeats = math.ceil(total / n)
            order = order.repeat(repeats)[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        indices = self.epoch_indices().to(self.device)
        generator = None
        if self._augment_fn is not None:
            # NOTE: only run on CPU so far; the CUDA generator path is untested.
            generator = torch.Generator(device=self.device)
            generator.manual_seed(
                derive_seed(self.seed, self.epoch, self.rank, _AUGMENT_STREAM)
            )
        for batch in range(len(self)):
            start = batch * self.batch_size
            index = indices[start : start + self.batch_size]
            x = self.x.index_select(0, index)
            if self._augment_fn is not None:
                x = self._augment_fn(x, generator)
            yield x, self.y.index_select(0, index)
