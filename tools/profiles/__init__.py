"""The profiles' comparison page, docs/profiles.md, generated from the catalogue.

    python -m tools.profiles [--write | --check]

See :mod:`tools.profiles.page` for what the page shows; ``--check`` (CI) fails when the
committed page is not the one the catalogue and the profiles give.
"""

from __future__ import annotations
