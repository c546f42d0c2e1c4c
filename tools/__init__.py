"""Maintainer tools, run from a checkout (``python -m tools.killmatrix``); not in the wheel."""
