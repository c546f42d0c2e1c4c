"""Faults of auth, ownership, rate limits, bots and timestamps."""

from __future__ import annotations

from .faults import Fault

API_FAULTS: tuple[Fault, ...] = ()
