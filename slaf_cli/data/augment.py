"""Batched image augmentation on tensors, run on the batch's own device."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from slaf_cli.errors import ConfigError

CROP_PADDING = 4  # pixels of zero padding on each side before the random crop


def random_crop(
    x: Tensor, generator: torch.Generator, flip: bool, padding: int = CROP_PADDING
) -> Tensor:
    """Randomly crop each image of ``x`` (N, C, H, W) from its zero-padded copy.

    Every image gets its own offset in ``[0, 2 * padding]`` along each axis and, with
    ``flip``, a horizontal flip with probability 0.5. Padding is zero in the tensor's
    own units, which for standardised inputs is the train mean colour. One gather
    handles the whole batch. ``generator`` must live on ``x.device``. Returns a new
    tensor of the same shape.
    """
    n, channels, height, width = x.shape
    device = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    span = 2 * padding + 1
    row_offset = torch.randint(span, (n, 1), generator=generator, device=device)
    col_offset = torch.randint(span, (n, 1), generator=generator, device=device)
    rows = row_offset + torch.arange(height, device=device)  # (N, H)
    cols = col_offset + torch.arange(width, device=device)  # (N, W)
    if flip:
        flipped = torch.rand((n, 1), generator=generator, device=device) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    batch_index = torch.arange(n, device=device).view(n, 1, 1, 1)
    channel_index = torch.arange(channels, device=device).view(1, channels, 1, 1)
    return padded[
        batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]
    ]


Augmentation = Callable[[Tensor, torch.Generator], Tensor]

# Name -> whether the crop also flips.
AUGMENTATIONS: dict[str, bool] = {"crop_flip": True, "crop": False}


def get_augmentation(
    name: str | None, input_shape: tuple[int, ...], padding: int = CROP_PADDING
) -> Augmentation | None:
    """Return the augmentation called ``name`` (None for none) after checking inputs.

    ``crop`` is a random crop from the image padded by ``padding`` pixels on each
    side and ``crop_flip`` adds a horizontal flip with probability 0.5.
    ``input_shape`` excludes the batch dimension. Raises ConfigError for an unknown
    name, for inputs that are not images (C, H, W), or for images and a padding
    outside [0, min(H, W)), even without an augmentation.
    """
    image = len(input_shape) == 3
    if image and not 0 <= padding < min(input_shape[1:]):
        raise ConfigError(
            f"dataset.crop_padding={padding} is invalid for {input_shape[1]}x"
            f"{input_shape[2]} images; set it between 0 and {min(input_shape[1:]) - 1}"
        )
    if name is None:
        return None
    if name not in AUGMENTATIONS:
        raise ConfigError(
            f"dataset.augment={name!r} is unknown; "
            f"use one of {sorted(AUGMENTATIONS)} or null"
        )
    if not image:
        raise ConfigError(
            f"dataset.augment={name!r} needs image inputs (C, H, W), got shape "
            f"{tuple(input_shape)}; set dataset.augment=null"
        )
    flip = AUGMENTATIONS[name]

    def augment(x: Tensor, generator: torch.Generator) -> Tensor:
        return random_crop(x, generator, flip=flip, padding=padding)

    return augment
