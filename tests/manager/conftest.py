"""Fixtures of the config manager tests (helpers live in ``mgr_harness``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mgr_harness import RunningManager, start_manager, write_keys
from mgr_models import DemoConfig
from pydantic import BaseModel


@pytest.fixture
def manager_factory(tmp_path: Path, keys: Any) -> Iterator[Callable[..., RunningManager]]:
    started: list[RunningManager] = []

    def factory(
        *,
        mqtt_url: str,
        models: dict[str, type[BaseModel]],
        data_dir: Path | None = None,
        **kw: Any,
    ) -> RunningManager:
        folder = data_dir or tmp_path / "data"
        if not (folder / "keys" / "signing.pem").exists():
            write_keys(folder, keys)
        running = start_manager(folder, mqtt_url=mqtt_url, models=models, **kw)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()


@pytest.fixture
def manager(
    manager_factory: Callable[..., RunningManager], broker: Any, service_name: str
) -> RunningManager:
    """A manager on the session broker with DemoConfig registered as ``service_name``."""
    return manager_factory(mqtt_url=broker.url("manager"), models={service_name: DemoConfig})


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (``rep_call``): browser tests screenshot failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
