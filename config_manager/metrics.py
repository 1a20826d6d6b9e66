"""Prometheus metrics of one app instance (its own registry: no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """The manager's counters, gauges and histograms, registered in ``self.registry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.writes = Counter(
            "config_manager_writes",
            "Config write attempts by service and result.",
            ["service", "result"],
            registry=self.registry,
        )
        self.publish_latency = Histogram(
            "config_manager_publish_latency_seconds",
            "Time from a write's commit to the broker's PUBACK of its envelope.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300),
            registry=self.registry,
        )
        self.published = Counter(
            "config_manager_published",
            "Envelopes published and acknowledged by the broker.",
            ["kind"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "config_manager_outbox_depth",
            "Outbox rows not yet acknowledged by the broker.",
            registry=self.registry,
        )
        self.broker_connected = Gauge(
            "config_manager_broker_connected",
            "1 while the manager is connected to the broker.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "config_manager_rejected_requests",
            "Requests answered with an error status, by status.",
            ["status"],
            registry=self.registry,
        )
        self.sign_refused = Counter(
            "config_manager_sign_refused",
            "Envelopes the manager refused to sign (a version skipping ahead: a bug).",
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "config_manager_storage_errors",
            "Database operations that failed on a storage fault (disk full, I/O error, "
            "read-only file system...), by operation and SQLite error code.",
            ["operation", "code"],
            registry=self.registry,
        )
        self.storage_writable = Gauge(
            "config_manager_storage_writable",
            "0 from a database write failing on a storage fault until a write succeeds again.",
            registry=self.registry,
        )
        self.storage_writable.set(1)
        self.applied_reports = Counter(
            "config_manager_applied_reports",
            "Applied reports received from service instances, by status.",
            ["status"],
            registry=self.registry,
        )
        self.forged_reports = Counter(
            "config_manager_forged_reports",
            'Applied reports shown as forged (docs/protocol.md, "Report signature"), by '
            "reason: too_large, malformed, unsigned, bad_signature, identity_mismatch, "
            "key_mismatch, replayed.",
            ["reason"],
            registry=self.registry,
        )
