"""Deliberate breakages of the reference server, one requirement each (issue 7).

A fault breaks exactly one thing, at byte or handler level, and declares the catalogue
requirement it breaks (as a plain id string: this package never imports the suite's
catalogue). The kill matrix runs the suite once per fault and counts the fault as
killed only when that requirement FAILs through a check attributed to it.

Switch faults on per server instance: ``ServerConfig(faults=frozenset({"name"}))`` or
``python -m conformance.reference --fault NAME``. The registry is split by layer so
that each part lives next to the code it breaks: ``faults_wire`` (streams, chat,
conversations, cancel, envelopes, validation) and ``faults_api`` (auth, ownership,
rate limits, bots, timestamps).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One breakage: its name, the requirement it breaks, and what it does."""

    name: str
    requirement: str
    level: str  # "MUST" or "SHOULD" -- the level of ``requirement``
    description: str
    #: Why this fault may fail more than five other requirements, when it does.
    collateral: str | None = None


def registry(*parts: Iterable[Fault]) -> Mapping[str, Fault]:
    faults: dict[str, Fault] = {}
    for part in parts:
        for fault in part:
            if fault.name in faults:
                raise ValueError(f"duplicate fault name {fault.name!r}")
            if fault.level not in ("MUST", "SHOULD"):
                raise ValueError(f"fault {fault.name!r}: level must be MUST or SHOULD")
            faults[fault.name] = fault
    return faults


def all_faults() -> Mapping[str, Fault]:
    from .faults_api import API_FAULTS
    from .faults_wire import WIRE_FAULTS

    return registry(WIRE_FAULTS, API_FAULTS)
