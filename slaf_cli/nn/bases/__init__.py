"""Bases of SLAF terms and their registry.

Every module in this package is imported here, so a new basis needs only its own
file with a ``@register_basis("name")`` class.
"""

import importlib
import pkgutil

from slaf_cli.nn.bases.base import Basis
from slaf_cli.nn.bases.registry import BASES, build_basis, register_basis

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["BASES", "Basis", "build_basis", "register_basis"]
