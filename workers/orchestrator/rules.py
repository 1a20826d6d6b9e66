"""Cross-service rules between the orchestrator and the STT worker (pure, pydantic only).

Registered with the config manager through the ``config_manager.rules`` entry-point
group (``pyproject.toml``): the entry point's name is the rule's name and its object a
callable ``rule(configs) -> (message, fields) | None``, where ``configs`` maps a service
name to its config (the proposed one for the services being written, the stored one for
the others) and ``fields`` are ``service.field`` paths naming everything involved. The
manager turns a non-None result into a violation (422 on a write, listed by
``GET /api/v1/compatibility``).

=================================  =================================================
rule                               condition
=================================  =================================================
``overlap_shorter_than_chunk``     ``overlap_duration_s < chunk_duration_s``
``interval_within_chunk``          ``processing_interval_s <= chunk_duration_s``
``buffer_holds_chunk_and_overlap`` ``buffer_duration_s >= chunk + overlap``
``sample_rate_accepted``           orchestrator ``sample_rate`` is a rate the STT
                                   worker accepts
``chunk_within_stt_max``           ``chunk_duration_s <= stt.max_chunk_duration_s``
=================================  =================================================

The first three also hold inside :class:`~workers.orchestrator.config.OrchestratorConfig`
(a single-service write that breaks them never gets this far); they are checked here too
so that the compatibility report flags configs stored by any means. A rule whose
service is missing from ``configs`` returns None.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel

__all__ = [
    "RuleResult",
    "buffer_holds_chunk_and_overlap",
    "chunk_within_stt_max",
    "interval_within_chunk",
    "overlap_shorter_than_chunk",
    "sample_rate_accepted",
]

ORCHESTRATOR = "orchestrator"
STT = "stt"
_EPS = 1e-9

Configs = Mapping[str, BaseModel]
RuleResult = tuple[str, tuple[str, ...]] | None
"""``(message, fields)`` when the rule is broken, None when it holds or cannot be checked."""


def _get(model: BaseModel, *names: str) -> tuple[str, Any] | None:
    """First attribute of ``model`` among ``names`` (field names differ across versions)."""
    for name in names:
        if name in type(model).model_fields:
            return name, getattr(model, name)
    return None


def _orch(configs: Configs, name: str) -> float | None:
    model = configs.get(ORCHESTRATOR)
    if model is None or name not in type(model).model_fields:
        return None
    value: float = getattr(model, name)
    return value


def overlap_shorter_than_chunk(configs: Configs) -> RuleResult:
    chunk, overlap = _orch(configs, "chunk_duration_s"), _orch(configs, "overlap_duration_s")
    if chunk is None or overlap is None or overlap < chunk:
        return None
    return (
        f"overlap ({overlap} s) must be shorter than the chunk ({chunk} s)",
        ("orchestrator.overlap_duration_s", "orchestrator.chunk_duration_s"),
    )


def interval_within_chunk(configs: Configs) -> RuleResult:
    chunk = _orch(configs, "chunk_duration_s")
    interval = _orch(configs, "processing_interval_s")
    if chunk is None or interval is None or interval <= chunk + _EPS:
        return None
    return (
        f"processing interval ({interval} s) must not be longer than the chunk ({chunk} s)",
        ("orchestrator.processing_interval_s", "orchestrator.chunk_duration_s"),
    )


def buffer_holds_chunk_and_overlap(configs: Configs) -> RuleResult:
    chunk = _orch(configs, "chunk_duration_s")
    overlap = _orch(configs, "overlap_duration_s")
    buffer = _orch(configs, "buffer_duration_s")
    if chunk is None or overlap is None or buffer is None or buffer + _EPS >= chunk + overlap:
        return None
    return (
        f"buffer ({buffer} s) must hold a chunk plus its overlap ({chunk} + {overlap} s)",
        (
            "orchestrator.buffer_duration_s",
            "orchestrator.chunk_duration_s",
            "orchestrator.overlap_duration_s",
        ),
    )


def sample_rate_accepted(configs: Configs) -> RuleResult:
    rate = _orch(configs, "sample_rate")
    stt = configs.get(STT)
    if rate is None or stt is None:
        return None
    found = _get(stt, "sample_rates", "accepted_sample_rates", "sample_rate")
    if found is None:
        return None
    name, accepted = found
    ok = rate in accepted if isinstance(accepted, Collection) else rate == accepted
    if ok:
        return None
    return (
        f"the orchestrator sends {rate} Hz but the STT worker accepts {accepted} Hz",
        ("orchestrator.sample_rate", f"stt.{name}"),
    )


def chunk_within_stt_max(configs: Configs) -> RuleResult:
    chunk = _orch(configs, "chunk_duration_s")
    stt = configs.get(STT)
    if chunk is None or stt is None:
        return None
    found = _get(stt, "max_chunk_duration_s")
    if found is None or found[1] is None:
        return None
    name, limit = found
    if chunk <= limit + _EPS:
        return None
    return (
        f"chunks of {chunk} s exceed the STT worker's maximum of {limit} s",
        ("orchestrator.chunk_duration_s", f"stt.{name}"),
    )
