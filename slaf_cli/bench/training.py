"""Training-step time and saved-for-backward memory of ReLU and SLAF variants.

Every variant is a real product model (:class:`~slaf_cli.models.MLP` or
:class:`~slaf_cli.models.CNN`) whose activations come from
:class:`~slaf_cli.nn.factory.ActivationFactory`, so the benchmark measures the code
that ``slaf-train`` runs. A step is zero_grad, forward, cross-entropy, backward and
an SGD step.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from slaf_cli.models import CNN, MLP
from slaf_cli.nn.bases import build_basis
from slaf_cli.nn.factory import ActivationFactory
from slaf_cli.nn.slaf import SLAF

MNIST_SHAPE = (1, 28, 28)
NUM_CLASSES = 10

#: Variant names in table order. "relu" is the baseline of every ratio.
VARIANTS = ("relu", "slaf naive", "slaf eager", "slaf fast", "slaf fast normalized")
#: The fast variants again with ``compile=True`` (torch.compile-d kernels).
COMPILED_VARIANTS = ("slaf compiled", "slaf compiled normalized")


@dataclass(frozen=True)
class StepResult:
    """Median step time and saved-for-backward bytes of one model variant.

    ``first_step_seconds`` is the time of the variant's first step, which includes
    compiling for the compiled variants. ``saved_bytes`` counts every unique
    tensor storage that autograd saved during one step, parameters excluded.
    ``activation_saved_bytes`` counts only what the activation modules (ReLU or
    SLAF) saved. ``peak_bytes`` is the CUDA peak above the memory allocated before
    the step, or None on CPU.
    """

    seconds: float
    first_step_seconds: float
    saved_bytes: int
    activation_saved_bytes: int
    peak_bytes: int | None


def build_factory(variant: str, degree: int) -> ActivationFactory:
    """Return the activation factory of a variant from :data:`VARIANTS` or
    :data:`COMPILED_VARIANTS`."""
    if variant == "relu":
        return ActivationFactory("relu")
    basis = build_basis("monomial", degree=degree)
    options = {
        "slaf naive": {"fast": False},
        "slaf eager": {"native": False},
        "slaf fast": {},
        "slaf fast normalized": {"normalize": True},
        "slaf compiled": {"compile": True},
        "slaf compiled normalized": {"normalize": True, "compile": True},
    }
    if variant not in options:
        known = VARIANTS + COMPILED_VARIANTS
        raise ValueError(f"unknown benchmark variant {variant!r}; use one of {known}")
    return ActivationFactory("slaf", basis, sharing="channel", **options[variant])


def build_model(architecture: str, variant: str, degree: int) -> nn.Module:
    """Build the MLP 784-512-512-10 or the 32/64-channel MNIST CNN for a variant."""
    factory = build_factory(variant, degree)
    if architecture == "mlp":
        return MLP(MNIST_SHAPE, NUM_CLASSES, factory, widths=(512, 512))
    if architecture == "cnn":
        return CNN(MNIST_SHAPE, NUM_CLASSES, factory, channels=(32, 64), hidden=128)
    raise ValueError(f"unknown architecture {architecture!r}; use mlp or cnn")


def training_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor
) -> None:
    """Run one SGD step on a batch x (N, 1, 28, 28) with labels y (N,)."""
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    models: dict[str, nn.Module],
    x: Tensor,
    y: Tensor,
    steps: int,
    warmup: int,
) -> dict[str, float]:
    """Return the median seconds of one training step per model.

    The models take turns step by step, so a change of load on the machine affects
    every variant alike. The first ``warmup`` rounds are not timed.
    """
    optimizers = {
        name: torch.optim.SGD(model.parameters(), lr=1e-3)
        for name, model in models.items()
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(warmup + steps):
        for name, model in models.items():
            _synchronize(x.device)
            start = time.perf_counter()
            training_step(model, optimizers[name], x, y)
            _synchronize(x.device)
            if round_index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


class SavedTensorTally:
    """Unique storages that autograd saves for backward, parameters excluded.

    Two tensors that share a storage (a view and its base, or the output of one
    layer saved again as the input of the next) count once. Storages saved while
    ``inside_activation`` is set also count towards ``activation_bytes``.
    """

    def __init__(self, model: nn.Module) -> None:
        self._parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._all: dict[int, int] = {}
        self._activation: dict[int, int] = {}
        self.inside_activation = False

    def pack(self, tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self._parameters:
            self._all[key] = storage.nbytes()
            if self.inside_activation:
                self._activation[key] = storage.nbytes()
        return tensor

    @staticmethod
    def unpack(tensor: Tensor) -> Tensor:
        return tensor

    @property
    def total_bytes(self) -> int:
        return sum(self._all.values())

    @property
    def activation_bytes(self) -> int:
        return sum(self._activation.values())


def measure_saved(
    model: nn.Module, x: Tensor, y: Tensor
) -> tuple[float, int, int, int | None]:
    """Run one training step and return its seconds and bytes (saved, activation, peak).

    The peak is the CUDA memory peak above the memory allocated before the step,
    or None on a CPU.

    Activation bytes are what ReLU or SLAF modules saved inside their own forward,
    found with forward pre-hooks and forward hooks around those modules.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    tally = SavedTensorTally(model)

    def enter(module: nn.Module, args: object) -> None:
        tally.inside_activation = True

    def leave(module: nn.Module, args: object, output: object) -> None:
        tally.inside_activation = False

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.ReLU, SLAF)):
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    peak: int | None = None
    try:
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
            torch.cuda.reset_peak_memory_stats(x.device)
            before = torch.cuda.memory_allocated(x.device)
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(tally.pack, tally.unpack):
            training_step(model, optimizer, x, y)
        _synchronize(x.device)
        seconds = time.perf_counter() - start
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
            peak = torch.cuda.max_memory_allocated(x.device) - before
    finally:
        for handle in handles:
            handle.remove()
    return seconds, tally.total_bytes, tally.activation_bytes, peak


def bench_architecture(
    architecture: str,
    batch_size: int,
    device: torch.device,
    degree: int,
    steps: int,
    warmup: int,
    variants: tuple[str, ...] = VARIANTS,
) -> dict[str, StepResult]:
    """Measure every variant of one architecture on one random MNIST-shaped batch."""
    torch.manual_seed(0)
    models = {
        name: build_model(architecture, name, degree).to(device) for name in variants
    }
    x = torch.randn(batch_size, *MNIST_SHAPE, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)
    first = {name: measure_saved(model, x, y) for name, model in models.items()}
    seconds = time_steps(models, x, y, steps, warmup)
    return {name: StepResult(seconds[name], *first[name]) for name in variants}
