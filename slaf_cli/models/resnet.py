"""CIFAR ResNet of depth 6n+2 (He et al., "Deep Residual Learning", 2016, sec. 4.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from slaf_cli.errors import ConfigError
from slaf_cli.nn.factory import ActivationSlot

ActivationFactory = Callable[[ActivationSlot], nn.Module]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut.

    When the block halves the resolution and widens the channels, the shortcut
    subsamples and zero-pads channels (the parameter-free option A of the paper).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        act1: nn.Module,
        act2: nn.Module,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = act1
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = act2
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels > 0:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv, three stages of n basic blocks (width w, 2w, 4w), global pool, linear.

    Input ``(N, C, H, W)``. Activations are indexed in forward order: the stem's is
    0 (stage ``stem``), then two per block in stages ``stage1``..``stage3``; depth 32
    has 31 activations.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: ActivationFactory,
        depth: int = 20,
        width: int = 16,
    ) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(
                f"model=resnet needs image inputs (C, H, W), got input shape "
                f"{tuple(input_shape)}; use model=mlp or model=cnn for this dataset"
            )
        blocks_per_stage = (depth - 2) // 6
        index = 0

        def next_activation(stage: str, channels: int) -> nn.Module:
            nonlocal index
            module = activation(ActivationSlot(index, stage, channels, "conv"))
            index += 1
            return module

        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            next_activation("stem", width),
        )
        blocks: list[nn.Module] = []
        in_channels = width
        for stage in range(3):
            out_channels = width * 2**stage
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                name = f"stage{stage + 1}"
                act1 = next_activation(name, out_channels)
                act2 = next_activation(name, out_channels)
                blocks.append(BasicBlock(in_channels, out_channels, stride, act1, act2))
                in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_outputs)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu"
                )

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(self.stem(x))
        return self.fc(self.pool(out).flatten(1))
