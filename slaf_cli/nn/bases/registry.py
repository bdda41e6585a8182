"""Name -> class registry of bases. Each basis module registers itself on import."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from slaf_cli.errors import ConfigError
from slaf_cli.nn.bases.base import Basis

BasisClass = TypeVar("BasisClass", bound=type[Basis])

BASES: dict[str, type[Basis]] = {}


def register_basis(name: str) -> Callable[[BasisClass], BasisClass]:
    """Return a class decorator that stores the class in ``BASES`` under ``name``."""

    def register(cls: BasisClass) -> BasisClass:
        if name in BASES and BASES[name] is not cls:
            raise ValueError(
                f"basis name {name!r} is already registered by {BASES[name]}"
            )
        cls.name = name
        BASES[name] = cls
        return cls

    return register


def build_basis(name: str, **kwargs: Any) -> Basis:
    """Construct the basis registered as ``name`` with keyword options from a config.

    Raises ConfigError for an unknown name or option, or an invalid value.
    """
    if name not in BASES:
        raise ConfigError(
            f"basis {name!r} is not known; set basis.name to one of "
            f"{', '.join(sorted(BASES))}"
        )
    cls = BASES[name]
    parameters = inspect.signature(cls.__init__).parameters
    options = [p for p in parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ConfigError(
            f"basis {name} has no option {', '.join(unknown)}; remove it or use one "
            f"of {', '.join(options)}"
        )
    return cls(**kwargs)
