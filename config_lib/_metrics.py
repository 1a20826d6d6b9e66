"""Counters of what a ConfigLibrary received and decided, and an optional Prometheus export.

prometheus_client is not a config_lib dependency: :func:`prometheus_collector` imports it
only when called.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    not_authorised: int = 0  # connections the broker refused (credentials or ACL)
    lkg_save_failed: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def snapshot(self) -> dict[str, Any]:
        """A plain dict copy, e.g. for a health endpoint or a log line."""
        return {
            "received": self.received,
            "applied": self.applied,
            "duplicate": self.duplicate,
            "failed": self.failed,
            "rejected": dict(self.rejected),
            "not_authorised": self.not_authorised,
            "lkg_save_failed": self.lkg_save_failed,
        }


def prometheus_collector(metrics: ConfigMetrics, *, service: str, instance: str) -> Collector:
    """A prometheus_client collector reading ``metrics`` at scrape time.

    Register it with ``prometheus_client.REGISTRY.register(prometheus_collector(...))``.
    Exposes ``config_lib_messages_total{service,instance,outcome}`` (outcome: received,
    applied, duplicate, failed), ``config_lib_rejected_total{service,instance,reason}``,
    ``config_lib_not_authorised_total{service,instance}`` (the broker refused the user) and
    ``config_lib_lkg_save_failures_total{service,instance}``.
    """
    from prometheus_client.core import CounterMetricFamily  # optional dependency

    class _ConfigLibCollector:
        def collect(self) -> Iterator[CounterMetricFamily]:
            messages = CounterMetricFamily(
                "config_lib_messages",
                "Config messages by outcome",
                labels=["service", "instance", "outcome"],
            )
            for outcome in ("received", "applied", "duplicate", "failed"):
                messages.add_metric([service, instance, outcome], getattr(metrics, outcome))
            yield messages
            rejected = CounterMetricFamily(
                "config_lib_rejected",
                "Config messages rejected, by reason",
                labels=["service", "instance", "reason"],
            )
            for reason, count in sorted(metrics.rejected.items()):
                rejected.add_metric([service, instance, reason], count)
            yield rejected
            refused = CounterMetricFamily(
                "config_lib_not_authorised",
                "Broker connections refused for this user (credentials or ACL)",
                labels=["service", "instance"],
            )
            refused.add_metric([service, instance], metrics.not_authorised)
            yield refused
            lkg = CounterMetricFamily(
                "config_lib_lkg_save_failures",
                "LKG file writes that failed (the config was applied all the same)",
                labels=["service", "instance"],
            )
            lkg.add_metric([service, instance], metrics.lkg_save_failed)
            yield lkg

    return _ConfigLibCollector()
