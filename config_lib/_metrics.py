"""Counters of what a ConfigLibrary received and decided, and an optional Prometheus export.

prometheus_client is not a config_lib dependency: :func:`prometheus_collector` imports it
only when called.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["ConfigMetrics", "prometheus_collector"]


@dataclass
class ConfigMetrics:
    """Monotonic counters. ``rejected`` is keyed by the exception's ``reason`` code.

    ``lkg_save_failed`` counts LKG file writes that failed (disk full, read-only...): the
    config was applied all the same.
    """

    received: int = 0
    applied: int = 0
    duplicate: int = 0
    failed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # Freshness: the state now, and the freshness records received / refused by reason.
    freshness: str = "waiting"
    records_received: int = 0
    records_rejected: Counter[str] = field(default_factory=Counter)
    not_authorised: int = 0  # connections the broker refused (credentials or ACL)
    lkg_save_failed: int = 0
    # The root-signed keyset: received, refused by reason; configs in force re-signed.
    keysets_received: int = 0
    keysets_rejected: Counter[str] = field(default_factory=Counter)
    resigned: int = 0
    # Verified envelopes skipped because a newer one arrived before they could be applied.
    coalesced: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def snapshot(self) -> dict[str, Any]:
        """A plain dict copy, e.g. for a health endpoint or a log line."""
        return {
            f.name: dict(value) if isinstance(value := getattr(self, f.name), Counter) else value
            for f in fields(self)
        }


def prometheus_collector(metrics: ConfigMetrics, *, service: str, instance: str) -> Collector:
    """A prometheus_client collector reading ``metrics`` at scrape time.

    Register it with ``prometheus_client.REGISTRY.register(prometheus_collector(...))``.
    Exposes ``config_lib_messages_total{service,instance,outcome}`` (outcome: received,
    applied, duplicate, failed, coalesced), ``config_lib_rejected_total{service,instance,reason}``,
    ``config_lib_freshness{service,instance,state}`` (1 for the state in force, else 0) and
    ``config_lib_freshness_records_rejected_total{service,instance,reason}``.
    ``config_lib_not_authorised_total{service,instance}`` (the broker refused the user) and
    ``config_lib_lkg_save_failures_total{service,instance}``,
    ``config_lib_keysets_rejected_total{service,instance,reason}`` and
    ``config_lib_resigned_total{service,instance}`` (the config in force re-signed).
    """
    from prometheus_client.core import (  # optional dependency
        CounterMetricFamily,
        GaugeMetricFamily,
    )

    labels = ["service", "instance"]

    def total(name: str, doc: str, value: int) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=labels)
        family.add_metric([service, instance], value)
        return family

    def by_reason(name: str, doc: str, counts: Counter[str]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=[*labels, "reason"])
        for reason, count in sorted(counts.items()):
            family.add_metric([service, instance, reason], count)
        return family

    class _ConfigLibCollector:
        def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
            messages = CounterMetricFamily(
                "config_lib_messages", "Config messages by outcome", labels=[*labels, "outcome"]
            )
            for outcome in ("received", "applied", "duplicate", "failed", "coalesced"):
                messages.add_metric([service, instance, outcome], getattr(metrics, outcome))
            yield messages
            yield by_reason(
                "config_lib_rejected", "Config messages rejected, by reason", metrics.rejected
            )
            state = GaugeMetricFamily(
                "config_lib_freshness",
                "Freshness state of the config in force (1 = this state)",
                labels=[*labels, "state"],
            )
            for name in ("waiting", "stale", "fresh"):
                state.add_metric([service, instance, name], 1 if metrics.freshness == name else 0)
            yield state
            yield by_reason(
                "config_lib_freshness_records_rejected",
                "Freshness records refused, by reason",
                metrics.records_rejected,
            )
            yield total(
                "config_lib_not_authorised",
                "Broker connections refused for this user (credentials or ACL)",
                metrics.not_authorised,
            )
            yield total(
                "config_lib_lkg_save_failures",
                "LKG file writes that failed (the config was applied all the same)",
                metrics.lkg_save_failed,
            )
            yield by_reason(
                "config_lib_keysets_rejected",
                "Keysets refused, by reason",
                metrics.keysets_rejected,
            )
            yield total(
                "config_lib_resigned",
                "The config in force received re-signed (LKG file rewritten)",
                metrics.resigned,
            )

    return _ConfigLibCollector()
