"""Fixtures of the config_lib tests (the broker, keys and names come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from config_lib import LibrarySettings


@pytest.fixture
def lib_settings(tmp_path: Path) -> LibrarySettings:
    """Library settings for one test: its own LKG folder, short waits and backoff."""
    return LibrarySettings(
        data_dir=tmp_path / "data",
        lkg_dir=tmp_path / "lkg",
        mqtt_url=None,
        instance_id="test-1",
        initial_wait=3.0,
        reconnect_min_delay=0.05,
        reconnect_max_delay=0.5,
        connect_timeout=3.0,
        max_payload_bytes=16 * 1024,
        # Most tests publish envelopes without freshness records: no startup wait for one
        # (tests/lib/test_lib_freshness.py sets it).
        fresh_wait=0.0,
    )


@pytest.fixture
async def manager_client(broker: object) -> AsyncIterator[aiomqtt.Client]:
    """An MQTT client logged in as the `manager` user (writes config/updated/#)."""
    from lib_support import mqtt_client

    async with mqtt_client(broker.endpoint("manager")) as client:  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def debug_client(broker: object) -> AsyncIterator[aiomqtt.Client]:
    """The read-only `debug` user: may read config/# including applied reports."""
    from lib_support import mqtt_client

    async with mqtt_client(broker.endpoint("debug")) as client:  # type: ignore[attr-defined]
        yield client
