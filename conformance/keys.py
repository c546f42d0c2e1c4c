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
#: The requirements a test judges in the run's profile (item.stash): its markers' ids
#: that belong to the profile (a test may declare ids of several profiles).
PROFILE_DECLARED_KEY = pytest.StashKey[tuple[str, ...]]()
#: The attribute of a test report that carries its judgement records to the controller.
RECORDS_ATTR = "conformance_records"


def declared_requirements(item: pytest.Item) -> tuple[str, ...]:
    """The requirement ids a test declares with ``@pytest.mark.requirement``, in order;
    once the plugin has collected the run, those of the run's profile."""
    in_profile = item.stash.get(PROFILE_DECLARED_KEY, None)
    if in_profile is not None:
        return in_profile
    return marked_requirements(item)


def marked_requirements(item: pytest.Item) -> tuple[str, ...]:
    """Every requirement id of a test's ``@pytest.mark.requirement`` markers, in order."""
    ids: list[str] = []
    for mark in item.iter_markers("requirement"):
        ids.extend(mark.args)
    return tuple(dict.fromkeys(ids))
