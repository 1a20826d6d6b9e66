"""The pure accept pipeline: raw bytes in, a verified and validated config out, or raise.

size limit -> verify (signature, key id, service, replay) -> decrypt secrets with the
service's data key -> validate with the model. No IO, no MQTT, no clock: the MQTT loop,
the LKG loader, tests and benchmarks all feed it the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ._envelope import Envelope, Limits, Position, verify_envelope
from ._exceptions import InvalidConfig, ServiceRetired
from ._keys import DataKey, TrustStore
from ._secrets import decrypt_secrets
from ._sources import validation_summary
from ._topics import validate_name
from ._verdicts import VALIDATED

__all__ = ["Accepted", "ConfigPipeline"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Accepted(Generic[M]):
    """A config that passed every check; ``envelope.raw`` is exactly what was received."""

    envelope: Envelope
    config: M = field(repr=False)
    # ``config.model_dump()`` when already known (shared with the validation cache).
    values: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def position(self) -> Position:
        return self.envelope.position


class ConfigPipeline(Generic[M]):
    """Verifies, decrypts and validates envelopes for one service and model.

    :meth:`accept` raises an :class:`~config_lib.EnvelopeError` subclass (size, shape,
    key, signature, service, replay/duplicate), :class:`~config_lib.SecretError` or
    :class:`~config_lib.InvalidConfig`; each carries a ``reason`` code. Validation runs
    only after the signature has been checked.
    """

    def __init__(
        self,
        *,
        service: str,
        model: type[M],
        trust: TrustStore,
        data_keys: Iterable[DataKey] = (),
        limits: Limits | None = None,
    ) -> None:
        self.service = validate_name(service)
        self.model = model
        self.trust = trust
        self.data_keys = tuple(data_keys)
        self.limits = limits if limits is not None else Limits()
        # Validated configs are shared through config_lib._verdicts only for frozen models
        # (an instance other libraries hold must not change under them).
        self._shareable = bool(model.model_config.get("frozen"))

    def accept(self, raw: bytes, *, last: Position | None = None) -> Accepted[M]:
        envelope = verify_envelope(
            raw, trust=self.trust, service=self.service, last=last, limits=self.limits
        )
        where = f"version {envelope.version} (epoch {envelope.epoch})"
        if envelope.retired:
            raise ServiceRetired(
                f"{self.service} was retired by the config manager at {where}",
                position=envelope.position,
            )
        if self._shareable:
            tag = (self.model, self.service, self.data_keys)
            cached = VALIDATED.get(tag, envelope.raw)
            if isinstance(cached, Accepted):
                # Same bytes, model and data keys: the same immutable config, with this
                # call's verified envelope.
                return Accepted(envelope, cached.config, cached.values)
            accepted = self._validate(envelope, where)
            accepted = Accepted(envelope, accepted.config, accepted.config.model_dump())
            VALIDATED.put(tag, envelope.raw, accepted)
            return accepted
        return self._validate(envelope, where)

    def _validate(self, envelope: Envelope, where: str) -> Accepted[M]:
        try:
            values = decrypt_secrets(envelope.config, service=self.service, keys=self.data_keys)
        except RecursionError:
            raise InvalidConfig(f"{where}: the config nests too deeply") from None
        try:
            config = self.model.model_validate(values)
        except ValidationError as exc:
            # The summary names fields and problems, never the (possibly secret) inputs.
            raise InvalidConfig(
                f"{where} does not fit {self.model.__name__}: {validation_summary(exc)}"
            ) from None
        # The service's own validators are user code: pydantic turns their ValueError and
        # AssertionError into a ValidationError, but anything else they raise must still
        # mean "refused", never a crash of the subscription. The message is not kept (it
        # may quote a value); the exception type is.
        except Exception as exc:
            raise InvalidConfig(
                f"{where}: a {self.model.__name__} validator raised {type(exc).__name__}"
            ) from None
        return Accepted(envelope, config)
