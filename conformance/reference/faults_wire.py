"""Faults of streams, chat, conversations, cancel, envelopes and validation."""

from __future__ import annotations

from .faults import Fault

WIRE_FAULTS: tuple[Fault, ...] = ()
