"""Models built from an activation factory: nothing here hard-codes an activation."""

from slaf_cli.models.cnn import CNN
from slaf_cli.models.mlp import MLP
from slaf_cli.models.resnet import ResNet

__all__ = ["CNN", "MLP", "ResNet"]
