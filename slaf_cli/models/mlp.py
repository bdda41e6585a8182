"""Multilayer perceptron whose activations come from a factory."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from slaf_cli.nn.factory import ActivationSlot

ActivationFactory = Callable[[ActivationSlot], nn.Module]


class MLP(nn.Module):
    """Flatten, then ``Linear -> [BatchNorm1d] -> activation -> [Dropout]`` per width.

    Input ``(N, *input_shape)``, output ``(N, num_outputs)``. Every hidden
    activation belongs to the stage ``hidden`` and is indexed from 0 in order.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: ActivationFactory,
        widths: Sequence[int] = (256, 256),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        in_features = math.prod(input_shape)
        for index, width in enumerate(widths):
            layers.append(nn.Linear(in_features, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(activation(ActivationSlot(index, "hidden", width, "dense")))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = width
        layers.append(nn.Linear(in_features, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
