"""Small CNN (the usual MNIST-sized net), 2-D for images and 1-D for sequences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from slaf_cli.errors import ConfigError
from slaf_cli.nn.factory import ActivationSlot

ActivationFactory = Callable[[ActivationSlot], nn.Module]


class CNN(nn.Module):
    """Conv blocks ``conv -> [BN] -> activation -> pool``, then a dense head.

    Input ``(N, C, H, W)`` (2-D convolutions) or ``(N, C, L)`` (1-D). The conv
    activations form the stage ``conv`` (indices 0..len(channels)-1) and the head's
    activation the stage ``head`` (the last index). Pooling halves each spatial size
    while it is at least 2.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: ActivationFactory,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        pool: str = "max",
        hidden: int = 128,
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ConfigError(
                f"model=cnn needs image (C, H, W) or sequence (C, L) inputs, got "
                f"input shape {tuple(input_shape)}; use model=mlp for this dataset"
            )
        dims = len(input_shape) - 1
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        pool_layer = {
            ("max", 2): nn.MaxPool2d,
            ("avg", 2): nn.AvgPool2d,
            ("max", 1): nn.MaxPool1d,
            ("avg", 1): nn.AvgPool1d,
        }[(pool, dims)]

        blocks: list[nn.Module] = []
        in_channels, size = input_shape[0], list(input_shape[1:])
        for index, out_channels in enumerate(channels):
            blocks.append(conv(in_channels, out_channels, kernel_size, padding="same"))
            if batch_norm:
                blocks.append(norm(out_channels))
            blocks.append(
                activation(ActivationSlot(index, "conv", out_channels, "conv"))
            )
            if min(size) >= 2:
                blocks.append(pool_layer(2))
                size = [s // 2 for s in size]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)

        flat = in_channels * int(torch.tensor(size).prod())
        head_slot = ActivationSlot(len(channels), "head", hidden, "dense")
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            activation(head_slot),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(hidden, num_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
