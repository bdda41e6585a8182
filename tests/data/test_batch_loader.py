"""BatchLoader: epoch coverage, reproducible order, DDP shards and augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slaf_cli.data import BatchLoader, Split
from slaf_cli.data.augment import CROP_PADDING, get_augmentation
from slaf_cli.errors import ConfigError


def table_split(n: int) -> Split:
    """Split whose targets are the sample indices, so batches reveal the order."""
    return Split(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))


def image_split(n: int = 16) -> Split:
    generator = torch.Generator().manual_seed(0)
    return Split(torch.randn(n, 3, 8, 8, generator=generator), torch.arange(n))


def epoch_order(loader: BatchLoader, epoch: int) -> torch.Tensor:
    loader.set_epoch(epoch)
    return torch.cat([y for _, y in loader])


def make_loader(split: Split, **overrides) -> BatchLoader:
    args = {"batch_size": 10, "shuffle": True, "seed": 0, "device": "cpu"}
    return BatchLoader(split, **(args | overrides))


def test_epoch_covers_each_sample_once():
    order = epoch_order(make_loader(table_split(103)), epoch=0)
    assert len(order) == 103
    assert torch.equal(torch.sort(order).values, torch.arange(103))


def test_batches_pair_inputs_and_targets():
    for x, y in make_loader(table_split(50)):
        assert torch.equal(x[:, 0].long(), y)


def test_length_counts_partial_batch():
    loader = make_loader(table_split(103))
    sizes = [len(y) for _, y in loader]
    assert len(loader) == 11
    assert len(sizes) == 11
    assert sizes[-1] == 3


def test_drop_last_skips_partial_batch():
    loader = make_loader(table_split(103), drop_last=True)
    sizes = [len(y) for _, y in loader]
    assert len(loader) == 10
    assert sizes == [10] * 10


def test_order_reproducible_per_epoch():
    first = make_loader(table_split(103))
    for epoch in range(3):
        epoch_order(first, epoch)
    resumed = make_loader(table_split(103))  # a resumed run starts at epoch 3
    assert torch.equal(epoch_order(first, 3), epoch_order(resumed, 3))


def test_order_differs_across_epochs():
    loader = make_loader(table_split(103))
    assert not torch.equal(epoch_order(loader, 0), epoch_order(loader, 1))


def test_order_differs_across_seeds():
    first = make_loader(table_split(103), seed=0)
    second = make_loader(table_split(103), seed=1)
    assert not torch.equal(epoch_order(first, 0), epoch_order(second, 0))


def test_no_shuffle_keeps_order():
    loader = make_loader(table_split(103), shuffle=False)
    assert torch.equal(epoch_order(loader, 4), torch.arange(103))


@pytest.mark.parametrize("n", [100, 103])
def test_ddp_shards_disjoint_and_cover(n):
    world_size = 4
    shards = []
    for rank in range(world_size):
        loader = make_loader(table_split(n), rank=rank, world_size=world_size)
        shards.append(epoch_order(loader, epoch=2))
    padded_total = -(-n // world_size) * world_size
    combined = torch.cat(shards)
    assert all(len(shard) == padded_total // world_size for shard in shards)
    assert len(combined) == padded_total
    assert torch.equal(torch.unique(combined), torch.arange(n))  # every sample seen
    repeats = len(combined) - len(torch.unique(combined))
    assert repeats == padded_total - n  # overlap comes only from wrap-around padding


def test_ddp_ranks_same_batch_count():
    lengths = [
        len(make_loader(table_split(103), rank=rank, world_size=4)) for rank in range(4)
    ]
    assert lengths == [3, 3, 3, 3]  # 26 samples per rank in batches of 10


def test_ddp_padding_wraps_tiny_split():
    shards = [
        epoch_order(make_loader(table_split(2), rank=rank, world_size=5), 0)
        for rank in range(5)
    ]
    assert all(len(shard) == 1 for shard in shards)
    assert set(torch.cat(shards).tolist()) == {0, 1}


def test_invalid_rank_raises():
    with pytest.raises(ValueError, match="rank=4"):
        make_loader(table_split(10), rank=4, world_size=4)


def test_invalid_batch_size_raises():
    with pytest.raises(ConfigError, match="batch_size=0"):
        make_loader(table_split(10), batch_size=0)


def matches_crop(
    original: torch.Tensor,
    augmented: torch.Tensor,
    flips: bool,
    pad: int = CROP_PADDING,
) -> bool:
    """Whether ``augmented`` equals a crop, maybe flipped, of padded ``original``."""
    padded = F.pad(original, (pad, pad, pad, pad))
    height, width = original.shape[-2:]
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            window = padded[:, top : top + height, left : left + width]
            if torch.equal(window, augmented):
                return True
            if flips and torch.equal(window.flip(-1), augmented):
                return True
    return False


@pytest.mark.parametrize("augment", ["crop_flip", "crop"])
def test_augment_keeps_shape(augment):
    split = image_split()
    loader = make_loader(split, batch_size=16, augment=augment)
    x, y = next(iter(loader))
    assert x.shape == (16, 3, 8, 8)
    assert not torch.equal(x, split.x[y])  # the batch actually changed


@pytest.mark.parametrize("augment", ["crop_flip", "crop"])
def test_augment_is_crop_of_original(augment):
    split = image_split()
    loader = make_loader(split, batch_size=16, augment=augment)
    x, y = next(iter(loader))
    for augmented, index in zip(x, y, strict=True):
        assert matches_crop(split.x[index], augmented, flips=augment == "crop_flip")


def test_crop_padding_bounds_the_shift():
    split = image_split(64)
    loader = make_loader(split, batch_size=64, augment="crop", crop_padding=1)
    x, y = next(iter(loader))
    for augmented, index in zip(x, y, strict=True):
        assert matches_crop(split.x[index], augmented, flips=False, pad=1)
    shifted = [not torch.equal(a, split.x[i]) for a, i in zip(x, y, strict=True)]
    assert any(shifted)


def test_zero_crop_padding_keeps_images():
    split = image_split()
    loader = make_loader(split, batch_size=16, augment="crop", crop_padding=0)
    x, y = next(iter(loader))
    assert torch.equal(x, split.x[y])


@pytest.mark.parametrize("padding", [-1, 8])
def test_crop_padding_outside_image_raises(padding):
    with pytest.raises(ConfigError, match=f"dataset.crop_padding={padding} is"):
        make_loader(image_split(), augment="crop", crop_padding=padding)


def test_crop_padding_checked_without_augment():
    with pytest.raises(ConfigError, match="dataset.crop_padding=-5 is invalid"):
        get_augmentation(None, (1, 28, 28), padding=-5)


def test_crop_padding_ignored_for_tables():
    assert get_augmentation(None, (10,), padding=-5) is None


def test_crop_flip_flips_some_images():
    split = image_split(64)
    loader = make_loader(split, batch_size=64, augment="crop_flip")
    x, y = next(iter(loader))
    unflipped = [
        matches_crop(split.x[i], a, flips=False) for a, i in zip(x, y, strict=True)
    ]
    assert 0 < sum(unflipped) < 64


def test_augment_reproducible_per_epoch():
    first = make_loader(image_split(), augment="crop_flip")
    second = make_loader(image_split(), augment="crop_flip")
    first.set_epoch(1)
    second.set_epoch(1)
    assert torch.equal(next(iter(first))[0], next(iter(second))[0])
    second.set_epoch(2)
    assert not torch.equal(next(iter(first))[0], next(iter(second))[0])


def test_augment_rejects_tables():
    with pytest.raises(ConfigError, match="needs image inputs"):
        make_loader(table_split(10), augment="crop_flip")


def test_loader_keeps_data_on_device():
    loader = make_loader(table_split(10), device="meta")
    x, y = next(iter(loader))
    assert loader.x.device.type == "meta"
    assert x.device.type == "meta"
    assert y.device.type == "meta"
