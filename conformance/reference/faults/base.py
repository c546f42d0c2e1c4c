"""What a fault is: a named breakage of one requirement, and the registry that holds them.

A fault declares the catalogue requirement it breaks as a plain id string: this package
never imports the suite's catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..config import DIALECTS


@dataclass(frozen=True)
class Fault:
    """One breakage: its name, the requirement it breaks, and what it does."""

    name: str
    requirement: str
    level: str  # "MUST" or "SHOULD" -- the level of ``requirement``
    description: str
    #: Why this fault may fail more than five other requirements, when it does.
    collateral: str | None = None
    #: The dialect of the server it breaks (ServerConfig.dialect): one of config.DIALECTS.
    dialect: str = "doc"


def fault(
    name: str, requirement: str, description: str, *, level: str = "MUST", collateral: str | None = None, dialect: str = "doc"
) -> Fault:
    return Fault(name, requirement, level, description, collateral, dialect)


def registry(*parts: Iterable[Fault]) -> Mapping[str, Fault]:
    faults: dict[str, Fault] = {}
    for part in parts:
        for one in part:
            if one.name in faults:
                raise ValueError(f"duplicate fault name {one.name!r}")
            if one.dialect not in DIALECTS:
                raise ValueError(f"fault {one.name!r}: dialect must be one of {DIALECTS}")
            if one.level not in ("MUST", "SHOULD"):
                raise ValueError(f"fault {one.name!r}: level must be MUST or SHOULD")
            faults[one.name] = one
    return faults
