"""Broker stopped and restarted while another client keeps publishing: the library
reconnects with backoff, resubscribes and ends on the newest version."""

from __future__ import annotations

from typing import Any

from lib_support import DemoConfig, demo_library, mqtt_client, publish_config, signed

from config_lib import ConfigChange, LibrarySettings


async def test_broker_restart_converges_on_newest_version(
    own_broker: Any, keys: Any, service_name: str, lib_settings: LibrarySettings
) -> None:
    def raw(version: int) -> bytes:
        return signed(keys, service_name, version, beam_size=version)

    manager = own_broker.endpoint("manager")
    async with mqtt_client(manager) as publisher:
        await publish_config(publisher, service_name, raw(1))
    async with demo_library(
        keys, service_name, lib_settings, own_broker.endpoint(service_name)
    ) as cfg:
        assert cfg.version == 1
        versions: list[int] = []

        def record(change: ConfigChange[DemoConfig]) -> None:
            assert change.version is not None
            versions.append(change.version)

        cfg.on_change(record)
        async with mqtt_client(manager) as publisher:
            await publish_config(publisher, service_name, raw(2))
            await cfg.wait_for_version(2, timeout=5)

        for restart in range(2):
            own_broker.stop()
            own_broker.start()
            # Another client keeps publishing as soon as the broker is back, while the
            # library is still in its reconnect backoff.
            async with mqtt_client(manager) as publisher:
                for version in range(3 + 3 * restart, 6 + 3 * restart):
                    await publish_config(publisher, service_name, raw(version))

        newest = await cfg.wait_for_version(8, timeout=15)
        assert newest.beam_size == 8
        assert cfg.version == 8
        assert cfg.connected
        assert versions == sorted(versions)
        assert versions[0] == 2
        assert versions[-1] == 8
        assert cfg.metrics.rejected_total == 0
        assert cfg.metrics.failed == 0

        # One more restart with nothing new: the resubscription redelivers the retained
        # v8, which is ignored quietly as a duplicate.
        received, calls = cfg.metrics.received, len(versions)
        own_broker.stop()
        own_broker.start()
        await cfg.wait_for_received(received + 1, timeout=15)
        assert cfg.metrics.duplicate >= 1
        assert len(versions) == calls
        assert cfg.version == 8
