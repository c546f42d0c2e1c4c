"""What the plugin keeps on pytest's config and items, and how a test says what it judges.

The plugin writes these; the reporters (conformance.reporting) and the pacing
(conformance.run) read them. Kept apart from the plugin so that those readers do not
import the plugin, which imports them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.oracle.outcomes import Checks
from conformance.settings import Settings
from conformance.transport.exchange import ExchangeLog

PACKAGE_DIR = Path(__file__).resolve().parent
#: The shipped conformance test modules: a run that collects none of them leaves the
#: plugin inert.
SUITE_DIR = PACKAGE_DIR / "suite"

#: The run's resolved settings (config.stash).
SETTINGS_KEY = pytest.StashKey[Settings]()
#: A test's judgements (item.stash).
CHECKS_KEY = pytest.StashKey[Checks]()
#: A test's exchanges with the target (item.stash).
LOG_KEY = pytest.StashKey[ExchangeLog]()
#: The attribute of a test report that carries its judgement records to the controller.
RECORDS_ATTR = "conformance_records"


def declared_requirements(item: pytest.Item) -> tuple[str, ...]:
    """The requirement ids a test declares with ``@pytest.mark.requirement``, in order."""
    ids: list[str] = []
    for mark in item.iter_markers("requirement"):
        ids.extend(mark.args)
    return tuple(dict.fromkeys(ids))
