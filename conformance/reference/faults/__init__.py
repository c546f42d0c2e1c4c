"""Deliberate breakages of the reference server, one requirement each.

A fault breaks exactly one thing, at byte or handler level, and declares the catalogue
requirement it breaks (as a plain id string: this package never imports the suite's
catalogue). The kill matrix runs the suite once per fault and counts the fault as
killed only when that requirement FAILs through a check attributed to it.

Switch faults on per server instance: ``ServerConfig(faults=frozenset({"name"}))`` or
``python -m conformance.reference --fault NAME``. The registry is split by layer so
that each part lives next to the code it breaks: ``stream`` (event streams), ``wire``
(chat, conversations, cancel, envelopes, validation) and ``api`` (auth, ownership,
rate limits, bots, timestamps), ``coze`` for the coze dialect (``dialect="coze"``:
one fault per COZE-* requirement) and ``studio`` for the studio dialect (``dialect="studio"``:
one fault per STUDIO-* requirement); ``base`` says what a fault is.
"""

from __future__ import annotations

from collections.abc import Mapping

from .api import API_FAULTS
from .base import Fault, registry
from .coze import COZE_FAULTS
from .stream import STREAM_FAULTS
from .studio import STUDIO_FAULTS
from .wire import WIRE_FAULTS

__all__ = ["Fault", "all_faults", "dialect_faults"]


def all_faults() -> Mapping[str, Fault]:
    return registry(STREAM_FAULTS, WIRE_FAULTS, API_FAULTS, COZE_FAULTS, STUDIO_FAULTS)


def dialect_faults(dialect: str) -> Mapping[str, Fault]:
    """The faults of one dialect's server (ServerConfig.dialect): one of config.DIALECTS."""
    return {name: one for name, one in all_faults().items() if one.dialect == dialect}
