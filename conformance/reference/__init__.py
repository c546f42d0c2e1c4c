"""The reference server: the documented Agent API, served for real on 127.0.0.1.

An independent oracle: nothing here imports the suite's checker, client, grammar or
schemas (tests/reference/test_reference_layering.py keeps it so), so a bug there
cannot hide behind the same bug here. See README.md in this directory.
"""

from __future__ import annotations

from .app import ENDPOINTS, create_app
from .config import DEV_PRINCIPALS, PrincipalConfig, ServerConfig
from .model import FAIL_TRIGGER
from .server import ReferenceServer

__all__ = [
    "DEV_PRINCIPALS",
    "ENDPOINTS",
    "FAIL_TRIGGER",
    "PrincipalConfig",
    "ReferenceServer",
    "ServerConfig",
    "create_app",
]
