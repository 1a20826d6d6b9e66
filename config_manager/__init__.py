"""config_manager: the service that stores typed, versioned configs and publishes them signed.

Run it with ``python -m config_manager`` (see docs/manager.md); create a data directory
with ``python -m config_manager init`` (see docs/operations.md).

The public names below are imported lazily, so that ``config_manager.broker`` (used by the
test harness and ``make run``) does not pull in FastAPI and the database stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import StartupError, create_app
    from .bootstrap import InitResult, init_data_dir, startup_problems
    from .registry import SchemaRegistry
    from .settings import ManagerSettings

__all__ = [
    "InitResult",
    "ManagerSettings",
    "SchemaRegistry",
    "StartupError",
    "create_app",
    "init_data_dir",
    "startup_problems",
]

_WHERE = {
    "StartupError": ".app",
    "create_app": ".app",
    "InitResult": ".bootstrap",
    "init_data_dir": ".bootstrap",
    "startup_problems": ".bootstrap",
    "SchemaRegistry": ".registry",
    "ManagerSettings": ".settings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
