"""Self-learnable activation functions: bases, fitting, the SLAF layer, factory."""

from slaf_cli.nn.bases import BASES, Basis, build_basis, register_basis
from slaf_cli.nn.factory import ActivationFactory, ActivationSlot, slaf_modules
from slaf_cli.nn.fit import TARGETS, FitResult, fit_target
from slaf_cli.nn.slaf import SLAF

__all__ = [
    "BASES",
    "SLAF",
    "TARGETS",
    "ActivationFactory",
    "ActivationSlot",
    "Basis",
    "FitResult",
    "build_basis",
    "fit_target",
    "register_basis",
    "slaf_modules",
]
