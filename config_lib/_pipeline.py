"""The pure accept pipeline: raw bytes in, a verified and validated config out, or raise.

size limit -> verify (signature, key id, service, replay) -> decrypt secrets with the
service's data key -> validate with the model. No IO, no MQTT, no clock: the MQTT loop,
the LKG loader, tests and benchmarks all feed it the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ._envelope import Envelope, Limits, Position, verify_envelope
from ._exceptions import InvalidConfig, ServiceRetired
from ._keys import DataKey, TrustStore
from ._secrets import decrypt_secrets
from ._sources import validation_summary
from ._topics import validate_name

__all__ = ["Accepted", "ConfigPipeline"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Accepted(Generic[M]):
    """A config that passed every check; ``envelope.raw`` is exactly what was received."""

    envelope: Envelope
    config: M = field(repr=False)

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
