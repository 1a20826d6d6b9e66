"""Cross-service compatibility rules between the orchestrator and the STT worker (pure).

The manager calls :func:`check_compatibility` with every service's config as it would be
after a write (the proposed one for the service being written, the stored one for the
others). A non-empty result means the write is refused (422); each
:class:`Violation` names both services' fields so the error can point at them.

Rules (``orchestrator.*`` / ``stt.*`` are field paths):

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
so that ``GET /api/v1/compatibility`` reports them for configs stored by any means.
Rules that need a service whose config is not given are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel

__all__ = ["RULES", "Violation", "check_compatibility"]

ORCHESTRATOR = "orchestrator"
STT = "stt"
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: its name, a readable message, and the fields involved."""

    rule: str
    message: str
    fields: tuple[str, ...]

    @property
    def services(self) -> tuple[str, ...]:
        """Services whose fields are involved, in order of first mention."""
        return tuple(dict.fromkeys(f.split(".", 1)[0] for f in self.fields))

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "fields": list(self.fields)}


Configs = Mapping[str, BaseModel]
Rule = Callable[[Configs], Violation | None]


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


def _overlap_shorter_than_chunk(configs: Configs) -> Violation | None:
    chunk, overlap = _orch(configs, "chunk_duration_s"), _orch(configs, "overlap_duration_s")
    if chunk is None or overlap is None or overlap < chunk:
        return None
    return Violation(
        "overlap_shorter_than_chunk",
        f"overlap ({overlap} s) must be shorter than the chunk ({chunk} s)",
        ("orchestrator.overlap_duration_s", "orchestrator.chunk_duration_s"),
    )


def _interval_within_chunk(configs: Configs) -> Violation | None:
    chunk = _orch(configs, "chunk_duration_s")
    interval = _orch(configs, "processing_interval_s")
    if chunk is None or interval is None or interval <= chunk + _EPS:
        return None
    return Violation(
        "interval_within_chunk",
        f"processing interval ({interval} s) must not be longer than the chunk ({chunk} s)",
        ("orchestrator.processing_interval_s", "orchestrator.chunk_duration_s"),
    )


def _buffer_holds_chunk_and_overlap(configs: Configs) -> Violation | None:
    chunk = _orch(configs, "chunk_duration_s")
    overlap = _orch(configs, "overlap_duration_s")
    buffer = _orch(configs, "buffer_duration_s")
    if chunk is None or overlap is None or buffer is None or buffer + _EPS >= chunk + overlap:
        return None
    return Violation(
        "buffer_holds_chunk_and_overlap",
        f"buffer ({buffer} s) must hold a chunk plus its overlap ({chunk} + {overlap} s)",
        (
            "orchestrator.buffer_duration_s",
            "orchestrator.chunk_duration_s",
            "orchestrator.overlap_duration_s",
        ),
    )


def _sample_rate_accepted(configs: Configs) -> Violation | None:
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
    return Violation(
        "sample_rate_accepted",
        f"the orchestrator sends {rate} Hz but the STT worker accepts {accepted} Hz",
        ("orchestrator.sample_rate", f"stt.{name}"),
    )


def _chunk_within_stt_max(configs: Configs) -> Violation | None:
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
    return Violation(
        "chunk_within_stt_max",
        f"chunks of {chunk} s exceed the STT worker's maximum of {limit} s",
        ("orchestrator.chunk_duration_s", f"stt.{name}"),
    )


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "overlap_shorter_than_chunk": _overlap_shorter_than_chunk,
        "interval_within_chunk": _interval_within_chunk,
        "buffer_holds_chunk_and_overlap": _buffer_holds_chunk_and_overlap,
        "sample_rate_accepted": _sample_rate_accepted,
        "chunk_within_stt_max": _chunk_within_stt_max,
    }
)
"""Every rule by name, in the order they are checked."""


def check_compatibility(configs: Configs) -> list[Violation]:
    """Every rule broken by ``configs`` (service name → config model); empty if all hold."""
    return [v for rule in RULES.values() if (v := rule(configs)) is not None]
